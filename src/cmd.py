"""The ``struc2map`` ChimeraX command: one generated map per atomic structure, with its scores logged.

Each structure's atoms (hydrogens left out, as the engine does) are voxelized
by ChimeraX's own molmap at the generator's input settings; the engine runs
the generator tile by tile (progress on the status line, stoppable with
``struc2map stop`` or the panel's Stop button); the result opens as a volume
positioned with its structure, contoured to enclose the volume molmap's
envelope encloses at the requested resolution. An HTML table in the log gives
the correlations ChimeraX's ``measure correlation`` reports against that
molmap and, with ``compare``, against an experimental map.

Engine modules import torch, so they are imported when the command runs:
registering the command works without torch, and running it without torch
says how to install it.
"""
from __future__ import annotations

import threading
import time
import warnings
from contextlib import contextmanager
from html import escape

import numpy as np
from chimerax.core.errors import UserError

PROGRESS_TRIGGER = "struc2map progress"
"""Fired after each batch of tiles with ``(done, total)``."""
RESULT_TRIGGER = "struc2map result"
"""Fired for each map made with a dict: volume, structure, correlations {label: (correlation, about mean)}, seconds."""

TORCH_HELP = (
    "Struc2map needs PyTorch, which is not installed in ChimeraX's Python ({error}). "
    "Install it into ChimeraX (not into your system Python) by typing 'pip install torch' at ChimeraX's "
    "command line, or reinstall the bundle with 'toolshed install' so that its dependencies come with it; "
    "then restart ChimeraX."
)
WEIGHTS_KEYWORD_HELP = (" In ChimeraX, name weights with the weights keyword, by file or installed name: "
                        "struc2map #1 resolution 3.5 weights NAME")

_stop = threading.Event()


def struc2map(session, structures, resolution: float | None = None, grid_spacing: float | None = None,
              device: str = "auto", weights: str | None = None, compare=None, on_grid=None,
              tile_size: int | None = None, batch_size: int | None = None, model_id: tuple | None = None,
              name: str | None = None) -> list:
    """Generate an experimental-like map for each structure; returns the opened volumes."""
    if len(structures) == 0:
        raise UserError("No atomic structures were given: name them like #1.")
    if on_grid is not None and grid_spacing is not None:
        raise UserError("Give either onGrid or gridSpacing, not both: onGrid sets the grid spacing.")
    if len(structures) > 1 and (model_id is not None or name is not None):
        raise UserError("modelId and name can be given only when making a map for one structure.")
    if model_id is not None and session.models.have_id(model_id):
        raise UserError(f"Model #{'.'.join(map(str, model_id))} already exists; choose another modelId.")
    if compare is not None and compare.minimum_surface_level is None:
        raise UserError(f"Map {compare.name_with_id()} has no contour level to compare within; show it as a "
                        "surface first.")
    _require_torch()
    from .errors import Cancelled

    with _engine_errors(session):
        resolution, tiling, loaded = _settings(resolution, device, weights, tile_size, batch_size)
    _stop.clear()
    volumes = []
    for structure in structures:
        try:
            with _engine_errors(session):
                volumes.append(_one_map(session, structure, resolution, loaded, tiling, device, compare,
                                        on_grid, grid_spacing, model_id, name))
        except Cancelled:
            session.logger.info(f"struc2map stopped on request after {len(volumes)} of {len(structures)} maps.")
            break
    return volumes


def request_stop(session) -> None:
    """Ask a running struc2map to stop after its current batch of tiles (``struc2map stop``, the Stop button)."""
    _stop.set()
    session.logger.status("struc2map: stopping after the current batch of tiles")


def struc2map_triggers(session):
    """The session's trigger set, with struc2map's progress and result triggers added if missing."""
    triggers = session.triggers
    for trigger in (PROGRESS_TRIGGER, RESULT_TRIGGER):
        if not triggers.has_trigger(trigger):
            triggers.add_trigger(trigger)
    return triggers


