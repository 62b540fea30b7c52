"""Turn map/model pairs into co-registered (molmap input, experimental target) volumes and a tile index.

For each pair: the experimental map is resampled onto a 1 Å grid around the
model (the grid ``generate`` uses), masked to voxels within ``mask_radius``
of an atom (as the paper's phenix.map_box mask_atoms) and normalised; the
input is molmap at 2 Å on the same grid, min-max normalised. Pairs whose
molmap at the reported resolution correlates poorly with the map are
reported and dropped. Results go to ``OUT/pairs/NAME.npz`` plus
``OUT/index.json``; a pair already prepared with the same settings is
reused, so the step is idempotent and resumable.
"""
from __future__ import annotations

import hashlib
import json
import os
import traceback
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Callable

import numpy as np

from ..files import atomic_path
from ..grid import MapData
from ..mapio import read_map
from ..mask import atom_mask
from ..metrics import chimerax_correlation
from ..molmap import molmap, molmap_grid, normalize_minmax
from ..resample import resample_onto
from ..structure import read_structure
from .pairs import Pair

FORMAT_VERSION = 1


@dataclass
class PrepareConfig:
    """Settings of the prepare step (all recorded in the dataset)."""

    input_resolution: float = 2.0
    grid_spacing: float = 1.0
    edge_padding: float = 6.0
    mask_radius: float = 3.0
    normalisation: str = "minmax"  # or "percentile": max taken at the upper percentile of masked-in voxels
    upper_percentile: float = 99.9
    min_correlation: float = 0.6
    tile_size: int = 32
    stride: int = 20

    def key(self) -> str:
        """Checksum of the settings, to know whether a prepared pair can be reused."""
        text = json.dumps({**asdict(self), "format": FORMAT_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]


def model_grid(coords: np.ndarray, config: PrepareConfig) -> MapData:
    """The empty 1 Å grid around a model on which input and target are made."""
    origin, shape = molmap_grid(coords, config.input_resolution, grid_spacing=config.grid_spacing,
                                edge_padding=config.edge_padding)
    return MapData(np.zeros(shape, np.float32), origin, config.grid_spacing)


def normalise_target(values: np.ndarray, mask: np.ndarray, config: PrepareConfig) -> np.ndarray:
    """Mask then scale to [0, 1]; masked-out voxels become the (small positive) background."""
    masked = np.where(mask, values, 0.0).astype(np.float32)
    if config.normalisation == "minmax":
        return normalize_minmax(masked)
    if config.normalisation == "percentile":
        lo = float(masked.min())
        hi = float(np.percentile(values[mask], config.upper_percentile)) if mask.any() else lo
        if hi <= lo:
            return np.zeros_like(masked)
        return np.clip((masked - lo) / (hi - lo), 0.0, 1.0).astype(np.float32)
    raise ValueError(f"unknown normalisation {config.normalisation!r}")


def tile_corners(shape: tuple[int, int, int], tile: int, stride: int) -> np.ndarray:
    """(n, 3) z, y, x corners of tiles covering a volume (the last tile per axis flush with the end)."""
    axes = []
    for n in shape:
        starts = list(range(0, max(n - tile, 0) + 1, stride))
        if starts[-1] + tile < n:
            starts.append(n - tile)
        axes.append(starts)
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def pad_to(volume: np.ndarray, size: int, value: float) -> np.ndarray:
    """Pad at the high end so that every axis is at least ``size`` long."""
    pad = [(0, max(size - n, 0)) for n in volume.shape]
    return np.pad(volume, pad, constant_values=value)


def prepare_pair(pair: Pair, config: PrepareConfig) -> dict:
    """Input and target volumes for one pair, with its quality numbers."""
    atoms = read_structure(pair.model)
    exp = read_map(pair.map)
    grid = model_grid(atoms.coords, config)
    exp_on_grid = resample_onto(exp, grid).array
    reference = molmap(atoms.coords, atoms.atomic_numbers, pair.resolution, on_grid=grid)
    quality = chimerax_correlation(reference, grid.with_array(exp_on_grid))
    mask = atom_mask(grid, atoms.coords, config.mask_radius)
    target = normalise_target(exp_on_grid, mask, config)
    inp = normalize_minmax(molmap(atoms.coords, atoms.atomic_numbers, config.input_resolution, on_grid=grid).array)
    background = float(target[~mask].mean()) if (~mask).any() else 0.0
    inp = pad_to(inp, config.tile_size, 0.0)
    target = pad_to(target, config.tile_size, background)
    return {
        "input": inp.astype(np.float32), "target": target.astype(np.float32),
        "origin": grid.origin, "voxel_size": grid.voxel_size,
        "atoms": len(atoms.coords), "background": background,
        "molmap_correlation": float(quality["correlation"]),
        "molmap_correlation_about_mean": float(quality["correlation_about_mean"]),
    }


def _save_npz(path: Path, arrays: dict) -> None:
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        np.savez(f, **arrays)


def _load_meta(path: Path) -> dict | None:
    try:
        with np.load(path) as z:
            return json.loads(str(z["meta"]))
    except Exception:
        return None


def prepare(pairs: list[Pair], out_dir: str | Path, config: PrepareConfig = PrepareConfig(), *,
            log: Callable[[str], None] = print) -> dict:
    """Prepare every pair into ``out_dir``; returns (and writes) the index.

    The index lists, per kept pair, its file and quality numbers, and per tile
    its pair, corner (z, y, x) and occupancy (fraction of input voxels above
    0.01). Dropped and failed pairs are listed with the reason.
    """
    out_dir = Path(out_dir)
    (out_dir / "pairs").mkdir(parents=True, exist_ok=True)
    key = config.key()
    index = {"format_version": FORMAT_VERSION, "config": asdict(config), "config_key": key,
             "pairs": {}, "dropped": {}, "failed": {}, "tiles": []}
    for pair in pairs:
        path = out_dir / "pairs" / f"{pair.name}.npz"
        meta = _load_meta(path) if path.exists() else None
        inp = None  # the input volume, once in memory
        if meta is None or meta.get("config_key") != key:
            try:
                data = prepare_pair(pair, config)
            except Exception as e:  # a bad pair is reported and skipped, never kept
                index["failed"][pair.name] = f"{type(e).__name__}: {e}"
                log(f"{pair.name}: FAILED ({type(e).__name__}: {e})")
                if os.environ.get("STRUC2MAP_DEBUG"):
                    traceback.print_exc()
                continue
            meta = {"config_key": key, "pair": pair.to_json(),
                    **{k: data[k] for k in ("atoms", "background", "molmap_correlation",
                                            "molmap_correlation_about_mean")},
                    "origin": data["origin"].tolist(), "voxel_size": data["voxel_size"].tolist()}
            _save_npz(path, {"input": data["input"], "target": data["target"], "meta": json.dumps(meta)})
            inp = data["input"]
            log(f"{pair.name}: prepared, grid {data['input'].shape[::-1]}, "
                f"molmap correlation {meta['molmap_correlation']:.3f}")
        else:
            log(f"{pair.name}: already prepared")
        if meta["molmap_correlation"] < config.min_correlation:
            index["dropped"][pair.name] = (f"molmap correlation {meta['molmap_correlation']:.3f} "
                                           f"< {config.min_correlation}")
            log(f"{pair.name}: dropped ({index['dropped'][pair.name]})")
            continue
        if inp is None:
            with np.load(path) as z:
                inp = z["input"]
        corners = tile_corners(inp.shape, config.tile_size, config.stride)
        t = config.tile_size
        occupied = (inp > 0.01)
        for c in corners:
            occ = float(occupied[c[0]:c[0] + t, c[1]:c[1] + t, c[2]:c[2] + t].mean())
            index["tiles"].append([pair.name, int(c[0]), int(c[1]), int(c[2]), round(occ, 4)])
        index["pairs"][pair.name] = {"file": f"pairs/{pair.name}.npz", **meta, "tiles": len(corners)}
    (out_dir / "index.json").write_text(json.dumps(index, indent=1), encoding="utf-8")
    return index
