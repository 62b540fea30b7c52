"""ChimeraX's ``molmap``, reproduced exactly in vectorized numpy (no ChimeraX needed).

Each atom adds its atomic number times a 3D Gaussian (σ = resolution × sigma_factor)
to the voxels of the cube ChimeraX's C++ (``_map/gaussian.cpp``) visits: per axis the
indices ``ceil(c − r·σv) … floor(c + r·σv)`` clamped to the grid, σv = σ/step in voxels,
r = cutoff_range. The map is then scaled by (2π)^−1.5·σ^−3 so each atom integrates
to its weight. The Gaussian factorises over the axes, so each atom is the outer
product of three short 1D weight vectors, scattered with ``np.bincount`` in
chunks of atoms (sorted into z slabs to bound memory).
"""
from __future__ import annotations

import math

import numpy as np

from .errors import InputError
from .map_data import MapData

SIGMA_FACTOR = 1 / (math.pi * math.sqrt(2))
"""ChimeraX's default σ/resolution: the Gaussian's width at which its Fourier
transform falls to 1/e at spatial frequency 1/resolution."""
CUTOFF_RANGE = 5.0  # ChimeraX's default: Gaussians are cut at this many standard deviations
MAX_SIGMA_FACTOR = 1.0  # σ = sigma_factor × resolution: above the resolution itself, a map is blur, not structure

CONVENTIONS = ("centered", "corner")

_CHUNK_VALUES = 1 << 22  # atom × cube values scattered per bincount call
_SLAB_VOXELS = 1 << 22  # grid voxels one chunk may touch (bounds the bincount buffer)


def molmap_grid(coords: np.ndarray, resolution: float, *, grid_spacing: float | None = None,
                edge_padding: float | None = None,
                convention: str = "centered") -> tuple[np.ndarray, tuple[int, int, int]]:
    """Origin (xyz Å) and shape (z, y, x) of the grid ChimeraX's molmap builds around atoms.

    Per axis n = ceil((max − min + 2·pad) / step). ``convention="centered"`` (the
    default, ChimeraX ≥ 1.9) centres the grid on the atoms' bounding box:
    origin = (min + max)/2 − (n − 1)/2·step. ``"corner"`` (ChimeraX ≤ 1.8) puts
    origin = min − pad. Defaults: step = resolution/3, pad = 3 × resolution.
    """
    coords = _checked_coords(coords)
    _check_positive("resolution", resolution)
    step = _grid_step(resolution, grid_spacing)
    pad = 3 * resolution if edge_padding is None else edge_padding
    if not (math.isfinite(pad) and pad >= 0):
        raise InputError(f"The edge padding must be a finite number of Å, 0 or more (a negative one cuts atoms "
                         f"off the map), not {pad}.")
    if convention not in CONVENTIONS:
        raise InputError(f"The grid convention must be one of {', '.join(CONVENTIONS)}, not {convention!r}.")
    # ChimeraX takes the atoms' bounds in float32 (chimerax.geometry.bounds.point_bounds).
    lo = coords.min(axis=0).astype(np.float32).astype(np.float64)
    hi = coords.max(axis=0).astype(np.float32).astype(np.float64)
    n_xyz = np.ceil((hi - lo + 2 * pad) / step).astype(np.int64)
    if np.any(n_xyz < 1):
        raise InputError(f"The edge padding {pad} Å leaves no grid around the atoms; use a larger padding.")
    if convention == "corner":
        origin = lo - pad
    else:
        origin = (lo + hi) / 2 - (n_xyz - 1) / 2 * step
    return origin, tuple(int(n) for n in n_xyz[::-1])


