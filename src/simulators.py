"""Input recipes: how the simulated map a generator reads is made from atoms and scaled.

A weights file names its recipe in its metadata ("input"); the engine makes
the input that way. Two are known:

- ``molmap`` (what struc2mapGAN and our generators were trained on): ChimeraX's
  molmap at 2 Å on a 1 Å grid (molmap.py), min-max normalised to [0, 1].
- ``tempy-blur`` (what the authors' released inference script feeds by
  default, its "pdb2vol" mode, a TEMPy-style blur): each atom's mass spread
  trilinearly onto the 8 voxels around it (H, C, N, O, P and S only; other
  elements add nothing, as in that script), then a periodic Gaussian blur in
  Fourier space with σ = sigma_factor × resolution (0.356 × 2 Å = 0.71 Å),
  skipped, as that script does, when σ is under one voxel; then z-score
  normalised (mean 0, standard deviation 1 over the box). At its defaults
  (2 Å on a 1 Å grid) σ is 0.71 voxel, so the input is the unblurred
  trilinear mass map. TEMPy's own ``gaussian_blur`` differs: nearest-voxel
  placement and an unconditional blur.

The grid is the engine's (molmap's placement around the atoms, see
generate.py) for both recipes; the authors' script centres its own box on
the centre of mass, which changes the z-score's mean and spread but not the
shape of the map.
"""
from __future__ import annotations

import math

import numpy as np

from .map_data import MapData
from .molmap import molmap, normalize_minmax
from .weights_meta import TEMPY_BLUR_INPUT

ATOMIC_MASS = {1: 1.008, 6: 12.011, 7: 14.007, 8: 15.999, 15: 30.974, 16: 32.066}
"""Masses (Da) the TEMPy-style recipe weights atoms by, by atomic number; other elements weigh 0."""


def normalize_zscore(array: np.ndarray) -> np.ndarray:
    """Values shifted and scaled to mean 0, standard deviation 1; a constant map is left as it is."""
    array = np.asarray(array, dtype=np.float64)
    std = array.std()
    return (array if std == 0 else (array - array.mean()) / std).astype(np.float32)


NORMALISATIONS = {"minmax": normalize_minmax, "zscore": normalize_zscore}


def simulate(coords: np.ndarray, atomic_numbers: np.ndarray, recipe: dict, grid: MapData) -> MapData:
    """The simulated map of the atoms on ``grid``'s geometry (not yet normalised), as ``recipe`` (a complete one:
    weights_meta.input_recipe, a weights spec's ``recipe``) says."""
    if recipe["simulator"] == "molmap":
        return molmap(coords, atomic_numbers, recipe["resolution"], on_grid=grid)
    return tempy_blur(coords, atomic_numbers, recipe["resolution"], grid, recipe["sigma_factor"])


def normalise(array: np.ndarray, normalisation: str) -> np.ndarray:
    """The simulated map scaled by the recipe's ``normalisation`` (weights_meta.NORMALISATION_NAMES), as float32."""
    return NORMALISATIONS[normalisation](array)


def mass_overlay(coords: np.ndarray, atomic_numbers: np.ndarray, grid: MapData) -> np.ndarray:
    """Each atom's mass spread trilinearly onto the 8 voxels around it (atoms off the grid are left out)."""
    shape = np.array(grid.array.shape[::-1])  # x, y, z
    ijk = grid.xyz_to_ijk(np.asarray(coords, dtype=np.float64).reshape(-1, 3))
    mass = np.array([ATOMIC_MASS.get(int(z), 0.0) for z in np.asarray(atomic_numbers).ravel()])
    base = np.floor(ijk).astype(np.int64)
    frac = ijk - base
    flat = np.zeros(int(np.prod(shape)), np.float64)
    for corner in np.ndindex(2, 2, 2):
        offset = np.array(corner)
        index = base + offset
        weight = mass * np.prod(np.where(offset == 1, frac, 1.0 - frac), axis=1)
        inside = np.all((index >= 0) & (index < shape), axis=1)
        i, j, k = index[inside].T
        flat += np.bincount((k * shape[1] + j) * shape[0] + i, weight[inside], minlength=flat.size)
    return flat.reshape(grid.array.shape)


def fourier_gaussian_blur(array: np.ndarray, sigma: float) -> np.ndarray:
    """``array`` convolved periodically with a Gaussian of ``sigma`` voxels (its transform times exp(-2π²σ²f²))."""
    spectrum = np.fft.rfftn(array)
    last = array.ndim - 1
    for axis, n in enumerate(array.shape):
        freq = np.fft.rfftfreq(n) if axis == last else np.fft.fftfreq(n)
        shape = [1] * array.ndim
        shape[axis] = freq.size
        spectrum *= np.exp(-2.0 * (math.pi * sigma * freq) ** 2).reshape(shape)
    return np.fft.irfftn(spectrum, s=array.shape, axes=range(array.ndim))


def tempy_blur(coords: np.ndarray, atomic_numbers: np.ndarray, resolution: float, grid: MapData,
               sigma_factor: float = TEMPY_BLUR_INPUT["sigma_factor"]) -> MapData:
    """The TEMPy-style simulated map of the authors' inference script on ``grid`` (see the module docstring)."""
    values = mass_overlay(coords, atomic_numbers, grid)
    sigma = sigma_factor * resolution / float(grid.voxel_size[0])
    if sigma >= 1.0:
        values = fourier_gaussian_blur(values, sigma)
    return grid.with_array(values.astype(np.float32), resolution=resolution)
