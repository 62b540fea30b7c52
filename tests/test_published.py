"""Importing struc2mapGAN Lightning checkpoints, and running the imported weights by name.

The real published checkpoint (138 MB) cannot be downloaded on the test
machines, so checkpoints are built here in its layout (Lightning's keys,
``generator.``/``discriminator.`` prefixes, optimiser and scheduler states);
the test of the real file runs only where it is present.
"""
import json
import os
import sys
import types
from collections import OrderedDict
from pathlib import Path

import numpy as np
import pytest
import torch

from chimerax.struc2map import cli
from chimerax.struc2map.errors import InputError, WeightsError
from chimerax.struc2map.generate import generate, simulate_input
from chimerax.struc2map.network import Discriminator, Generator
from chimerax.struc2map.published import PUBLISHED, import_checkpoint, load_checkpoint
from chimerax.struc2map.options import TilingConfig
from chimerax.struc2map.weights_meta import RECIPES
from chimerax.struc2map.structure import read_structure
from chimerax.struc2map.userdata import downloads_folder, weights_folder
from chimerax.struc2map.weights_io import load_weights_or_shipped
from chimerax.struc2map.files import file_sha256
from chimerax.struc2map.weights_meta import installed_weights, resolve_weights
from tests.chimerax_session import cx_session  # noqa: F401  (fixture)

SMALL = (4, 8, 16, 32)
PUBLISHED_WIDTHS = (32, 64, 128, 256)


@pytest.fixture(autouse=True)
def user_home(tmp_path, monkeypatch):
    """Every test gets its own user data folder (imported weights, downloads)."""
    home = tmp_path / "home"
    monkeypatch.setenv("STRUC2MAP_HOME", str(home))
    return home


def random_generator(widths=SMALL, seed=0) -> Generator:
    torch.manual_seed(seed)
    g = Generator(widths)
    for p in g.parameters():
        p.data.normal_(0, 0.1)
    return g


def lightning_checkpoint(path: Path, widths=SMALL, *, seed=0, hyper_parameters=None, optimiser=True,
                         edit=None) -> Generator:
    """Save a checkpoint laid out as Lightning 2.2 saves the authors' GAN module; return its generator."""
    generator, discriminator = random_generator(widths, seed), Discriminator(widths)
    state = OrderedDict([(f"generator.{k}", v) for k, v in generator.state_dict().items()]
                        + [(f"discriminator.{k}", v) for k, v in discriminator.state_dict().items()])
    optimisers, schedulers = [], []
    for module in (generator, discriminator) if optimiser else ():
        opt = torch.optim.NAdam(module.parameters(), lr=1e-4)
        for p in module.parameters():
            p.grad = torch.zeros_like(p)
        opt.step()  # fills exp_avg, exp_avg_sq, mu_product and step for every parameter
        sched = torch.optim.lr_scheduler.ReduceLROnPlateau(opt, mode="min", factor=0.5, patience=15)
        sched.step(0.25)
        optimisers.append(opt.state_dict())
        schedulers.append(sched.state_dict())
    checkpoint = {
        "epoch": 149, "global_step": 5400, "pytorch-lightning_version": "2.2.3", "state_dict": state,
        "loops": {"fit_loop": {"state_dict": {}, "epoch_progress": {"total": {"ready": 150, "completed": 149}}}},
        "callbacks": {"ModelCheckpoint{'monitor': None, 'mode': 'min', 'every_n_train_steps': 0}": {
            "monitor": None, "best_model_score": None, "best_model_path": "", "current_score": None,
            "dirpath": "/results/24-0517-132907", "best_k_models": {}, "kth_best_model_path": "",
            "kth_value": torch.tensor(float("inf")), "last_model_path": "/results/last.ckpt"}},
        "optimizer_states": optimisers, "lr_schedulers": schedulers, "hparams_name": "kwargs",
        "hyper_parameters": hyper_parameters if hyper_parameters is not None else
        {"data_shape": (1, 32, 32, 32), "lrG": 1e-4, "lrD": 1e-4, "alpha": 0.01, "batch_size": 128},
    }
    if edit:
        edit(checkpoint)
    torch.save(checkpoint, path)
    return generator


