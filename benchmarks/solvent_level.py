"""How well each estimate of the output's solvent level matches the training targets' own, on prepared pairs.

The targets were masked to 3 Å around the atoms and min-max scaled, which puts
their solvent at a level c that differs from pair to pair. ``generate``
subtracts an estimate of that level from the generator's output, so the level
that makes the output's mean inside the mask equal the target's,
mean(output − target) + c, is what an estimate should hit. Estimates, all
from one default run: the median outside the mask over the voxels the
generator computed (what ``generate`` uses), the same including the constant
filler of skipped tiles (close to what it used before it skipped tiles by the
mask), and medians over shells 0–k Å outside the mask.

    struc2map prepare ../shared/data/pairs.txt --output work_data/ds1
    python benchmarks/solvent_level.py work_data/ds1
"""
from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
from scipy import ndimage

ROOT = Path(__file__).resolve().parents[1]
HELD_OUT = {"haemoglobin_emd3488", "t20s_4.8A"}  # the shipped weights' validation pairs


def estimates(dataset: Path, entry: dict, weights) -> dict[str, float]:
    """Each estimate's error (estimate − ideal level) for one prepared pair."""
    from chimerax.struc2map.grid import MapData
    from chimerax.struc2map.mask import atom_mask
    from chimerax.struc2map.structure import read_structure
    from chimerax.struc2map.tiling import TilingConfig, predict_tiled

    arrays = np.load(dataset / entry["file"])
    volume, target = arrays["input"], arrays["target"]
    grid = MapData(volume, entry["origin"], entry["voxel_size"])
    radius = float(weights.metadata["output"]["mask_radius"])
    mask = atom_mask(grid, read_structure(entry["pair"]["model"]).coords, radius)
    output, report = predict_tiled(weights.generator, volume, TilingConfig(), device="cpu", needed=mask)
    computed = np.ones(mask.shape, bool) if report.predicted is None else report.predicted
    ideal = float(np.mean(output[mask] - target[mask]) + entry["background"])
    outside = computed & ~mask
    distance = ndimage.distance_transform_edt(~mask, sampling=grid.voxel_size[::-1])
    levels = {"computed (generate)": np.median(output[outside]),
              "with filler of skipped tiles": np.median(output[~mask])}
    for k in (2, 4, 6):
        levels[f"shell 0–{k} Å"] = np.median(output[outside & (distance <= k)])
    return {"ideal": ideal, **{name: float(level) - ideal for name, level in levels.items()}}


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("dataset", help="a folder made by struc2map prepare")
    p.add_argument("--weights", default=str(ROOT / "weights/struc2map_generator.pt"))
    p.add_argument("--out", default=str(ROOT / "benchmarks/results"))
    args = p.parse_args()
    from chimerax.struc2map.weights_io import load_weights

    weights = load_weights(args.weights)
    dataset = Path(args.dataset)
    index = json.loads((dataset / "index.json").read_text(encoding="utf-8"))
    rows = {name: estimates(dataset, entry, weights) for name, entry in index["pairs"].items()}
    names = [k for k in next(iter(rows.values())) if k != "ideal"]
    lines = ["| pair | target solvent c | ideal level | " + " | ".join(f"{n}: error" for n in names) + " |",
             "|" + "---|" * (3 + len(names))]
    for pair, r in rows.items():
        label = f"{pair} (held out)" if pair in HELD_OUT else pair
        c = index["pairs"][pair]["background"]
        lines.append(f"| {label} | {c:.3f} | {r['ideal']:.3f} | " + " | ".join(f"{r[n]:+.3f}" for n in names) + " |")
    for title, keep in (("all pairs", rows), ("training pairs", {k: v for k, v in rows.items() if k not in HELD_OUT})):
        lines.append(f"| **mean abs error, {title}** | | | "
                     + " | ".join(f"{np.mean([abs(r[n]) for r in keep.values()]):.3f}" for n in names) + " |")
    Path(args.out).mkdir(parents=True, exist_ok=True)
    (Path(args.out) / "solvent_level.md").write_text("\n".join(lines) + "\n", encoding="utf-8")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
