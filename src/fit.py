"""Fit a simulated map into an experimental one with ChimeraX's ``fitmap``, and say how it went.

``struc2map ... fit #N`` fits the generated map, and molmap of the same atoms at
the same resolution on the same grid, into map #N: ChimeraX's own ``fitmap``
(map in map, rigid, local optimisation from where the maps are), metric
``cam`` (correlation about mean: neither map's offset nor scale matters), over
the moving map's points above its contour (fitmap's default envelope). The log
gives, for both maps, the correlation and correlation about mean before and
after (as fitmap computes them), the shift of the model's centre (Å) and the
rotation (°) the fit applied. benchmarks/fitting.py uses :func:`fit_map` from
many starting poses.
"""
from __future__ import annotations

from dataclasses import dataclass
from html import escape

import numpy as np

METRIC = "cam"


@dataclass
class FitResult:
    """One map's fit: its label, (correlation, about mean) before and after, the motion applied, and the
    equivalent ChimeraX command."""

    label: str
    before: tuple[float, float]
    after: tuple[float, float]
    shift: float
    rotation: float
    command: str
    motion: object = None  # chimerax.geometry.Place: the scene motion the fit applied


def fit_map(session, moving, target, centre: np.ndarray, label: str = "") -> FitResult:
    """Fit ``moving`` into ``target`` with fitmap (moves ``moving``); ``centre`` (scene Å) is the point
    whose shift is reported."""
    from chimerax.core.objects import Objects
    from chimerax.map_fit import map_overlap_and_correlation
    from chimerax.map_fit.fitcmd import fitmap

    before = map_overlap_and_correlation(moving, target, True)[1:]
    start = moving.scene_position
    fitmap(session, Objects(models=[moving]), in_map=target, metric=METRIC)
    after = map_overlap_and_correlation(moving, target, True)[1:]
    motion = moving.scene_position * start.inverse()
    shift = float(np.linalg.norm(motion * np.asarray(centre, np.float64) - centre))
    rotation = float(motion.rotation_axis_and_angle()[1])
    command = f"fitmap #{moving.id_string} inMap #{target.id_string} metric {METRIC}"
    return FitResult(label, tuple(before), tuple(after), shift, rotation, command, motion)


def fit_volumes(session, volume, reference, target, atoms, resolution: float,
                move_structure=None) -> list[FitResult]:
    """Fit the generated ``volume`` and the molmap ``reference`` at ``resolution`` (on the volume's grid, not
    opened) into ``target``; with ``move_structure``, that structure gets the generated map's motion."""
    centre = atoms.scene_coords.mean(axis=0)
    fits = [fit_map(session, volume, target, centre, f"struc2map #{volume.id_string}")]
    molmap_fit = fit_map(session, reference, target, centre, f"molmap {resolution:g} Å")
    molmap_fit.command = (f"molmap #{atoms[0].structure.id_string} {resolution:g} onGrid #{volume.id_string}; "
                          f"fitmap (that map) inMap #{target.id_string} metric {METRIC}")
    fits.append(molmap_fit)
    if move_structure is not None:
        move_structure.scene_position = fits[0].motion * move_structure.scene_position
    return fits


def fit_table(volume, target, resolution: float, fits: list[FitResult]) -> str:
    """The log's HTML table of the fits, side by side."""
    rows = "".join(
        f"<tr><td>{escape(f.label)}</td><td>{f.before[0]:.4f} → {f.after[0]:.4f}</td>"
        f"<td>{f.before[1]:.4f} → {f.after[1]:.4f}</td><td>{f.shift:.2f}</td><td>{f.rotation:.2f}</td>"
        f"<td>{escape(f.command)}</td></tr>" for f in fits)
    return (f"<table border=1 cellpadding=4 cellspacing=0><caption>fitmap into {escape(target.name_with_id())} "
            f"(rigid, metric {METRIC}, within each moving map's contour): {escape(volume.name_with_id())} and "
            f"molmap at {resolution:g} Å</caption><tr><th>Map fitted</th><th>Correlation before → after</th>"
            f"<th>About mean before → after</th><th>Shift (Å)</th><th>Rotation (°)</th><th>Same as</th></tr>"
            f"{rows}</table>")
