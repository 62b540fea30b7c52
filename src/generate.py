"""From atoms (or a molmap already made, e.g. by ChimeraX) to a generated map: the engine's main job.

Steps: the simulated input the weights name (simulators.py: molmap at 2 Å on
a 1 Å grid around the model, min-max normalised as in training, unless the
weights say otherwise; with the B-factor channel of
channels.py for weights that read it); the generator run tile by tile, asked
for the requested resolution when it takes one as input (else at its one
native resolution, then low-pass filtered); the output's envelope applied.
The result lies on the same grid as the input, so it is positioned like the
model.
"""
from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

import torch

from .errors import InputError
from .map_data import MapData
from .channels import bfactors_informative, input_channels, resolution_condition
from .mask import atom_distance, atom_mask, envelope_radii, mask_to_background, soft_envelope
from .memory import check_generate
from .molmap import molmap_grid
from .network import FixedCondition
from .resolution import check_resolution, lowpass_to_resolution
from .simulators import normalise, simulate
from .tiling import TilingConfig, TilingReport, predict_tiled
from .weights_io import Weights

@dataclass
class GenerateReport:
    """What a run did, for the summary line, the log table and ``--json``."""

    atoms: int = 0
    grid_xyz: tuple[int, int, int] = (0, 0, 0)
    voxel_size: float = 1.0
    resolution: float = 0.0
    effective_resolution: float = 0.0
    tiles_total: int = 0
    tiles_run: int = 0
    tiles_skipped: int = 0
    device: str = ""
    seconds: float = 0.0
    weights: str = ""
    notes: list[str] = field(default_factory=list)

    def to_dict(self) -> dict:
        return {k: (list(v) if isinstance(v, tuple) else v) for k, v in self.__dict__.items()}


def input_settings(weights: Weights) -> tuple[float, float]:
    """(input resolution, grid spacing) the weights were trained with."""
    return weights.spec.input_resolution, weights.spec.grid_spacing


def edge_padding(weights: Weights, resolution: float) -> float:
    """Å of empty grid around the atoms: room for the density at the coarser of input and target resolution."""
    return 3.0 * max(input_settings(weights)[0], resolution)


def input_grid(coords: np.ndarray, weights: Weights,
               resolution: float) -> tuple[np.ndarray, tuple[int, int, int], float]:
    """Origin (xyz Å), shape (z, y, x) and spacing of the generator's input grid around the atoms.

    Known before any work, so that memory and output formats can be checked first.
    """
    input_resolution, spacing = input_settings(weights)
    origin, shape = molmap_grid(coords, input_resolution, grid_spacing=spacing,
                                edge_padding=edge_padding(weights, resolution))
    return origin, shape, spacing


def simulate_input(coords: np.ndarray, atomic_numbers: np.ndarray, weights: Weights, resolution: float) -> MapData:
    """The weights' input recipe (simulators.py; molmap by default) at its resolution and grid spacing,
    on molmap's grid around the atoms padded for the target resolution. Callers check the memory first
    (``check_generate`` on ``input_grid``'s shape), as :func:`generate` does."""
    origin, shape, spacing = input_grid(coords, weights, resolution)
    grid = MapData(np.empty(shape, np.float32), origin, spacing)  # on_grid uses only the geometry
    return simulate(coords, atomic_numbers, weights.spec.recipe, grid)


@dataclass(frozen=True)
class _Run:
    """One run's inputs, as :func:`generate_from_input` takes them (resolution checked, tiling given)."""

    simulated: MapData
    resolution: float
    weights: Weights
    coords: np.ndarray | None
    atomic_numbers: np.ndarray | None
    b_factors: np.ndarray | None
    use_bfactors: bool
    tiling: TilingConfig
    device: str
    progress: Callable[[int, int], None] | None
    should_stop: Callable[[], bool] | None

    def predict(self, generator, volume: np.ndarray, needed: np.ndarray | None,
                pack: bool = True) -> tuple[np.ndarray, TilingReport]:
        """predict_tiled with this run's tiling, device, progress and stop."""
        return predict_tiled(generator, volume, self.tiling, device=self.device, needed=needed, pack=pack,
                             progress=self.progress, should_stop=self.should_stop)


