"""Batch generation: folders and lists in, one map per model out, resumable, failures logged, shared by rank."""
import gzip
import json
import os
import shutil
import subprocess
import sys

import numpy as np
import pytest

from chimerax.struc2map import batch, cli
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.mapio import read_map

MODELS = {"t20s_fragment_emd5623/test_model.pdb": 218, "spike_ntd_emd21457/6vyb_Ndom.pdb": None,
          "vp6_emd6272/6272.pdb": None}
FAST = ["--tile-size", "40", "--margin", "4", "--device", "cpu"]


@pytest.fixture
def models(data, tmp_path):
    """The three real models, and a broken one, in a folder of their own."""
    folder = tmp_path / "models"
    folder.mkdir()
    for rel in MODELS:
        shutil.copy(data(rel), folder)
    (folder / "broken.pdb").write_text("this is not a PDB file\n")
    (folder / "notes.txt").write_text("not a model")
    return folder


def run(*argv):
    return cli.main([str(a) for a in argv])


def records(out_dir, rank=0):
    path = out_dir / f"struc2map_batch.rank{rank}.jsonl"
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()]


def by_status(recs):
    result = {}
    for r in recs:
        result.setdefault(r["status"], []).append(batch.model_stem(r["model"]))
    return {k: sorted(v) for k, v in result.items()}


GOOD = ["6272", "6vyb_Ndom", "test_model"]


def test_folder_batch_logs_each_model_and_goes_on_after_a_failure(models, tiny_weights, tmp_path, capsys):
    out = tmp_path / "maps" / "deeper"  # created when missing
    assert run("generate", models, "-r", 4, "--output-dir", out, "--weights", tiny_weights.path, *FAST) == 1
    recs = records(out)
    assert [batch.model_stem(r["model"]) for r in recs] == ["6272", "6vyb_Ndom", "broken", "test_model"]
    assert by_status(recs) == {"ok": GOOD, "failed": ["broken"]}
    broken = next(r for r in recs if r["status"] == "failed")
    assert "broken.pdb" in broken["error"] and not (out / "broken.mrc").exists()
    for r in recs:
        if r["status"] == "ok":
            m = read_map(r["output"])
            assert r["output"] == str(out / f"{batch.model_stem(r['model'])}.mrc")
            assert list(m.shape_xyz) == r["grid_xyz"] and np.isfinite(m.array).all() and m.array.std() > 0
            assert r["tiles_run"] + r["tiles_skipped"] == r["tiles_total"] > 0 and r["seconds"] > 0
            assert r["rank"] == 0 and r["device"] == "cpu" and r["error"] is None
    assert next(r for r in recs if r["model"].endswith("test_model.pdb"))["atoms"] == 218
    text = capsys.readouterr().out
    assert "3 done, 0 skipped (map already there), 1 failed of 4" in text and "failed: " in text
    assert sorted(p.name for p in out.glob("*")) == ["6272.mrc", "6vyb_Ndom.mrc", "struc2map_batch.rank0.jsonl",
                                                     "test_model.mrc"]  # no temporary files left


