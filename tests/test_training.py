"""Training subpackage end to end on a small real pair: prepare -> train -> export -> evaluate, plus DDP."""
import json
import os
import subprocess
import sys

import numpy as np
import pytest
import torch

from chimerax.struc2map import cli
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.grid import MapData
from chimerax.struc2map.molmap import molmap_grid
from chimerax.struc2map.training.augment import Degradation, cube_rotation
from chimerax.struc2map.training.pairs import read_pairs, select
from chimerax.struc2map.training.prepare import PrepareConfig, model_grid, prepare, tile_corners
from chimerax.struc2map.weights_io import load_weights

SMALL = "t20s_fragment_emd5623"
TINY = ["--widths", "4", "8", "16", "32", "--disc-widths", "4", "4", "8", "8", "--batch-size", "2",
        "--steps-per-epoch", "2", "--val-tiles", "2"]


def test_shared_pair_list_reads(data):
    pairs = read_pairs(data.full_set("pairs.txt"))
    assert len(pairs) == 10 and all(p.map.exists() and p.model.exists() for p in pairs)
    assert [p.name for p in select(pairs, [SMALL])] == [SMALL]
    with pytest.raises(InputError, match="Unknown pair"):
        select(pairs, ["nope"])


def test_bundled_pair_list_reads(data):
    pairs = read_pairs(data("bundled_pairs.txt"))
    assert [p.name for p in pairs] == [SMALL, "vp6_emd6272", "spike_ntd_emd21457", "haemoglobin_emd3488"]
    assert all(p.map.is_file() and p.model.is_file() for p in pairs)


def test_csv_and_json_pair_lists(tmp_path):
    (tmp_path / "p.csv").write_text("name,map,model,resolution\na,m.mrc,x.pdb,3.1\n")
    (tmp_path / "p.json").write_text(json.dumps([{"map": "d/m.mrc", "model": "x.pdb", "resolution": 4}]))
    a, = read_pairs(tmp_path / "p.csv")
    b, = read_pairs(tmp_path / "p.json")
    assert (a.name, a.resolution, a.map) == ("a", 3.1, tmp_path / "m.mrc")
    assert (b.name, b.resolution) == ("d", 4.0)
    (tmp_path / "bad.csv").write_text("name,map\na,m.mrc\n")
    with pytest.raises(InputError, match="needs map, model and resolution"):
        read_pairs(tmp_path / "bad.csv")


def test_cube_rotations_are_the_24_proper_ones():
    idx = np.indices((4, 4, 4)).astype(float) - 1.5  # coordinates about the centre
    seen = set()
    for r in range(24):
        rotated = np.stack([cube_rotation(c, r) for c in idx])  # old coordinate at each new voxel
        # the map new -> old is linear: recover its matrix from unit steps along each axis
        origin = rotated[:, 0, 0, 0]
        m = np.stack([rotated[:, 1, 0, 0] - origin, rotated[:, 0, 1, 0] - origin, rotated[:, 0, 0, 1] - origin], 1)
        assert np.isclose(np.linalg.det(m), 1.0), "a mirror would flip helix handedness"
        seen.add(m.round().astype(int).tobytes())
    assert len(seen) == 24


def test_degradation_touches_input_only_when_drawn():
    rng = np.random.default_rng(0)
    v = np.random.default_rng(1).random((16, 16, 16)).astype(np.float32)
    assert np.array_equal(Degradation(p=0.0)(v, rng), v)
    out = Degradation(p=1.0)(v, rng)
    assert out.shape == v.shape and out.dtype == np.float32 and not np.allclose(out, v)


def test_tile_corners_cover_the_volume():
    c = tile_corners((40, 32, 70), 32, 20)
    covered = np.zeros((40, 32, 70), bool)
    for z, y, x in c:
        covered[z:z + 32, y:y + 32, x:x + 32] = True
    assert covered.all()