def generate_from_input(simulated: MapData, resolution: float, weights: Weights, *,
                        coords: np.ndarray | None = None, atomic_numbers: np.ndarray | None = None,
                        b_factors: np.ndarray | None = None, use_bfactors: bool = True,
                        tiling: TilingConfig | None = None, device: str = "auto",
                        progress: Callable[[int, int], None] | None = None,
                        should_stop: Callable[[], bool] | None = None) -> tuple[MapData, GenerateReport]:
    """Run the generator on a simulated map (the weights' input recipe, any scale).

    ``simulated`` must be on the grid spacing the weights expect (1 Å); it
    is normalised here as the recipe says (min-max for molmap, as in training). The atoms' ``coords`` (Å, in
    the input's frame) give the output its envelope: the soft envelope of
    conditioned weights, or the hard mask of version-1 weights. Conditioned
    weights with a B-factor channel also read ``atomic_numbers`` and
    ``b_factors``; the channel is left empty when the B-factors carry no
    information or ``use_bfactors`` is False (the report says which).
    """
    tiling = tiling or TilingConfig()
    check_generate(simulated.array.shape, tiling.tile_size, tiling.batch_size)
    return _from_input(_Run(simulated, check_resolution(resolution), weights, coords, atomic_numbers, b_factors,
                            use_bfactors, tiling, device, progress, should_stop))


def _from_input(run: _Run) -> tuple[MapData, GenerateReport]:
    """:func:`generate_from_input` once the memory is checked."""
    simulated, resolution, weights = run.simulated, run.resolution, run.weights
    spec = weights.spec
    if not np.allclose(simulated.voxel_size, spec.grid_spacing, rtol=1e-3):
        raise InputError(f"The generator expects a {spec.grid_spacing:g} Å grid; the input map has voxel size "
                         f"{', '.join(f'{v:g}' for v in simulated.voxel_size)} Å.")
    started = time.perf_counter()
    generated, tiles, effective, notes = (_run_conditioned if spec.condition == "resolution" else _run_native)(run)
    report = GenerateReport(grid_xyz=simulated.shape_xyz, voxel_size=float(spec.grid_spacing), resolution=resolution,
                            effective_resolution=effective, tiles_total=tiles.tiles_total,
                            tiles_run=tiles.tiles_run, tiles_skipped=tiles.tiles_skipped, device=tiles.device,
                            weights=weights.short_id, notes=notes)
    generated.header.update(resolution=effective, requested_resolution=resolution, weights_sha256=weights.sha256)
    report.seconds = time.perf_counter() - started
    return generated, report


def _run_native(run: _Run) -> tuple[MapData, TilingReport, float, list[str]]:
    """Version-1 weights: the generator at its one native resolution, hard-masked, then low-passed."""
    simulated, resolution, weights, coords = run.simulated, run.resolution, run.weights, run.coords
    volume = normalise(simulated.array, weights.spec.recipe["normalisation"])
    mask_radius = weights.spec.mask_radius
    mask = atom_mask(simulated, coords, mask_radius) if coords is not None and mask_radius else None
    # Lattice tiles: the solvent level below is a median over the computed voxels beyond the mask, which
    # cores packed around the mask would move (kinesin EMD-6187: correlation about mean 0.23 -> 0.08).
    output, tiles = run.predict(weights.generator, volume, needed=mask, pack=False)
    generated = simulated.with_array(output)
    if mask is not None:
        generated = mask_to_background(generated, mask, tiles.predicted)
        generated.header["values"] = f"density minus its solvent level, 0 beyond {mask_radius:g} A from atoms"
    native = weights.spec.native_resolution
    generated, effective = lowpass_to_resolution(generated, resolution, native)
    notes = []
    if resolution < native:
        notes.append(f"{resolution:g} Å is finer than the generator's native {native:g} Å: "
                     f"the map is left at {native:g} Å.")
    return generated, tiles, effective, notes


