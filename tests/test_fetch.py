"""fetch: downloads by ID from a small HTTP server on 127.0.0.1 serving real fixture files.

The real EMDB and RCSB servers cannot be reached from the test machines; the
server here lays out the same paths with the real test files (the ``data`` fixture).
"""
import gzip
import http.server
import shutil
import threading

import gemmi
import pytest

from chimerax.struc2map import cli
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.training.fetch import read_ids
from chimerax.struc2map.training.pairs import read_pairs
from chimerax.struc2map.training.prepare import prepare

HEADER_V3 = """<?xml version="1.0"?><emd emdb_id="EMD-3488"><structure_determination_list><structure_determination>
<image_processing><final_reconstruction><resolution res_type="BY AUTHOR" units="Å">3.2</resolution>
</final_reconstruction></image_processing></structure_determination></structure_determination_list></emd>"""


@pytest.fixture
def server(tmp_path, data):
    root = tmp_path / "www"
    emd = root / "emdb" / "EMD-5623"
    (emd / "map").mkdir(parents=True)
    (emd / "header").mkdir()
    shutil.copy(data("t20s_fragment_emd5623/test_map.ccp4.gz"), emd / "map" / "emd_5623.map.gz")
    (emd / "header" / "emd-5623.xml").write_text(HEADER_V3.replace("3488", "5623").replace("3.2", "3.3"),
                                                 encoding="utf-8")
    (root / "pdb").mkdir()
    structure = gemmi.read_structure(str(data("t20s_fragment_emd5623/test_model.pdb")))
    structure.setup_entities()
    with gzip.open(root / "pdb" / "3j9i.cif.gz", "wt") as f:  # served as RCSB serves it: gzipped mmCIF
        f.write(structure.make_mmcif_document().as_string())

    handler = lambda *a, **k: http.server.SimpleHTTPRequestHandler(*a, directory=str(root), **k)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    http.server.SimpleHTTPRequestHandler.log_message = lambda *a: None
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()


def test_fetch_downloads_pairs_that_prepare_reads(server, tmp_path):
    ids = tmp_path / "ids.txt"
    ids.write_text("# T20S fragment\nEMD-5623 3J9I\nEMD-9999 9ZZZ 4.0\n", encoding="utf-8")
    out = tmp_path / "fetched"
    out.mkdir()
    (tmp_path / "victim.txt").write_text("precious\n")
    (out / "pairs.csv").symlink_to(tmp_path / "victim.txt")  # replaced, never written through
    args = ["fetch", str(ids), "--output", str(out), "--emdb-url", f"{server}/emdb", "--pdb-url", f"{server}/pdb"]
    assert cli.main(args) == 1  # the second entry is not on the server
    assert (tmp_path / "victim.txt").read_text() == "precious\n" and not (out / "pairs.csv").is_symlink()
    pair, = read_pairs(out / "pairs.csv")
    assert (pair.name, pair.resolution, pair.emdb, pair.pdb) == ("emd5623_3j9i", 3.3, "EMD-5623", "3J9I")
    assert not list(out.rglob("*.part")), "no partial download is left behind"
    mtime = pair.map.stat().st_mtime_ns
    assert cli.main(args) == 1 and pair.map.stat().st_mtime_ns == mtime  # kept, not downloaded again
    index = prepare([pair], tmp_path / "ds", log=lambda s: None)
    assert pair.name in index["pairs"], index["failed"]


def test_id_list_errors(tmp_path):
    bad = tmp_path / "ids.txt"
    bad.write_text("EMD-1234\n", encoding="utf-8")
    with pytest.raises(InputError, match="line 1"):
        read_ids(bad)
    good = tmp_path / "ok.txt"
    good.write_text("emd_1234 1ABC 3.5\n12345 2xyz\n".replace("emd_", "EMD-"), encoding="utf-8")
    a, b = read_ids(good)
    assert (a.emdb, a.pdb, a.resolution) == ("1234", "1abc", 3.5) and (b.emdb, b.resolution) == ("12345", None)