def gaussian_density(coords: np.ndarray, weights: np.ndarray, sigma: float, grid: MapData,
                     cutoff_range: float = CUTOFF_RANGE) -> np.ndarray:
    """Sum of normalised Gaussians (σ in Å) at the atoms, on ``grid``'s voxels (its values are unused).

    Returns a float32 array [z, y, x] of ``grid``'s shape; each atom within the grid
    integrates to its weight (ChimeraX's ``add_gaussians``).
    """
    coords = _checked_coords(coords)
    weights = np.asarray(weights, dtype=np.float64).reshape(-1)
    if weights.shape[0] != coords.shape[0]:
        raise InputError(f"There are {coords.shape[0]} atoms but {weights.shape[0]} weights; give one weight per atom.")
    if not np.all(np.isfinite(weights)):
        raise InputError("Atom weights must be finite numbers.")
    _check_positive("Gaussian width (sigma)", sigma)
    _check_positive("cutoff range", cutoff_range)
    shape = grid.array.shape
    n_xyz = np.array(shape[::-1], dtype=np.int64)
    # As ChimeraX: atom positions in grid index space and widths in voxels, in float32
    # arithmetic (its xyz_to_ijk_transform applied to float32 coordinates).
    scale = (1 / grid.voxel_size).astype(np.float32)
    shift = (-grid.origin / grid.voxel_size).astype(np.float32)
    ijk = coords.astype(np.float32) * scale + shift
    sdev = (sigma / grid.voxel_size).astype(np.float32)
    reach = np.float32(cutoff_range) * sdev
    first = np.clip(np.ceil(ijk - reach), 0, n_xyz - 1).astype(np.int64)
    last = np.clip(np.floor(ijk + reach), 0, n_xyz - 1).astype(np.int64)
    width = (last - first + 1).max(axis=0, initial=0)
    density = np.zeros(int(np.prod(shape)), dtype=np.float32)
    if np.any(width < 1):
        return density.reshape(shape)
    for atoms in _chunks(first, n_xyz, int(width.prod())):
        (ix, wx), (iy, wy), (iz, wz) = (
            _axis_weights(ijk[atoms, p], sdev[p], first[atoms, p], last[atoms, p], width[p]) for p in range(3))
        flat = ((iz[:, :, None, None] * shape[1] + iy[:, None, :, None]) * shape[2]
                + ix[:, None, None, :]).ravel()
        values = (weights[atoms, None, None, None] * wz[:, :, None, None]
                  * wy[:, None, :, None] * wx[:, None, None, :]).ravel()
        start = int(flat.min())
        sums = np.bincount(flat - start, weights=values)
        density[start:start + sums.size] += sums.astype(np.float32)
    density *= np.float32((2 * math.pi) ** -1.5 * sigma ** -3)
    return density.reshape(shape)


def molmap(coords: np.ndarray, weights: np.ndarray, resolution: float, *,
           grid_spacing: float | None = None, sigma_factor: float = SIGMA_FACTOR,
           edge_padding: float | None = None, cutoff_range: float = CUTOFF_RANGE,
           on_grid: MapData | None = None, convention: str = "centered") -> MapData:
    """ChimeraX's ``molmap``: a map simulated from atoms (xyz Å, weights = atomic numbers).

    σ = resolution × sigma_factor; the grid is built by :func:`molmap_grid` (default
    ``convention="centered"``, as ChimeraX ≥ 1.9; ``"corner"`` for ChimeraX ≤ 1.8)
    unless ``on_grid`` gives a map whose grid (origin, voxel size, shape) to use,
    like ChimeraX's ``onGrid``. The header records resolution, sigma_factor and
    grid_spacing.
    """
    _check_positive("resolution", resolution)
    _check_positive("sigma factor", sigma_factor)
    if sigma_factor > MAX_SIGMA_FACTOR:
        raise InputError(f"A sigma factor of {sigma_factor:g} blurs each atom by more than the resolution itself, "
                         f"which spreads the map to nothing; molmap's default is {SIGMA_FACTOR:.3f}.")
    if on_grid is None:
        origin, shape = molmap_grid(coords, resolution, grid_spacing=grid_spacing,
                                    edge_padding=edge_padding, convention=convention)
        grid = MapData(np.broadcast_to(np.float32(0), shape), origin, _grid_step(resolution, grid_spacing))
    else:
        grid = on_grid
        _check_atoms_reach(_checked_coords(coords), grid, cutoff_range * resolution * sigma_factor)
    array = gaussian_density(coords, weights, resolution * sigma_factor, grid, cutoff_range)
    header = {"resolution": float(resolution), "sigma_factor": float(sigma_factor),
              "grid_spacing": float(grid.voxel_size[0])}
    return MapData(array, grid.origin.copy(), grid.voxel_size.copy(), header)


