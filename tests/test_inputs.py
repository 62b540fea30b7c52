"""Inputs and options that used to give tracebacks, silent defaults or numbers without meaning (issue 10, 10-14).

Each case runs the real command line (in-process) or engine on real files written
here and read back; the generator is the small random ``tiny_weights``.
"""
import json
import os
import re
import shutil
import warnings

import numpy as np
import pytest

from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.mapio import read_map, write_map
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.metrics import compare_maps, molmap_contour_level
from chimerax.struc2map.molmap import molmap
from chimerax.struc2map.structure import read_structure
from tests.test_cli import fragment, run  # noqa: F401  (the real fragment and its map; cli.main on str args)

FAST = ["--tile-size", "40", "--margin", "4", "--device", "cpu"]
CIF_HEAD = ("data_x\nloop_\n_atom_site.group_PDB\n_atom_site.id\n_atom_site.type_symbol\n_atom_site.label_atom_id\n"
            "_atom_site.label_comp_id\n_atom_site.label_asym_id\n_atom_site.label_seq_id\n")


def one_error_line(capsys) -> str:
    err = capsys.readouterr().err
    assert err.startswith("struc2map: error: ") and err.count("\n") == 1, err
    return err


# ---------------------------------------------------------------- 10: compare refuses or warns

@pytest.fixture
def maps(fragment, tmp_path):
    """molmap of the fragment on its own grid (the map) and the experimental map (the reference), as files."""
    model, exp = fragment
    mm = tmp_path / "mm.mrc"
    assert run("molmap", model, "-r", 3.3, "-o", mm) == 0
    return mm, exp


def _variant(path, out, *, shift=0.0, array=None):
    m = read_map(path)
    write_map(out, MapData(m.array if array is None else array, m.origin + shift, m.voxel_size))
    return out


def test_compare_refuses_maps_that_do_not_overlap(maps, tmp_path, capsys):
    mm, exp = maps
    far = _variant(mm, tmp_path / "far.mrc", shift=500.0)
    assert run("compare", far, "--reference", exp, "--json", tmp_path / "c.json") == 2
    assert "does not overlap" in one_error_line(capsys)
    assert not (tmp_path / "c.json").exists()


def test_compare_warns_when_the_map_covers_part_of_the_envelope(maps, tmp_path, capsys):
    mm, exp = maps
    box = np.asarray(read_map(mm).shape_xyz) * read_map(mm).voxel_size
    half = _variant(mm, tmp_path / "half.mrc", shift=np.array([box[0] / 2, 0, 0]))
    with pytest.warns(UserWarning, match=r"Only \d+% of the reference test_map.ccp4.gz's envelope lies inside "
                      r"the map half.mrc's box"):
        assert run("compare", half, "--reference", exp) == 0
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        assert run("compare", mm, "--reference", exp) == 0  # the whole envelope inside: no word
    assert not [w for w in caught if "envelope" in str(w.message)]


@pytest.mark.parametrize("which", ["map", "reference"])
def test_compare_refuses_nan_voxels(maps, tmp_path, capsys, which):
    mm, exp = maps
    source = mm if which == "map" else exp
    array = read_map(source).array.copy()
    array[3, 4, 5] = np.nan
    bad = _variant(source, tmp_path / "nan.mrc", array=array)
    pair = (bad, exp) if which == "map" else (mm, bad)
    assert run("compare", pair[0], "--reference", pair[1]) == 2
    assert f"The {which} nan.mrc has 1 voxels that are NaN or infinite" in one_error_line(capsys)


def test_compare_refuses_an_empty_envelope(maps, tmp_path, capsys):
    mm, exp = maps
    zeros = _variant(exp, tmp_path / "zeros.mrc", array=np.zeros_like(read_map(exp).array))
    assert run("compare", mm, "--reference", zeros) == 2
    assert "zeros.mrc is constant (0 everywhere)" in one_error_line(capsys)
    top = float(read_map(exp).array.max())
    assert run("compare", mm, "--reference", exp, "--level", top * 1.5) == 2
    assert "the envelope to compare within is empty" in one_error_line(capsys)