def test_second_run_resumes_and_overwrite_redoes(models, tiny_weights, tmp_path, capsys):
    for name in ("broken.pdb", "6272.pdb"):
        (models / name).unlink()
    out, done = tmp_path / "maps", ["6vyb_Ndom", "test_model"]
    argv = ["generate", models, "-r", 4, "--output-dir", out, "--weights", tiny_weights.path, *FAST]
    assert run(*argv) == 0
    before = {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*.mrc")}
    assert len(before) == 2
    assert run(*argv) == 0
    assert {p.name: (p.stat().st_mtime_ns, p.read_bytes()) for p in out.glob("*.mrc")} == before
    recs = records(out)
    assert by_status(recs[:2]) == {"ok": done} and by_status(recs[2:]) == {"skipped": done}
    assert "0 done, 2 skipped" in capsys.readouterr().out
    (out / "test_model.mrc").unlink()  # an interrupted batch: the maps made are kept, the missing one is made
    assert run(*argv) == 0
    assert by_status(records(out)[4:]) == {"ok": ["test_model"], "skipped": ["6vyb_Ndom"]}
    assert run(*argv, "--overwrite") == 0
    assert by_status(records(out)[6:]) == {"ok": done}
    assert (out / "6vyb_Ndom.mrc").stat().st_mtime_ns > before["6vyb_Ndom.mrc"][0]


def test_list_file_relative_paths_comments_and_mixed_arguments(models, data, tiny_weights, tmp_path):
    lists = tmp_path / "lists"
    lists.mkdir()
    gz = tmp_path / "gz"
    gz.mkdir()
    (gz / "vp6.pdb.gz").write_bytes(gzip.compress(data("vp6_emd6272/6272.pdb").read_bytes()))
    (lists / "models.txt").write_text("# the T20S fragment and the spike domain\n\n../models/test_model.pdb\n"
                                      f"  {models / '6vyb_Ndom.pdb'}  \n../models/test_model.pdb\n")
    out = tmp_path / "maps"
    assert run("generate", f"@{lists / 'models.txt'}", gz, "-r", 4, "--output-dir", out,
               "--weights", tiny_weights.path, *FAST) == 0
    recs = records(out)
    assert [batch.model_stem(r["model"]) for r in recs] == ["test_model", "6vyb_Ndom", "vp6"]  # given order, once
    assert all(r["status"] == "ok" for r in recs) and (out / "vp6.mrc").exists()


def test_collect_inputs_and_names(models, tmp_path):
    assert batch.model_stem("a/1abc.cif.gz") == "1abc" and batch.model_stem("x.v2.PDB") == "x.v2"
    assert batch.model_stem("pdb1abc.ent.gz") == "pdb1abc" and batch.model_stem("y.mmcif") == "y"
    assert batch.model_stem("notes.txt") == "notes.txt"
    found = batch.collect_inputs([models])
    assert [p.name for p in found] == ["6272.pdb", "6vyb_Ndom.pdb", "broken.pdb", "test_model.pdb"]
    other = tmp_path / "other"
    other.mkdir()
    shutil.copy(models / "6272.pdb", other / "6272.cif")
    with pytest.raises(InputError, match="same name.*6272"):
        batch.plan_batch([models, other], tmp_path / "maps")
    assert not (tmp_path / "maps").exists()  # said up front, before anything is made
    with pytest.raises(InputError, match="do not exist.*nothere.pdb"):
        batch.collect_inputs([models / "6272.pdb", tmp_path / "nothere.pdb"])
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no model files"):
        batch.collect_inputs([tmp_path / "empty"])
    (tmp_path / "comments.txt").write_text("# nothing\n")
    with pytest.raises(InputError, match="names no models"):
        batch.collect_inputs([f"@{tmp_path / 'comments.txt'}"])
    with pytest.raises(InputError, match="model list"):
        batch.collect_inputs([f"@{tmp_path / 'nolist.txt'}"])


def test_cli_batch_argument_errors(models, tiny_weights, tmp_path, capsys):
    w = ["--weights", tiny_weights.path]
    one = models / "test_model.pdb"
    for argv, message in (([one, models / "6272.pdb", "-o", tmp_path / "a.mrc"], "--output names one map"),
                          ([models], "need --output-dir"),
                          ([models, "--output-dir", tmp_path / "m", "--compare", one], "--compare works with a "
                                                                                        "single model"),
                          ([one, "-o", tmp_path / "a.mrc", "--output-dir", tmp_path / "m"], "--output names one"),
                          ([one], "--output FILE")):
        assert run("generate", *argv, "-r", 4, *w) == 2
        assert message in capsys.readouterr().err
    assert not (tmp_path / "a.mrc").exists() and not (tmp_path / "m").exists()


def test_ranks_share_the_models_exactly_once(models, tiny_weights, tmp_path, monkeypatch):
    (models / "broken.pdb").unlink()
    out = tmp_path / "maps"
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("MASTER_ADDR", raising=False)
    for rank in (0, 1):
        monkeypatch.setenv("RANK", str(rank))
        assert run("generate", models, "-r", 4, "--output-dir", out, "--weights", tiny_weights.path, *FAST) == 0
    rank0, rank1 = records(out, 0), records(out, 1)
    assert [batch.model_stem(r["model"]) for r in rank0] == ["6272", "test_model"]
    assert [batch.model_stem(r["model"]) for r in rank1] == ["6vyb_Ndom"]
    assert {r["rank"] for r in rank1} == {1} and all(r["status"] == "ok" for r in rank0 + rank1)
    monkeypatch.setenv("RANK", "2")
    with pytest.raises(InputError, match="RANK 2"):
        batch.rank_from_env()


def test_two_processes_under_torchrun(models, tiny_weights, tmp_path):
    """torchrun with two CPU processes: each model once across both logs; a failure ends no one's work early."""
    listing = tmp_path / "models.txt"  # rank 0 gets the broken and the small model, so it finishes first
    listing.write_text("models/broken.pdb\nmodels/6272.pdb\nmodels/test_model.pdb\nmodels/6vyb_Ndom.pdb\n")
    out = tmp_path / "maps"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29533", "-m", "chimerax.struc2map.cli", "generate", f"@{listing}",
                           "-r", "4", "--output-dir", str(out), "--weights", str(tiny_weights.path), *FAST],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 1, proc.stdout[-2000:] + proc.stderr[-2000:]
    rank0, rank1 = records(out, 0), records(out, 1)
    assert [batch.model_stem(r["model"]) for r in rank0] == ["broken", "test_model"]
    assert [batch.model_stem(r["model"]) for r in rank1] == ["6272", "6vyb_Ndom"]
    assert by_status(rank0 + rank1) == {"ok": GOOD, "failed": ["broken"]}
    assert {r["rank"] for r in rank0} == {0} and {r["rank"] for r in rank1} == {1}
    assert sorted(p.name for p in out.glob("*.mrc")) == [f"{s}.mrc" for s in GOOD]
    assert "[rank 0/2] batch: 1 done, 0 skipped (map already there), 1 failed of 2" in proc.stdout
    assert "[rank 1/2] batch: 2 done, 0 skipped (map already there), 0 failed of 2" in proc.stdout
    assert "[rank 0/2] waiting for the other 1 torchrun processes to finish (meeting at 127.0.0.1:29533, " \
           "for up to 24 h)" in proc.stdout


def test_a_stray_master_addr_makes_no_meeting(monkeypatch):
    """RANK/WORLD_SIZE set by hand and a MASTER_ADDR left over, no torchrun: nothing to wait for (was 7 days)."""
    monkeypatch.setenv("MASTER_ADDR", "127.0.0.1")
    monkeypatch.setenv("MASTER_PORT", "29534")
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "2")
    monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
    said = []
    assert batch.failures_on_all_ranks(3, 2, echo=said.append) == 3 and said == []
