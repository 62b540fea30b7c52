"""Data augmentation for training tiles.

Only proper rotations (the 24 rotations of the cube) are applied jointly to
input and target: a mirror would turn right-handed helices left-handed, which
real maps never show. The paper's input-only degradations (anisotropy, blur,
noise) make the generator robust to imperfect simulated inputs.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import ndimage


def _orientations() -> list[tuple[tuple[int, int], int]]:
    """Six ways to bring a face of the cube to the front, as (rot90 axes, turns)."""
    return [((0, 1), 0), ((0, 1), 1), ((0, 1), 2), ((0, 1), 3), ((0, 2), 1), ((0, 2), 3)]


def cube_rotation(volume: np.ndarray, index: int) -> np.ndarray:
    """The ``index``-th (0-23) proper rotation of a cubic volume about its centre."""
    if not 0 <= index < 24:
        raise ValueError("rotation index must be in 0..23")
    axes, turns = _orientations()[index // 4]
    return np.rot90(np.rot90(volume, turns, axes), index % 4, (1, 2))


@dataclass
class Degradation:
    """The paper's input-only augmentation, each applied with probability ``p``."""

    p: float = 0.25
    anisotropy_factor: float = 1.5
    max_blur_sigma: float = 0.5
    noise_std: float = 0.1

    def __call__(self, volume: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        out = volume
        if rng.random() < self.p:
            out = anisotropic(out, int(rng.integers(3)), self.anisotropy_factor)
        if rng.random() < self.p:
            out = ndimage.gaussian_filter(out, rng.uniform(0.0, self.max_blur_sigma), mode="constant")
        if rng.random() < self.p:
            out = out + rng.normal(0.0, self.noise_std, out.shape).astype(out.dtype)
        return out.astype(np.float32, copy=False)


def anisotropic(volume: np.ndarray, axis: int, factor: float) -> np.ndarray:
    """Lose resolution along one axis: shrink it by ``factor``, then stretch it back."""
    zoom_down = [1.0] * 3
    zoom_down[axis] = 1.0 / factor
    small = ndimage.zoom(volume, zoom_down, order=1, mode="nearest")
    zoom_up = [1.0] * 3
    zoom_up[axis] = volume.shape[axis] / small.shape[axis]
    out = ndimage.zoom(small, zoom_up, order=1, mode="nearest")
    return out[: volume.shape[0], : volume.shape[1], : volume.shape[2]]


def augment_pair(inp: np.ndarray, target: np.ndarray, rng: np.random.Generator,
                 degradation: Degradation | None = None, rotate: bool = True) -> tuple[np.ndarray, np.ndarray]:
    """One random proper rotation of the (C, T, T, T) input and the (T, T, T) target, then degrade the
    input's first channel (the simulated map) only."""
    if rotate:
        r = int(rng.integers(24))
        inp = np.stack([cube_rotation(channel, r) for channel in inp])
        target = cube_rotation(target, r)
    if degradation is not None:
        inp = np.concatenate([degradation(inp[0], rng)[None], inp[1:]])
    return np.ascontiguousarray(inp, np.float32), np.ascontiguousarray(target, np.float32)