@pytest.fixture
def fragment(data):
    return read_structure(data("t20s_fragment_emd5623/test_model.pdb"))


def test_import_keeps_the_generator_only_and_records_where_it_came_from(tmp_path, fragment):
    ckpt = tmp_path / "run.ckpt"
    source = lightning_checkpoint(ckpt)
    pt_path = import_checkpoint(ckpt)
    assert pt_path == weights_folder() / "published.pt"
    weights = load_weights_or_shipped("published")  # found by name in the user's weights folder
    assert weights.path == pt_path
    loaded = weights.generator.state_dict()
    assert loaded.keys() == source.state_dict().keys()  # no discriminator, no optimiser state
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())
    meta = weights.metadata
    assert meta["widths"] == list(SMALL) and meta["input"] == RECIPES["molmap"]
    assert meta["output"]["mask_radius"] == 3.0 and meta["output"]["resolution"] == 3.3
    assert meta["provenance"] == {"checkpoint": "run.ckpt", "checkpoint_sha256": file_sha256(ckpt),
                                  "checkpoint_size": ckpt.stat().st_size, "published": False}
    assert "not the published file" in meta["description"]
    assert meta["training"]["epoch"] == 149 and meta["training"]["hyper_parameters"]["data_shape"] == [1, 32, 32, 32]
    generated, report = generate(fragment.coords, fragment.atomic_numbers, 4.0, weights, device="cpu")
    assert report.weights == weights.short_id and np.isfinite(generated.array).all()
    outside = generated.array == 0  # masked 3 Å around the atoms, background made 0: our convention
    assert 0.2 < outside.mean() < 0.9 and generated.array.std() > 0


def test_published_checkpoint_is_recognised_by_its_sha256(tmp_path, monkeypatch):
    import dataclasses

    from chimerax.struc2map import published

    ckpt = tmp_path / "struc2mapGAN.ckpt"
    lightning_checkpoint(ckpt)
    monkeypatch.setattr(published, "PUBLISHED", dataclasses.replace(PUBLISHED, sha256=file_sha256(ckpt)))
    meta = load_weights_or_shipped(import_checkpoint(ckpt, name="authors", input_recipe="tempy-blur")).metadata
    assert meta["provenance"]["published"] and meta["provenance"]["source_url"] == "https://osf.io/download/397v2/"
    assert meta["provenance"]["licence"].startswith("GPL-3.0") and meta["description"] == PUBLISHED.description
    assert meta["input"] == RECIPES["tempy-blur"]


def test_published_widths_import(tmp_path):
    """The full-width generator (≈10.29 M parameters) imports whole; optimiser states are left out for speed."""
    ckpt = tmp_path / "full.ckpt"
    source = lightning_checkpoint(ckpt, PUBLISHED_WIDTHS, optimiser=False)
    weights = load_weights_or_shipped(import_checkpoint(ckpt, name="full", output=tmp_path / "w"))
    assert weights.metadata["widths"] == list(PUBLISHED_WIDTHS)
    assert round(sum(p.numel() for p in weights.generator.parameters()) / 1e4) == 1029  # PAPER_NOTES: ≈10.29 M
    loaded = weights.generator.state_dict()
    assert all(torch.equal(loaded[k], v) for k, v in source.state_dict().items())


def test_lightning_attribute_dict_hyper_parameters_are_read_as_a_dict(tmp_path, monkeypatch):
    """Some Lightning versions store hyper-parameters as their AttributeDict; it is rebuilt as a plain dict."""
    names = ["lightning", "lightning.fabric", "lightning.fabric.utilities", "lightning.fabric.utilities.data"]
    for name in names:
        monkeypatch.setitem(sys.modules, name, types.ModuleType(name))
    AttributeDict = type("AttributeDict", (dict,), {"__module__": names[-1]})
    sys.modules[names[-1]].AttributeDict = AttributeDict
    ckpt = tmp_path / "attr.ckpt"
    lightning_checkpoint(ckpt, optimiser=False, hyper_parameters=AttributeDict(lrG=1e-4, alpha=0.01))
    for name in names:
        monkeypatch.delitem(sys.modules, name)  # as on a machine without Lightning
    checkpoint = load_checkpoint(ckpt)
    assert checkpoint["hyper_parameters"] == {"lrG": 1e-4, "alpha": 0.01}
    assert type(checkpoint["hyper_parameters"]) is dict