# ---------------------------------------------------------------- 11: 0 is a value; checks up front

@pytest.mark.parametrize("option, words", [("--tile-size", "tile size"), ("--batch-size", "batch size")])
def test_zero_tile_or_batch_size_is_refused(fragment, tiny_weights, tmp_path, capsys, option, words):
    out = tmp_path / "o.mrc"
    assert run("generate", fragment[0], "-r", 3.3, "-o", out, "--weights", tiny_weights.path, option, 0) == 2
    assert words in one_error_line(capsys) and not out.exists()


def test_zero_sigma_factor_is_refused(fragment, tmp_path, capsys):
    out = tmp_path / "m.mrc"
    assert run("molmap", fragment[0], "-r", 4, "-o", out, "--sigma-factor", 0) == 2
    assert "sigma factor must be a positive" in one_error_line(capsys) and not out.exists()


def test_batch_with_a_bad_resolution_stops_up_front(fragment, tiny_weights, tmp_path, capsys):
    models = tmp_path / "models"
    models.mkdir()
    shutil.copy(fragment[0], models)
    out = tmp_path / "maps"
    assert run("generate", models, "-r", -4, "--output-dir", out, "--weights", tiny_weights.path) == 2
    assert "esolution" in one_error_line(capsys)
    assert not out.exists()


def test_batch_does_not_take_an_empty_map_as_done(fragment, tiny_weights, tmp_path, capsys):
    models, out = tmp_path / "models", tmp_path / "maps"
    models.mkdir()
    out.mkdir()
    shutil.copy(fragment[0], models)
    (out / "test_model.mrc").touch()
    assert run("generate", models, "-r", 4, "--output-dir", out, "--weights", tiny_weights.path, *FAST) == 1
    (record,) = [json.loads(line) for line in (out / "struc2map_batch.rank0.jsonl").read_text().splitlines()]
    assert record["status"] == "failed" and "is empty (0 bytes)" in record["error"]
    assert (out / "test_model.mrc").stat().st_size == 0  # left as it was: not ours to replace unasked
    assert run("generate", models, "-r", 4, "--output-dir", out, "--weights", tiny_weights.path, *FAST,
               "--overwrite") == 0
    assert read_map(out / "test_model.mrc").array.size > 0


# ---------------------------------------------------------------- 12: one clear sentence per bad file

def _cases(tmp_path, fragment):
    folder = tmp_path / "folder.pdb"
    folder.mkdir()
    fifo = tmp_path / "pipe.pdb"
    os.mkfifo(fifo)
    loop = tmp_path / "loop.pdb"
    loop.symlink_to(loop)
    empty = tmp_path / "empty.cif"
    empty.touch()
    blank = tmp_path / "blank.cif"
    blank.write_text("\n\n# nothing here\n")
    no_xyz = tmp_path / "no_xyz.cif"
    no_xyz.write_text(CIF_HEAD + "ATOM 1 C CA GLY A 1\nATOM 2 N N GLY A 1\n")
    return [(folder, "is a folder, not a file"), (fifo, "is a FIFO (named pipe), not a regular file"),
            (loop, "is a symbolic link that points to itself in a loop"), (empty, "is empty (0 bytes)"),
            (blank, "it holds no mmCIF data block"),
            (no_xyz, "no_xyz.cif lists 2 atoms but gives no coordinates for them"),
            (tmp_path / "missing.pdb", "does not exist")]


def test_bad_structure_files_are_named_in_one_sentence(fragment, tmp_path):
    for path, words in _cases(tmp_path, fragment):
        with pytest.raises(InputError) as caught:
            read_structure(path)
        message = str(caught.value)
        assert words in message and "\n" not in message and "vector::" not in message, (path, message)


