"""Inputs that cannot work are refused in one sentence with exit status 2, and nothing silently wrong is
reported as success: model links that loop, folder-like output names, constant maps, ID lists, HTML pages
served for maps (issue 19).
"""
import http.server
import threading

import numpy as np
import pytest

from chimerax.struc2map import cli
from chimerax.struc2map.grid import MapData
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
