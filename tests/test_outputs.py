"""No input or option destroys a file: every output (map, --json, batch maps) is checked before the work,
is a regular file or absent, is never an input, and is never replaced without --overwrite, not even when
it appears while the map is computed. Issue 10, items 1-5 and 8.

Tests write only inside their temporary folders: special files are FIFOs made there with mkfifo; the
real /dev/null is only stat()ed, never written.
"""
import json
import os
import signal
import stat
import subprocess
import sys
import textwrap

import numpy as np
import pytest

from chimerax.struc2map import cli, files, model_to_map
from chimerax.struc2map import molmap as molmap_module
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.files import atomic_path, check_output, special_file_kind
from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.mapio import write_map

FAST = ["--tile-size", "40", "--margin", "4", "--device", "cpu"]


@pytest.fixture
def fragment(data):
    return data("t20s_fragment_emd5623/test_model.pdb"), data("t20s_fragment_emd5623/test_map.ccp4.gz")


def run(*argv):
    return cli.main([str(a) for a in argv])


def one_error(capsys) -> str:
    """The single stderr line of a refusal (no traceback)."""
    err = capsys.readouterr().err.strip()
    assert err.startswith("struc2map: error: ") and "\n" not in err and "Traceback" not in err, err
    return err


@pytest.fixture
def generator_spy(monkeypatch):
    """Records whether the generator ran (wraps model_to_map.generate, which still runs for real)."""
    calls = []
    real = model_to_map.generate

    def spy(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(model_to_map, "generate", spy)
    return calls


def fifo(path):
    os.mkfifo(path)
    return path


# Item 1: --json follows the map's rules.

def test_compare_json_never_replaces_the_reference(fragment, tmp_path, capsys):
    model, exp = fragment
    mm, ref = tmp_path / "mm.mrc", tmp_path / "ref.mrc"
    assert run("molmap", model, "-r", 4, "-o", mm) == 0
    ref.write_bytes(exp.read_bytes())
    before = ref.read_bytes()
    capsys.readouterr()
    for extra in ([], ["--overwrite"]):
        assert run("compare", mm, "--reference", ref, "--json", ref, *extra) == 2
        assert "input of this run" in one_error(capsys)
    assert ref.read_bytes() == before


def test_generate_json_cannot_be_the_map(fragment, tiny_weights, tmp_path, capsys, generator_spy):
    out = tmp_path / "o.mrc"
    assert run("generate", fragment[0], "-r", 4, "-o", out, "--json", out, "--weights", tiny_weights.path,
               *FAST) == 2
    assert "same file" in one_error(capsys)
    assert not out.exists() and not generator_spy


def test_existing_json_is_kept_without_overwrite_and_replaced_with_it(fragment, tmp_path, capsys):
    model, exp = fragment
    mm, js = tmp_path / "mm.mrc", tmp_path / "scores.json"
    assert run("molmap", model, "-r", 4, "-o", mm) == 0
    js.write_text("precious")
    capsys.readouterr()
    assert run("compare", mm, "--reference", exp, "--json", js) == 2
    assert "already exists" in one_error(capsys) and js.read_text() == "precious"
    assert run("compare", mm, "--reference", exp, "--json", js, "--overwrite") == 0
    assert json.loads(js.read_text())["points"] > 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["mm.mrc", "scores.json"]  # no temporary left


def test_json_into_a_folder_is_refused_before_the_work(fragment, tiny_weights, tmp_path, capsys, generator_spy):
    out, folder = tmp_path / "o.mrc", tmp_path / "folder.json"
    folder.mkdir()
    assert run("generate", fragment[0], "-r", 4, "-o", out, "--json", folder, "--overwrite",
               "--weights", tiny_weights.path, *FAST) == 2
    assert "is a folder" in one_error(capsys)
    assert not out.exists() and not generator_spy and folder.is_dir()


# Item 2: special files are never replaced, even with --overwrite.

def test_fifo_output_is_refused_even_with_overwrite(fragment, tiny_weights, tmp_path, capsys, generator_spy):
    target = fifo(tmp_path / "f.mrc")
    assert run("generate", fragment[0], "-r", 4, "-o", target, "--overwrite", "--weights", tiny_weights.path,
               *FAST) == 2
    assert "FIFO" in one_error(capsys)
    assert stat.S_ISFIFO(target.stat().st_mode) and not generator_spy
    assert run("molmap", fragment[0], "-r", 4, "-o", target, "--overwrite") == 2
    assert "FIFO" in one_error(capsys) and stat.S_ISFIFO(target.stat().st_mode)


def test_fifo_is_never_replaced_by_the_writer_itself(tmp_path):
    target = fifo(tmp_path / "f.mrc")
    m = MapData(np.zeros((4, 4, 4), np.float32), (0, 0, 0), 1.0)
    with pytest.raises(InputError, match="FIFO"):
        write_map(target, m, overwrite=True)
    with pytest.raises(InputError, match="FIFO"):
        with atomic_path(target) as tmp:
            tmp.write_bytes(b"x")
    assert stat.S_ISFIFO(target.stat().st_mode) and os.listdir(tmp_path) == ["f.mrc"]


def test_a_fifo_put_in_place_meanwhile_is_not_replaced(tmp_path):
    target = tmp_path / "f.mrc"
    with pytest.raises(InputError, match="FIFO"):
        with atomic_path(target, overwrite=True) as tmp:
            tmp.write_bytes(b"x")
            fifo(target)  # another program makes a FIFO there while we write
    assert stat.S_ISFIFO(target.stat().st_mode)


def test_device_files_are_recognised_from_their_mode():
    # /dev/null is only stat()ed (read-only): CI runs as root and must never write to it.
    assert special_file_kind(os.stat("/dev/null").st_mode) == "a character device"
    assert special_file_kind(stat.S_IFBLK | 0o600) == "a block device"
    assert special_file_kind(stat.S_IFSOCK | 0o600) == "a socket"
    assert special_file_kind(stat.S_IFREG | 0o644) is None


def test_batch_never_replaces_a_fifo_in_the_output_folder(fragment, tiny_weights, tmp_path, capsys,
                                                          generator_spy):
    out = tmp_path / "maps"
    out.mkdir()
    target = fifo(out / "test_model.mrc")
    assert run("generate", fragment[0], "-r", 4, "--output-dir", out, "--overwrite",
               "--weights", tiny_weights.path, *FAST) == 2
    assert "FIFO" in one_error(capsys)
    assert stat.S_ISFIFO(target.stat().st_mode) and not generator_spy


# Item 3: no-overwrite holds against a file created while the map is computed.

def test_file_created_while_the_map_is_written_is_kept(fragment, tiny_weights, tmp_path, capsys, monkeypatch):
    import mrcfile

    out = tmp_path / "o.mrc"
    real = mrcfile.mrcfile.MrcFile.set_data

    def someone_else_writes_meanwhile(self, data):  # another process, simulated at the right moment
        out.write_bytes(b"theirs")
        return real(self, data)

    monkeypatch.setattr(mrcfile.mrcfile.MrcFile, "set_data", someone_else_writes_meanwhile)
    assert run("generate", fragment[0], "-r", 4, "-o", out, "--weights", tiny_weights.path, *FAST) == 2
    assert "created by something else" in one_error(capsys)
    assert out.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["o.mrc"]


def test_no_overwrite_publishing_is_atomic(tmp_path):
    target = tmp_path / "t.bin"
    with pytest.raises(InputError, match="created by something else"):
        with atomic_path(target, overwrite=False) as tmp:
            tmp.write_bytes(b"ours")
            target.write_bytes(b"theirs")
    assert target.read_bytes() == b"theirs" and os.listdir(tmp_path) == ["t.bin"]
    with atomic_path(tmp_path / "new.bin", overwrite=False) as tmp:
        tmp.write_bytes(b"ours")
    assert (tmp_path / "new.bin").read_bytes() == b"ours"


def test_without_hard_links_the_name_is_claimed_exclusively(tmp_path, monkeypatch):
    # Some file systems (FAT, some network mounts) refuse hard links: that refusal is simulated.
    def no_links(src, dst):
        raise OSError(1, "Operation not permitted")

    monkeypatch.setattr(files.os, "link", no_links)
    with atomic_path(tmp_path / "a.bin", overwrite=False) as tmp:
        tmp.write_bytes(b"ours")
    assert (tmp_path / "a.bin").read_bytes() == b"ours"
    with pytest.raises(InputError, match="created by something else"):
        with atomic_path(tmp_path / "b.bin", overwrite=False) as tmp:
            (tmp_path / "b.bin").write_bytes(b"theirs")
    assert (tmp_path / "b.bin").read_bytes() == b"theirs"


# Item 4: an output is never an input, not even with --overwrite.

def test_output_equal_to_the_compare_map_is_refused(fragment, tiny_weights, tmp_path, capsys, generator_spy):
    exp = tmp_path / "exp.mrc"
    exp.write_bytes(fragment[1].read_bytes())
    before = exp.read_bytes()
    assert run("generate", fragment[0], "-r", 4, "-o", exp, "--compare", exp, "--overwrite",
               "--weights", tiny_weights.path, *FAST) == 2
    assert "input of this run" in one_error(capsys)
    assert exp.read_bytes() == before and not generator_spy


def test_output_equal_to_the_model_or_the_grid_map_is_refused(fragment, tmp_path, capsys):
    model, grid = tmp_path / "m.pdb", tmp_path / "grid.mrc"
    model.write_bytes(fragment[0].read_bytes())
    assert run("molmap", model, "-r", 4, "-o", grid) == 0
    os.link(grid, tmp_path / "same.mrc")  # another name for the same file
    saved = model.read_bytes(), grid.read_bytes()
    capsys.readouterr()
    assert run("molmap", model, "-r", 4, "-o", model, "--overwrite") == 2
    assert "input of this run" in one_error(capsys)
    assert run("molmap", model, "-r", 4, "-o", tmp_path / "same.mrc", "--on-grid", grid, "--overwrite") == 2
    assert "input of this run" in one_error(capsys)
    assert (model.read_bytes(), grid.read_bytes()) == saved


def test_output_equal_to_the_weights_is_refused(fragment, tiny_weights, tmp_path, capsys, generator_spy):
    pt = tmp_path / "w.pt"
    pt.write_bytes(tiny_weights.path.read_bytes())
    (tmp_path / "w.json").write_bytes(tiny_weights.path.with_suffix(".json").read_bytes())
    before = pt.read_bytes()
    assert run("generate", fragment[0], "-r", 4, "-o", pt, "--overwrite", "--weights", pt, *FAST) == 2
    assert "input of this run" in one_error(capsys)
    assert pt.read_bytes() == before and not generator_spy


# Item 5: temporary files are recognisable, and those of dead processes are cleaned.

def test_temporary_left_by_a_killed_process_is_removed_next_time(tmp_path):
    target = tmp_path / "out.mrc"
    writer = subprocess.Popen([sys.executable, "-c", textwrap.dedent(f"""
        import sys, time
        from chimerax.struc2map.files import atomic_path
        with atomic_path({str(target)!r}) as tmp:
            tmp.write_bytes(b"half")
            print(tmp.name, flush=True)
            time.sleep(600)
        """)], stdout=subprocess.PIPE, text=True)
    name = writer.stdout.readline().strip()
    writer.send_signal(signal.SIGKILL)
    writer.wait()
    assert os.listdir(tmp_path) == [name] and name.startswith(".out.mrc.struc2map-") and name.endswith(".tmp")
    alive_name = f".out.mrc.struc2map-{files._host()}-{os.getpid()}-abc.tmp"  # this live process: kept
    (tmp_path / alive_name).write_bytes(b"in use")
    with pytest.warns(UserWarning, match="temporary file left by an interrupted run"):
        write_map(target, MapData(np.zeros((4, 4, 4), np.float32), (0, 0, 0), 1.0))
    assert sorted(os.listdir(tmp_path)) == sorted([alive_name, "out.mrc"])


# Item 8: every output path and format constraint is checked before the work.

def test_json_in_a_missing_folder_fails_before_the_map_is_written(fragment, tiny_weights, tmp_path, capsys,
                                                                  generator_spy):
    out = tmp_path / "o.mrc"
    assert run("generate", fragment[0], "-r", 4, "-o", out, "--json", tmp_path / "nope" / "x.json",
               "--weights", tiny_weights.path, *FAST) == 2
    assert "does not exist" in one_error(capsys)
    assert not out.exists() and not generator_spy


def test_fractional_origin_for_a_ccp4_name_is_refused_before_the_generator(fragment, tiny_weights, tmp_path,
                                                                           capsys, generator_spy):
    out = tmp_path / "x.map"
    assert run("generate", fragment[0], "-r", 4, "-o", out, "--weights", tiny_weights.path, *FAST) == 2
    assert "whole voxels" in one_error(capsys)
    assert not out.exists() and not generator_spy


def test_fractional_origin_for_molmap_is_refused_before_molmap(fragment, tmp_path, capsys, monkeypatch):
    calls = []
    real = molmap_module.molmap
    monkeypatch.setattr(molmap_module, "molmap", lambda *a, **k: calls.append(1) or real(*a, **k))
    assert run("molmap", fragment[0], "-r", 4, "-o", tmp_path / "x.ccp4") == 2
    assert "whole voxels" in one_error(capsys)
    assert not calls and os.listdir(tmp_path) == []


def test_check_output_names_each_problem(tmp_path):
    (tmp_path / "exists.mrc").write_bytes(b"x")
    (tmp_path / "link.mrc").symlink_to(tmp_path / "missing.mrc")
    with pytest.raises(InputError, match="already exists; .* --overwrite"):
        check_output(tmp_path / "exists.mrc", overwrite=False)
    assert check_output(tmp_path / "exists.mrc", overwrite=True) == tmp_path / "exists.mrc"
    with pytest.raises(InputError, match="link to a missing file"):
        check_output(tmp_path / "link.mrc", overwrite=True)
    with pytest.raises(InputError, match="folder .*nope does not exist"):
        check_output(tmp_path / "nope" / "x.mrc", overwrite=True)
    with pytest.raises(InputError, match="same file"):
        check_output(tmp_path / "a.json", overwrite=True, others=[tmp_path / "a.json"])
