"""The ``struc2map`` ChimeraX command: one generated map per atomic structure, with its scores logged.

Each structure's atoms (hydrogens left out, as the engine does) are voxelized
with ChimeraX's own molmap code at the generator's input settings; the engine
runs the generator tile by tile. In the GUI that work runs on a worker thread
(see background.py): the command returns at once, progress goes to the status
line and the panel, ``struc2map stop`` or the panel's Stop ends it, and each
map opens (and its table is logged) on the main thread when it is ready.
Without a GUI, or with ``wait true``, the command blocks and returns the maps.

The result opens as a volume placed with its structure (``scene_position``),
contoured to enclose the volume molmap's envelope encloses at the requested
resolution. An HTML table in the log gives the correlations ChimeraX's
``measure correlation`` reports against that molmap and, with ``compare``,
against an experimental map (map_volume.py builds, contours and scores the
volume); with ``fit``, fit.py fits both maps into an experimental map with
``fitmap`` and logs them side by side.

The atoms' B-factors are read as plddt.py says (``bfactors`` auto, b, plddt or
ignore): a predicted model's pLDDT is recognised from what ChimeraX kept of its
file (``structure.metadata``: mmCIF ``_software`` and ModelCIF QA tables, PDB
header records), its file name, or the database it was fetched from
(``alphafold fetch``, ``esmfold fetch``), and the log's table says so.

The run's options (options.py: resolution, weights, device, precision,
tiling, B-column reading) are checked on the main thread before any work, as
the command line checks them. Engine modules import torch, so they are
imported on the worker: registering and parsing the command work without
torch, and a missing or broken torch gives an error that says what to type.
"""
from __future__ import annotations

import importlib.util
import os
import time
import warnings
from dataclasses import dataclass, field

import numpy as np
from chimerax.core.errors import UserError

from .background import Run, current_run
from .map_volume import correlations, matching_level, placed_volume, reference_molmap, summary_table

PROGRESS_TRIGGER = "struc2map progress"
"""Fired on the main thread as tiles are done, with ``(done, total)``."""
RESULT_TRIGGER = "struc2map result"
"""Fired for each map made with a dict: volume, structure, correlations {label: (correlation, about mean)},
seconds, and fits (fit.py's FitResult list, empty without ``fit``)."""
RUN_TRIGGER = "struc2map run"
"""Fired with True when a run starts and False when it ends (finished, stopped or failed)."""

TORCH_INDEX = "https://download.pytorch.org/whl"
TORCH_HELP = (
    "Struc2map needs PyTorch, which {problem} in ChimeraX's Python ({error}). "
    "Type 'pip install torch' at ChimeraX's command line and restart ChimeraX: it installs into this "
    "ChimeraX version's own package folder (each ChimeraX version needs its own install; about 3 GB with the "
    "CUDA libraries on Linux, about 80 MB on macOS, about 250 MB on Windows, where PyPI's build runs on "
    "the CPU). "
    "For an NVIDIA GPU on Windows, or a CPU-only build on Linux, run ChimeraX's Python from a terminal "
    "instead: ChimeraX -m pip install --user --upgrade torch --index-url " + TORCH_INDEX + "/cu126 "
    "(or " + TORCH_INDEX + "/cpu); on Windows the program is ChimeraX-console.exe."
)
WEIGHTS_KEYWORD_HELP = (" In ChimeraX, name weights with the weights keyword, by file or installed name: "
                        "struc2map #1 resolution 3.5 weights NAME")


@dataclass
class _Job:
    """One structure's share of a run: what the worker needs (copied on the main thread) and what it made."""

    structure: object
    atoms: object
    xyz: np.ndarray
    element_weights: np.ndarray  # element numbers (times plddt.py's weights): molmap's weights and atomic numbers
    b_factors: np.ndarray | None  # for the B-factor channel (plddt.read_b_column)
    note: str  # how the B column was read, for the log ("" when as B-factors)
    name: str
    done: int = 0
    total: int = 0


