"""Score a generator on held-out pairs against molmap baselines, as a table and a scatter plot.

Per pair, four maps are compared with the experimental map (each on the
experimental map's grid, the paper's protocol): the generator's output at
its native resolution, the same low-pass filtered to the pair's reported
resolution (what ``generate`` gives), molmap at 2 Å and molmap at the
reported resolution. Metrics: ChimeraX correlation and correlation about
mean over the experimental map's default contour envelope, and the paper's
PCC and SSIM.
"""
from __future__ import annotations

import csv
import statistics
from pathlib import Path
from typing import Callable

from ..generate import generate, native_resolution
from ..mapio import read_map
from ..metrics import compare_maps
from ..molmap import molmap
from ..resolution import lowpass_to_resolution
from ..structure import read_structure
from ..tiling import TilingConfig
from ..weights_io import Weights
from .pairs import Pair

METRICS = ("correlation", "correlation_about_mean", "pcc", "ssim")
METHODS = ("generator", "generator_native", "molmap_2A", "molmap_reported")


def evaluate_pair(pair: Pair, weights: Weights, *, tiling: TilingConfig | None = None,
                  device: str = "auto") -> dict[str, dict]:
    """Metrics of each method against the pair's experimental map."""
    atoms = read_structure(pair.model)
    experimental = read_map(pair.map)
    native = native_resolution(weights)
    raw, _ = generate(atoms.coords, atoms.atomic_numbers, native, weights, tiling=tiling, device=device)
    filtered, _ = lowpass_to_resolution(raw, pair.resolution, native)
    maps = {
        "generator": filtered,
        "generator_native": raw,
        "molmap_2A": molmap(atoms.coords, atoms.atomic_numbers, 2.0, on_grid=experimental),
        "molmap_reported": molmap(atoms.coords, atoms.atomic_numbers, pair.resolution, on_grid=experimental),
    }
    return {name: compare_maps(m, experimental) for name, m in maps.items()}


def evaluate(pairs: list[Pair], weights: Weights, out_dir: str | Path, *, tiling: TilingConfig | None = None,
             device: str = "auto", log: Callable[[str], None] = print) -> list[dict]:
    """Evaluate every pair; write results.csv, results.md and scatter.png into ``out_dir``."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    rows = []
    for pair in pairs:
        for method, m in evaluate_pair(pair, weights, tiling=tiling, device=device).items():
            rows.append({"pair": pair.name, "resolution": pair.resolution, "method": method,
                         **{k: float(m[k]) for k in METRICS}})
        log(f"{pair.name}: " + ", ".join(f"{r['method']} cam {r['correlation_about_mean']:.3f}"
                                         for r in rows if r["pair"] == pair.name))
    with open(out_dir / "results.csv", "w", newline="", encoding="utf-8") as f:
        w = csv.DictWriter(f, fieldnames=list(rows[0]))
        w.writeheader()
        w.writerows(rows)
    (out_dir / "results.md").write_text(markdown_table(rows), encoding="utf-8")
    scatter_plot(rows, out_dir / "scatter.png")
    return rows


def markdown_table(rows: list[dict]) -> str:
    """One line per pair and method, then the mean per method."""
    head = "| pair | res. Å | method | correlation | corr. about mean | PCC | SSIM |\n|---|---|---|---|---|---|---|\n"
    lines = [f"| {r['pair']} | {r['resolution']:g} | {r['method']} | "
             + " | ".join(f"{r[k]:.3f}" for k in METRICS) + " |" for r in rows]
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
        ax.plot([lo, 1], [lo, 1], "k--", lw=0.8)
        ax.set_xlabel(f"molmap {metric}")
        ax.set_ylabel(f"generator {metric}")
        ax.set_title(metric)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