class CreatesFile:
    """Unpickling this creates the file it names (a stand-in for any code a pickle could run)."""

    def __init__(self, path):
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def test_malicious_checkpoint_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "pwned"
    ckpt = tmp_path / "evil.ckpt"
    lightning_checkpoint(ckpt, optimiser=False, edit=lambda c: c["callbacks"].update(evil=CreatesFile(marker)))
    with pytest.raises(WeightsError, match=r"refused: reading it would import io\.open, which could run code"):
        import_checkpoint(ckpt)
    assert not marker.exists() and not (weights_folder() / "published.pt").exists()
    torch.load(ckpt, weights_only=False)  # proves the payload is live: an unsafe load runs it
    assert marker.exists()


@pytest.mark.parametrize("edit, message", [
    (lambda c: c["state_dict"].pop("generator.final.bias"), r"missing: final\.bias"),
    (lambda c: c["state_dict"].__setitem__("generator.conv0_2.conv2.weight", torch.zeros(4, 4, 3, 3, 1)),
     r"of the wrong shape: conv0_2\.conv2\.weight"),
    (lambda c: c["state_dict"].pop("generator.conv2_0.conv1.weight"), r"has no encoder layer 'conv2_0\.conv1\.weight'"),
    (lambda c: [c["state_dict"].pop(k) for k in list(c["state_dict"]) if k.startswith("generator.")],
     "no 'generator.' parameters"),
    (lambda c: c.pop("state_dict"), "not a PyTorch Lightning checkpoint"),
    # a first layer of 100,000 channels would need a terabyte-sized generator: refused, nothing allocated
    (lambda c: c["state_dict"].update({"generator.conv0_0.conv1.weight": torch.zeros(100_000, 1, 1, 1, 1)}),
     "at most 4096 channels"),
    (lambda c: c["state_dict"].update({"generator.conv0_0.conv1.weight": torch.zeros(4000, 1, 1, 1, 1)}),
     "of the wrong shape: conv0_0"),
])
def test_damaged_checkpoints_are_clear_errors(tmp_path, edit, message):
    ckpt = tmp_path / "bad.ckpt"
    lightning_checkpoint(ckpt, optimiser=False, edit=edit)
    with pytest.raises(WeightsError, match=message):
        import_checkpoint(ckpt)
    assert not weights_folder().exists() or not list(weights_folder().iterdir())


def test_not_a_checkpoint(tmp_path):
    bad = tmp_path / "notes.ckpt"
    bad.write_text("hello")
    with pytest.raises(WeightsError, match="is not a readable PyTorch checkpoint"):
        import_checkpoint(bad)
    with pytest.raises(WeightsError, match="does not exist"):
        import_checkpoint(tmp_path / "missing.ckpt")


def test_import_refuses_bad_names_and_existing_weights(tmp_path):
    ckpt = tmp_path / "run.ckpt"
    lightning_checkpoint(ckpt, optimiser=False)
    with pytest.raises(WeightsError, match="cannot name weights"):
        import_checkpoint(ckpt, name="../escape")
    import_checkpoint(ckpt)
    with pytest.raises(InputError, match="already exists"):
        import_checkpoint(ckpt)
    import_checkpoint(ckpt, overwrite=True)


def test_import_output_that_is_a_file_is_one_sentence(tmp_path, capsys):
    ckpt = tmp_path / "run.ckpt"
    lightning_checkpoint(ckpt, optimiser=False)
    (tmp_path / "a_file").write_text("x")
    for output, words in ((tmp_path / "a_file", "is a file, not a folder"),
                          (tmp_path / "a_file" / "sub", "Cannot create the weights folder")):
        assert cli.main(["weights", "import", str(ckpt), "--output", str(output)]) == 2
        err = capsys.readouterr().err
        assert words in err and len(err.strip().splitlines()) == 1, err