@dataclass
class _Request:
    """The command's arguments for one run, and what the run has made so far."""

    session: object
    jobs: list
    options: object  # options.GenerateOptions, checked
    compare: object
    on_grid: object
    fit: object
    move_structure: bool
    grid_spacing: float | None
    model_id: tuple | None
    name: str | None
    volumes: list = field(default_factory=list)
    current: int = 0
    started: float = field(default_factory=time.perf_counter)
    last: float = field(default_factory=time.perf_counter)  # when the last map was opened (or the start)


def struc2map(session, structures, resolution: float | None = None, grid_spacing: float | None = None,
              device: str = "auto", weights: str | None = None, compare=None, on_grid=None, fit=None,
              move_structure: bool = False, tile_size: int | None = None, margin: int | None = None,
              batch_size: int | None = None, precision: str | None = None, model_id: tuple | None = None,
              name: str | None = None, bfactors: str = "auto", wait: bool | None = None):
    """Generate an experimental-like map for each structure.

    Blocking (no GUI, or ``wait``): returns the opened volumes. In the GUI: starts
    the run in the background and returns its :class:`background.Run`.
    """
    from .errors import Struc2mapError
    from .options import GenerateOptions

    if len(structures) == 0:
        raise UserError("No atomic structures were given: name them like #1.")
    try:
        options = GenerateOptions(resolution=resolution, weights=weights, device=device, precision=precision,
                                  tile_size=tile_size, margin=margin, batch_size=batch_size, bfactors=bfactors)
    except Struc2mapError as err:
        raise UserError(str(err)) from None
    if on_grid is not None and grid_spacing is not None:
        raise UserError("Give either onGrid or gridSpacing, not both: onGrid sets the grid spacing.")
    if len(structures) > 1 and (model_id is not None or name is not None):
        raise UserError("modelId and name can be given only when making a map for one structure.")
    if model_id is not None and session.models.have_id(model_id):
        raise UserError(f"Model #{'.'.join(map(str, model_id))} already exists; choose another modelId.")
    for keyword, volume in (("compare", compare), ("fit", fit)):
        if volume is not None and volume.minimum_surface_level is None:
            raise UserError(f"Map {volume.name_with_id()} has no contour level to {keyword} within; show it "
                            "as a surface first.")
    if move_structure and fit is None:
        raise UserError("moveStructure moves the structure with the fitted map: give a map to fit into with fit #N.")
    _check_maps(structures, {"compare": compare, "onGrid": on_grid, "fit": fit})
    if grid_spacing is not None:
        _check_grid_spacing(structures, grid_spacing)
    if move_structure and len(structures) > 1:
        raise UserError("moveStructure can move only one structure: give one.")
    running = current_run(session)
    if running is not None:
        raise UserError("A struc2map run is already going in this session; wait for it to end or type "
                        "'struc2map stop'.")
    _require_torch()
    request = _Request(session, [_job(s, options.bfactors) for s in structures], options, compare, on_grid, fit,
                       move_structure, grid_spacing, model_id, name)
    run = Run(session, lambda emit, should_stop: _work(request, emit, should_stop),
              lambda event: _on_event(request, run, event), lambda error: _on_end(request, run, error),
              poll=lambda: _check_models(request, run))
    triggers = struc2map_triggers(session)
    blocking = not session.ui.is_gui if wait is None else wait
    if blocking:
        triggers.activate_trigger(RUN_TRIGGER, True)
        run.run_blocking()
        return request.volumes
    run.start_in_background()
    triggers.activate_trigger(RUN_TRIGGER, True)
    session.logger.status(f"struc2map: started on {len(structures)} structure{'s' * (len(structures) > 1)}; "
                          "'struc2map stop' stops it")
    return run


def request_stop(session) -> None:
    """Stop the session's running struc2map at its next check (``struc2map stop``, the Stop button)."""
    run = current_run(session)
    if run is None:
        session.logger.info("No struc2map run is going.")
        return
    run.stop("on request")
    session.logger.status("struc2map: stopping after the current batch of tiles")


