"""The generate options (options.py): checked once, in one sentence that names no front end's flags or keywords;
the command line builds them from its arguments as it always read them (issue 20). Torch-free import:
tests/test_boundaries.py."""
import dataclasses
import re

import pytest

from chimerax.struc2map import cli
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.options import (BFACTOR_MODES, DEVICES, PRECISIONS, GenerateOptions, TilingConfig,
                                        check_device_name)
from chimerax.struc2map.plddt import MODES


@pytest.mark.parametrize("given, words", [
    ({"resolution": -3}, "Resolution must be a positive number of Å, got -3."),
    ({"resolution": 1e9}, "outside 0.5–100 Å"),
    ({"device": "quantum"}, "Unknown compute device 'quantum': use auto, cpu, cuda, cuda:N or mps."),
    ({"device": "cuda:x"}, "Unknown compute device 'cuda:x'"),
    ({"precision": "fp64"}, "The precision must be one of auto, fp32, bf16, fp16, got 'fp64'."),
    ({"bfactors": "sideways"}, "The B-factor reading must be one of auto, b, plddt, ignore, got 'sideways'."),
    ({"tile_size": 20}, "The tile size must be a multiple of 8 voxels and at least 16, got 20."),
    ({"tile_size": 8}, "at least 16, got 8."),
    ({"margin": 16}, "leave a core of at least one voxel in a 32-voxel tile, got 16."),
    ({"tile_size": 16, "margin": 8}, "in a 16-voxel tile, got 8."),
    ({"margin": -1}, "The tile margin must be at least 0"),
    ({"batch_size": 0}, "The batch size must be at least 1, got 0."),
])
def test_bad_values_are_refused_in_one_neutral_sentence(given, words):
    with pytest.raises(InputError) as err:
        GenerateOptions(**{"resolution": 3.0, **given})
    message = str(err.value)
    assert words in message
    assert message.endswith(".") and "\n" not in message
    assert not re.search(r"--|tileSize|batchSize|gridSpacing", message)  # no front end's flags or keywords


def test_values_are_normalised_and_frozen():
    options = GenerateOptions(4, device=" CUDA:1 ")
    assert options.resolution == 4.0 and isinstance(options.resolution, float) and options.device == "cuda:1"
    with pytest.raises(dataclasses.FrozenInstanceError):
        options.device = "cpu"
    assert GenerateOptions(4).use_bfactors and not GenerateOptions(4, bfactors="ignore").use_bfactors
    for name in ("auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"):
        assert check_device_name(name) == name


def test_tiling_takes_the_defaults_or_the_papers_and_the_values_given():
    assert GenerateOptions(3).tiling() == TilingConfig()
    assert GenerateOptions(3, paper_tiling=True).tiling() == TilingConfig.paper()
    assert GenerateOptions(3, paper_tiling=True, precision="bf16", margin=0).tiling() == dataclasses.replace(
        TilingConfig.paper(), precision="bf16", margin=0)  # 0 is a value, not "not given"
    options = GenerateOptions(3, tile_size=48, batch_size=2)
    assert options.tiling() == TilingConfig(tile_size=48, batch_size=2)
    assert options.tiling() is not options.tiling()  # each caller gets its own


def test_names_are_the_ones_every_front_end_offers():
    assert DEVICES == ("auto", "cpu", "cuda", "mps") and PRECISIONS == ("auto", "fp32", "bf16", "fp16")
    assert BFACTOR_MODES is MODES
    generate = cli.build_parser()._subparsers._group_actions[0].choices["generate"]
    choices = {a.option_strings[0]: a.choices for a in generate._actions if a.option_strings}
    assert tuple(choices["--precision"]) == PRECISIONS and tuple(choices["--bfactors"]) == BFACTOR_MODES


@pytest.mark.parametrize("argv, expected", [
    ([], GenerateOptions(3.5)),
    (["--device", "CPU", "--tile-size", "48", "--margin", "0", "--batch-size", "2", "--precision", "bf16",
      "--weights", "v1", "--bfactors", "plddt"],
     GenerateOptions(3.5, weights="v1", device="cpu", precision="bf16", tile_size=48, margin=0, batch_size=2,
                     bfactors="plddt")),
    (["--paper-tiling", "--ignore-bfactors"], GenerateOptions(3.5, paper_tiling=True, bfactors="ignore")),
])
def test_the_command_line_builds_the_options_from_its_arguments(argv, expected):
    args = cli.build_parser().parse_args(["generate", "m.pdb", "-r", "3.5", "-o", "o.mrc", *argv])
    assert cli._generate_options(args) == expected


@pytest.mark.parametrize("argv, words", [
    (["--tile-size", "20"], "multiple of 8"),
    (["--margin", "16"], "leave a core"),
    (["--batch-size", "0"], "batch size must be at least 1"),
    (["--device", "quantum"], "Unknown compute device 'quantum'"),
])
def test_the_command_line_refuses_bad_options_before_reading_a_model(tmp_path, capsys, argv, words):
    assert cli.main(["generate", str(tmp_path / "absent.pdb"), "-r", "3", "-o", str(tmp_path / "o.mrc"),
                     *argv]) == 2
    err = capsys.readouterr().err
    assert words in err and "absent.pdb" not in err
    assert list(tmp_path.iterdir()) == []