def test_import_never_replaces_the_checkpoint_it_reads(tmp_path, capsys):
    ckpt = tmp_path / "x.pt"  # a checkpoint named like the weights it would become
    lightning_checkpoint(ckpt, optimiser=False)
    before = ckpt.read_bytes()
    assert cli.main(["weights", "import", str(ckpt), "--output", str(tmp_path), "--name", "x", "--overwrite"]) == 2
    err = capsys.readouterr().err
    assert "it is an input of this run" in err and len(err.strip().splitlines()) == 1
    assert ckpt.read_bytes() == before and not (tmp_path / "x.json").exists()


def test_cli_import_list_and_generate_by_name(tmp_path, data, tiny_weights, capsys):
    ckpt = tmp_path / "run.ckpt"
    lightning_checkpoint(ckpt, optimiser=False)
    assert cli.main(["weights", "import", str(ckpt), "--name", "mine", "--input", "tempy-blur"]) == 0
    out = capsys.readouterr().out
    assert f"checkpoint sha256 {file_sha256(ckpt)}: not the published checkpoint" in out
    assert f"imported as {weights_folder() / 'mine.pt'} (widths 4/8/16/32, input tempy-blur)" in out
    assert cli.main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert f"mine: Lightning checkpoint run.ckpt (not the published file; sha256 {file_sha256(ckpt)[:12]})" in out
    meta = resolve_weights("mine")
    assert f"  {meta}\n  widths 4/8/16/32; input tempy-blur; native resolution 3.3 Å; sha256 " in out
    assert [w.name for w in installed_weights()][0] == "mine"
    model = data("t20s_fragment_emd5623/test_model.pdb")
    out_map = tmp_path / "out.mrc"
    assert cli.main(["generate", str(model), "-r", "4", "-o", str(out_map), "--weights", "mine"]) == 0
    assert f"weights {file_sha256(weights_folder() / 'mine.pt')[:12]}" in capsys.readouterr().out
    assert cli.main(["generate", str(model), "-r", "4", "-o", str(tmp_path / "no.mrc"), "--weights", "nothing"]) == 2
    err = capsys.readouterr().err
    assert "No weights 'nothing': it is not the name of installed weights (installed: mine" in err
    assert cli.main(["weights", "import", str(ckpt), "--name", "mine"]) == 2
    assert "already exists" in capsys.readouterr().err


def test_weights_given_as_a_path_resolve_to_that_file(tiny_weights, tmp_path):
    for missing in (tmp_path / "gone.pt", tmp_path / "gone", "gone.json"):
        with pytest.raises(WeightsError, match="does not exist"):  # a path, not looked up as a name
            load_weights_or_shipped(missing)
    assert resolve_weights(tiny_weights.path) == tiny_weights.path
    assert resolve_weights(tiny_weights.path.with_suffix("")) == tiny_weights.path
    assert resolve_weights(tiny_weights.path.with_suffix(".json")) == tiny_weights.path


def test_a_bare_name_never_means_a_file_in_the_working_folder(tiny_weights, tmp_path, monkeypatch):
    """Unrelated v1.pt/v1.json where the command runs: --weights v1 is the installed v1, never those."""
    monkeypatch.chdir(tmp_path)
    for suffix in (".pt", ".json"):
        (tmp_path / f"v1{suffix}").write_bytes(tiny_weights.path.with_suffix(suffix).read_bytes())
    shipped = [w for w in installed_weights() if w.name == "v1"]
    if shipped:
        assert resolve_weights("v1") == shipped[0].path != tmp_path / "v1.pt"
    (tmp_path / "mine.pt").write_bytes(tiny_weights.path.read_bytes())
    with pytest.raises(WeightsError, match=r"not the name of installed weights .*; for the file mine\.pt in this "
                                           r"folder give \./mine\.pt"):
        resolve_weights("mine")
    assert resolve_weights("./v1") == Path("v1.pt")