def _run_conditioned(run: _Run) -> tuple[MapData, TilingReport, float, list[str]]:
    """Resolution-conditioned weights: the generator asked for the resolution itself (clamped to the range it
    was trained on; a coarser one is reached by low-pass from the top of the range), then the soft envelope."""
    simulated, resolution, weights, coords = run.simulated, run.resolution, run.weights, run.coords
    spec = weights.spec
    lowest, highest = spec.resolution_range
    asked = min(max(resolution, lowest), highest)
    notes = []
    if resolution < lowest:
        notes.append(f"{resolution:g} Å is finer than the generator was trained for: the map is made at "
                     f"{lowest:g} Å.")
    bfactors_used = None
    if spec.in_channels > 1:
        why_not = _why_bfactors_unused(run)
        if why_not:
            notes.append(f"B-factors not used: {why_not}.")
        else:
            bfactors_used = run.b_factors
    channels = input_channels(simulated.array, coords, run.atomic_numbers, bfactors_used, simulated,
                              spec.input_resolution, spec.in_channels)
    weight = None
    if coords is not None and spec.envelope == "soft":
        inner, outer = envelope_radii(asked)
        weight = soft_envelope(atom_distance(simulated, coords, outer), inner, outer)
    module = FixedCondition(weights.generator, torch.from_numpy(resolution_condition(asked)))
    output, tiles = run.predict(module, channels, needed=None if weight is None else weight > 0)
    if weight is not None:
        output *= weight
    generated = simulated.with_array(output)
    if weight is not None:
        generated.header["values"] = (f"density, solvent 0, 1 = 99th pct near atoms; soft envelope "
                                      f"{inner:g}-{outer:g} A from atoms")
    generated, effective = lowpass_to_resolution(generated, resolution, asked)
    if effective > highest:
        notes.append(f"{resolution:g} Å is coarser than the generator was trained for: the map made at "
                     f"{highest:g} Å is low-pass filtered to {resolution:g} Å.")
    return generated, tiles, effective, notes


def _why_bfactors_unused(run: _Run) -> str:
    """Why the B-factor channel stays empty ("" when it is made)."""
    if not run.use_bfactors:
        return "switched off"
    if run.b_factors is None or run.coords is None or run.atomic_numbers is None:
        return "the model has none"
    return bfactors_informative(run.b_factors)[1]


def generate(coords: np.ndarray, atomic_numbers: np.ndarray, resolution: float, weights: Weights, *,
             b_factors: np.ndarray | None = None, use_bfactors: bool = True, tiling: TilingConfig | None = None,
             device: str = "auto", progress: Callable[[int, int], None] | None = None,
             should_stop: Callable[[], bool] | None = None) -> tuple[MapData, GenerateReport]:
    """Generate a map for atoms (coordinates in Å, atomic numbers as molmap weights); the memory is checked
    once, before the input is simulated. Keyword arguments are those of :func:`generate_from_input`
    (``b_factors`` for weights with a B-factor channel)."""
    resolution = check_resolution(resolution)
    tiling = tiling or TilingConfig()
    started = time.perf_counter()
    check_generate(input_grid(coords, weights, resolution)[1], tiling.tile_size, tiling.batch_size)
    simulated = simulate_input(coords, atomic_numbers, weights, resolution)
    generated, report = _from_input(_Run(simulated, resolution, weights, coords, atomic_numbers, b_factors,
                                         use_bfactors, tiling, device, progress, should_stop))
    report.atoms = len(coords)
    report.seconds = time.perf_counter() - started
    return generated, report