def _check_atoms_reach(coords: np.ndarray, grid: MapData, reach: float) -> None:
    """Refuse a grid that no atom's density reaches (the map would be all zeros)."""
    low = grid.origin - reach
    high = grid.ijk_to_xyz(np.asarray(grid.shape_xyz, float) - 1) + reach
    if not np.any(np.all((coords >= low) & (coords <= high), axis=1)):
        span = lambda a, b: " × ".join(f"{x:.1f}–{y:.1f}" for x, y in zip(a, b))
        raise InputError(f"No atom lies within {reach:.1f} Å of the grid (the grid spans "
                         f"{span(grid.origin, high - reach)} Å, the atoms {span(coords.min(0), coords.max(0))} Å): "
                         "the map would be empty. Are the model and the map in the same frame?")


def normalize_minmax(array: np.ndarray) -> np.ndarray:
    """Values rescaled linearly to [0, 1] (the generator's input scale); a constant map gives zeros."""
    array = np.asarray(array)
    lo, hi = array.min(), array.max()
    if hi == lo:
        return np.zeros_like(array, dtype=np.float32)
    return ((array - lo) / (hi - lo)).astype(np.float32)


def _axis_weights(centre: np.ndarray, sdev: np.float32, first: np.ndarray, last: np.ndarray,
                  width: int) -> tuple[np.ndarray, np.ndarray]:
    """Per atom, the voxel indices first … first+width−1 along one axis and their Gaussian
    factors (zero beyond ``last``, where the index is held in the grid)."""
    index = first[:, None] + np.arange(width)
    inside = index <= last[:, None]
    d = (index - centre[:, None].astype(np.float64)) / float(sdev)
    return np.where(inside, index, first[:, None]), np.where(inside, np.exp(-0.5 * d * d), 0.0)


def _chunks(first: np.ndarray, n_xyz: np.ndarray, cube_values: int):
    """Index arrays of atom chunks: atoms in grid order of their first voxel (so nearby
    atoms scatter into nearby memory), cut at z slabs of at most ``_SLAB_VOXELS``
    voxels and at ``_CHUNK_VALUES`` scattered values."""
    order = np.argsort((first[:, 2] * n_xyz[1] + first[:, 1]) * n_xyz[0] + first[:, 0], kind="stable")
    slab = first[order, 2] // max(1, _SLAB_VOXELS // int(n_xyz[0] * n_xyz[1]))
    rank = np.arange(order.size) - np.searchsorted(slab, slab)
    part = rank // max(1, _CHUNK_VALUES // cube_values)
    cuts = np.flatnonzero((np.diff(slab) != 0) | (np.diff(part) != 0)) + 1
    return np.split(order, cuts)


def _grid_step(resolution: float, grid_spacing: float | None) -> float:
    """The grid spacing, by default a third of the resolution (ChimeraX's)."""
    step = resolution / 3 if grid_spacing is None else grid_spacing
    _check_positive("grid spacing", step)
    return step


def _checked_coords(coords: np.ndarray) -> np.ndarray:
    coords = np.asarray(coords, dtype=np.float64)
    if coords.ndim != 2 or coords.shape[1] != 3:
        raise InputError(f"Atom coordinates must be an N×3 array of x, y, z in Å, not shape {coords.shape}.")
    if coords.shape[0] == 0:
        raise InputError("There are no atoms to make a map from.")
    if not np.all(np.isfinite(coords)):
        raise InputError("Some atom coordinates are not finite numbers (NaN or infinity); fix the model first.")
    return coords


def _check_positive(what: str, value: float) -> None:
    if not (isinstance(value, (int, float, np.number)) and math.isfinite(value) and value > 0):
        raise InputError(f"The {what} must be a positive finite number, not {value!r}.")
