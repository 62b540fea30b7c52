"""Training subpackage end to end on a small real pair: prepare -> train -> export -> evaluate, plus DDP."""
import csv
import json
import os
import signal
import subprocess
import sys

import numpy as np
import pytest
import torch

from chimerax.struc2map import cli
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.molmap import molmap_grid
from chimerax.struc2map.training.augment import Degradation, cube_rotation
from chimerax.struc2map.training.index import read_index
from chimerax.struc2map.training.pairs import read_pairs, select
from chimerax.struc2map.training.prepare import PrepareConfig, make_target, model_grid, prepare, tile_corners
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


def test_a_map_without_density_near_the_atoms_is_refused_as_input():
    distance = np.full((4, 4, 4), 1.0)
    with pytest.raises(InputError, match="no positive density near the atoms"):
        make_target(np.zeros((4, 4, 4)), distance, 3.0, 99.0)


def test_evaluate_resamples_each_map_once_and_scores_as_compare_maps_alone(data, tiny_weights, monkeypatch):
    from chimerax.struc2map import metrics, realism
    from chimerax.struc2map.mapio import read_map
    from chimerax.struc2map.mask import atom_distance, envelope_radii, soft_envelope
    from chimerax.struc2map.resample import resample_onto
    from chimerax.struc2map.structure import read_structure
    from chimerax.struc2map.training import evaluate

    monkeypatch.setattr(evaluate, "ORACLE_BLURS", (3.0,))
    monkeypatch.setattr(evaluate, "SWEEP", ())
    made, resampled = [], []
    real_generate = evaluate.generate
    monkeypatch.setattr(evaluate, "generate", lambda *a, **k: made.append(real_generate(*a, **k)[0]) or (made[-1], None))
    for module in (evaluate, metrics):
        monkeypatch.setattr(module, "resample_onto", lambda m, r: resampled.append(m) or resample_onto(m, r))
    pair = select(read_pairs(data("bundled_pairs.txt")), [SMALL])[0]
    scores, _ = evaluate.evaluate_pair(pair, tiny_weights, device="cpu")
    assert len(resampled) == len(scores) - 1 + len(evaluate.ORACLE_BLURS)  # molmap_best holds the oracle's scores
    exp, atoms = read_map(pair.map), read_structure(pair.model)
    inner, outer = envelope_radii(pair.resolution)
    mask = soft_envelope(atom_distance(exp, atoms.coords, outer + 1.0), inner, outer)
    generator_methods = [name for name in scores if name.startswith("generator")]  # in the order generated
    assert len(generator_methods) == len(made) >= 2
    for name, generated in zip(generator_methods, made):
        on_grid = resample_onto(generated, exp)
        alone = {**metrics.compare_maps(generated, exp),
                 "falloff": realism.amplitude_falloff(on_grid, exp, mask, pair.resolution),
                 "texture": realism.local_texture(on_grid, exp, mask)}
        assert scores[name] == alone, name


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


