"""Real maps without a fitted model, made to look like training targets: extra "real" samples for the discriminator.

They cannot supervise the generator (there is no input), but they show the
discriminator more of what experimental density looks like than the training
pairs alone. Each map is resampled onto the 1 Å training grid and normalised
as ``prepare.make_target`` normalises a target, with the molecule's region
taken from the density itself instead of from atoms: voxels above a
threshold (two robust standard deviations above the median, or for a
masked segment, the median of its non-zero voxels), cleaned of specks. The
solvent level is made 0, the 99th percentile near that region 1, and the
soft envelope applied at a nominal 4 Å (atoms sit about 1.5 Å inside such a
region's edge). Maps sampled coarser than ``max_voxel_size`` are refused:
resampled to 1 Å they would look smoother than any target.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
from scipy import ndimage

from ..errors import InputError
from ..map_data import MapData
from ..mapio import read_map
from ..resample import resample_onto
from .config import PrepareConfig
from .index import corner_box
from .prepare import make_target, tile_corners

NOMINAL_RESOLUTION = 4.0  # Å, for the envelope only: these maps come without a stated resolution
ATOM_DEPTH = 1.5  # Å from a density region's edge to the atoms under it
MASKED_FRACTION = 0.3  # more zero voxels than this: a masked segment
MIN_OCCUPANCY = 0.05  # tiles with less of the region than this are not drawn


def density_region(values: np.ndarray) -> np.ndarray:
    """Boolean [z, y, x]: the molecule's voxels, judged from the density alone (see the module docstring)."""
    v = values.astype(np.float64)
    masked = float((v == 0).mean()) > MASKED_FRACTION
    pool = v[v != 0] if masked else v.ravel()
    if pool.size == 0:
        raise InputError("The map is empty (all zero).")
    median = float(np.median(pool))
    if masked:
        level = median
    else:
        level = median + 2.0 * 1.4826 * float(np.median(np.abs(pool - median)))
    region = ndimage.binary_opening(values > level, iterations=1)
    if not region.any():
        raise InputError("The map has no density above its noise.")
    return region


def prepare_unpaired(path: str | Path, config: PrepareConfig, max_voxel_size: float = 1.6) -> dict:
    """One unpaired map as a normalised volume on the training grid, with its tile corners."""
    exp = read_map(path)
    if float(exp.voxel_size.max()) > max_voxel_size:
        raise InputError(f"{Path(path).name}: voxels of {exp.voxel_size.max():.2f} Å are coarser than "
                         f"{max_voxel_size} Å; resampled to {config.grid_spacing} Å it would look smoother than "
                         f"any target.")
    spacing = config.grid_spacing
    extent = (np.array(exp.shape_xyz, float) - 1.0) * exp.voxel_size
    shape_xyz = np.floor(extent / spacing + 1e-6).astype(int) + 1
    grid = MapData(np.zeros(tuple(shape_xyz[::-1]), np.float32), exp.origin.copy(), spacing)
    values = resample_onto(exp, grid).array.astype(np.float32)
    region = density_region(values)
    distance = (ndimage.distance_transform_edt(~region) * spacing + ATOM_DEPTH).astype(np.float32)
    distance[region] = 0.0
    volume = make_target(values, distance, NOMINAL_RESOLUTION, config.scale_percentile)
    t = config.tile_size
    pad = [(0, max(t - n, 0)) for n in volume.shape]
    volume, region = np.pad(volume, pad), np.pad(region, pad)
    corners = [corner for corner in tile_corners(volume.shape, t, config.stride)
               if region[corner_box(corner, t)].mean() >= MIN_OCCUPANCY]
    return {"volume": volume, "corners": np.array(corners, int).reshape(-1, 3),
            "region_fraction": float(region.mean())}
