"""The struc2map command line, run in-process on real files (written and read back)."""
import json

import numpy as np
import pytest

from chimerax.struc2map import cli
from chimerax.struc2map import weights_io
from chimerax.struc2map.mapio import read_map
from chimerax.struc2map.metrics import compare_maps
from chimerax.struc2map.molmap import molmap
from chimerax.struc2map.structure import read_structure


@pytest.fixture
def fragment(data):
    return data("t20s_fragment_emd5623/test_model.pdb"), data("t20s_fragment_emd5623/test_map.ccp4.gz")


def run(*argv):
    return cli.main([str(a) for a in argv])


def test_generate_writes_map_and_json(fragment, tiny_weights, tmp_path, capsys):
    model, exp = fragment
    out, js = tmp_path / "out.mrc", tmp_path / "out.json"
    assert run("generate", model, "-r", 3.3, "-o", out, "--weights", tiny_weights.path, "--compare", exp,
               "--json", js, "--tile-size", 32, "--margin", 6, "--device", "cpu") == 0
    m = read_map(out)
    assert np.allclose(m.voxel_size, 1.0)
    assert any("struc2map" in label and tiny_weights.short_id in label for label in m.header["labels"])
    summary = json.loads(js.read_text(encoding="utf-8"))
    for key in ("correlation", "correlation_about_mean", "pcc", "ssim"):
        assert -1 <= summary["metrics"]["experimental"][key] <= 1
    assert summary["atoms"] == 218 and summary["tiles_total"] >= 1
    text = capsys.readouterr().out
    assert "218 atoms" in text and "vs molmap at 3.3" in text and "vs test_map.ccp4.gz" in text


def test_existing_output_is_kept_without_overwrite(fragment, tiny_weights, tmp_path, capsys):
    out = tmp_path / "out.mrc"
    out.write_bytes(b"precious")
    assert run("generate", fragment[0], "-r", 3.3, "-o", out, "--weights", tiny_weights.path) == 2
    assert "already exists" in capsys.readouterr().err
    assert out.read_bytes() == b"precious"


def test_missing_weights_explain_how_to_get_them(fragment, tmp_path, monkeypatch, capsys):
    monkeypatch.setattr(weights_io, "default_weights_path", lambda: None)
    assert run("generate", fragment[0], "-r", 3.3, "-o", tmp_path / "o.mrc") == 2
    err = capsys.readouterr().err
    assert "No trained Struc2map weights" in err and "struc2map train" in err and "--weights FILE" in err
    assert not (tmp_path / "o.mrc").exists()


@pytest.mark.parametrize("resolution", ["0", "-2", "1000", "nan"])
def test_bad_resolution(fragment, tiny_weights, tmp_path, capsys, resolution):
    assert run("generate", fragment[0], "-r", resolution, "-o", tmp_path / "o.mrc",
               "--weights", tiny_weights.path) == 2
    assert "esolution" in capsys.readouterr().err


def test_bad_inputs_give_clear_errors(fragment, tiny_weights, tmp_path, capsys):
    w = ["--weights", tiny_weights.path]
    assert run("generate", tmp_path / "missing.pdb", "-r", 3, "-o", tmp_path / "o.mrc", *w) == 2
    assert "missing.pdb" in capsys.readouterr().err
    only_h = tmp_path / "h.pdb"
    only_h.write_text("ATOM      1  H   GLY A   1       1.000   2.000   3.000  1.00  0.00           H\nEND\n")
    assert run("generate", only_h, "-r", 3, "-o", tmp_path / "o.mrc", *w) == 2
    assert "atoms" in capsys.readouterr().err
    assert run("generate", fragment[0], "-r", 3, "-o", tmp_path / "no" / "such" / "o.mrc", *w) == 2
    assert "does not exist" in capsys.readouterr().err
    assert run("generate", fragment[0], "-r", 3, "-o", tmp_path / "o.mrc", "--compare", tmp_path / "nomap.mrc", *w) == 2
    assert "nomap.mrc" in capsys.readouterr().err
    assert not (tmp_path / "o.mrc").exists()


def test_molmap_command_matches_engine(fragment, tmp_path):
    out = tmp_path / "mm.mrc"
    assert run("molmap", fragment[0], "-r", 4, "-o", out, "--grid-spacing", 1.2) == 0
    atoms = read_structure(fragment[0])
    ref = molmap(atoms.coords, atoms.atomic_numbers, 4.0, grid_spacing=1.2)
    got = read_map(out)
    np.testing.assert_allclose(got.array, ref.array, rtol=1e-6, atol=1e-7)
    np.testing.assert_allclose(got.origin, ref.origin, atol=1e-4)
    on = tmp_path / "on.mrc"
    assert run("molmap", fragment[0], "-r", 4, "-o", on, "--on-grid", fragment[1]) == 0
    assert read_map(on).array.shape == read_map(fragment[1]).array.shape


def test_compare_command(fragment, tmp_path, capsys):
    model, exp = fragment
    mm, js = tmp_path / "mm.mrc", tmp_path / "c.json"
    assert run("molmap", model, "-r", 3.3, "-o", mm) == 0
    assert run("compare", mm, "--reference", exp, "--json", js) == 0
    result = json.loads(js.read_text(encoding="utf-8"))
    expected = compare_maps(read_map(mm), read_map(exp))
    for key in ("correlation", "correlation_about_mean", "pcc", "ssim", "level", "points"):
        assert result[key] == pytest.approx(expected[key], rel=1e-9)
    assert 0.3 < result["correlation"] <= 1


def test_resolution_help_reads_the_shipped_weights_range(monkeypatch):
    """--resolution's help states what the installed default weights make, from their metadata, not a copy."""
    from chimerax.struc2map import weights_meta

    low, high = weights_meta.read_metadata(weights_meta.default_weights_path())["output"]["resolution_range"]
    assert f"make {low:g}–{high:g} Å" in cli._shipped_range()
    monkeypatch.setattr(weights_meta, "default_weights_path", lambda: None)
    assert "weights list" in cli._shipped_range()