def test_bad_map_files_are_named_in_one_sentence(fragment, tmp_path):
    for path, words in _cases(tmp_path, fragment)[:4]:
        with pytest.raises(InputError, match=re.escape(words)):
            read_map(path)


def test_bad_files_on_the_command_line_exit_2(fragment, tiny_weights, tmp_path, capsys):
    empty = tmp_path / "empty.cif"
    empty.touch()
    assert run("generate", empty, "-r", 3.3, "-o", tmp_path / "o.mrc", "--weights", tiny_weights.path) == 2
    assert "empty.cif is empty (0 bytes)" in one_error_line(capsys)
    fifo = tmp_path / "pipe.mrc"
    os.mkfifo(fifo)
    assert run("compare", fifo, "--reference", fragment[1]) == 2  # and does not hang on the pipe
    assert "is a FIFO (named pipe)" in one_error_line(capsys)


def test_a_file_name_that_is_not_utf8(fragment, tiny_weights, tmp_path, capsys):
    odd = os.path.join(os.fsencode(tmp_path), b"model\xff.pdb")
    shutil.copy(fragment[0], odd)
    assert run("generate", os.fsdecode(odd), "-r", 3.3, "-o", tmp_path / "o.mrc",
               "--weights", tiny_weights.path) == 2
    assert "is not valid UTF-8" in one_error_line(capsys)


def test_unknown_elements_are_named_in_the_warning(tmp_path):
    pdb = tmp_path / "xx.pdb"
    pdb.write_text("ATOM      1  XX  UNK A   7       1.000   2.000   3.000  1.00  0.00          XX\n"
                   "ATOM      2  CA  GLY A   8       4.000   2.000   3.000  1.00  0.00           C\nEND\n")
    with pytest.warns(UserWarning, match=r"1 atom\(s\) of unknown element are treated as carbon: A/UNK 7/XX\."):
        atoms = read_structure(pdb)
    assert atoms.atomic_numbers.tolist() == [6, 6]


# ---------------------------------------------------------------- 13: the header says what the map has

def test_map_label_records_the_resolution_the_map_has(fragment, tiny_weights, tmp_path, capsys):
    out = tmp_path / "o.mrc"
    assert run("generate", fragment[0], "-r", 2.5, "-o", out, "--weights", tiny_weights.path, *FAST) == 0
    assert "left at 3 Å" in capsys.readouterr().out  # tiny_weights' native resolution is 3 Å
    label = read_map(out).header["labels"][0]
    assert " res 3 " in label and "2.5" not in label


# ---------------------------------------------------------------- 14: one molmap envelope, named

def test_vs_molmap_is_scored_within_molmaps_own_contour(fragment, tiny_weights, tmp_path, capsys):
    out, js = tmp_path / "o.mrc", tmp_path / "o.json"
    assert run("generate", fragment[0], "-r", 3.5, "-o", out, "--weights", tiny_weights.path, *FAST,
               "--json", js) == 0
    line = [s for s in capsys.readouterr().out.splitlines() if "vs molmap" in s][0]
    assert line.endswith("(within molmap's contour enclosing 95% of its mass)")
    scores = json.loads(js.read_text(encoding="utf-8"))["metrics"]["molmap"]
    atoms, generated = read_structure(fragment[0]), read_map(out)
    reference = molmap(atoms.coords, atoms.atomic_numbers, 3.5, on_grid=generated)
    assert scores["level"] == molmap_contour_level(reference)
    assert scores["points"] == np.count_nonzero(reference.array >= np.float32(scores["level"]))
    assert f"about mean {scores['correlation_about_mean']:.4f}" in line


def test_compare_maps_in_the_engine_refuses_too():
    m = MapData(np.random.default_rng(0).random((10, 10, 10)).astype(np.float32), (0, 0, 0), 1.0)
    with pytest.raises(InputError, match="does not overlap"):
        compare_maps(MapData(m.array, (300, 0, 0), 1.0), m)
