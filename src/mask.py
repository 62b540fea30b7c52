"""Masks around atoms: the training targets' mask, and the same mask on generated maps.

The generator learns targets that were masked to voxels within a few Å of an
atom (the paper's phenix.map_box mask_atoms); outside, its output is
background whose level drifts from tile to tile (instance norm), which shows
as seams. Masking the output the same way gives the clean constant
background the targets have; that level is then made zero, the solvent level
of a real map (the training targets' min-max scaling had put it at ≈0.3).
"""
from __future__ import annotations

import numpy as np
from scipy.spatial import cKDTree

from .map_data import MapData


def atom_distance(grid: MapData, coords: np.ndarray, limit: float) -> np.ndarray:
    """Float32 [z, y, x]: distance (Å) from each voxel centre to the nearest atom; inf beyond ``limit``."""
    shape = grid.array.shape
    distance = np.full(shape, np.inf, np.float32)
    if len(coords) == 0:
        return distance
    tree = cKDTree(coords)
    j, i = np.indices(shape[1:]).reshape(2, -1)
    for k in range(shape[0]):  # one plane at a time keeps memory at one plane of points
        xyz = grid.ijk_to_xyz(np.stack([i, j, np.full_like(i, k)], axis=1))
        dist, _ = tree.query(xyz, k=1, distance_upper_bound=np.nextafter(limit, np.inf), workers=-1)  # limit included
        distance[k] = dist.reshape(shape[1:])
    return distance


def atom_mask(grid: MapData, coords: np.ndarray, radius: float) -> np.ndarray:
    """Boolean [z, y, x]: voxels whose centre lies within ``radius`` Å of an atom."""
    return np.isfinite(atom_distance(grid, coords, radius))


def envelope_radii(resolution: float) -> tuple[float, float]:
    """(inner, outer) Å of the soft envelope at a resolution: 2 + R/2 Å flat, then a 3 Å cosine edge.

    Density reaches further from the atoms at coarser resolution, so the
    envelope grows with it (3.6–6.6 Å at 3.2 Å, 6–9 Å at 8 Å).
    """
    inner = 2.0 + 0.5 * float(resolution)
    return inner, inner + 3.0


def soft_envelope(distance: np.ndarray, inner: float, outer: float) -> np.ndarray:
    """Weights from distances to the nearest atom: 1 up to ``inner`` Å, a cosine fall to 0 at ``outer``."""
    t = np.clip((np.asarray(distance, np.float32) - inner) / (outer - inner), 0.0, 1.0)
    return (0.5 * (1.0 + np.cos(np.pi * t))).astype(np.float32)


def mask_to_background(mapdata: MapData, mask: np.ndarray, computed: np.ndarray | None = None) -> MapData:
    """The map minus its background level, zero outside ``mask`` (e.g. an ``atom_mask``).

    The background level is the median outside the mask over the voxels the
    generator ``computed`` (all when None; skipped tiles hold a filler value
    that says nothing of the output's level around the model). It is recorded
    in the header as ``background``.
    """
    if mask.all():
        return mapdata
    outside = ~mask
    if computed is not None and (computed & outside).any():
        outside &= computed
    background = float(np.median(mapdata.array[outside]))
    values = np.where(mask, mapdata.array - np.float32(background), np.float32(0.0))
    return mapdata.with_array(values.astype(np.float32), background=background)
