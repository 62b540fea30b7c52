"""Nothing is written through a link planted where an output goes, nor outside its folder, and nothing hangs
on a FIFO or a trickling server: downloads, the batch log, pair names (issue 19).

Every test plants real symlinks and FIFOs in its temporary folder; VICTIM files are checked unchanged.
Servers run on 127.0.0.1.
"""
import http.server
import os
import threading
import time

import pytest

from chimerax.struc2map import cli
from chimerax.struc2map.download import download, part_path
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.training.pairs import read_pairs
from tests.test_download import DATA, server, sha  # noqa: F401  (server is a fixture)


def one_error(capsys) -> str:
    """The single stderr line of a refusal (no traceback)."""
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


@pytest.fixture
def victim(tmp_path):
    path = tmp_path / "victim.txt"
    path.write_text("precious\n")
    return path


def test_download_never_appends_through_a_linked_part(server, tmp_path, victim):
    server.files["/f.bin"] = DATA
    dest = tmp_path / "f.bin"
    part_path(dest).symlink_to(victim)
    with pytest.raises(InputError, match="symbolic link"):
        download(f"{server.url}/f.bin", dest, size=len(DATA), sha256=sha(DATA))
    assert victim.read_text() == "precious\n" and server.requests == [] and not dest.exists()


def test_download_refuses_a_fifo_part_without_blocking(server, tmp_path):
    server.files["/f.bin"] = DATA
    dest = tmp_path / "f.bin"
    os.mkfifo(part_path(dest))
    started = time.monotonic()
    with pytest.raises(InputError, match="not a regular file"):
        download(f"{server.url}/f.bin", dest)
    assert time.monotonic() - started < 5 and server.requests == []


def test_a_trickling_server_is_abandoned(tmp_path):
    """A byte every 0.2 s never trips a socket timeout; the minimum rate ends it, keeping what came."""
    class Trickle(http.server.BaseHTTPRequestHandler):
        def do_GET(self):
            self.send_response(200)
            self.send_header("Content-Length", "1000")
            self.end_headers()
            for _ in range(50):
                self.wfile.write(b"x")
                self.wfile.flush()
                time.sleep(0.2)

        def log_message(self, *args):
            pass

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Trickle)
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    dest = tmp_path / "slow.bin"
    started = time.monotonic()
    try:
        with pytest.raises(ConnectionError, match="under the minimum of 100 bytes/s"):
            download(f"http://127.0.0.1:{httpd.server_address[1]}/slow.bin", dest, timeout=1.0, min_rate=100)
    finally:
        httpd.shutdown()
    assert time.monotonic() - started < 5
    assert 0 < part_path(dest).stat().st_size < 20  # kept for resuming


def test_batch_log_is_never_appended_through_a_link(data, tmp_path, victim, capsys):
    out = tmp_path / "out"
    out.mkdir()
    (out / "struc2map_batch.rank0.jsonl").symlink_to(victim)
    model = data("t20s_fragment_emd5623/test_model.pdb")
    second = tmp_path / "second.pdb"
    second.write_bytes(model.read_bytes())
    assert cli.main(["generate", str(model), str(second), "-r", "3.3", "--output-dir", str(out)]) == 2
    assert "symbolic link" in one_error(capsys)
    assert victim.read_text() == "precious\n" and sorted(p.name for p in out.iterdir()) == [
        "struc2map_batch.rank0.jsonl"]


@pytest.mark.parametrize("name", ["../../../../x/evil", "a/b", "..", ".hidden", "C:\\evil"])
def test_pair_names_must_be_plain_file_names(tmp_path, name):
    pairs = tmp_path / "pairs.txt"
    pairs.write_text(f"{name} map.mrc model.pdb 3.0\n", encoding="utf-8")
    with pytest.raises(InputError, match="cannot name a file in the dataset"):
        read_pairs(pairs)
