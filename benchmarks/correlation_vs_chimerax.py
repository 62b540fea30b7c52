"""Our ChimeraX correlations against ChimeraX's own map_overlap_and_correlation, on every pair in ../shared/data.

For each pair: ChimeraX molmap at the reported resolution, scored inside the
experimental map's initial contour (``measure correlation #exp inMap #molmap``).
Prints the largest |ours - ChimeraX| for correlation and correlation about mean.

    python benchmarks/correlation_vs_chimerax.py
"""
from __future__ import annotations

import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data"


def main() -> None:
    from chimerax.map_fit import map_overlap_and_correlation

    from chimerax.struc2map.map_data import MapData
    from chimerax.struc2map.mapio import read_map
    from chimerax.struc2map.metrics import chimerax_correlation
    from tests.chimerax_session import chimerax_session, run, volume_from_mapdata

    session = chimerax_session()
    worst = [0.0, 0.0]
    for line in (DATA / "pairs.txt").read_text(encoding="utf-8").splitlines():
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        name, map_path, model_path, resolution = fields
        exp = read_map(DATA / map_path)
        exp_volume = volume_from_mapdata(session, exp, "exp")
        exp_volume.update_drawings()  # gives it ChimeraX's initial contour level
        structure = run(session, f"open {DATA / model_path}")[0]
        sim_volume = run(session, f"molmap #{structure.id_string} {resolution}")
        sim = MapData(sim_volume.full_matrix().copy(), sim_volume.data.origin, sim_volume.data.step)
        _, c, cm = map_overlap_and_correlation(exp_volume, sim_volume, True)
        ours = chimerax_correlation(exp, sim)
        d = (abs(ours["correlation"] - c), abs(ours["correlation_about_mean"] - cm))
        worst = [max(w, x) for w, x in zip(worst, d)]
        print(f"{name}: ChimeraX {c:.6f} / {cm:.6f}, ours {ours['correlation']:.6f} / "
              f"{ours['correlation_about_mean']:.6f}, |diff| {d[0]:.1e} / {d[1]:.1e}", flush=True)
        session.models.close(session.models.list())
    print(f"max |diff|: correlation {worst[0]:.1e}, correlation about mean {worst[1]:.1e}")


if __name__ == "__main__":
    main()
