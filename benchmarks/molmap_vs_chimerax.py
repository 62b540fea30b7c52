"""Our numpy molmap against ChimeraX's own (C++, from the ChimeraX 0.1.71 wheel) on the same atoms.

Reports the median time of each over ``--repeats`` runs, their ratio, and the
largest deviation relative to ChimeraX's maximum. Run from the repository root:

    python benchmarks/molmap_vs_chimerax.py
"""
from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"
CASES = [  # model, resolution, grid spacing (None: ChimeraX's default resolution/3)
    ("t20s_fragment_emd5623/test_model.pdb", 3.3, None),
    ("haemoglobin_emd3488/5me2.pdb", 3.2, None),
    ("hcn4_emd0093/6gyn.pdb", 2.0, 1.0),
    ("hcn4_emd0093/6gyn.pdb", 3.5, None),
    ("emd35448_8ihl/35448_8ihl.cif", 2.0, 1.0),
]


def median_time(func, repeats: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeats):
        start = time.perf_counter()
        result = func()
        times.append(time.perf_counter() - start)
    return statistics.median(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", default=str(ROOT / "benchmarks" / "results" / "molmap.md"))
    args = parser.parse_args()

    from chimerax.map.molmap import molmap as cx_molmap

    from chimerax.struc2map.molmap import molmap
    from tests.chimerax_session import chimerax_session, open_pdb, run

    session = chimerax_session()
    lines = ["| model | atoms | resolution Å | grid | ChimeraX s | ours s | ours / ChimeraX | max rel. deviation |",
             "|---|---|---|---|---|---|---|---|"]
    for model, resolution, spacing in CASES:
        if model.endswith(".cif"):
            structure = run(session, f"open {DATA / model}")[0]
        else:
            (structure,) = open_pdb(session, DATA / model)
        atoms = structure.atoms
        opts = {} if spacing is None else {"grid_spacing": spacing}
        t_cx, volume = median_time(lambda: cx_molmap(session, atoms, resolution, open_model=False, **opts),
                                   args.repeats)
        coords, numbers = atoms.coords.copy(), atoms.element_numbers.copy()
        t_ours, ours = median_time(lambda: molmap(coords, numbers, resolution, convention="corner", **opts),
                                   args.repeats)
        ref = volume.full_matrix()
        deviation = float(np.abs(ours.array - ref).max() / ref.max())
        grid = "×".join(map(str, ours.shape_xyz))
        lines.append(f"| {model.split('/')[-1]} | {len(coords)} | {resolution:g} | {grid} | {t_cx:.3f} | "
                     f"{t_ours:.3f} | {t_ours / t_cx:.2f} | {deviation:.1e} |")
        print(lines[-1], flush=True)
        session.models.close(session.models.list())
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text("\n".join(lines) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