@pytest.mark.parametrize("change", [{"description": "", "training": [1, 2]},
                                    {"description": "", "training": {"pairs": 5}},
                                    {"output": {"resolution_range": [9, 2]}}])
def test_weights_list_names_a_bad_file_and_lists_the_rest(tmp_path, capsys, change):
    ckpt = tmp_path / "run.ckpt"
    lightning_checkpoint(ckpt, optimiser=False)
    for name in ("bad", "good"):
        import_checkpoint(ckpt, name=name)
    meta_path = weights_folder() / "bad.json"
    meta = json.loads(meta_path.read_text())
    meta.update(change)
    meta_path.write_text(json.dumps(meta))
    assert cli.main(["weights", "list"]) == 0
    out = capsys.readouterr().out
    assert "good: Lightning checkpoint run.ckpt" in out and "Traceback" not in out
    assert ("bad: cannot be used: " in out and "resolution_range" in out) if "output" in change else \
        "bad: no description" in out


def test_input_recipe_is_honoured(tmp_path, fragment, monkeypatch):
    """tempy-blur weights get the TEMPy-style map, z-scored; molmap weights get molmap (as before)."""
    from chimerax.struc2map import generate as generate_module
    from chimerax.struc2map.molmap import molmap
    from chimerax.struc2map.simulators import normalize_zscore, tempy_blur

    ckpt = tmp_path / "run.ckpt"
    lightning_checkpoint(ckpt, optimiser=False)
    molmap_w = load_weights_or_shipped(import_checkpoint(ckpt, name="a"))
    tempy_w = load_weights_or_shipped(import_checkpoint(ckpt, name="b", input_recipe="tempy-blur"))
    a = simulate_input(fragment.coords, fragment.atomic_numbers, molmap_w, 4.0)
    b = simulate_input(fragment.coords, fragment.atomic_numbers, tempy_w, 4.0)
    assert np.array_equal(a.origin, b.origin) and a.array.shape == b.array.shape
    assert np.array_equal(a.array, molmap(fragment.coords, fragment.atomic_numbers, 2.0, on_grid=a).array)
    assert np.array_equal(b.array, tempy_blur(fragment.coords, fragment.atomic_numbers, 2.0, a).array)
    assert not np.allclose(normalize_zscore(a.array), normalize_zscore(b.array), atol=0.05)  # different inputs
    fed = []
    real_predict = generate_module.predict_tiled

    def spy(generator, volume, *args, **kwargs):  # records the generator's input, then runs the real thing
        fed.append(volume)
        return real_predict(generator, volume, *args, **kwargs)

    monkeypatch.setattr(generate_module, "predict_tiled", spy)
    generate(fragment.coords, fragment.atomic_numbers, 4.0, tempy_w, device="cpu")
    np.testing.assert_allclose(fed[0], normalize_zscore(b.array), atol=1e-6)


@pytest.mark.parametrize("recipe", ["molmap", "tempy-blur"])
def test_chimerax_input_step_checks_memory_for_either_recipe(tmp_path, fragment, monkeypatch, recipe):
    # The machine's free memory is replaced by a small number: a map too large for it cannot be made here.
    from chimerax.struc2map import cmd, memory

    ckpt = tmp_path / "run.ckpt"
    lightning_checkpoint(ckpt, optimiser=False)
    weights = load_weights_or_shipped(import_checkpoint(ckpt, name="w", input_recipe=recipe))
    monkeypatch.setattr(memory, "memory_limit", lambda: (10_000, "free memory"))
    job = types.SimpleNamespace(xyz=fragment.coords, element_weights=fragment.atomic_numbers.astype(np.float32))
    with pytest.raises(InputError, match=r"voxels .* needs about"):
        cmd._simulated_input(job, weights, 4.0, TilingConfig())


