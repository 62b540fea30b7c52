"""The generated map as a ChimeraX volume: placed with its structure, resampled if asked, contoured like
molmap's envelope, scored as ``measure correlation`` scores, and summarised in an HTML table for the log.

Main-thread helpers of the ``struc2map`` command (cmd.py), on ChimeraX's public Volume and molmap code.
"""
from __future__ import annotations

from html import escape

import numpy as np


def placed_volume(session, generated, structure, on_grid, grid_spacing, name: str):
    """The generated map as a (not yet opened) Volume placed like the structure in the scene, resampled if
    asked to (onto another map's grid, placed like that map)."""
    from chimerax.map import volume_from_grid_data
    from chimerax.map_data import ArrayGridData

    grid = ArrayGridData(np.ascontiguousarray(generated.array, dtype=np.float32), origin=tuple(generated.origin),
                         step=tuple(generated.voxel_size), name=name)
    volume = volume_from_grid_data(grid, session, style="surface", open_model=False, show_dialog=False)
    volume.position = structure.scene_position  # opened at the top level, where position is the scene position
    if on_grid is None and grid_spacing is None:
        return volume
    target = on_grid or volume
    resampled = resampled_volume(session, volume, target, None if grid_spacing is None else (grid_spacing,) * 3)
    volume.delete()
    resampled.name = name
    return resampled


def resampled_volume(session, volume, target, spacing):
    """``volume resample #volume onGrid #target [spacing s]`` with public Volume methods: a zero grid like the
    target's whole grid (at ``spacing`` if given), placed like the target in the scene, plus ``volume``'s
    values interpolated at its points."""
    from chimerax.map import volume_from_grid_data

    region = target.subregion(step=1, subregion="all")
    grid = target.region_grid(region, value_type=np.float32, new_spacing=spacing, clamp=False)
    resampled = volume_from_grid_data(grid, session, style="surface", open_model=False, show_dialog=False)
    resampled.position = target.scene_position
    resampled.add_interpolated_values(volume)
    return resampled


def reference_molmap(session, atoms, resolution: float, volume):
    """ChimeraX's molmap at the requested resolution on the volume's grid (its envelope: 95% of the mass)."""
    from chimerax.map.molmap import molmap

    return molmap(session, atoms, resolution, on_grid=volume, open_model=False, replace=False)


def matching_level(volume, reference) -> float:
    """The contour level at which the map encloses as many voxels as the molmap's envelope."""
    inside = max(1, int(np.count_nonzero(reference.full_matrix() >= reference.minimum_surface_level)))
    values = volume.full_matrix().ravel()
    return float(np.partition(values, values.size - inside)[values.size - inside])


def correlations(structure, atoms, resolution: float, volume, reference, compare) -> list:
    """(label, equivalent ChimeraX commands, (correlation, about mean)) for molmap and the comparison map,
    computed as ``measure correlation #reference inMap #volume`` does (reference's envelope)."""
    from chimerax.map_fit import map_overlap_and_correlation

    spec = f"#{structure.id_string}" + ("&~H" if len(atoms) < structure.num_atoms else "")
    vid = f"#{volume.id_string}"
    _, c, cm = map_overlap_and_correlation(reference, volume, True)
    scores = [(f"molmap {resolution:g} Å", f"molmap {spec} {resolution:g} onGrid {vid}; "
               f"measure correlation (that map) inMap {vid}", (c, cm))]
    if compare is not None:
        _, c, cm = map_overlap_and_correlation(compare, volume, True)
        scores.append((compare.name_with_id(), f"measure correlation #{compare.id_string} inMap {vid}", (c, cm)))
    return scores


def summary_table(structure, atoms, volume, report, scores, seconds: float) -> str:
    """The log's HTML summary of one map."""
    nx, ny, nz = volume.data.size
    steps = {f"{s:g}" for s in volume.data.step}
    step = steps.pop() if len(steps) == 1 else ", ".join(f"{s:g}" for s in volume.data.step)
    asked = "" if report.resolution == report.effective_resolution else f" (asked for {report.resolution:g} Å)"
    rows = [
        ("Structure", f"{structure} ({len(atoms)} atoms, hydrogens left out)"),
        ("Grid", f"{nx}×{ny}×{nz} voxels of {step} Å, contour {volume.minimum_surface_level:.4g}"),
        ("Resolution", f"{report.effective_resolution:g} Å{asked}"),
        ("Tiles", f"{report.tiles_run} run, {report.tiles_skipped} skipped of {report.tiles_total} on {report.device}"),
        ("Time", f"{seconds:.1f} s ({report.seconds:.1f} s in the generator and filter)"),
        ("Weights", f"sha256 {report.weights}"),
    ] + [("Note", note) for note in report.notes]
    head = "".join(f"<tr><th align=left>{escape(k)}</th><td colspan=3>{escape(v)}</td></tr>" for k, v in rows)
    body = "".join(f"<tr><td>{escape(label)}</td><td>{c:.4g}</td><td>{cm:.4g}</td><td>{escape(command)}</td></tr>"
                   for label, command, (c, cm) in scores)
    return (f"<table border=1 cellpadding=4 cellspacing=0><caption>struc2map map {escape(volume.name_with_id())}"
            f"</caption>{head}<tr><th>Compared with</th><th>Correlation</th><th>Correlation about mean</th>"
            f"<th>Same as</th></tr>{body}</table>")