def struc2map_triggers(session):
    """The session's trigger set, with struc2map's triggers added if missing."""
    triggers = session.triggers
    for trigger in (PROGRESS_TRIGGER, RESULT_TRIGGER, RUN_TRIGGER):
        if not triggers.has_trigger(trigger):
            triggers.add_trigger(trigger)
    return triggers


def register_command(logger) -> None:
    """Register ``struc2map`` and ``struc2map stop`` with ChimeraX's command parser."""
    from chimerax.atomic import AtomicStructuresArg
    from chimerax.core.commands import (BoolArg, Bounded, CmdDesc, EnumOf, FloatArg, ModelIdArg, NonNegativeIntArg,
                                        PositiveFloatArg, PositiveIntArg, StringArg, register)
    from chimerax.map import MapArg

    from .options import BFACTOR_MODES, PRECISIONS
    from .resolution import MAX_RESOLUTION, MIN_RESOLUTION

    resolution = Bounded(FloatArg, MIN_RESOLUTION, MAX_RESOLUTION,
                         name=f"a resolution in Å from {MIN_RESOLUTION:g} to {MAX_RESOLUTION:g}")
    desc = CmdDesc(
        required=[("structures", AtomicStructuresArg)],
        # device stays a string (cuda:N is one): options.py checks it on the main thread before any work
        keyword=[("resolution", resolution), ("grid_spacing", PositiveFloatArg), ("device", StringArg),
                 ("weights", StringArg), ("compare", MapArg), ("on_grid", MapArg), ("fit", MapArg),
                 ("move_structure", BoolArg), ("tile_size", PositiveIntArg), ("margin", NonNegativeIntArg),
                 ("batch_size", PositiveIntArg), ("precision", EnumOf(PRECISIONS)), ("model_id", ModelIdArg),
                 ("name", StringArg), ("bfactors", EnumOf(BFACTOR_MODES)), ("wait", BoolArg)],
        required_arguments=["resolution"],
        synopsis="generate an experimental-like cryo-EM map from an atomic model (struc2mapGAN)")
    register("struc2map", desc, struc2map, logger=logger)
    register("struc2map stop", CmdDesc(synopsis="stop a running struc2map after its current batch of tiles"),
             request_stop, logger=logger)


# --- main thread: before the run --------------------------------------------------------------------------

def _check_maps(structures, maps: dict) -> None:
    """Refuse, before any work, a map given to compare, onGrid or fit that has NaN or infinite values, is
    constant or lies nowhere near a structure (scores over it would be noise or rows of 0)."""
    from .errors import InputError
    from .metrics import check_scorable

    for keyword, volume in maps.items():
        if volume is None:
            continue
        try:
            check_scorable(volume.full_matrix(), f"map {volume.name_with_id()} ({keyword})")
        except InputError as err:
            raise UserError(str(err)) from None
        ijk = np.array([[i, j, k] for i in (0, 1) for j in (0, 1) for k in (0, 1)], float) * (
            np.array(volume.data.size, float) - 1)
        corners = volume.scene_position.transform_points(volume.data.ijk_to_xyz(ijk))
        low, high = corners.min(0), corners.max(0)
        for structure in structures:
            xyz = structure.atoms.scene_coords
            if np.any(xyz.max(0) < low) or np.any(xyz.min(0) > high):
                raise UserError(f"Map {volume.name_with_id()} ({keyword}) does not overlap {structure}: the map spans "
                                f"{_span(low, high)} Å, the atoms {_span(xyz.min(0), xyz.max(0))} Å in the scene; "
                                "are they placed in the same frame?")


def _span(low, high) -> str:
    return " × ".join(f"{a:.0f}–{b:.0f}" for a, b in zip(low, high))