def register_command(logger) -> None:
    """Register ``struc2map`` and ``struc2map stop`` with ChimeraX's command parser."""
    from chimerax.atomic import AtomicStructuresArg
    from chimerax.core.commands import CmdDesc, FloatArg, IntArg, ModelIdArg, PositiveFloatArg, StringArg, register
    from chimerax.map import MapArg

    desc = CmdDesc(
        required=[("structures", AtomicStructuresArg)],
        keyword=[("resolution", FloatArg), ("grid_spacing", PositiveFloatArg), ("device", StringArg),
                 ("weights", StringArg), ("compare", MapArg), ("on_grid", MapArg), ("tile_size", IntArg),
                 ("batch_size", IntArg), ("model_id", ModelIdArg), ("name", StringArg)],
        required_arguments=["resolution"],
        synopsis="generate an experimental-like cryo-EM map from an atomic model (struc2mapGAN)")
    register("struc2map", desc, struc2map, logger=logger)
    register("struc2map stop", CmdDesc(synopsis="stop a running struc2map after its current batch of tiles"),
             request_stop, logger=logger)


def _require_torch() -> None:
    try:
        import torch  # noqa: F401
    except ImportError as err:
        raise UserError(TORCH_HELP.format(error=err)) from None


@contextmanager
def _engine_errors(session):
    """Engine errors become UserErrors (Cancelled passes through); the engine's warnings go to the log."""
    from .errors import Cancelled, Struc2mapError

    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", UserWarning)
        try:
            yield
        except Cancelled:
            raise
        except Struc2mapError as err:
            raise UserError(str(err)) from None
        finally:
            for w in caught:
                if issubclass(w.category, UserWarning):
                    session.logger.warning(f"struc2map: {w.message}")
    for w in caught:  # others (e.g. deprecations inside libraries) go where they would have gone
        if not issubclass(w.category, UserWarning):
            warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)


def _settings(resolution, device, weights_path, tile_size, batch_size):
    """Checked resolution, tiling and loaded weights; the device is checked here so a bad one fails fast."""
    from .resolution import check_resolution
    from .tiling import TilingConfig, resolve_device
    from .weights_io import load_weights_or_shipped

    resolution = check_resolution(resolution, warn=False)  # generate_from_input warns, once per map
    tiling = TilingConfig()
    if tile_size is not None:
        tiling.tile_size = tile_size
    if batch_size is not None:
        tiling.batch_size = batch_size
    tiling.check()
    resolve_device(device)
    return resolution, tiling, load_weights_or_shipped(weights_path, missing_hint=WEIGHTS_KEYWORD_HELP)


def _heavy_atoms(structure):
    """The structure's atoms without hydrogen and deuterium (the generator was trained without them)."""
    atoms = structure.atoms
    heavy = atoms.filter(atoms.element_numbers != 1)
    if len(heavy) == 0:
        raise UserError(f"{structure} has no atoms other than hydrogens to make a map from.")
    return heavy


def _simulated_input(session, atoms, weights, resolution: float):
    """ChimeraX's molmap of the atoms at the generator's input resolution and grid, as an engine MapData
    (the engine's simulator for weights whose input recipe is not molmap)."""
    from chimerax.map.molmap import molmap

    from .generate import edge_padding, input_settings, simulate_input
    from .grid import MapData

    if weights.metadata.get("input", {}).get("simulator", "molmap") != "molmap":
        return simulate_input(atoms.coords, atoms.element_numbers, weights, resolution)
    input_resolution, spacing = input_settings(weights)
    volume = molmap(session, atoms, input_resolution, grid_spacing=spacing,
                    edge_padding=edge_padding(weights, resolution), open_model=False, replace=False)
    try:
        return MapData(volume.full_matrix(), volume.data.origin, volume.data.step)
    finally:
        volume.delete()