def test_model_grid_is_cut_to_the_map_box():
    # a 1.5 Å map box whose voxel centres span x 10..38.5, y -5..23.5, z 0..28.5; atoms near its -x face
    box = MapData(np.zeros((20, 20, 20), np.float32), np.array([10.0, -5.0, 0.0]), 1.5)
    coords = np.array([[11.0, 5.0, 5.0], [20.0, 10.0, 12.0]])
    config = PrepareConfig()
    grid = model_grid(coords, config, box)
    # brute force: the points of molmap's padded 1 Å grid that lie inside the box (its last plane excluded,
    # as resample_onto excludes it)
    origin, shape = molmap_grid(coords, config.input_resolution, grid_spacing=1.0, edge_padding=config.edge_padding)
    high = box.origin + 19 * 1.5
    for axis in range(3):
        points = origin[axis] + np.arange(shape[2 - axis])
        inside = points[(points >= box.origin[axis]) & (points < high[axis])]
        assert grid.origin[axis] == pytest.approx(inside[0]) and grid.shape_xyz[axis] == len(inside)
    assert grid.shape_xyz != shape[::-1] and grid.voxel_size[0] == 1.0
    with pytest.raises(InputError, match="outside"):
        model_grid(coords + 500.0, config, box)
    whole = model_grid(coords, config)  # no map: the padded grid, as prepare makes it with cut_to_map=False
    assert whole.shape_xyz == tuple(shape[::-1]) and np.allclose(whole.origin, origin)


@pytest.fixture(scope="module")
def dataset(data, tmp_path_factory):
    pairs = select(read_pairs(data("bundled_pairs.txt")), [SMALL])
    out = tmp_path_factory.mktemp("dataset")
    index = prepare(pairs, out, log=lambda s: None)
    return out, index


def test_prepare_makes_coregistered_tiles(dataset):
    out, index = dataset
    entry = index["pairs"][SMALL]
    assert entry["molmap_correlation"] > 0.6 and index["tiles"]
    with np.load(out / entry["file"]) as z:
        inp, targets, levels = z["input"], z["targets"], z["levels"]
    # molmap and the B-factor channel (empty: this model's B-factors are zero), targets at 3.3 Å and coarser
    assert inp.shape[0] == 2 and inp.shape[1:] == targets.shape[1:] and inp[0].min() == 0.0 and inp[0].max() == 1.0
    assert not inp[1].any() and entry["bfactors_informative"] is False
    assert levels[0] == pytest.approx(3.3) and list(levels[1:]) == [5.0, 6.0, 8.0] and len(targets) == 4
    for target in targets:
        # in register: the target is bright where the input has atoms, dim away from them (the box is not
        # masked: neighbouring chains' density lies within this fragment's envelope)
        assert target[inp[0] > 0.2].mean() > 0.3 and target[inp[0] == 0].mean() < 0.1
        assert np.percentile(target[inp[0] > 0.5], 50) < 1.5
    # coarser targets are smoother
    roughness = [np.abs(np.diff(t, axis=0)).mean() / np.abs(t).mean() for t in targets]
    assert roughness == sorted(roughness, reverse=True)


def test_prepare_is_idempotent_and_reports_bad_pairs(dataset, data, tmp_path):
    out, _ = dataset
    pairs = select(read_pairs(data("bundled_pairs.txt")), [SMALL])
    bad = pairs[0].__class__("broken", tmp_path / "nope.mrc", pairs[0].model, 3.0)
    messages = []
    index = prepare(pairs + [bad], out, log=messages.append)
    assert f"{SMALL}: already prepared" in messages
    assert "broken" in index["failed"] and "broken" not in index["pairs"]
    strict = prepare(pairs, out / "strict", PrepareConfig(min_correlation=0.99), log=messages.append)
    assert SMALL in strict["dropped"] and not strict["tiles"]


