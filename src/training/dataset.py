"""Random batches of co-registered tiles from a prepared dataset (see prepare.py)."""
from __future__ import annotations

from pathlib import Path
from typing import NamedTuple

import numpy as np
import torch

from ..errors import InputError
from ..channels import resolution_condition
from .augment import Degradation, augment_pair, cube_rotation
from .index import RealTile, Tile, corner_box, read_index

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(input (B, C, T, T, T), condition (B, CONDITION_DIM), target (B, 1, T, T, T)) float tensors."""


class PairVolumes(NamedTuple):
    """A prepared pair's arrays: input channels (C, Z, Y, X), targets (levels, Z, Y, X) and each target's
    resolution."""

    input: np.ndarray
    targets: np.ndarray
    levels: np.ndarray


def load_volumes(dataset_dir: Path, file: str, keys: tuple[str, ...]) -> tuple[np.ndarray, ...]:
    """The arrays ``keys`` of a prepared file of the dataset; an InputError when it is missing or damaged."""
    path = Path(dataset_dir) / file
    try:
        with np.load(path) as z:
            return tuple(z[key] for key in keys)
    except (OSError, ValueError, KeyError, EOFError) as err:
        raise InputError(f"The prepared file {path} cannot be read ({getattr(err, 'strerror', None) or err}); "
                         "prepare the dataset again.") from None


class TileSampler:
    """Draws batches of (input, resolution, target) tiles from some of the prepared pairs.

    Tiles whose input has density are drawn ``1 - empty_fraction`` of the
    time, empty background tiles the rest (the paper kept all tiles; on a
    small compute budget tiles with density teach more). Each tile comes at
    its pair's reported resolution half the time, else at one of the pair's
    coarser target levels. The B-factor channel is zeroed with probability
    ``bfactor_dropout``, so that the generator also works without it. Volumes
    are held in memory: prepared pairs are small (a 1 Å box around one model).
    """

    def __init__(self, dataset_dir: str | Path, names: list[str] | None = None, *, tile_size: int | None = None,
                 empty_fraction: float = 0.05, min_occupancy: float = 0.02, bfactor_dropout: float = 0.0,
                 reported_fraction: float = 0.5):
        dataset_dir = Path(dataset_dir)
        index = read_index(dataset_dir)
        self.tile_size = tile_size or index["config"]["tile_size"]
        self.grid_spacing = float(index["config"]["grid_spacing"])  # Å per voxel, for losses in frequency
        names = list(index["pairs"]) if names is None else names
        missing = [n for n in names if n not in index["pairs"]]
        if missing:
            raise InputError(f"Pairs not in the prepared dataset {dataset_dir} (dropped or failed?): "
                             f"{', '.join(missing)}.")
        self.names = names
        self.volumes: dict[str, PairVolumes] = {}
        for name in names:
            self.volumes[name] = PairVolumes(*load_volumes(dataset_dir, index["pairs"][name]["file"],
                                                           PairVolumes._fields))
        selected = set(names)
        tiles: list[Tile] = [tile for tile in index["tiles"] if tile.pair in selected]
        if not tiles:
            raise InputError(f"The prepared dataset {dataset_dir} has no tiles in the selected pairs.")
        self.full = [tile for tile in tiles if tile.occupancy >= min_occupancy]
        self.empty = [tile for tile in tiles if tile.occupancy < min_occupancy]
        self.empty_fraction = empty_fraction if self.empty and self.full else (0.0 if self.full else 1.0)
        self.tiles = tiles
        self.bfactor_dropout = bfactor_dropout
        self.reported_fraction = reported_fraction

    def tile(self, entry: Tile, level: int) -> tuple[np.ndarray, np.ndarray, float]:
        """The input channels, the target at target level ``level`` and its resolution, of one index entry."""
        volumes = self.volumes[entry.pair]
        box = corner_box(entry.corner, self.tile_size)
        return volumes.input[(slice(None),) + box], volumes.targets[(level,) + box], float(volumes.levels[level])

    def _level(self, name: str, rng: np.random.Generator) -> int:
        n = len(self.volumes[name].levels)
        if n == 1 or rng.random() < self.reported_fraction:
            return 0
        return int(rng.integers(1, n))

    def batch(self, size: int, rng: np.random.Generator, *, degradation: Degradation | None = None,
              rotate: bool = True) -> Batch:
        """A random augmented batch."""
        inputs, conditions, targets = [], [], []
        for _ in range(size):
            pool = self.empty if rng.random() < self.empty_fraction else self.full
            entry = pool[int(rng.integers(len(pool)))]
            inp, target, resolution = self.tile(entry, self._level(entry.pair, rng))
            inp, target = augment_pair(inp, target, rng, degradation, rotate)
            if inp.shape[0] > 1 and rng.random() < self.bfactor_dropout:
                inp[1:] = 0.0
            inputs.append(inp)
            targets.append(target)
            conditions.append(resolution_condition(resolution))
        return _tensors(inputs, conditions, targets)

    def fixed_batches(self, size: int, limit: int, seed: int = 0) -> list[Batch]:
        """Up to ``limit`` tiles with density, unaugmented, each at a fixed random level: a stable validation set."""
        rng = np.random.default_rng(seed)
        pool = self.full or self.tiles
        chosen = [pool[i] for i in rng.permutation(len(pool))[:limit]]
        samples = [self.tile(entry, int(rng.integers(len(self.volumes[entry.pair].levels)))) for entry in chosen]
        return [_tensors([inp for inp, _, _ in part], [resolution_condition(r) for _, _, r in part],
                         [target for _, target, _ in part])
                for part in (samples[start:start + size] for start in range(0, len(samples), size))]


class RealTileSampler:
    """Rotated tiles of the dataset's unpaired real maps (``prepare --unpaired``): extra real samples for the
    discriminator, normalised as targets are (``unpaired.py``). Empty when the dataset has none."""

    def __init__(self, dataset_dir: str | Path):
        dataset_dir = Path(dataset_dir)
        index = read_index(dataset_dir)
        self.tile_size = index["config"]["tile_size"]
        self.volumes = {}
        for name, entry in index.get("unpaired", {}).items():
            self.volumes[name], = load_volumes(dataset_dir, entry["file"], ("volume",))
        self.tiles: list[RealTile] = [tile for tile in index["real_tiles"] if tile.map in self.volumes]

    def __len__(self) -> int:
        return len(self.tiles)

    def batch(self, size: int, rng: np.random.Generator) -> torch.Tensor:
        """(size, 1, T, T, T) random tiles, each in one of the 24 proper rotations."""
        out = []
        for _ in range(size):
            entry = self.tiles[int(rng.integers(len(self.tiles)))]
            tile = self.volumes[entry.map][corner_box(entry.corner, self.tile_size)]
            out.append(np.ascontiguousarray(cube_rotation(tile, int(rng.integers(24)))))
        return torch.from_numpy(np.stack(out)[:, None])


def _tensors(inputs: list, conditions: list, targets: list) -> Batch:
    return (torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(conditions)),
            torch.from_numpy(np.stack(targets)[:, None]))
