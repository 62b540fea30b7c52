"""Random batches of co-registered tiles from a prepared dataset (see prepare.py)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch

from .augment import Degradation, augment_pair


class TileSampler:
    """Draws batches of (input, target) tiles from some of the prepared pairs.

    Tiles whose input has density are drawn ``1 - empty_fraction`` of the
    time, empty background tiles the rest (the paper kept all tiles; on a
    small compute budget tiles with density teach more). Volumes are held in
    memory: prepared pairs are small (a 1 Å box around one model).
    """

    def __init__(self, dataset_dir: str | Path, names: list[str] | None = None, *, tile_size: int | None = None,
                 empty_fraction: float = 0.05, min_occupancy: float = 0.02):
        dataset_dir = Path(dataset_dir)
        index = json.loads((dataset_dir / "index.json").read_text(encoding="utf-8"))
        self.tile_size = tile_size or index["config"]["tile_size"]
        names = list(index["pairs"]) if names is None else names
        missing = [n for n in names if n not in index["pairs"]]
        if missing:
            raise ValueError(f"pairs not in the prepared dataset (dropped or failed?): {', '.join(missing)}")
        self.names = names
        self.volumes = {}
        for name in names:
            with np.load(dataset_dir / index["pairs"][name]["file"]) as z:
                self.volumes[name] = (z["input"], z["target"])
        tiles = [t for t in index["tiles"] if t[0] in set(names)]
        if not tiles:
            raise ValueError("no tiles in the selected pairs")
        self.full = [t for t in tiles if t[4] >= min_occupancy]
        self.empty = [t for t in tiles if t[4] < min_occupancy]
        self.empty_fraction = empty_fraction if self.empty and self.full else (0.0 if self.full else 1.0)
        self.tiles = tiles

    def tile(self, entry: list) -> tuple[np.ndarray, np.ndarray]:
        """The input and target arrays of one index entry."""
        name, z, y, x = entry[0], entry[1], entry[2], entry[3]
        t = self.tile_size
        inp, target = self.volumes[name]
        return inp[z:z + t, y:y + t, x:x + t], target[z:z + t, y:y + t, x:x + t]

    def batch(self, size: int, rng: np.random.Generator, *, degradation: Degradation | None = None,
              rotate: bool = True) -> tuple[torch.Tensor, torch.Tensor]:
        """A random augmented batch, as (B, 1, T, T, T) float tensors."""
        pairs = []
        for _ in range(size):
            pool = self.empty if rng.random() < self.empty_fraction else self.full
            inp, target = self.tile(pool[int(rng.integers(len(pool)))])
            pairs.append(augment_pair(inp, target, rng, degradation, rotate))
        x = torch.from_numpy(np.stack([p[0] for p in pairs])[:, None])
        y = torch.from_numpy(np.stack([p[1] for p in pairs])[:, None])
        return x, y

    def fixed_batches(self, size: int, limit: int, seed: int = 0) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Up to ``limit`` tiles with density, unaugmented, in batches: a stable validation set."""
        rng = np.random.default_rng(seed)
        pool = self.full or self.tiles
        chosen = [pool[i] for i in rng.permutation(len(pool))[:limit]]
        batches = []
        for start in range(0, len(chosen), size):
            arrays = [self.tile(e) for e in chosen[start:start + size]]
            batches.append((torch.from_numpy(np.stack([a[0] for a in arrays])[:, None]),
                            torch.from_numpy(np.stack([a[1] for a in arrays])[:, None])))
        return batches