def test_train_resume_export_evaluate(dataset, data, tmp_path, capsys):
    out, _ = dataset
    run_dir = tmp_path / "run"
    assert cli.main(["train", str(out), "--run-dir", str(run_dir), "--epochs", "2", *TINY]) == 0
    history = (run_dir / "history.csv").read_text(encoding="utf-8").splitlines()
    assert len(history) == 3 and (run_dir / "losses.png").stat().st_size > 1000
    # resumed with a moving average of the weights, which the first part did not keep
    assert cli.main(["train", str(out), "--run-dir", str(run_dir), "--epochs", "3", "--ema-decay", "0.9", *TINY]) == 0
    assert "resumed from epoch 2" in capsys.readouterr().out
    history = (run_dir / "history.csv").read_text(encoding="utf-8").splitlines()
    assert len(history) == 4 and "val_ema" in history[0]

    weights = tmp_path / "w" / "gen.pt"
    assert cli.main(["export", str(run_dir), "--dataset", str(out), "--output", str(weights),
                     "--which", "average"]) == 0
    state = torch.load(run_dir / "checkpoint.pt", weights_only=True)
    assert not torch.equal(state["G_ema"]["final.weight"], state["G"]["final.weight"])
    best = torch.load(run_dir / "best_generator.pt", weights_only=True)
    assert best.keys() == state["G"].keys() and not list(run_dir.glob(".*.tmp"))  # written whole, no temporaries
    w = load_weights(weights)
    assert torch.equal(w.generator.state_dict()["final.weight"], state["G_ema"]["final.weight"])
    assert w.metadata["training"]["pairs"][0]["name"] == SMALL and w.metadata["widths"] == [4, 8, 16, 32]
    assert w.metadata["output"]["resolution"] == 3.3

    ev = tmp_path / "eval"
    assert cli.main(["evaluate", str(data("bundled_pairs.txt")), "--only", SMALL, "--weights", str(weights),
                     "--output", str(ev), "--device", "cpu"]) == 0
    table = (ev / "results.md").read_text(encoding="utf-8")
    for method in ("generator", "molmap_2A", "molmap_reported"):
        assert f"| {SMALL} | 3.3 | {method} |" in table
    assert (ev / "scatter.png").stat().st_size > 1000


def test_two_processes_with_gloo(dataset, tmp_path):
    """DistributedDataParallel as under torchrun, with two CPU processes."""
    out, _ = dataset
    run_dir = tmp_path / "ddp"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--nproc_per_node", "2",
                           "--master_port", "29531", "-m", "chimerax.struc2map.cli", "train", str(out),
                           "--run-dir", str(run_dir), "--epochs", "1", *TINY],
                          capture_output=True, text=True, env=env, timeout=300)
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert (run_dir / "checkpoint.pt").exists()
    assert proc.stdout.count("epoch 1/1") == 1  # only process 0 logs


def test_training_commands_refuse_user_mistakes_in_one_sentence(dataset, tmp_path, capsys):
    """Each mistake exits 2 with a sentence naming it (was a ValueError, FileNotFoundError or
    UnicodeDecodeError traceback, or a silent exit 0 for an empty pair list)."""
    out, _ = dataset
    run_dir = tmp_path / "run"
    assert cli.main(["train", str(out), "--run-dir", str(run_dir), "--epochs", "1", *TINY]) == 0
    (tmp_path / "binary.txt").write_bytes(b"\xff\xfe\x00\x01" * 20)
    (tmp_path / "empty.txt").write_text("# name map model resolution\n")
    other_widths = [a if a != "32" else "64" for a in TINY]
    cases = [
        (["train", str(tmp_path / "nowhere"), "--run-dir", str(tmp_path / "r2"), *TINY], "not a dataset made by"),
        (["train", str(out), "--run-dir", str(run_dir), "--epochs", "2", *other_widths], "widths"),
        (["train", str(out), "--run-dir", str(tmp_path / "r3"), "--max-minutes", "0", *TINY], "--max-minutes"),
        (["train", str(out), "--run-dir", str(tmp_path / "r4"), "--max-minutes", "-5", *TINY], "--max-minutes"),
        (["export", str(tmp_path / "nowhere"), "--dataset", str(out), "-o", str(tmp_path / "w.pt")],
         "not a training run"),
        (["export", str(run_dir), "--dataset", str(out), "-o", str(tmp_path / "w.pt"), "--which", "average"],
         "no average"),
        (["prepare", str(tmp_path / "binary.txt"), "-o", str(tmp_path / "d")], "not a text file"),
        (["prepare", str(tmp_path / "empty.txt"), "-o", str(tmp_path / "d")], "lists no pairs"),
    ]
    for argv, words in cases:
        capsys.readouterr()
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, (argv, err)
    history = (run_dir / "history.csv").read_text(encoding="utf-8")
    assert "nan" not in history.lower()  # a run without an average writes an empty field, not NaN
