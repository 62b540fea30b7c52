"""Score a generator on held-out pairs against molmap baselines, as a table and a scatter plot.

Every method makes its map on the same 1 Å grid around the model and is
compared with the experimental map on the experimental map's grid (the
paper's protocol): ChimeraX correlation and correlation about mean over the
experimental map's default contour envelope, the paper's PCC and SSIM, and
two measures of realism beyond correlation (``realism.py``: amplitude
fall-off, lower is better, and local texture) under the soft envelope of the
model's atoms at the pair's resolution.
Methods: the generator as ``generate`` runs it at the pair's reported
resolution; for weights with a B-factor channel, the same with the channel
off (the ablation); for version-1 weights, the generator without its
low-pass; molmap at 2 Å and at the reported resolution; and molmap at the
best blur for this map and metric over 2.5–7 Å (an oracle no user can
know). The resolution sweep generates at 3, 4, 6 and 8 Å and reports the
molmap resolution each result correlates with best (``sweep.csv``).
"""
from __future__ import annotations

import importlib.util
import statistics
from pathlib import Path
from typing import Callable

import numpy as np

from ..files import atomic_path, output_folder, write_csv, write_text
from ..generate import generate
from ..map_data import MapData
from ..mapio import read_map
from ..mask import atom_distance, envelope_radii, soft_envelope
from ..metrics import compare_maps, default_contour_level, pearson
from ..molmap import molmap, molmap_grid
from ..realism import amplitude_falloff, local_texture
from ..resample import resample_onto
from ..structure import read_structure
from ..tiling import TilingConfig
from ..weights_io import Weights
from .pairs import Pair

METRICS = ("correlation", "correlation_about_mean", "pcc", "ssim", "falloff", "texture")
LOWER_IS_BETTER = frozenset({"falloff"})
METHODS = ("generator", "generator_no_bfactors", "generator_native", "molmap_2A", "molmap_reported", "molmap_best")
ORACLE_BLURS = tuple(np.round(np.arange(2.5, 7.01, 0.5), 2))
SWEEP = (3.0, 4.0, 6.0, 8.0)
SWEEP_BLURS = tuple(np.round(np.arange(2.0, 12.01, 0.5), 2))


def _molmap_1A(atoms, resolution: float) -> MapData:
    """molmap on a 1 Å grid around the model, as the generator's input grid."""
    origin, shape = molmap_grid(atoms.coords, resolution, grid_spacing=1.0)
    return molmap(atoms.coords, atoms.atomic_numbers, resolution,
                  on_grid=MapData(np.empty(shape, np.float32), origin, 1.0))


def evaluate_pair(pair: Pair, weights: Weights, *, tiling: TilingConfig | None = None,
                  device: str = "auto") -> tuple[dict[str, dict], list[dict]]:
    """Metrics of each method against the pair's experimental map, and the resolution sweep's rows."""
    atoms = read_structure(pair.model)
    experimental = read_map(pair.map)
    inner, outer = envelope_radii(pair.resolution)
    mask = soft_envelope(atom_distance(experimental, atoms.coords, outer + 1.0), inner, outer)
    level = default_contour_level(experimental)

    def score(made: MapData) -> dict:
        on_grid = resample_onto(made, experimental)  # once per map, for PCC, SSIM and both realism measures
        return {**compare_maps(made, experimental, level, resampled=on_grid),
                "falloff": amplitude_falloff(on_grid, experimental, mask, pair.resolution),
                "texture": local_texture(on_grid, experimental, mask)}

    spec = weights.spec
    run = dict(tiling=tiling, device=device, b_factors=atoms.b_factors)
    generated, _ = generate(atoms.coords, atoms.atomic_numbers, pair.resolution, weights, **run)
    scores = {"generator": score(generated)}
    if spec.in_channels > 1:
        plain, _ = generate(atoms.coords, atoms.atomic_numbers, pair.resolution, weights, use_bfactors=False, **run)
        scores["generator_no_bfactors"] = score(plain)
    if spec.condition is None:
        native = spec.native_resolution
        raw, _ = generate(atoms.coords, atoms.atomic_numbers, native, weights, **run)
        scores["generator_native"] = score(raw)
    scores["molmap_2A"] = score(_molmap_1A(atoms, 2.0))
    scores["molmap_reported"] = score(_molmap_1A(atoms, pair.resolution))
    blurs = {b: score(_molmap_1A(atoms, b)) for b in ORACLE_BLURS}
    best = {}
    for metric in METRICS:
        sign = -1.0 if metric in LOWER_IS_BETTER else 1.0
        blur = max(blurs, key=lambda b: sign * blurs[b][metric])
        best[metric], best[f"{metric}_blur"] = blurs[blur][metric], float(blur)
    scores["molmap_best"] = best
    sweep = []
    if spec.condition is not None:
        for r in SWEEP:
            made, report = generate(atoms.coords, atoms.atomic_numbers, r, weights, **run)
            sweep.append({"pair": pair.name, "requested": r, "effective": report.effective_resolution,
                          **closest_blur(made, atoms)})
    return scores, sweep


