"""Random batches of co-registered tiles from a prepared dataset (see prepare.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from ..errors import InputError
from ..inputs import resolution_condition
from .augment import Degradation, augment_pair, cube_rotation

Batch = tuple[torch.Tensor, torch.Tensor, torch.Tensor]
"""(input (B, C, T, T, T), condition (B, CONDITION_DIM), target (B, 1, T, T, T)) float tensors."""


def read_index(dataset_dir: Path) -> dict:
    """The index.json of a folder made by ``struc2map prepare``; an InputError when there is none."""
    path = Path(dataset_dir) / "index.json"
    if not path.is_file():
        raise InputError(f"{dataset_dir} is not a dataset made by 'struc2map prepare' (it has no index.json).")
    try:
        index = json.loads(path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise InputError(f"{path} is damaged ({err}); prepare the dataset again.") from None
    kinds = {"config": dict, "pairs": dict, "tiles": list}
    wrong = [key for key, kind in kinds.items() if not isinstance(index, dict) or not isinstance(index.get(key), kind)]
    if not wrong and not isinstance(index["config"].get("tile_size"), int):
        wrong = ["config.tile_size"]
    if wrong:
        raise InputError(f"{path} is not an index of 'struc2map prepare' (it lacks {', '.join(wrong)}); prepare the "
                         "dataset again.")
    return index


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
        names = list(index["pairs"]) if names is None else names
        missing = [n for n in names if n not in index["pairs"]]
        if missing:
            raise InputError(f"Pairs not in the prepared dataset {dataset_dir} (dropped or failed?): "
                             f"{', '.join(missing)}.")
        self.names = names
        self.volumes = {}
        for name in names:
            self.volumes[name] = load_volumes(dataset_dir, index["pairs"][name]["file"], ("input", "targets", "levels"))
        tiles = [t for t in index["tiles"] if t[0] in set(names)]
        if not tiles:
            raise InputError(f"The prepared dataset {dataset_dir} has no tiles in the selected pairs.")
        self.full = [t for t in tiles if t[4] >= min_occupancy]
        self.empty = [t for t in tiles if t[4] < min_occupancy]
        self.empty_fraction = empty_fraction if self.empty and self.full else (0.0 if self.full else 1.0)
        self.tiles = tiles
        self.bfactor_dropout = bfactor_dropout
        self.reported_fraction = reported_fraction

    def tile(self, entry: list, level: int) -> tuple[np.ndarray, np.ndarray, float]:
        """The input channels, the target at target level ``level`` and its resolution, of one index entry."""
        name, z, y, x = entry[0], entry[1], entry[2], entry[3]
        t = self.tile_size
        inp, targets, levels = self.volumes[name]
        box = (slice(z, z + t), slice(y, y + t), slice(x, x + t))
        return inp[(slice(None),) + box], targets[(level,) + box], float(levels[level])

    def _level(self, name: str, rng: np.random.Generator) -> int:
        n = len(self.volumes[name][2])
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
            inp, target, resolution = self.tile(entry, self._level(entry[0], rng))
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
        tiles = [self.tile(e, int(rng.integers(len(self.volumes[e[0]][2])))) for e in chosen]
        return [_tensors([t[0] for t in part], [resolution_condition(t[2]) for t in part], [t[1] for t in part])
                for part in (tiles[start:start + size] for start in range(0, len(tiles), size))]


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
        self.tiles = [t for t in index.get("real_tiles", []) if t[0] in self.volumes]

    def __len__(self) -> int:
        return len(self.tiles)

    def batch(self, size: int, rng: np.random.Generator) -> torch.Tensor:
        """(size, 1, T, T, T) random tiles, each in one of the 24 proper rotations."""
        t = self.tile_size
        out = []
        for _ in range(size):
            name, z, y, x = self.tiles[int(rng.integers(len(self.tiles)))]
            tile = self.volumes[name][z:z + t, y:y + t, x:x + t]
            out.append(np.ascontiguousarray(cube_rotation(tile, int(rng.integers(24)))))
        return torch.from_numpy(np.stack(out)[:, None])


def _tensors(inputs: list, conditions: list, targets: list) -> Batch:
    return (torch.from_numpy(np.stack(inputs)), torch.from_numpy(np.stack(conditions)),
            torch.from_numpy(np.stack(targets)[:, None]))