def test_index_entries_stay_lists_on_disk_and_are_read_by_name(dataset):
    """index.json keeps its bare lists, so that every dataset prepared so far loads; read_index names their fields."""
    out, index = dataset
    stored = json.loads((out / "index.json").read_text())["tiles"]
    tiles = read_index(out)["tiles"]
    assert all(isinstance(entry, list) and len(entry) == 5 for entry in stored)
    assert [list(tile) for tile in tiles] == stored == index["tiles"]
    first = tiles[0]
    assert (first.pair, first.corner, first.occupancy) == (SMALL, tuple(stored[0][1:4]), stored[0][4])


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
    assert cli.main(["train", str(out), "--run-dir", str(run_dir), "--epochs", "2", "--falloff-weight", "0.01",
                     *TINY]) == 0
    history = (run_dir / "history.csv").read_text(encoding="utf-8").splitlines()
    assert len(history) == 3 and (run_dir / "losses.png").stat().st_size > 1000
    rows = list(csv.DictReader(history))
    assert sum(float(r["train_falloff"]) for r in rows) > 0 and all(float(r["val_falloff"]) >= 0 for r in rows)
    # resumed with a moving average of the weights, which the first part did not keep
    assert cli.main(["train", str(out), "--run-dir", str(run_dir), "--epochs", "3", "--ema-decay", "0.9", *TINY]) == 0
    assert "resumed from epoch 2" in capsys.readouterr().out
    history = (run_dir / "history.csv").read_text(encoding="utf-8").splitlines()
    assert len(history) == 4 and "val_ema" in history[0]
    rows = list(csv.DictReader(history))  # the average is validated, fall-off too, from the resumed epoch on
    assert [r["val_ema_falloff"] != "" for r in rows] == [False, False, True] and float(rows[-1]["val_ema_falloff"]) >= 0

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
    ev.mkdir()
    (tmp_path / "victim.txt").write_text("precious\n")
    (ev / "results.csv").symlink_to(tmp_path / "victim.txt")  # replaced, never written through
    assert cli.main(["evaluate", str(data("bundled_pairs.txt")), "--only", SMALL, "--weights", str(weights),
                     "--output", str(ev), "--device", "cpu"]) == 0
    table = (ev / "results.md").read_text(encoding="utf-8")
    for method in ("generator", "molmap_2A", "molmap_reported"):
        assert f"| {SMALL} | 3.3 | {method} |" in table
    assert (ev / "scatter.png").stat().st_size > 1000
    assert (tmp_path / "victim.txt").read_text() == "precious\n" and not (ev / "results.csv").is_symlink()


def test_links_planted_in_run_and_dataset_folders_are_replaced_not_written_through(dataset, data, tmp_path):
    out, _ = dataset
    victim = tmp_path / "victim.txt"
    victim.write_text("precious\n")
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    for name in ("config.json", "history.csv", "losses.png"):
        (run_dir / name).symlink_to(victim)
    assert cli.main(["train", str(out), "--run-dir", str(run_dir), "--epochs", "1", *TINY]) == 0
    (out / "index.json").replace(tmp_path / "index.json")
    (out / "index.json").symlink_to(victim)
    prepare(select(read_pairs(data("bundled_pairs.txt")), [SMALL]), out, log=lambda s: None)
    assert victim.read_text() == "precious\n"
    for path in (run_dir / "config.json", run_dir / "history.csv", run_dir / "losses.png", out / "index.json"):
        assert path.is_file() and not path.is_symlink()
    rewritten, before = (json.loads(p.read_text()) for p in (out / "index.json", tmp_path / "index.json"))
    assert rewritten["pairs"] == before["pairs"] and rewritten["tiles"] == before["tiles"]


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


