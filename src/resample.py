"""Trilinear interpolation of maps at points and onto other grids, as ChimeraX does it.

ChimeraX (``map/_map/interpolate.cpp``) finds the cell of a point from
``floor`` of its fractional grid index and treats the point as outside unless
``0 <= floor(index) < n - 1`` on every axis: points on the lowest grid plane are
inside, points exactly on the highest plane are outside. Inside points get
``fk0*(fj0*(fi0*d000 + fi1*d100) + fj1*(...)) + fk1*(...)`` over the cell's 8 corners.
ChimeraX does this in float32. At points (``interpolate_at``, what ``measure
correlation`` does) the fractional index is computed as ChimeraX computes it,
from float32 coordinates and a float32 transform, so that a point within
float32 rounding of the highest plane falls inside or outside as it does in
ChimeraX (a map scored against itself has every envelope point there); the
weights then use float64. Grids onto grids (``resample_onto``) use float64.
"""
from __future__ import annotations

import numpy as np

from .map_data import MapData

_CHUNK_POINTS = 1 << 20  # points interpolated per pass: bounds temporaries to ~100 MB


def interpolate_at(mapdata: MapData, xyz: np.ndarray, outside: float = 0.0) -> np.ndarray:
    """Trilinear values of ``mapdata`` at points ``xyz`` (N, 3) in Å; ``outside`` where
    ChimeraX would call the point outside the grid (see the module docstring)."""
    xyz = np.asarray(xyz, dtype=np.float64).reshape(-1, 3)
    values = np.empty(len(xyz), dtype=np.float64)
    for start in range(0, len(xyz), _CHUNK_POINTS):
        chunk = slice(start, start + _CHUNK_POINTS)
        values[chunk] = _trilinear(mapdata, _float32_index(mapdata, xyz[chunk]), outside)
    return values


def _float32_index(mapdata: MapData, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Fractional (i, j, k) of points as ChimeraX's interpolation gets them: float32 points times a float32
    xyz-to-index transform (scale 1/step, offset -origin/step, each rounded from float64), in float32."""
    scale = (1.0 / mapdata.voxel_size).astype(np.float32)
    offset = (-mapdata.origin / mapdata.voxel_size).astype(np.float32)
    index = xyz.astype(np.float32) * scale + offset  # float32 throughout, as in interpolate.cpp
    return tuple(index.astype(np.float64).T)


def resample_onto(source: MapData, target: MapData, outside: float = 0.0) -> MapData:
    """``source`` interpolated at every voxel centre of ``target``'s grid, on that grid.

    Work goes in slabs of z planes so memory stays bounded for large grids. A target
    grid identical to the source's is a plain copy: ChimeraX's rule would otherwise
    put the highest plane on each axis outside. Values are float32 unless the source
    is float64; the header is the source's.
    """
    dtype = np.result_type(source.array.dtype, np.float32)
    if _same_grid(source, target):
        return MapData(source.array.astype(dtype, copy=True), target.origin.copy(),
                       target.voxel_size.copy(), dict(source.header))
    nx, ny, nz = target.shape_xyz
    # Both grids are axis-aligned, so each source index depends on one target index only.
    i, j, k = ((target.origin[a] + np.arange(n) * target.voxel_size[a] - source.origin[a])
               / source.voxel_size[a] for a, n in enumerate((nx, ny, nz)))
    out = np.empty((nz, ny, nx), dtype=dtype)
    planes = max(1, _CHUNK_POINTS // (nx * ny))
    for z0 in range(0, nz, planes):
        kz = k[z0:z0 + planes]
        out[z0:z0 + len(kz)] = _trilinear(source, (i[None, None, :], j[None, :, None],
                                                   kz[:, None, None]), outside)
    return MapData(out, target.origin.copy(), target.voxel_size.copy(), dict(source.header))


def _trilinear(mapdata: MapData, ijk: tuple[np.ndarray, np.ndarray, np.ndarray],
               outside: float) -> np.ndarray:
    """ChimeraX's trilinear rule at fractional indices ``ijk`` = (i, j, k): three
    arrays that broadcast against each other (points, or axes of a grid)."""
    size = mapdata.shape_xyz
    data = np.ascontiguousarray(mapdata.array).reshape(-1)
    strides = (1, size[0], size[0] * size[1])  # elements, for the [z, y, x] array
    if min(size) < 2:  # no cell at all: every point is outside
        return np.full(np.broadcast_shapes(*(a.shape for a in ijk)), outside, dtype=np.float64)
    inside = True
    base = 0
    f1 = []
    for index, n, stride in zip(ijk, size, strides):
        cell = np.floor(index)
        axis_inside = (cell >= 0) & (cell < n - 1)  # False for NaN too
        inside = inside & axis_inside
        base = base + np.where(axis_inside, cell, 0).astype(np.intp) * stride
        f1.append(index - cell)
    fi1, fj1, fk1 = f1
    fi0, fj0, fk0 = 1 - fi1, 1 - fj1, 1 - fk1
    si, sj, sk = strides

    def corner(offset: int) -> np.ndarray:
        return data[base + offset].astype(np.float64, copy=False)

    values = (fk0 * (fj0 * (fi0 * corner(0) + fi1 * corner(si))
                     + fj1 * (fi0 * corner(sj) + fi1 * corner(si + sj)))
              + fk1 * (fj0 * (fi0 * corner(sk) + fi1 * corner(si + sk))
                       + fj1 * (fi0 * corner(sj + sk) + fi1 * corner(si + sj + sk))))
    return np.where(inside, values, outside)


def _same_grid(a: MapData, b: MapData) -> bool:
    """Same shape, with first and last voxel centres within 1e-6 voxel of each other."""
    if a.array.shape != b.array.shape:
        return False
    corners = np.array([[0, 0, 0], np.asarray(a.shape_xyz) - 1])
    tolerance = 1e-6 * a.voxel_size.min()
    return bool(np.all(np.abs(a.ijk_to_xyz(corners) - b.ijk_to_xyz(corners)) <= tolerance))
