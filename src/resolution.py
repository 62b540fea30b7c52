"""Checks of a target resolution, and the low-pass that takes a map to a coarser one.

A generator makes maps up to some resolution (the top of the range a
resolution-conditioned one was trained on, or the one native resolution of
version-1 weights, both recorded in the weights; ``generate`` says when it
clamps a request). A coarser target is reached with a Gaussian low-pass
filter in molmap's convention (σ = resolution × sigma factor, Å), removing
the σ the map already has: σ_extra = √(σ_target² − σ_native²). A finer target
cannot be reached by filtering.
"""
from __future__ import annotations

import math

import numpy as np
from scipy import ndimage

from .errors import InputError
from .map_data import MapData
from .molmap import SIGMA_FACTOR

MIN_RESOLUTION = 0.5
MAX_RESOLUTION = 100.0


def check_resolution(resolution: float) -> float:
    """The resolution as a float, or an InputError for values that cannot be meant.

    Whether the weights make it themselves is for ``generate`` to say: their range is in their metadata.
    """
    try:
        r = float(resolution)
    except (TypeError, ValueError):
        raise InputError(f"Resolution must be a number of Å, got {resolution!r}.") from None
    if not math.isfinite(r) or r <= 0:
        raise InputError(f"Resolution must be a positive number of Å, got {resolution}.")
    if not MIN_RESOLUTION <= r <= MAX_RESOLUTION:
        raise InputError(f"Resolution {r:g} Å is outside {MIN_RESOLUTION:g}–{MAX_RESOLUTION:g} Å; "
                         "cryo-EM maps are not made at that resolution.")
    return r


def extra_sigma(target: float, native: float, sigma_factor: float = SIGMA_FACTOR) -> float:
    """Gaussian σ (Å) that takes a map at ``native`` resolution to ``target``; 0 if target is finer."""
    if target <= native:
        return 0.0
    return sigma_factor * math.sqrt(target ** 2 - native ** 2)


def lowpass_to_resolution(mapdata: MapData, target: float, native: float,
                          sigma_factor: float = SIGMA_FACTOR) -> tuple[MapData, float]:
    """The map filtered from ``native`` to ``target`` resolution, and the resolution it now has.

    The filter treats everything outside the box as the map's background
    (its edge value), so a constant background stays constant.
    """
    sigma = extra_sigma(target, native, sigma_factor)
    if sigma == 0.0:
        return mapdata, native
    sigma_voxels = sigma / np.asarray(mapdata.voxel_size)[::-1]  # zyx order
    filtered = ndimage.gaussian_filter(mapdata.array.astype(np.float32), sigma_voxels, mode="nearest",
                                       truncate=4.0)
    return mapdata.with_array(filtered.astype(np.float32)), target