def test_training_settings_and_files_that_cannot_work_are_one_sentence(dataset, data, tiny_weights, tmp_path, capsys,
                                                                       monkeypatch):
    """Issue 19: each was a traceback (or, for --ema-decay 2, silently accepted)."""
    out, _ = dataset
    run = ["train", str(out), "--run-dir"]
    payload = tmp_path / "payload"
    payload.mkdir()
    torch.save({"config": {}, "evil": Payload()}, payload / "checkpoint.pt")
    garbage = tmp_path / "garbage"
    garbage.mkdir()
    (garbage / "checkpoint.pt").write_bytes(os.urandom(4096))
    linked = tmp_path / "linked"
    linked.mkdir()
    (tmp_path / "notes.txt").write_text("not a checkpoint\n")
    (linked / "checkpoint.pt").symlink_to(tmp_path / "notes.txt")
    no_config = tmp_path / "no_config"
    no_config.mkdir()
    (no_config / "index.json").write_text(json.dumps({"pairs": {}, "tiles": []}))
    short_tiles = tmp_path / "short_tiles"
    short_tiles.mkdir()
    damaged = json.loads((out / "index.json").read_text())
    damaged["tiles"][0] = damaged["tiles"][0][:4]
    (short_tiles / "index.json").write_text(json.dumps(damaged))
    no_pairs = tmp_path / "no_pairs"
    no_pairs.mkdir()
    (no_pairs / "index.json").write_text((out / "index.json").read_text())  # its pairs/*.npz are not there
    a_file = tmp_path / "a_file"
    a_file.write_text("x")
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x01" * 20)
    cases = [
        ([*run, str(tmp_path / "r"), *TINY, "--batch-size", "0"], "--batch-size must be at least 1"),
        ([*run, str(tmp_path / "r"), *TINY, "--batch-size", "-1"], "--batch-size must be at least 1"),
        ([*run, str(tmp_path / "r"), "--widths", "4", "8"], "--widths must be 4 layer widths"),
        ([*run, str(tmp_path / "r"), *TINY, "--lr", "-1"], "--lr must be above 0"),
        ([*run, str(tmp_path / "r"), *TINY, "--in-channels", "5"], "--in-channels must be 1 or 2"),
        ([*run, str(tmp_path / "r"), *TINY, "--ema-decay", "2"], "--ema-decay must be 0"),
        ([*run, str(tmp_path / "r"), "--widths", "4", "8", "8", "64", *TINY[5:], "--init-weights",
          str(tiny_weights.path)],
         "have widths 4 8 16 32, not the 4 8 8 64"),
        ([*run, str(payload), *TINY], "holds Python objects that are refused"),
        ([*run, str(garbage), *TINY], "cannot be read as a checkpoint"),
        ([*run, str(linked), *TINY], "cannot be read as a checkpoint"),
        (["train", str(no_config), "--run-dir", str(tmp_path / "r"), *TINY], "it lacks config"),
        (["train", str(short_tiles), "--run-dir", str(tmp_path / "r"), *TINY], "not lists [pair, z, y, x, occupancy]"),
        (["train", str(no_pairs), "--run-dir", str(tmp_path / "r"), *TINY], "prepare the dataset again"),
        ([*run, str(a_file), *TINY], "is a file, not a folder"),
        (["prepare", str(tmp_path / "binary.csv"), "-o", str(a_file)], "not a text file"),
        (["export", str(garbage), "--dataset", str(out), "-o", str(tmp_path / "w.pt")], "cannot be read as a"),
        (["evaluate", str(data("bundled_pairs.txt")), "--only", SMALL, "--weights", str(tiny_weights.path), "-o",
          str(a_file)], "is a file, not a folder"),
        (["prepare", str(data("bundled_pairs.txt")), "--only", SMALL, "-o", str(a_file)], "is a file, not a folder"),
    ]
    for argv, words in cases:
        capsys.readouterr()
        assert cli.main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert words in err and "Traceback" not in err and len(err.splitlines()) == 1, (argv, err)
        assert "weights_only=False" not in err
    assert not Payload.ran and (tmp_path / "notes.txt").read_text() == "not a checkpoint\n"
    for rank, world, words in (("abc", "2", "whole numbers"), ("0", "abc", "whole numbers"),
                               ("0", "0", "WORLD_SIZE is 0"), ("0", "2", "torchrun did not start")):
        monkeypatch.setenv("RANK", rank)
        monkeypatch.setenv("WORLD_SIZE", world)
        monkeypatch.delenv("TORCHELASTIC_RUN_ID", raising=False)
        capsys.readouterr()
        assert cli.main([*run, str(tmp_path / "r"), *TINY]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
    monkeypatch.delenv("RANK")
    monkeypatch.delenv("WORLD_SIZE")
    with pytest.raises(SystemExit) as exit_:
        cli.main(["prepare", str(a_file), "-o", str(tmp_path / "d"), "--cut-to-map", "flase"])
    assert exit_.value.code == 2 and "expected true or false, got 'flase'" in capsys.readouterr().err
    assert not (tmp_path / "r").exists() and not (tmp_path / "d").exists()


def test_export_refuses_a_missing_or_binary_metrics_file(dataset, tmp_path, capsys):
    out, _ = dataset
    run_dir = tmp_path / "run"
    assert cli.main(["train", str(out), "--run-dir", str(run_dir), "--epochs", "1", *TINY]) == 0
    (tmp_path / "binary.csv").write_bytes(b"\xff\xfe\x00\x01" * 20)
    for metrics, words in ((tmp_path / "missing.csv", "does not exist"), (tmp_path / "binary.csv", "not a CSV")):
        capsys.readouterr()
        assert cli.main(["export", str(run_dir), "--dataset", str(out), "-o", str(tmp_path / "w.pt"),
                         "--metrics", str(metrics)]) == 2
        err = capsys.readouterr().err
        assert words in err and "Traceback" not in err, err
    assert not (tmp_path / "w.pt").exists()


def test_sigterm_saves_the_checkpoint_and_exits_143(dataset, tmp_path):
    """A scheduler that stops a job must not read success (was exit 0)."""
    out, _ = dataset
    run_dir = tmp_path / "run"
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "chimerax.struc2map.cli", "train", str(out), "--run-dir",
                             str(run_dir), "--epochs", "1000", *TINY], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, env=env)
    for line in proc.stdout:
        if line.startswith("epoch 1/1000"):
            proc.send_signal(signal.SIGTERM)
            break
    stdout, stderr = proc.communicate(timeout=300)
    assert proc.returncode == 128 + signal.SIGTERM, stderr[-2000:]
    assert "stopped by SIGTERM" in stderr and "Traceback" not in stderr
    assert torch.load(run_dir / "checkpoint.pt", weights_only=True)["epoch"] >= 1


