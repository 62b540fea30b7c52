"""Seconds and peak memory of ``generate`` against model size, up to a synthetic ≥100,000-atom assembly.

Each model runs in a fresh process (its own peak RSS), default tiling, on the CPU
unless ``--device`` says otherwise. The assembly is copies of 6GYN (16,932 atoms)
placed side by side on a 2×2×2 lattice 60 Å apart, which gives a map of just over 300³ voxels.

    python benchmarks/scaling.py --weights weights/struc2map_generator.pt
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
DATA = ROOT.parent / "shared" / "data"
RESOLUTION = 3.5
"""Å: every model is generated at this resolution (a typical request)."""
MODELS = {
    "t20s_fragment": DATA / "t20s_fragment_emd5623/test_model.pdb",
    "vp6": DATA / "vp6_emd6272/6272.pdb",
    "haemoglobin": DATA / "haemoglobin_emd3488/5me2.pdb",
    "emd35448_8ihl": DATA / "emd35448_8ihl/35448_8ihl.cif",
    "hcn4": DATA / "hcn4_emd0093/6gyn.pdb",
    "assembly_8x_hcn4": "assembly",
}


def assembly_atoms(copies_per_axis: int = 2, gap: float = 60.0):
    """Copies of 6GYN on a cubic lattice whose spacing is the model's largest extent plus ``gap`` Å."""
    from chimerax.struc2map.structure import Atoms, read_structure

    one = read_structure(MODELS["hcn4"])
    extent = (one.coords.max(0) - one.coords.min(0)).max() + gap
    shifts = np.stack(np.meshgrid(*[np.arange(copies_per_axis)] * 3, indexing="ij"), -1).reshape(-1, 3) * extent
    coords = (one.coords[None] + shifts[:, None]).reshape(-1, 3)
    n = len(shifts)
    return Atoms(coords, np.tile(one.atomic_numbers, n), np.tile(one.b_factors, n), np.tile(one.elements, n),
                 "assembly")


def run_one(name: str, weights: str, device: str) -> dict:
    from chimerax.struc2map.generate import generate
    from chimerax.struc2map.structure import read_structure
    from chimerax.struc2map.weights_io import load_weights

    w = load_weights(weights)
    atoms = assembly_atoms() if MODELS[name] == "assembly" else read_structure(MODELS[name])
    start = time.perf_counter()
    result, report = generate(atoms.coords, atoms.atomic_numbers, RESOLUTION, w, b_factors=atoms.b_factors,
                              device=device)
    return {"model": name, "atoms": len(atoms.coords), "grid": list(result.shape_xyz),
            "voxels": int(result.array.size), "seconds": time.perf_counter() - start,
            "tiles_run": report.tiles_run, "tiles_skipped": report.tiles_skipped, "device": report.device,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024}


def plot(rows: list[dict], path: Path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, (a, b) = plt.subplots(1, 2, figsize=(10, 4))
    voxels = [r["voxels"] / 1e6 for r in rows]
    a.plot(voxels, [r["seconds"] for r in rows], "o-")
    a.set_xlabel("map size (million voxels)")
    a.set_ylabel("seconds")
    b.plot(voxels, [r["peak_rss_mb"] / 1024 for r in rows], "o-")
    b.set_xlabel("map size (million voxels)")
    b.set_ylabel("peak memory (GB, process RSS)")
    for r, x in zip(rows, voxels):
        a.annotate(f"{r['atoms']:,} atoms", (x, r["seconds"]), fontsize=7)
        b.annotate(f"{r['grid'][0]}×{r['grid'][1]}×{r['grid'][2]}", (x, r["peak_rss_mb"] / 1024), fontsize=7)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--weights", default=str(ROOT / "weights/struc2map_generator.pt"))
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--device", default="cpu")
    p.add_argument("--one", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.one:
        print(json.dumps(run_one(args.one, args.weights, args.device)))
        return
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    rows = []
    for name in args.models:
        proc = subprocess.run([sys.executable, __file__, "--one", name, "--weights", args.weights,
                               "--device", args.device], capture_output=True, text=True, check=True)
        rows.append(json.loads(proc.stdout.strip().splitlines()[-1]))
        r = rows[-1]
        print(f"{name}: {r['atoms']} atoms, grid {'×'.join(map(str, r['grid']))}, {r['seconds']:.1f} s, "
              f"peak {r['peak_rss_mb']:.0f} MB, tiles {r['tiles_run']}/{r['tiles_skipped']} on {r['device']}",
              flush=True)
    lines = ["| model | atoms | grid | seconds | peak RSS MB | tiles run/skipped | device |", "|---|---|---|---|---|---|---|"]
    lines += [f"| {r['model']} | {r['atoms']} | {'×'.join(map(str, r['grid']))} | {r['seconds']:.1f} | "
              f"{r['peak_rss_mb']:.0f} | {r['tiles_run']}/{r['tiles_skipped']} | {r['device']} |" for r in rows]
    tag = "" if args.device == "cpu" else f"_{args.device}"
    (out / f"scaling{tag}.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    (out / f"scaling{tag}.json").write_text(json.dumps(rows, indent=1), encoding="utf-8")
    plot(rows, out / f"scaling{tag}.png")


if __name__ == "__main__":
    main()
