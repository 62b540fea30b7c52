"""Does a more realistic simulated map fit back better? fitmap from random poses, struc2map against molmap.

For each real pair of ../shared/data (pairs.txt and pairs_extra.txt; rubella left
out: 35 Å is far outside the method's range): the structure's struc2map map,
made once with the shipped weights at the reported resolution, and ChimeraX's
molmap at that resolution on the same grid (the struc2map map is contoured to
enclose the same volume as molmap's envelope). From N random starting poses
(fixed seed; a rotation about the model's centre by up to 15° about a random
axis and a shift of up to 5 Å in a random direction, both uniform in size; the
same poses for both maps), each map is moved rigidly to the pose and fitted into
the experimental map with ChimeraX's own fitmap, as ``struc2map ... fit`` does
(fit.py: rigid, metric cam, the moving map's contour envelope). The fitted
motion applied to the model gives its RMSD from the deposited pose (heavy atoms);
a fit "returns" when that is within 1 Å.

Runs in ChimeraX's Python code from the ChimeraX==0.1.71 wheel (the test
environment, see tests/chimerax_session.py), one process, niced:

    nice -n 10 python benchmarks/fitting.py [--poses 20] [--seed 0] [--pairs NAME ...]

Writes benchmarks/results/fitting.json (after each pair) and
benchmarks/results/fitting.png and prints the Markdown table of
benchmarks/README.md (``--report`` remakes table and plot from the JSON).
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
RESULTS = ROOT / "benchmarks" / "results"
# rubella: 35 Å is far outside the method's range; the other two come from repositories DATA_POLICY.md reserves
# for independent testing (gregdp/mapq, RosettaCommons/demos). Older result files that hold them are reported
# without them.
EXCLUDED = {"rubella_emd8249", "apoferritin_emd20026", "t20s_4.8A"}
MAX_SHIFT, MAX_ANGLE, WITHIN = 5.0, 15.0, 1.0


def pairs() -> list[tuple[str, Path, Path, float]]:
    """(name, map, model, resolution) of pairs.txt and pairs_extra.txt, less EXCLUDED; smallest model
    file first, so that a partial run has the most pairs."""
    found = []
    for listing in ("pairs.txt", "pairs_extra.txt"):
        for line in (DATA / listing).read_text(encoding="utf-8").splitlines():
            fields = line.split("#", 1)[0].split()
            if fields and fields[0] not in EXCLUDED:
                found.append((fields[0], DATA / fields[1], DATA / fields[2], float(fields[3])))
    return sorted(found, key=lambda pair: pair[2].stat().st_size)


def random_poses(rng: np.random.Generator, n: int, centre: np.ndarray) -> list:
    """n rigid motions about ``centre``: rotation up to MAX_ANGLE°, shift up to MAX_SHIFT Å."""
    from chimerax.geometry import rotation, translation

    poses = []
    for _ in range(n):
        axis, direction = rng.normal(size=3), rng.normal(size=3)
        angle, shift = rng.uniform(0, MAX_ANGLE), rng.uniform(0, MAX_SHIFT)
        poses.append(translation(shift * direction / np.linalg.norm(direction))
                     * rotation(axis / np.linalg.norm(axis), angle, center=centre))
    return poses


def rmsd(motion, xyz: np.ndarray) -> float:
    return float(np.sqrt(((motion * xyz - xyz) ** 2).sum(axis=1).mean()))


def fit_from_poses(session, moving, target, xyz: np.ndarray, poses: list) -> list[dict]:
    """Fit ``moving`` into ``target`` from each pose (relative to its deposited placement)."""
    from chimerax.struc2map.fit import fit_map

    deposited = moving.position
    centre = xyz.mean(axis=0)
    out = []
    for pose in poses:
        moving.position = pose * deposited
        result = fit_map(session, moving, target, pose * centre)
        final = moving.position * deposited.inverse()  # where the fit left the map, from the deposited pose
        out.append({"start_rmsd": rmsd(pose, xyz), "final_rmsd": rmsd(final, xyz),
                    "cam_before": result.before[1], "cam_after": result.after[1]})
    moving.position = deposited
    return out


def run_pair(session, name: str, map_path: Path, model_path: Path, resolution: float, poses: int,
             seed: int) -> dict:
    from tests.chimerax_session import run, volume_from_mapdata

    from chimerax.struc2map.mapio import read_map

    started = time.perf_counter()
    target = volume_from_mapdata(session, read_map(map_path), name)
    (structure,) = run(session, f"open {model_path}")[:1]
    atoms = structure.atoms.filter(structure.atoms.element_numbers != 1)
    xyz = atoms.scene_coords
    (generated,) = run(session, f"struc2map #{structure.id_string} resolution {resolution:g} wait true")
    from chimerax.map.molmap import molmap as cx_molmap

    molmap = cx_molmap(session, atoms, resolution, on_grid=generated)  # 'molmap #N&~H R onGrid #gen
    made = time.perf_counter() - started
    rng = np.random.default_rng(seed)
    starts = random_poses(rng, poses, xyz.mean(axis=0))
    from chimerax.struc2map.weights_io import default_weights_path

    result = {"name": name, "resolution": resolution, "atoms": len(atoms), "grid": list(generated.data.size),
              "seconds_maps": made, "weights": str(default_weights_path())}
    for label, moving in (("struc2map", generated), ("molmap", molmap)):
        t0 = time.perf_counter()
        result[label] = fit_from_poses(session, moving, target, xyz, starts)
        result[f"seconds_{label}"] = time.perf_counter() - t0
    session.models.close(session.models.list())
    return result


def summary(result: dict, label: str) -> tuple[float, float]:
    final = np.array([f["final_rmsd"] for f in result[label]])
    return float(np.mean(final <= WITHIN)), float(final.mean())


def seen_in_training(result: dict) -> bool:
    """Whether the weights that made this result were trained on its pair (their training record names it);
    results from before weights were recorded were made with the first generator, v1."""
    from chimerax.struc2map.weights_meta import read_metadata, resolve_weights

    training = read_metadata(resolve_weights(result.get("weights", "v1"))).get("training", {})
    return result["name"] in (training.get("train", {}).get("train_pairs") or [])


def table(results: list[dict]) -> str:
    lines = ["| pair | res. Å | atoms | in training | struc2map: within 1 Å | mean final RMSD Å | "
             "molmap: within 1 Å | mean final RMSD Å |", "|---|---|---|---|---|---|---|---|"]
    for r in results:
        (sf, sr), (mf, mr) = summary(r, "struc2map"), summary(r, "molmap")
        seen = "yes" if seen_in_training(r) else "no"
        lines.append(f"| {r['name']} | {r['resolution']:g} | {r['atoms']} | {seen} | {sf:.2f} | {sr:.2f} | "
                     f"{mf:.2f} | {mr:.2f} |")
    groups = [(f"all {len(results)} pairs", results),
              ("not in training", [r for r in results if not seen_in_training(r)])]
    for title, group in groups:
        if not group:
            continue
        s = np.array([summary(r, "struc2map") for r in group])
        m = np.array([summary(r, "molmap") for r in group])
        lines.append(f"| **{title}** (mean over {len(group)}) | | | | **{s[:, 0].mean():.2f}** | "
                     f"**{s[:, 1].mean():.2f}** | **{m[:, 0].mean():.2f}** | **{m[:, 1].mean():.2f}** |")
    return "\n".join(lines)


def plot(results: list[dict], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = [r["name"] for r in results]
    x = np.arange(len(names))
    fig, axes = plt.subplots(1, 2, figsize=(12, 4.2))
    for offset, label, colour in ((-0.2, "struc2map", "tab:orange"), (0.2, "molmap", "tab:blue")):
        values = np.array([summary(r, label) for r in results])
        axes[0].bar(x + offset, values[:, 0], 0.4, label=label, color=colour)
        axes[1].bar(x + offset, values[:, 1], 0.4, label=label, color=colour)
    axes[0].set_ylabel(f"fraction of {len(results[0]['molmap'])} fits within {WITHIN:g} Å RMSD")
    axes[1].set_ylabel("mean final RMSD (Å)")
    axes[1].axhline(WITHIN, color="grey", lw=0.8, ls="--")
    for ax in axes:
        ax.set_xticks(x, names, rotation=60, ha="right", fontsize=8)
        ax.legend(fontsize=8)
    fig.suptitle(f"fitmap (rigid, cam) from random poses ≤{MAX_SHIFT:g} Å, ≤{MAX_ANGLE:g}° off the deposited pose")
    fig.tight_layout()
    fig.savefig(path, dpi=80)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--poses", type=int, default=20)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--pairs", nargs="*", help="only these pairs (folder names)")
    p.add_argument("--output", default=str(RESULTS / "fitting.json"))
    p.add_argument("--report", action="store_true", help="only print the table and redraw the plot from --output")
    args = p.parse_args()
    if args.report:
        results = [r for r in json.loads(Path(args.output).read_text(encoding="utf-8")) if r["name"] not in EXCLUDED]
        plot(results, Path(args.output).with_suffix(".png"))
        print(table(results))
        return
    import torch

    torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))
    from tests.chimerax_session import chimerax_session

    from chimerax.struc2map.cmd import register_command

    session = chimerax_session()
    register_command(session.logger)
    results = []
    for name, map_path, model_path, resolution in pairs():
        if args.pairs and name not in args.pairs:
            continue
        results.append(run_pair(session, name, map_path, model_path, resolution, args.poses, args.seed))
        print(f"{name}: struc2map {summary(results[-1], 'struc2map')}, molmap {summary(results[-1], 'molmap')}",
              flush=True)
        Path(args.output).write_text(json.dumps(results, indent=1), encoding="utf-8")
    plot(results, Path(args.output).with_suffix(".png"))
    print(table(results))


if __name__ == "__main__":
    main()
