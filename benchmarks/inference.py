"""Tiling schemes side by side: seconds, peak memory, tiles, and how much the outputs differ.

Each (model, scheme) runs in a fresh process (so peak RSS is its own), ``--repeats``
times; the median is reported. Outputs are compared with the paper's scheme
(max / mean absolute difference, correlation) and, for pairs with an
experimental map, scored against it (correlation about mean).

    python benchmarks/inference.py --weights weights/struc2map_generator.pt --out benchmarks/results
    python benchmarks/inference.py --device cuda    # the same on a GPU
"""
from __future__ import annotations

import argparse
import json
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

DATA = Path(__file__).resolve().parents[2] / "shared" / "data"
MODELS = {
    "haemoglobin_emd3488": (DATA / "haemoglobin_emd3488/5me2.pdb", DATA / "haemoglobin_emd3488/emd_3488.mrc.gz", 3.2),
    "hcn4_emd0093": (DATA / "hcn4_emd0093/6gyn.pdb", DATA / "hcn4_emd0093/MAP_m4A.mrc.gz", 3.4),
}
SCHEMES = {
    "paper": dict(tile_size=32, margin=6, skip_empty=False, precision="fp32", batch_size=8),
    "default": {},
    "default_fp32": dict(precision="fp32"),
    "default_ncdhw": dict(channels_last=False),
    "t32m4": dict(margin=4),
    "t64m8": dict(tile_size=64, margin=8, batch_size=4),
    "whole": "whole",  # the whole map as one tile: no seams, the reference for tile-size effects
}


def tiling_for(scheme: str, shape_zyx: tuple[int, ...]):
    """The TilingConfig of a scheme for a map of this shape."""
    from chimerax.struc2map.tiling import TilingConfig

    if SCHEMES[scheme] == "whole":
        return TilingConfig(tile_size=max(16, -(-max(shape_zyx) // 8) * 8), margin=0, batch_size=1)
    return TilingConfig(**SCHEMES[scheme])


def run_one(model: str, scheme: str, weights: str, out: Path, device: str) -> dict:
    """Generate once in this process at the model's resolution; save the output; return timings."""
    import torch

    from chimerax.struc2map.generate import generate, simulate_input
    from chimerax.struc2map.structure import read_structure
    from chimerax.struc2map.weights_io import load_weights

    torch.manual_seed(0)
    w = load_weights(weights)
    atoms = read_structure(MODELS[model][0])
    resolution = MODELS[model][2]
    shape = simulate_input(atoms.coords, atoms.atomic_numbers, w, resolution).array.shape
    start = time.perf_counter()
    result, report = generate(atoms.coords, atoms.atomic_numbers, resolution, w, b_factors=atoms.b_factors,
                              tiling=tiling_for(scheme, shape), device=device)
    seconds = time.perf_counter() - start
    np.save(out / f"{model}_{scheme}.npy", result.array)
    return {"seconds": seconds, "tiles_run": report.tiles_run, "tiles_skipped": report.tiles_skipped,
            "grid": list(report.grid_xyz), "atoms": report.atoms,
            "peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
            "origin": result.origin.tolist(), "device": report.device}


def compare(model: str, schemes: list[str], out: Path) -> dict:
    """Differences from the paper's scheme and from one whole-map tile, and agreement with the experimental map."""
    from chimerax.struc2map.map_data import MapData
    from chimerax.struc2map.mapio import read_map
    from chimerax.struc2map.metrics import chimerax_correlation
    from map_difference import map_difference

    meta = json.loads((out / f"{model}_paper.json").read_text(encoding="utf-8"))
    exp = read_map(MODELS[model][1])
    ref = np.load(out / f"{model}_paper.npy")
    whole = np.load(out / f"{model}_whole.npy") if "whole" in schemes else None
    rows = {}
    for s in schemes:
        arr = np.load(out / f"{model}_{s}.npy")
        rows[s] = {**map_difference(arr, ref),
                   "cam_vs_experimental": chimerax_correlation(exp, MapData(arr, meta["origin"], 1.0))[
                       "correlation_about_mean"]}
        if whole is not None:
            rows[s]["max_abs_vs_whole"] = map_difference(arr, whole)["max_abs"]
    return rows


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--weights", default=str(Path(__file__).resolve().parents[1] / "weights/struc2map_generator.pt"))
    p.add_argument("--out", default=str(Path(__file__).resolve().parent / "results"))
    p.add_argument("--models", nargs="+", default=list(MODELS))
    p.add_argument("--schemes", nargs="+", default=list(SCHEMES))
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--device", default="cpu", help="cpu, cuda, ... (as generate's --device)")
    p.add_argument("--one", nargs=2, metavar=("MODEL", "SCHEME"), help=argparse.SUPPRESS)
    args = p.parse_args()
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    if args.one:
        print(json.dumps(run_one(*args.one, args.weights, out, args.device)))
        return
    table = {}
    for model in args.models:
        for scheme in args.schemes:
            runs = []
            for _ in range(args.repeats):
                command = [sys.executable, __file__, "--one", model, scheme, "--weights", args.weights,
                           "--out", str(out), "--device", args.device]
                proc = subprocess.run(command, capture_output=True, text=True, check=True)
                runs.append(json.loads(proc.stdout.strip().splitlines()[-1]))
            row = {**runs[-1], "seconds": statistics.median(r["seconds"] for r in runs),
                   "peak_rss_mb": max(r["peak_rss_mb"] for r in runs), "runs": [r["seconds"] for r in runs]}
            table[(model, scheme)] = row
            if scheme == "paper":
                (out / f"{model}_paper.json").write_text(json.dumps(row), encoding="utf-8")
            print(f"{model} {scheme}: {row['seconds']:.1f} s (runs {', '.join(f'{s:.1f}' for s in row['runs'])}), "
                  f"peak {row['peak_rss_mb']:.0f} MB, tiles {row['tiles_run']} run / {row['tiles_skipped']} skipped",
                  flush=True)
        if "paper" in args.schemes:
            for scheme, diff in compare(model, args.schemes, out).items():
                table[(model, scheme)].update(diff)
    lines = ["| model | atoms | grid | scheme | seconds (median) | × vs paper | peak RSS MB | tiles run/skipped | "
             "max abs diff | mean abs diff | corr. with paper | max abs diff vs whole | cam vs experimental |",
             "|" + "---|" * 13]
    for (model, scheme), r in table.items():
        paper = table.get((model, "paper"))
        speed = f"{paper['seconds'] / r['seconds']:.2f}" if paper else ""
        lines.append(f"| {model} | {r['atoms']} | {'×'.join(map(str, r['grid']))} | {scheme} | {r['seconds']:.1f} | "
                     f"{speed} | {r['peak_rss_mb']:.0f} | {r['tiles_run']}/{r['tiles_skipped']} | "
                     f"{r.get('max_abs', float('nan')):.4f} | {r.get('mean_abs', float('nan')):.5f} | "
                     f"{r.get('correlation', float('nan')):.5f} | {r.get('max_abs_vs_whole', float('nan')):.4f} | "
                     f"{r.get('cam_vs_experimental', float('nan')):.4f} |")
    (out / "inference.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