def _real_checkpoint() -> Path | None:
    """The published checkpoint where a user has it: $STRUC2MAP_PUBLISHED_CKPT or the user's downloads folder."""
    for candidate in (os.environ.get("STRUC2MAP_PUBLISHED_CKPT"), downloads_folder() / PUBLISHED.file_name):
        if candidate and Path(candidate).is_file():
            return Path(candidate)
    return None


REAL = _real_checkpoint()  # looked up at import, before the tests' own user folder is set


@pytest.mark.skipif(REAL is None, reason="the published checkpoint struc2mapGAN.ckpt (138 MB, from "
                    "https://osf.io/download/397v2/) is neither at $STRUC2MAP_PUBLISHED_CKPT nor in the user's "
                    "downloads folder ('struc2map weights download published' puts it there)")
def test_real_published_checkpoint_reproduces_the_authors_example(tmp_path, data):
    """With the authors' input recipe, our pipeline should give the map their script gave for 8I2H."""
    from chimerax.struc2map.mapio import read_map
    from chimerax.struc2map.metrics import chimerax_correlation
    from chimerax.struc2map.tiling import TilingConfig

    assert file_sha256(REAL) == PUBLISHED.sha256
    atoms = read_structure(data("paper_example_8i2h/8i2h_ref.pdb"))
    theirs = read_map(data("paper_example_8i2h/8i2h_struc2mapGAN.mrc.gz"))
    scores = {}
    for recipe in RECIPES:
        weights = load_weights_or_shipped(import_checkpoint(REAL, name=recipe, output=tmp_path, input_recipe=recipe))
        assert weights.metadata["widths"] == list(PUBLISHED_WIDTHS) and weights.metadata["provenance"]["published"]
        ours, _ = generate(atoms.coords, atoms.atomic_numbers, 3.3, weights, tiling=TilingConfig.paper())
        scores[recipe] = chimerax_correlation(theirs, ours)["correlation_about_mean"]
    assert scores["tempy-blur"] > 0.9, scores


def test_chimerax_command_and_panel_use_imported_weights_by_name(tmp_path, data, cx_session, monkeypatch):
    """`struc2map #1 ... weights NAME` in a real ChimeraX session (the wheel's code), and the panel's choice."""
    from tests.chimerax_session import open_pdb, run
    from tests.panel_standins import install_gui_standins, qt_application  # a real Qt (PyQt6), stand-in window

    ckpt = tmp_path / "run.ckpt"
    lightning_checkpoint(ckpt, optimiser=False)
    import_checkpoint(ckpt, name="authors", input_recipe="tempy-blur")
    from chimerax.struc2map.cmd import register_command

    register_command(cx_session.logger)
    open_pdb(cx_session, data("t20s_fragment_emd5623/test_model.pdb"))
    (volume,) = run(cx_session, "struc2map #1 resolution 4 weights authors")
    expected, _ = generate(*_heavy(cx_session), 4.0, load_weights_or_shipped("authors"), device="cpu")
    np.testing.assert_allclose(volume.full_matrix(), expected.array, atol=1e-4)
    with pytest.raises(Exception, match="No weights 'nobody'"):
        run(cx_session, "struc2map #1 resolution 4 weights nobody")

    install_gui_standins(monkeypatch.setitem)
    qt_application()
    from chimerax.struc2map.tool import Struc2mapTool

    tool = Struc2mapTool(cx_session, "Struc2mapGAN")
    try:
        items = [tool.weights_menu.itemText(i) for i in range(tool.weights_menu.count())]
        assert items[:2] == ["shipped (default)", "authors"]
        assert "not the published file" in tool.weights_menu.itemData(1, tool._tooltip_role())
        tool.weights_menu.setCurrentIndex(1)
        assert tool.command_text() == "struc2map #1 resolution 3.5 weights authors"
    finally:
        tool.delete()


def _heavy(session):
    """Coordinates and atomic numbers of the first structure's atoms other than hydrogen (what the command uses)."""
    atoms = session.models.list()[0].atoms
    atoms = atoms.filter(atoms.element_numbers != 1)
    return atoms.coords, atoms.element_numbers
