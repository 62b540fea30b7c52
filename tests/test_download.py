"""The one download helper, and `struc2map weights download published`, against a local HTTP server.

The real server (osf.io) cannot be reached from the test machines: a server on
127.0.0.1 serves the bytes, honours HTTP Range requests like OSF does (or
ignores them, like a plain server), and can break a transfer off midway.
"""
import dataclasses
import hashlib
import http.server
import threading

import pytest

from chimerax.struc2map import cli, published
from chimerax.struc2map.download import DownloadError, download, part_path
from chimerax.struc2map.errors import WeightsError
from chimerax.struc2map.userdata import downloads_folder, weights_folder
from chimerax.struc2map.weights_meta import installed_weights
from tests.test_published import lightning_checkpoint

DATA = bytes(range(256)) * 4000  # 1 MB, more than one read chunk


class Server:
    """What the handler serves and how it behaves; records each request's path and Range header."""

    def __init__(self):
        self.files = {}
        self.requests = []
        self.honour_range = True
        self.break_after = None  # bytes of the next response body to send before hanging up

    def handler(self):
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                data, wanted = server.files.get(self.path), self.headers.get("Range")
                server.requests.append((self.path, wanted))
                if data is None:
                    self.send_error(404)
                    return
                start = int(wanted[len("bytes="):-1]) if wanted and server.honour_range else 0
                if start >= len(data) > 0 and wanted:
                    self.send_response(416)
                    self.end_headers()
                    return
                self.send_response(206 if start else 200)
                if start:
                    self.send_header("Content-Range", f"bytes {start}-{len(data) - 1}/{len(data)}")
                self.send_header("Content-Length", str(len(data) - start))
                self.end_headers()
                body = data[start:]
                if server.break_after is not None:
                    body, server.break_after = body[:server.break_after], None
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        return Handler


@pytest.fixture
def server():
    state = Server()
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), state.handler())
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    state.url = f"http://127.0.0.1:{httpd.server_address[1]}"
    yield state
    httpd.shutdown()


def sha(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def test_interrupted_download_resumes_with_a_range_request(server, tmp_path):
    server.files["/f.bin"] = DATA
    server.break_after = 300_000
    dest = tmp_path / "sub" / "f.bin"
    with pytest.raises(ConnectionError, match=f"broke off after 300000 of {len(DATA)} bytes"):
        download(f"{server.url}/f.bin", dest, size=len(DATA), sha256=sha(DATA))
    assert not dest.exists() and part_path(dest).stat().st_size == 300_000  # kept for resuming
    seen = []
    assert download(f"{server.url}/f.bin", dest, size=len(DATA), sha256=sha(DATA),
                    progress=lambda done, total: seen.append((done, total))) == dest
    assert dest.read_bytes() == DATA and not part_path(dest).exists()
    assert server.requests == [("/f.bin", None), ("/f.bin", "bytes=300000-")]
    assert seen[-1] == (len(DATA), len(DATA))
    assert [p.name for p in dest.parent.iterdir()] == ["f.bin"]  # no temporary files
    download(f"{server.url}/f.bin", dest)  # already there: nothing fetched
    assert len(server.requests) == 2


def test_server_ignoring_range_restarts_from_the_start(server, tmp_path):
    server.files["/f.bin"] = DATA
    server.honour_range = False
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(b"stale bytes of another file")
    download(f"{server.url}/f.bin", dest, size=len(DATA), sha256=sha(DATA))
    assert dest.read_bytes() == DATA


def test_complete_part_is_not_fetched_again(server, tmp_path):
    server.files["/f.bin"] = DATA
    dest = tmp_path / "f.bin"
    part_path(dest).write_bytes(DATA)
    download(f"{server.url}/f.bin", dest, size=len(DATA))
    assert dest.read_bytes() == DATA and server.requests == []
    dest.unlink()
    part_path(dest).write_bytes(DATA)  # size unknown: the server says there is nothing after it
    download(f"{server.url}/f.bin", dest)
    assert dest.read_bytes() == DATA and server.requests == [("/f.bin", f"bytes={len(DATA)}-")]


def test_wrong_file_is_deleted_not_kept(server, tmp_path):
    server.files["/f.bin"] = DATA
    dest = tmp_path / "f.bin"
    with pytest.raises(DownloadError, match="sha256"):
        download(f"{server.url}/f.bin", dest, sha256=sha(b"other"))
    with pytest.raises(DownloadError, match=f"gave {len(DATA)} bytes, not the 5 expected"):
        download(f"{server.url}/f.bin", dest, size=5)
    assert list(tmp_path.iterdir()) == []


def test_weights_download_published(server, tmp_path, monkeypatch, capsys):
    """The command fetches, checks and imports; PUBLISHED is pointed at the local server."""
    monkeypatch.setenv("STRUC2MAP_HOME", str(tmp_path / "home"))
    ckpt = tmp_path / "served.ckpt"
    lightning_checkpoint(ckpt, optimiser=False)
    data = ckpt.read_bytes()
    server.files["/download/397v2/"] = data
    monkeypatch.setattr(published, "PUBLISHED", dataclasses.replace(
        published.PUBLISHED, url=f"{server.url}/download/397v2/", size=len(data), sha256=sha(data)))
    server.break_after = len(data) // 2
    assert cli.main(["weights", "download", "published"]) == 2
    err = capsys.readouterr().err
    assert f"{len(data) // 2} bytes are kept in {downloads_folder()}" in err and "resumes from there" in err
    assert cli.main(["weights", "download", "published"]) == 0
    out = capsys.readouterr().out
    assert f"{downloads_folder() / 'struc2mapGAN.ckpt'}: {len(data)} bytes, sha256 {sha(data)}" in out
    assert "the published struc2mapGAN checkpoint, licence GPL-3.0" in out
    assert server.requests[-1] == ("/download/397v2/", f"bytes={len(data) // 2}-")
    (entry,) = [w for w in installed_weights() if not w.shipped]
    assert entry.name == "published" and entry.path == weights_folder() / "published.pt"
    assert entry.metadata["provenance"]["source_url"] == f"{server.url}/download/397v2/"
    assert cli.main(["weights", "download", "published"]) == 2  # imported already: says so, downloads nothing
    assert "already exists" in capsys.readouterr().err and len(server.requests) == 2


def test_weights_download_refuses_a_changed_file(server, tmp_path, monkeypatch):
    monkeypatch.setenv("STRUC2MAP_HOME", str(tmp_path / "home"))
    server.files["/download/397v2/"] = DATA
    monkeypatch.setattr(published, "PUBLISHED", dataclasses.replace(
        published.PUBLISHED, url=f"{server.url}/download/397v2/", size=len(DATA)))
    with pytest.raises(WeightsError, match="is not the published one .*sha256.*it was deleted"):
        published.download_published()
    assert not downloads_folder().exists() or list(downloads_folder().iterdir()) == []
