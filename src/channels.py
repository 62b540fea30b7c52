"""What a conditioned generator reads: input channels made from the atoms, and the target resolution.

One place defines the recipe, so that training (``prepare``) and inference
(``generate``) feed the generator the same thing:

- channel 0: molmap at the input resolution (2 Å) on the 1 Å grid, min-max
  normalised (the paper's input);
- channel 1 (optional): the same atoms, each blurred by its own B-factor
  relative to the model's low B-factors (σ² = σ_input² + ΔB / 8π², ΔB capped),
  scaled like channel 0. Where it differs from channel 0 the model says its
  atoms are mobile: real maps are blurrier there. Models whose B-factors carry
  no information (absent, all equal, mostly zero: predicted or unrefined
  models) get an all-zero channel, as the generator saw in training when the
  channel was dropped;
- the condition vector: the target resolution, as features FiLM can use.
"""
from __future__ import annotations

import math

import numpy as np

from .map_data import MapData
from .molmap import SIGMA_FACTOR, gaussian_density, normalize_minmax

BFACTOR_CAP = 300.0
"""Å²: relative B-factors above this are taken as this (σ grows by at most ≈2 Å)."""

BFACTOR_LEVELS = 8
"""Atoms are blurred with this many widths (their ΔB rounded to the nearest level): one density pass each."""

CONDITION_DIM = 2


def resolution_condition(resolution: float) -> np.ndarray:
    """Features of the target resolution (Å) for FiLM: (R − 4)/2 and 4/R − 1, both of order one over 2–10 Å."""
    r = float(resolution)
    return np.array([(r - 4.0) / 2.0, 4.0 / r - 1.0], dtype=np.float32)


def condition_resolution(condition: np.ndarray) -> np.ndarray:
    """The resolution (Å) that ``resolution_condition`` encoded, from its first feature (rows of an array, or of
    a tensor: the arithmetic is the same)."""
    return 2.0 * condition[..., 0] + 4.0


def bfactors_informative(b_factors: np.ndarray) -> tuple[bool, str]:
    """Whether a model's B-factors can describe local resolution, and why not when they cannot.

    Refused: no atoms, non-finite values, more than half the atoms at B ≤ 0,
    or a spread (interquartile range) under 2 Å² (flat B-factors, as in many
    predicted or unrefined models).
    """
    b = np.asarray(b_factors, dtype=np.float64)
    if b.size == 0 or not np.isfinite(b).all():
        return False, "the model has no usable B-factors"
    if (b <= 0).mean() > 0.5:
        return False, "most atoms have a B-factor of 0 or less"
    q1, q3 = np.percentile(b, [25, 75])
    if q3 - q1 < 2.0:
        return False, f"the B-factors are flat (interquartile range {q3 - q1:.2g} Å²)"
    return True, ""


def relative_bfactors(b_factors: np.ndarray) -> np.ndarray:
    """B-factors above the model's 5th percentile, capped at ``BFACTOR_CAP`` (Å²)."""
    b = np.asarray(b_factors, dtype=np.float64)
    return np.clip(b - np.percentile(b, 5), 0.0, BFACTOR_CAP)


def bfactor_channel(coords: np.ndarray, weights: np.ndarray, b_factors: np.ndarray, grid: MapData,
                    input_resolution: float) -> np.ndarray:
    """Density of the atoms each blurred by its relative B-factor, on ``grid``, min-max normalised."""
    sigma0 = input_resolution * SIGMA_FACTOR
    delta = relative_bfactors(b_factors)
    levels = np.linspace(0.0, BFACTOR_CAP, BFACTOR_LEVELS)
    nearest = np.abs(delta[:, None] - levels[None, :]).argmin(axis=1)
    density = np.zeros(grid.array.shape, np.float32)
    for k, level in enumerate(levels):
        chosen = nearest == k
        if chosen.any():
            sigma = math.sqrt(sigma0 ** 2 + level / (8 * math.pi ** 2))
            density += gaussian_density(coords[chosen], weights[chosen], sigma, grid)
    return normalize_minmax(density)


def input_channels(simulated: np.ndarray, coords: np.ndarray, weights: np.ndarray, b_factors: np.ndarray | None,
                   grid: MapData, input_resolution: float, channels: int) -> np.ndarray:
    """The generator's (C, Z, Y, X) input from molmap at the input resolution (any scale) and the atoms.

    With two channels the second is the B-factor channel, or zeros when
    ``b_factors`` is None (absent, uninformative, or switched off).
    """
    first = normalize_minmax(simulated)
    if channels == 1:
        return first[None]
    second = (np.zeros_like(first) if b_factors is None
              else bfactor_channel(coords, weights, b_factors, grid, input_resolution))
    return np.stack([first, second])