def _one_map(session, structure, resolution, weights, tiling, device, compare, on_grid, grid_spacing,
             model_id, name):
    from .generate import generate_from_input

    started = time.perf_counter()
    atoms = _heavy_atoms(structure)
    simulated = _simulated_input(session, atoms, weights, resolution)
    triggers = struc2map_triggers(session)

    def progress(done: int, total: int) -> None:
        session.logger.status(f"struc2map {structure.name}: {done} of {total} tiles")
        triggers.activate_trigger(PROGRESS_TRIGGER, (done, total))
        if session.ui.is_gui:
            session.ui.processEvents()  # repaint the status line and progress bar, and see Stop clicks

    nx, ny, nz = simulated.shape_xyz
    session.logger.status(f"struc2map {structure.name}: running the generator on {nx}×{ny}×{nz} voxels")
    # The molmap grid is in the structure's own coordinates (atoms.coords), where the engine masks.
    generated, report = generate_from_input(simulated, resolution, weights, coords=atoms.coords,
                                            atomic_numbers=atoms.element_numbers, b_factors=atoms.bfactors,
                                            tiling=tiling, device=device, progress=progress,
                                            should_stop=_stop.is_set)
    volume = _volume(session, generated, structure, on_grid, grid_spacing, model_id,
                     name or f"{structure.name} struc2map {resolution:g}")
    reference = _reference_molmap(session, atoms, resolution, volume)
    try:
        volume.set_parameters(surface_levels=[_matching_level(volume, reference)])
        session.models.add([volume])
        scores = _correlations(structure, atoms, resolution, volume, reference, compare)
    finally:
        reference.delete()
    seconds = time.perf_counter() - started
    session.logger.info(_table(structure, atoms, volume, report, scores, seconds), is_html=True)
    session.logger.status(f"struc2map {structure.name}: map #{volume.id_string} in {seconds:.1f} s")
    triggers.activate_trigger(RESULT_TRIGGER, {"volume": volume, "structure": structure, "seconds": seconds,
                                               "correlations": {label: values for label, _, values in scores}})
    return volume


def _volume(session, generated, structure, on_grid, grid_spacing, model_id, name: str):
    """The generated map as a (not yet opened) Volume placed like the structure, resampled if asked to."""
    from chimerax.map import volume_from_grid_data
    from chimerax.map_data import ArrayGridData

    grid = ArrayGridData(np.ascontiguousarray(generated.array, dtype=np.float32), origin=tuple(generated.origin),
                         step=tuple(generated.voxel_size), name=name)
    resample = on_grid is not None or grid_spacing is not None
    volume = volume_from_grid_data(grid, session, style="surface", open_model=False,
                                   model_id=None if resample else model_id, show_dialog=False)
    volume.position = structure.position
    if not resample:
        return volume
    from chimerax.map_filter.vopcommand import combine_operation

    # What 'volume resample' does: interpolate onto the other map's grid, or this one's at another spacing.
    spacing = None if grid_spacing is None else (grid_spacing,) * 3
    resampled = combine_operation([volume], "add", "all", 1, on_grid or volume, "all", 1, spacing, None,
                                  False, False, None, model_id, session, hide_maps=False, open_model=False)
    volume.delete()
    resampled.name = name
    return resampled


def _reference_molmap(session, atoms, resolution: float, volume):
    """ChimeraX's molmap at the requested resolution on the volume's grid (its envelope: 95% of the mass)."""
    from chimerax.map.molmap import molmap

    return molmap(session, atoms, resolution, on_grid=volume, open_model=False, replace=False)


def _matching_level(volume, reference) -> float:
    """The contour level at which the map encloses as many voxels as the molmap's envelope."""
    inside = max(1, int(np.count_nonzero(reference.full_matrix() >= reference.minimum_surface_level)))
    values = volume.full_matrix().ravel()
    return float(np.partition(values, values.size - inside)[values.size - inside])


def _correlations(structure, atoms, resolution: float, volume, reference, compare) -> list:
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


def _table(structure, atoms, volume, report, scores, seconds: float) -> str:
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