def _check_grid_spacing(structures, spacing: float) -> None:
    """Refuse a gridSpacing that would leave fewer than 2 planes along an axis of a structure's map, or a grid
    too large for the memory (checked as the command line checks a molmap grid)."""
    from .errors import Struc2mapError
    from .memory import check_molmap
    from .molmap import molmap_grid
    from .weights_meta import DEFAULT_INPUT

    for structure in structures:
        _, shape = molmap_grid(np.array(structure.atoms.coords, np.float64), DEFAULT_INPUT["resolution"],
                               grid_spacing=DEFAULT_INPUT["grid_spacing"])
        resampled = tuple(int((n - 1) // spacing) + 1 for n in shape)
        if min(resampled) < 2:
            raise UserError(f"gridSpacing {spacing:g} Å leaves fewer than 2 grid planes along an axis of the map of "
                            f"{structure} (its box is {' × '.join(str(n - 1) for n in shape[::-1])} Å): "
                            "use a finer spacing.")
        try:
            check_molmap(resampled, "use a coarser gridSpacing")
        except Struc2mapError as err:
            raise UserError(str(err)) from None


def _require_torch() -> None:
    """A UserError saying what to type when torch is not installed (a cheap check: torch loads on the worker)."""
    if importlib.util.find_spec("torch") is None:
        raise UserError(TORCH_HELP.format(problem="is not installed", error="no module named 'torch'"))


def _import_torch() -> None:
    """Import torch (on the worker); a broken install (e.g. a missing CUDA library) says what to type."""
    try:
        import torch  # noqa: F401
    except (ImportError, OSError) as err:
        raise UserError(TORCH_HELP.format(problem="cannot be loaded", error=err)) from None


def _job(structure, bfactors: str) -> _Job:
    """The structure's atoms without hydrogen and deuterium (the generator was trained without them),
    with copies of their coordinates (the structure's own frame), element numbers and B column (read as
    ``bfactors`` says, plddt.py) for the worker."""
    from .errors import Struc2mapError
    from .plddt import read_b_column

    atoms = structure.atoms
    heavy = atoms.filter(atoms.element_numbers != 1)
    if len(heavy) == 0:
        raise UserError(f"{structure} has no atoms other than hydrogens to make a map from.")
    try:
        column = read_b_column(np.array(heavy.bfactors, np.float64), _model_header(structure), bfactors)
    except Struc2mapError as err:
        raise UserError(str(err)) from None
    element_weights = np.array(heavy.element_numbers, np.float32)
    if column.weights is not None:
        element_weights *= column.weights.astype(np.float32)
    return _Job(structure, heavy, np.array(heavy.coords, np.float32), element_weights, column.b_factors,
                column.note, structure.name)


def _model_header(structure):
    """What ChimeraX kept of the structure's file (``metadata``: mmCIF tables, PDB header records), its file name
    and the database it was fetched from, for plddt.detect."""
    from chimerax.mmcif import get_mmcif_tables_from_metadata

    from .plddt import HEADER_RECORDS, ModelHeader

    software, metrics, local, exptl = get_mmcif_tables_from_metadata(
        structure, ["software", "ma_qa_metric", "ma_qa_metric_local", "exptl"])
    rows = software.fields(["name", "classification", "description"], allow_missing_fields=True) if software else []
    with_values = {row[0] for row in local.fields(["metric_id"])} if local else set()
    named = metrics.fields(["id", "name", "type"], allow_missing_fields=True) if metrics else []
    records = [line for key in HEADER_RECORDS for line in structure.metadata.get(key, [])]
    experiment = [row[0] for row in exptl.fields(["method"])] if exptl else [
        line[10:].strip() for line in structure.metadata.get("EXPDTA", [])]
    database = getattr(structure, "database", None)
    return ModelHeader(software=tuple(" | ".join(row) for row in rows),
                       local_metrics=tuple(" ".join(dict.fromkeys(v for v in row[1:] if v)) for row in named
                                           if row[0] in with_values),
                       experiment=" ".join(experiment), records=tuple(records),
                       file_name=os.path.basename(getattr(structure, "filename", None) or ""),
                       database=getattr(database, "database", "") or "")


# --- worker thread (or the caller's, when blocking): no session access ------------------------------------

def _work(request: _Request, emit, should_stop) -> None:
    """Import torch, load the weights, then per structure: molmap input, generator, low-pass; emits events."""
    from .errors import Cancelled, Struc2mapError

    _import_torch()
    try:
        tiling, loaded = _settings(request)
        for index, job in enumerate(request.jobs):
            if should_stop():
                return
            emit(("status", index, "voxelizing the atoms (molmap)"))
            simulated = _simulated_input(job, loaded, request.options.resolution, tiling)
            nx, ny, nz = simulated.shape_xyz
            emit(("status", index, f"running the generator on {nx}×{ny}×{nz} voxels"))
            # The engine's warnings (e.g. atoms of unknown element) go to the log. catch_warnings
            # sets the process's filters: a main-thread UserWarning in these seconds would be logged here too.
            with warnings.catch_warnings(record=True) as caught:
                warnings.simplefilter("always", UserWarning)
                generated, report = _generate(request, job, index, simulated, loaded, tiling, emit, should_stop)
            for w in caught:
                emit(("warning", index, str(w.message)))
            emit(("map", index, generated, report))
    except Cancelled:
        return
    except Struc2mapError as err:
        raise UserError(str(err)) from None


def _settings(request: _Request):
    """The tiling and the loaded weights; a device that is not there (a GPU PyTorch cannot see) is refused
    here, with torch, before any work."""
    from .device import resolve_device
    from .weights_io import load_weights_or_shipped

    options = request.options
    resolve_device(options.device)
    return options.tiling(), load_weights_or_shipped(options.weights, missing_hint=WEIGHTS_KEYWORD_HELP)


def _simulated_input(job: _Job, weights, resolution: float, tiling):
    """ChimeraX's molmap of the atoms at the generator's input resolution and grid spacing, padded for the
    target resolution: the grid and Gaussians of ChimeraX's molmap code, on copied coordinates."""
    from chimerax.map.molmap import add_gaussians, bounding_grid

    from .generate import edge_padding, input_grid, input_settings, simulate_input
    from .map_data import MapData
    from .memory import check_generate
    from .molmap import CUTOFF_RANGE, SIGMA_FACTOR

    # before the input grid is allocated, with the run's tiles
    check_generate(input_grid(job.xyz, weights, resolution)[1], tiling.tile_size, tiling.batch_size)
    if weights.spec.recipe["simulator"] != "molmap":
        return simulate_input(job.xyz, job.element_weights, weights, resolution)
    input_resolution, spacing = input_settings(weights)
    grid = bounding_grid(job.xyz, spacing, edge_padding(weights, resolution))
    add_gaussians(grid, job.xyz, job.element_weights, input_resolution * SIGMA_FACTOR, CUTOFF_RANGE)
    return MapData(grid.full_matrix(), grid.origin, grid.step)


def _generate(request, job, index, simulated, weights, tiling, emit, should_stop):
    from .generate import generate_from_input

    # The molmap grid is in the structure's own coordinates (job.xyz), where the engine masks.
    options = request.options
    generated, report = generate_from_input(
        simulated, options.resolution, weights, coords=job.xyz, atomic_numbers=job.element_weights,
        b_factors=job.b_factors, use_bfactors=options.use_bfactors, tiling=tiling, device=options.device,
        should_stop=should_stop, progress=lambda done, total: emit(("progress", index, done, total)))
    if job.note:
        report.notes.insert(0, job.note)
    return generated, report


# --- main thread: events, checks and the end --------------------------------------------------------------

def _on_event(request: _Request, run: Run, event) -> None:
    session = request.session
    kind, index = event[0], event[1]
    job = request.jobs[index]
    request.current = index
    if kind == "status":
        session.logger.status(f"struc2map {job.name}: {event[2]}")
    elif kind == "warning":
        session.logger.warning(f"struc2map: {event[2]}")
    elif kind == "progress":
        job.done, job.total = event[2], event[3]
        session.logger.status(f"struc2map {job.name}: {job.done} of {job.total} tiles")
        struc2map_triggers(session).activate_trigger(PROGRESS_TRIGGER, (job.done, job.total))
    elif kind == "map" and not run.stopping:  # a map finished as Stop was asked for is not opened
        _check_models(request, run)
        if not run.stopping:
            request.volumes.append(_open_map(request, job, event[2], event[3]))


def _check_models(request: _Request, run: Run) -> None:
    """End the run if a model it needs was closed (a structure not yet mapped, or a map it compares with)."""
    pending = [job.structure for job in request.jobs[request.current:]]
    for model in pending + [m for m in (request.compare, request.on_grid, request.fit) if m is not None]:
        if model.deleted:
            run.stop(f"{getattr(model, 'name', 'a model')} was closed")
            return


def _on_end(request: _Request, run: Run, error: BaseException | None) -> None:
    session = request.session
    struc2map_triggers(session).activate_trigger(RUN_TRIGGER, False)
    if error is not None:
        if run.in_background:  # no caller to raise to (when blocking, the caller gets the error)
            if isinstance(error, UserError):
                session.logger.error(f"struc2map: {error}")
            else:
                session.logger.report_exception(preface="struc2map failed",
                                                exc_info=(type(error), error, error.__traceback__))
        return
    n, made = len(request.jobs), len(request.volumes)
    if run.stop_reason is not None:
        job = request.jobs[min(made, n - 1)]
        where = f"; {job.name}: {job.done} of {job.total} tiles done, no map opened for it" if made < n else ""
        reason = run.stop_reason if run.stop_reason.startswith("on ") else f"because {run.stop_reason}"
        session.logger.info(f"struc2map stopped {reason} after {made} of {n} maps{where}.")
        session.logger.status(f"struc2map stopped after {made} of {n} maps")
    elif n > 1:
        session.logger.status(f"struc2map: {made} maps in {time.perf_counter() - request.started:.1f} s")


# --- main thread: opening a finished map ------------------------------------------------------------------

def _open_map(request: _Request, job: _Job, generated, report):
    session, structure, resolution = request.session, job.structure, request.options.resolution
    if request.model_id is not None and session.models.have_id(request.model_id):
        raise UserError(f"Model #{'.'.join(map(str, request.model_id))} was opened during the run; the map was "
                        "not opened.")
    name = request.name or f"{structure.name} struc2map {resolution:g}"
    volume = placed_volume(session, generated, structure, request.on_grid, request.grid_spacing, name)
    reference = reference_molmap(session, job.atoms, resolution, volume)
    try:
        volume.set_parameters(surface_levels=[matching_level(volume, reference)])
        if request.model_id is not None:
            volume.id = request.model_id  # as volume_from_grid_data(model_id=...) does
        session.models.add([volume])
        scores = correlations(structure, job.atoms, resolution, volume, reference, request.compare)
        fits = []
        if request.fit is not None:
            from .fit import fit_table, fit_volumes

            fits = fit_volumes(session, volume, reference, request.fit, job.atoms, resolution,
                               structure if request.move_structure else None)
    finally:
        reference.delete()
    now = time.perf_counter()
    seconds, request.last = now - request.last, now
    session.logger.info(summary_table(structure, job.atoms, volume, report, scores, seconds), is_html=True)
    if fits:
        session.logger.info(fit_table(volume, request.fit, resolution, fits), is_html=True)
    session.logger.status(f"struc2map {structure.name}: map #{volume.id_string} in {seconds:.1f} s")
    struc2map_triggers(session).activate_trigger(
        RESULT_TRIGGER, {"volume": volume, "structure": structure, "seconds": seconds, "fits": fits,
                         "correlations": {label: values for label, _, values in scores}})
    return volume
