"""From atoms (or a molmap already made, e.g. by ChimeraX) to a generated map: the engine's main job.

Steps: molmap at the generator's input resolution (2 Å) on a 1 Å grid around
the model, min-max normalised as in training; the generator run tile by
tile; the output low-pass filtered to the requested resolution when that is
coarser than the generator's native one. The result lies on the same grid as
the input, so it is positioned like the model.
"""
from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from typing import Callable

import numpy as np

from .errors import InputError
from .grid import MapData
from .mask import atom_mask, mask_to_background
from .molmap import molmap, molmap_grid, normalize_minmax
from .resolution import check_resolution, lowpass_to_resolution
from .tiling import TilingConfig, predict_tiled
from .weights_io import Weights

BYTES_PER_VOXEL = 4 * 5  # input, padded input, output, padded output, filter scratch (float32)


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
    spec = weights.metadata.get("input", {})
    return float(spec.get("resolution", 2.0)), float(spec.get("grid_spacing", 1.0))


def native_resolution(weights: Weights) -> float:
    """Resolution of the generator's output, from its metadata (its training maps' median)."""
    return float(weights.metadata.get("output", {}).get("resolution") or input_settings(weights)[0])


def available_memory() -> int | None:
    """Bytes of memory available now (Linux), or None when unknown."""
    try:
        with open("/proc/meminfo") as f:
            for line in f:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except OSError:
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def check_memory(shape_zyx: tuple[int, int, int], what: str = "The map") -> None:
    """Refuse a grid whose arrays would not fit in the memory available."""
    voxels = int(np.prod(shape_zyx, dtype=np.int64))
    need = voxels * BYTES_PER_VOXEL
    have = available_memory()
    if have is not None and need > have:
        nx, ny, nz = shape_zyx[::-1]
        raise InputError(f"{what} would be {nx}×{ny}×{nz} voxels and need about {need / 2**30:.1f} GB of memory, "
                         f"but only {have / 2**30:.1f} GB is available. Split the model or use a machine "
                         "with more memory.")


def edge_padding(weights: Weights, resolution: float) -> float:
    """Å of empty grid around the atoms: room for the density at the coarser of input and target resolution."""
    return 3.0 * max(input_settings(weights)[0], resolution)


def simulate_input(coords: np.ndarray, atomic_numbers: np.ndarray, weights: Weights, resolution: float) -> MapData:
    """molmap at the generator's input resolution on its grid spacing, padded for the target resolution."""
    input_resolution, spacing = input_settings(weights)
    origin, shape = molmap_grid(coords, input_resolution, grid_spacing=spacing,
                                edge_padding=edge_padding(weights, resolution))
    check_memory(shape)
    grid = MapData(np.empty(shape, np.float32), origin, spacing)  # on_grid uses only the geometry
    return molmap(coords, atomic_numbers, input_resolution, on_grid=grid)


def generate_from_input(simulated: MapData, resolution: float, weights: Weights, *,
                        coords: np.ndarray | None = None,
                        tiling: TilingConfig | None = None, device: str = "auto",
                        progress: Callable[[int, int], None] | None = None,
                        should_stop: Callable[[], bool] | None = None) -> tuple[MapData, GenerateReport]:
    """Run the generator on a simulated map (molmap at the input resolution, any scale).

    ``simulated`` must be on the grid spacing the weights expect (1 Å); it
    is min-max normalised here, as in training. With the atoms' ``coords``
    (Å, in the input's frame) and weights trained on masked targets, the
    output is masked the same way (see mask.py).
    """
    resolution = check_resolution(resolution)
    _, spacing = input_settings(weights)
    if not np.allclose(simulated.voxel_size, spacing, rtol=1e-3):
        raise InputError(f"The generator expects a {spacing:g} Å grid; the input map has voxel size "
                         f"{', '.join(f'{v:g}' for v in simulated.voxel_size)} Å.")
    check_memory(simulated.array.shape)
    started = time.perf_counter()
    volume = normalize_minmax(simulated.array)
    mask_radius = weights.metadata.get("output", {}).get("mask_radius")
    mask = atom_mask(simulated, coords, float(mask_radius)) if coords is not None and mask_radius else None
    output, tiles = predict_tiled(weights.generator, volume, tiling or TilingConfig(), device=device,
                                  needed=mask, progress=progress, should_stop=should_stop)
    generated = simulated.with_array(output)
    if mask is not None:
        generated = mask_to_background(generated, mask, tiles.predicted)
    native = native_resolution(weights)
    generated, effective = lowpass_to_resolution(generated, resolution, native)
    report = GenerateReport(grid_xyz=simulated.shape_xyz, voxel_size=float(spacing), resolution=resolution,
                            effective_resolution=effective, tiles_total=tiles.tiles_total,
                            tiles_run=tiles.tiles_run, tiles_skipped=tiles.tiles_skipped, device=tiles.device,
                            weights=weights.short_id)
    if resolution < native:
        report.notes.append(f"{resolution:g} Å is finer than the generator's native {native:g} Å: "
                            f"the map is left at {native:g} Å.")
    generated.header.update(resolution=effective, requested_resolution=resolution, weights_sha256=weights.sha256)
    report.seconds = time.perf_counter() - started
    return generated, report


def generate(coords: np.ndarray, atomic_numbers: np.ndarray, resolution: float, weights: Weights,
             **kwargs) -> tuple[MapData, GenerateReport]:
    """Generate a map for atoms (coordinates in Å, atomic numbers as molmap weights).

    Keyword arguments are those of :func:`generate_from_input`.
    """
    resolution = check_resolution(resolution, warn=False)  # generate_from_input warns
    started = time.perf_counter()
    simulated = simulate_input(coords, atomic_numbers, weights, resolution)
    generated, report = generate_from_input(simulated, resolution, weights, coords=coords, **kwargs)
    report.atoms = len(coords)
    report.seconds = time.perf_counter() - started
    return generated, report
