"""How real a map looks beyond correlation, against an experimental map: amplitude fall-off and local texture.

Correlation rewards a smooth map that puts density in the right places; two
maps can score alike and still look different. Both measures here compare a
map with the experimental one under one soft mask (the same weights on both,
e.g. ``mask.soft_envelope`` around the model's atoms), on the experimental
map's grid:

- **amplitude fall-off**: how the map's power falls with resolution. The
  rotationally averaged Fourier amplitude of each masked map in shells from
  1/12 Å⁻¹ to 1/resolution; their log10 ratio, less its mean over the band
  (the overall scale is not the question), averaged as absolute values.
  0 is a map whose amplitudes fall exactly as the experimental map's; 0.3 is
  a factor 2 off on average. Lower is better.
- **local texture**: whether contrast sits where the experimental map has it.
  The Pearson correlation, over the mask, of the two maps' local standard
  deviation (a 3 Å cube) after removing detail coarser than ``TEXTURE_SIGMA``
  (a Gaussian high-pass). Higher is better.
"""
from __future__ import annotations

import numpy as np
from scipy import ndimage

from .errors import InputError
from .map_data import MapData
from .metrics import pearson

LOW_FREQUENCY = 1.0 / 12.0  # Å⁻¹: the fall-off band starts here (coarser shells hold the envelope's shape)
TEXTURE_SIGMA = 3.0  # Å: the high-pass that leaves secondary-structure detail
TEXTURE_WINDOW = 3.0  # Å: the cube over which local contrast is measured


def _check_same_grid(a: MapData, b: MapData, mask: np.ndarray) -> None:
    if a.array.shape != b.array.shape or mask.shape != a.array.shape:
        raise InputError("Map, reference and mask must be on one grid (resample the map onto the reference's).")


def shell_amplitudes(values: np.ndarray, voxel_size: float, edges: np.ndarray) -> np.ndarray:
    """Mean Fourier amplitude of ``values`` in each shell between consecutive ``edges`` (Å⁻¹)."""
    spectrum = np.abs(np.fft.rfftn(values))
    shape = values.shape
    freqs = [np.fft.fftfreq(n, voxel_size) for n in shape[:-1]] + [np.fft.rfftfreq(shape[-1], voxel_size)]
    fz, fy, fx = np.meshgrid(*freqs, indexing="ij", sparse=True)
    radius = np.sqrt(fz ** 2 + fy ** 2 + fx ** 2)
    shell = np.digitize(radius.ravel(), edges) - 1
    inside = (shell >= 0) & (shell < len(edges) - 1)
    sums = np.bincount(shell[inside], spectrum.ravel()[inside], len(edges) - 1)
    counts = np.bincount(shell[inside], minlength=len(edges) - 1)
    return sums / np.maximum(counts, 1)


def amplitude_falloff(map_: MapData, reference: MapData, mask: np.ndarray, resolution: float) -> float:
    """Mean |log10 amplitude ratio| of ``map_`` to ``reference`` from 1/12 Å⁻¹ to 1/``resolution``, scale removed."""
    _check_same_grid(map_, reference, mask)
    spacing = float(reference.voxel_size.max())
    high = min(1.0 / float(resolution), 0.5 / spacing)
    step = 1.0 / (max(reference.array.shape) * spacing)
    if high - LOW_FREQUENCY < 2 * step:
        raise InputError(f"The grid is too small or too coarse to measure amplitudes between 12 Å and "
                         f"{1 / high:.1f} Å.")
    edges = np.arange(LOW_FREQUENCY, high + 1e-9, step)
    weights = np.asarray(mask, np.float64)
    a = shell_amplitudes(map_.array * weights, spacing, edges)
    b = shell_amplitudes(reference.array * weights, spacing, edges)
    keep = (a > 0) & (b > 0)
    if keep.sum() < 2:
        raise InputError("The maps have no power in the measured band.")
    log_ratio = np.log10(a[keep] / b[keep])
    return float(np.mean(np.abs(log_ratio - log_ratio.mean())))


def local_texture(map_: MapData, reference: MapData, mask: np.ndarray) -> float:
    """Correlation, weighted by ``mask``, of the two maps' local contrast after a high-pass."""
    _check_same_grid(map_, reference, mask)
    spacing = float(reference.voxel_size.max())
    size = max(3, int(round(TEXTURE_WINDOW / spacing)) | 1)

    def contrast(values: np.ndarray) -> np.ndarray:
        v = values.astype(np.float64)
        detail = v - ndimage.gaussian_filter(v, TEXTURE_SIGMA / spacing, mode="nearest")
        mean = ndimage.uniform_filter(detail, size, mode="nearest")
        square = ndimage.uniform_filter(detail * detail, size, mode="nearest")
        return np.sqrt(np.maximum(square - mean * mean, 0.0))

    w = np.asarray(mask, np.float64).ravel()
    if not w.sum() > 0:
        raise InputError("The mask is empty.")
    return pearson(contrast(map_.array), contrast(reference.array), weights=w)