def closest_blur(generated: MapData, atoms) -> dict:
    """The molmap resolution (2–12 Å) whose map, on the generated map's grid, correlates best with it."""
    values = generated.array.ravel().astype(np.float64)
    best, best_corr = None, -2.0
    for b in SWEEP_BLURS:
        m = molmap(atoms.coords, atoms.atomic_numbers, b, on_grid=generated).array.ravel().astype(np.float64)
        corr = pearson(values, m)
        if corr > best_corr:
            best, best_corr = float(b), corr
    return {"closest_molmap": best, "correlation": best_corr}


def evaluate(pairs: list[Pair], weights: Weights, out_dir: str | Path, *, tiling: TilingConfig | None = None,
             device: str = "auto", log: Callable[[str], None] = print) -> list[dict]:
    """Evaluate every pair; write results.csv, results.md, sweep.csv and scatter.png into ``out_dir``."""
    out_dir = output_folder(out_dir)
    rows, sweeps = [], []
    for pair in pairs:
        scores, sweep = evaluate_pair(pair, weights, tiling=tiling, device=device)
        sweeps.extend(sweep)
        for method, m in scores.items():
            rows.append({"pair": pair.name, "resolution": pair.resolution, "method": method,
                         **{k: float(m[k]) for k in METRICS},
                         "blurs": " ".join(f"{m[k + '_blur']:g}" for k in METRICS) if method == "molmap_best" else ""})
        log(f"{pair.name}: " + ", ".join(f"{r['method']} cam {r['correlation_about_mean']:.3f}"
                                         for r in rows if r["pair"] == pair.name))
    _write_csv(out_dir / "results.csv", rows)
    if sweeps:
        _write_csv(out_dir / "sweep.csv", sweeps)
    write_text(out_dir / "results.md", markdown_table(rows) + sweep_table(sweeps), overwrite=True)
    if importlib.util.find_spec("matplotlib") is None:
        log("scatter.png not drawn: matplotlib is not installed (pip install matplotlib)")
    else:
        scatter_plot(rows, out_dir / "scatter.png")
    return rows


def _write_csv(path: Path, rows: list[dict]) -> None:
    write_csv(path, rows, overwrite=True)


def sweep_table(rows: list[dict]) -> str:
    """The resolution sweep: requested resolution against the molmap resolution each map is closest to."""
    if not rows:
        return ""
    head = ("\n| pair | requested Å | made at Å | closest molmap Å | its correlation |\n"
            "|---|---|---|---|---|\n")
    return head + "\n".join(f"| {r['pair']} | {r['requested']:g} | {r['effective']:g} | {r['closest_molmap']:g} | "
                            f"{r['correlation']:.3f} |" for r in rows) + "\n"


def markdown_table(rows: list[dict]) -> str:
    """One line per pair and method, then the mean per method."""
    head = ("| pair | res. Å | method | correlation | corr. about mean | PCC | SSIM | fall-off (lower better) | texture |\n"
            "|---|---|---|---|---|---|---|---|---|\n")
    lines = [f"| {r['pair']} | {r['resolution']:g} | {r['method']} | "
             + " | ".join(f"{r[k]:.3f}" for k in METRICS) + " |"
             + (f" blurs {r['blurs']} Å" if r.get("blurs") else "") for r in rows]
    for method in METHODS:
        sel = [r for r in rows if r["method"] == method]
        if sel:
            lines.append(f"| **mean** | | {method} | "
                         + " | ".join(f"{statistics.mean(r[k] for r in sel):.3f}" for k in METRICS) + " |")
    return head + "\n".join(lines) + "\n"


def scatter_plot(rows: list[dict], path: Path) -> None:
    """Generator against each molmap baseline, one panel per metric (as the paper's Figure 5)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, len(METRICS), figsize=(4 * len(METRICS), 4))
    by = {(r["pair"], r["method"]): r for r in rows}
    pairs = sorted({r["pair"] for r in rows})
    for ax, metric in zip(axes, METRICS):
        for baseline, marker in (("molmap_reported", "o"), ("molmap_2A", "^")):
            xs = [by[(p, baseline)][metric] for p in pairs]
            ys = [by[(p, "generator")][metric] for p in pairs]
            ax.scatter(xs, ys, marker=marker, label=f"vs {baseline}")
        lo = min(min(r[metric] for r in rows), 0.0)
        hi = max(max(r[metric] for r in rows), 1.0 if metric not in LOWER_IS_BETTER else 0.0)
        ax.plot([lo, hi], [lo, hi], "k--", lw=0.8)
        ax.set_xlabel(f"molmap {metric}")
        ax.set_ylabel(f"generator {metric}")
        ax.set_title(metric)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