def test_a_stopped_epoch_reports_the_mean_of_the_steps_it_ran(dataset, tmp_path, monkeypatch):
    """Stopped after 2 of 5 steps, the epoch's row holds the mean over those 2 (was the sum divided by 5)."""
    from chimerax.struc2map.training.config import TrainConfig
    from chimerax.struc2map.training.train import Trainer

    out, _ = dataset
    config = TrainConfig(widths=(4, 8, 16, 32), adv_weight=0, batch_size=2, steps_per_epoch=5, val_tiles=2, epochs=3)
    trainer = Trainer(out, tmp_path / "run", config, log=lambda s: None)
    calls = []

    def step(*args):
        calls.append(1)
        if len(calls) == 2:
            trainer.stopped_by = signal.SIGTERM
        return {"rec": 0.5, "ssim": 0.0, "adv": 0.25, "disc": 0.75}

    monkeypatch.setattr(trainer, "train_step", step)
    (row,) = trainer.run()
    assert len(calls) == 2 and row["step"] == 2
    assert (row["train_rec"], row["train_adv"], row["train_disc"]) == pytest.approx((0.5, 0.25, 0.75))


class Payload:
    """Unpickling it would set ``ran``: a checkpoint must never run code."""

    ran = False

    def __reduce__(self):
        return (setattr, (Payload, "ran", True))


def test_export_never_replaces_its_inputs_even_with_overwrite(dataset, tmp_path, capsys):
    out, _ = dataset
    run_dir = tmp_path / "run"
    assert cli.main(["train", str(out), "--run-dir", str(run_dir), "--epochs", "1", *TINY]) == 0
    kept = {p: p.read_bytes() for p in (run_dir / "checkpoint.pt", out / "index.json")}
    for target in kept:
        capsys.readouterr()
        assert cli.main(["export", str(run_dir), "--dataset", str(out), "-o", str(target), "--overwrite"]) == 2
        err = capsys.readouterr().err
        assert "it is an input of this run" in err and len(err.strip().splitlines()) == 1, err
    assert all(path.read_bytes() == data for path, data in kept.items())
    assert not (run_dir / "checkpoint.json").exists() and not (out / "index.pt").exists()
