"""Inputs that cannot work are refused in one sentence with exit status 2, and nothing silently wrong is
reported as success: model links that loop, folder-like output names, constant maps, ID lists, HTML pages
served for maps (issue 19).
"""
import http.server
import threading

import numpy as np
import pytest

from chimerax.struc2map import cli
from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.mapio import write_map
from chimerax.struc2map.training.pairs import read_pairs


def one_error(capsys) -> str:
    """The single stderr line of a refusal (no traceback)."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def test_a_model_link_that_loops_is_one_sentence(tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "loop.pdb").symlink_to("loop.pdb")
    assert cli.main(["generate", "loop.pdb", "-r", "4", "-o", "out.mrc"]) == 2
    assert "points to itself in a loop" in one_error(capsys)


def test_an_output_name_ending_in_a_slash_is_a_folder_not_a_file(data, tmp_path, capsys, monkeypatch):
    monkeypatch.chdir(tmp_path)
    model = data("t20s_fragment_emd5623/test_model.pdb")
    assert cli.main(["molmap", str(model), "-r", "4", "-o", "newdir/"]) == 2
    assert "names a folder, not a file" in one_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_compare_refuses_a_constant_map_either_way(data, tmp_path, capsys):
    real = data("t20s_fragment_emd5623/test_map.ccp4.gz")
    flat = tmp_path / "flat.mrc"
    write_map(flat, MapData(np.full((40, 40, 40), 0.5, np.float32), (0, 0, 0), 1.0))
    for argv in ([str(flat), "--reference", str(real)], [str(real), "--reference", str(flat)]):
        assert cli.main(["compare", *argv]) == 2
        assert "flat.mrc is constant (0.5 everywhere)" in one_error(capsys)


def test_fetch_id_lists_that_cannot_be_read(tmp_path, capsys):
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x01" * 20)
    (tmp_path / "malformed.txt").write_text("EMD-1234 1abc abc\n")
    (tmp_path / "empty.txt").write_text("# nothing\n")
    for name, words in (("missing.txt", "does not exist"), ("binary.txt", "not a text file"),
                        ("malformed.txt", "line 1: expected 'EMD-1234 1ABC [resolution in Å]'"),
                        ("empty.txt", "lists no entries")):
        assert cli.main(["fetch", str(tmp_path / name), "-o", str(tmp_path / "out")]) == 2
        assert words in one_error(capsys)
    assert not (tmp_path / "out").exists()


def test_fetch_does_not_take_html_pages_for_maps(tmp_path, capsys):
    """A server answering every path with an HTML page (a portal's error or login page, status 200)."""
    class Portal(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            body = b"<!DOCTYPE html><html><body>Please log in</body></html>"
            self.send_response(200)
            self.send_header("Content-Type", "text/html")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Portal)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}"
    ids = tmp_path / "ids.txt"
    ids.write_text("EMD-5623 3J9I 3.3\n")
    out = tmp_path / "out"
    try:
        assert cli.main(["fetch", str(ids), "-o", str(out), "--emdb-url", url, "--pdb-url", url]) == 1
    finally:
        httpd.shutdown()
    stdout = capsys.readouterr().out
    assert "emd5623_3j9i: FAILED" in stdout and "does not begin as expected" in stdout and ": ok" not in stdout
    with pytest.raises(Exception, match="lists no pairs"):
        read_pairs(out / "pairs.csv")
    assert not [p for p in out.rglob("*") if p.is_file() and p.name != "pairs.csv"]


@pytest.mark.parametrize("options, message", [
    (["-r", "3", "--edge-padding", "-5"], "edge padding must be a finite number of Å, 0 or more"),
    (["-r", "3", "--sigma-factor", "1e9"], "blurs each atom by more than the resolution itself"),
    (["-r", "1e9"], "Resolution 1e+09 Å is outside 0.5–100 Å"),
])
def test_molmap_settings_that_empty_or_cut_the_map_are_refused(data, tmp_path, capsys, options, message):
    model = data("t20s_fragment_emd5623/test_model.pdb")
    assert cli.main(["molmap", str(model), *options, "-o", str(tmp_path / "m.mrc")]) == 2
    assert message in one_error(capsys)
    assert list(tmp_path.iterdir()) == []


def test_molmap_on_a_grid_no_atom_reaches_is_refused(data, tmp_path, capsys):
    model = data("t20s_fragment_emd5623/test_model.pdb")
    far = tmp_path / "far.mrc"
    write_map(far, MapData(np.random.default_rng(0).random((20, 20, 20)).astype(np.float32), (5000, 0, 0), 1.0))
    assert cli.main(["molmap", str(model), "-r", "3", "--on-grid", str(far), "-o", str(tmp_path / "m.mrc")]) == 2
    assert "No atom lies within" in one_error(capsys) and not (tmp_path / "m.mrc").exists()


def test_an_origin_float32_cannot_hold_is_refused_not_shifted(tmp_path, capsys):
    """Atoms near 1e8 Å (an mmCIF can hold them): the MRC header's float32 origin would move the map by Å."""
    rows = "".join(f"ATOM {i + 1} C CA . ALA A 1 {i + 1} ? {1.0e8 + 1.37 * i:.3f} 2.000 3.000 1.00 20.00 {i + 1} A 1\n"
                   for i in range(5))
    (tmp_path / "far.cif").write_text(
        "data_far\nloop_\n_atom_site.group_PDB\n_atom_site.id\n_atom_site.type_symbol\n_atom_site.label_atom_id\n"
        "_atom_site.label_alt_id\n_atom_site.label_comp_id\n_atom_site.label_asym_id\n_atom_site.label_entity_id\n"
        "_atom_site.label_seq_id\n_atom_site.pdbx_PDB_ins_code\n_atom_site.Cartn_x\n_atom_site.Cartn_y\n"
        "_atom_site.Cartn_z\n_atom_site.occupancy\n_atom_site.B_iso_or_equiv\n_atom_site.auth_seq_id\n"
        "_atom_site.auth_asym_id\n_atom_site.pdbx_PDB_model_num\n" + rows)
    assert cli.main(["molmap", str(tmp_path / "far.cif"), "-r", "3", "-o", str(tmp_path / "m.mrc")]) == 2
    assert "too far out for the MRC header's float32 fields" in one_error(capsys)
    assert not (tmp_path / "m.mrc").exists()


def test_gpu_out_of_memory_is_one_sentence(monkeypatch, capsys):
    """A GPU cannot run here: torch's own CUDA out-of-memory error is raised by a stand-in command."""
    import torch

    def out_of_memory(args):
        raise torch.cuda.OutOfMemoryError("CUDA out of memory. Tried to allocate 2.00 GiB")

    monkeypatch.setattr(cli, "_molmap", out_of_memory)
    assert cli.main(["molmap", "any.pdb", "-r", "3", "-o", "x.mrc"]) == 2
    assert "the GPU ran out of memory; use a smaller --batch-size" in one_error(capsys)
    monkeypatch.setattr(cli, "_molmap", lambda args: (_ for _ in ()).throw(RuntimeError("other")))
    with pytest.raises(RuntimeError, match="other"):
        cli.main(["molmap", "any.pdb", "-r", "3", "-o", "x.mrc"])
