"""Turn map/model pairs into co-registered (input channels, experimental targets) volumes and a tile index.

For each pair: the experimental map is resampled onto a 1 Å grid around the
model (the grid ``generate`` uses), cut to the map's box (``cut_to_map``).
The input is the recipe of ``channels.py``:
molmap at 2 Å, min-max normalised, and the B-factor channel (all zero when the
model's B-factors carry no information). The targets are the experimental map
at its reported resolution and, for teaching the generator what resolution
means, low-pass filtered copies at coarser resolutions (a low-passed
experimental map is a real map at that resolution): each with its solvent
level (median beyond the envelope) made 0, scaled so that its 99th percentile
near the atoms is 1, and weighted by the soft envelope of ``mask.py`` at its
resolution, which is what ``generate`` applies to the output. Pairs whose
molmap at the reported resolution correlates poorly with the map are
reported and dropped. Results go to ``OUT/pairs/NAME.npz`` plus
``OUT/index.json``; a pair already prepared with the same settings is
reused, so the step is idempotent and resumable.
"""
from __future__ import annotations

import json
import os
import traceback
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np

from ..errors import InputError
from ..files import atomic_path, output_folder, write_text
from ..map_data import MapData
from ..channels import bfactors_informative, input_channels
from ..mapio import read_map
from ..mask import atom_distance, envelope_radii, soft_envelope
from ..metrics import chimerax_correlation
from ..molmap import molmap, molmap_grid
from ..resample import resample_onto
from ..resolution import lowpass_to_resolution
from ..structure import read_structure
from .config import FORMAT_VERSION, PrepareConfig
from .index import RealTile, Tile, corner_box
from .pairs import Pair


def model_grid(coords: np.ndarray, config: PrepareConfig, experimental: MapData | None = None) -> MapData:
    """The empty 1 Å grid around a model on which input and target are made, cut to the ``experimental`` map's
    box when one is given.

    Beyond a box-cut map there is no data, not solvent: left in, it would be
    zero targets under the density of atoms near the box's faces and would
    pull the solvent level (a median) towards zero.
    """
    origin, shape = molmap_grid(coords, config.input_resolution, grid_spacing=config.grid_spacing,
                                edge_padding=config.edge_padding)
    if experimental is None:
        return MapData(np.zeros(shape, np.float32), origin, config.grid_spacing)
    spacing = config.grid_spacing
    low = experimental.origin  # xyz of the map's first and (excluded, as resample_onto does) last voxel planes
    high = experimental.ijk_to_xyz(np.array(experimental.shape_xyz, float) - 1.0)
    first = np.maximum(np.ceil((low - origin) / spacing - 1e-6), 0).astype(int)
    last = np.minimum(np.ceil((high - origin) / spacing - 1e-6) - 1, np.array(shape[::-1]) - 1).astype(int)
    if np.any(last < first):
        raise InputError("The model lies outside the experimental map's box.")
    return MapData(np.zeros(tuple((last - first + 1)[::-1]), np.float32), origin + first * spacing, spacing)


def make_target(values: np.ndarray, distance: np.ndarray, resolution: float, percentile: float) -> np.ndarray:
    """Solvent at 0, the ``percentile`` near the atoms at 1, then weighted by the soft envelope."""
    inner, outer = envelope_radii(resolution)
    solvent = values[distance > outer]
    level = float(np.median(solvent)) if solvent.size >= 1000 else 0.0
    near = values[distance <= 2.0] - level
    scale = float(np.percentile(near, percentile)) if near.size else 0.0
    if not scale > 0:
        raise InputError("The map has no positive density near the atoms.")
    return (soft_envelope(distance, inner, outer) * (values - level) / scale).astype(np.float32)


def tile_corners(shape: tuple[int, int, int], tile: int, stride: int) -> np.ndarray:
    """(n, 3) z, y, x corners of tiles covering a volume (the last tile per axis flush with the end)."""
    axes = []
    for n in shape:
        starts = list(range(0, max(n - tile, 0) + 1, stride))
        if starts[-1] + tile < n:
            starts.append(n - tile)
        axes.append(starts)
    return np.stack(np.meshgrid(*axes, indexing="ij"), axis=-1).reshape(-1, 3)


def prepare_pair(pair: Pair, config: PrepareConfig) -> dict:
    """Input channels and targets for one pair, with its quality numbers."""
    atoms = read_structure(pair.model)
    exp = read_map(pair.map)
    grid = model_grid(atoms.coords, config, exp if config.cut_to_map else None)
    exp_on_grid = resample_onto(exp, grid).array.astype(np.float32)
    reference = molmap(atoms.coords, atoms.atomic_numbers, pair.resolution, on_grid=grid)
    quality = chimerax_correlation(reference, grid.with_array(exp_on_grid))
    informative, why_not = bfactors_informative(atoms.b_factors)
    simulated = molmap(atoms.coords, atoms.atomic_numbers, config.input_resolution, on_grid=grid).array
    inp = input_channels(simulated, atoms.coords, atoms.atomic_numbers, atoms.b_factors if informative else None,
                         grid, config.input_resolution, channels=2)
    levels = config.levels(pair.resolution)
    distance = atom_distance(grid, atoms.coords, envelope_radii(max(levels))[1] + 1.0)
    experimental = grid.with_array(exp_on_grid)
    targets = np.stack([make_target(lowpass_to_resolution(experimental, r, pair.resolution)[0].array, distance, r,
                                    config.scale_percentile) for r in levels])
    pad = [(0, 0)] + [(0, max(config.tile_size - n, 0)) for n in grid.array.shape]
    return {
        "input": np.pad(inp, pad), "targets": np.pad(targets, pad), "levels": np.array(levels, np.float32),
        "origin": grid.origin, "voxel_size": grid.voxel_size,
        "atoms": len(atoms.coords), "bfactors_informative": informative, "bfactors_note": why_not,
        "molmap_correlation": float(quality["correlation"]),
        "molmap_correlation_about_mean": float(quality["correlation_about_mean"]),
    }


def _prepare_unpaired(maps: list[Path], out_dir: Path, config: PrepareConfig, index: dict,
                      log: Callable[[str], None]) -> None:
    """Add real maps without models to ``index`` (files under ``unpaired/``), reusing those already made."""
    output_folder(out_dir / "unpaired", "dataset folder")
    key = config.key()
    for source in maps:
        source = Path(source)
        name = source.name.split(".")[0]
        if name in index["unpaired"]:  # its file and tiles would be taken for the other map's
            index["failed"][f"unpaired:{source}"] = f"InputError: {name} names another unpaired map too; rename one"
            log(f"unpaired {source}: FAILED (another unpaired map is also named {name})")
            continue
        meta, _ = _reuse_or_make(out_dir / "unpaired" / f"{name}.npz", f"unpaired {name}", f"unpaired:{name}",
                                 {"config_key": key, "map": str(source)},
                                 lambda: _unpaired_file(source, config), index, log)
        if meta is None:
            continue
        index["unpaired"][name] = {"file": f"unpaired/{name}.npz", "map": str(source),
                                   "region_fraction": meta["region_fraction"], "tiles": len(meta["corners"])}
        index["real_tiles"].extend(list(RealTile(name, *corner)) for corner in meta["corners"])


def _reuse_or_make(path: Path, label: str, failed_key: str, identity: dict,
                   make: Callable[[], tuple[dict, dict, str]], index: dict,
                   log: Callable[[str], None]) -> tuple[dict | None, dict | None]:
    """The dataset's file of one pair or unpaired map: reused when its meta holds ``identity``, else made again.

    ``make()`` gives the meta (besides ``identity``), the arrays saved beside
    it and the log's note on what was made; a failure is reported (in the log
    and as ``index["failed"][failed_key]``) and skipped, never kept. Returns
    (meta, arrays): arrays None when the file was reused, both None on failure.
    """
    meta = _load_meta(path) if path.exists() else None
    if meta is not None and all(meta.get(k) == v for k, v in identity.items()):
        log(f"{label}: already prepared")
        return meta, None
    try:
        made, arrays, note = make()
    except Exception as e:  # a bad pair or map is reported and skipped, never kept
        index["failed"][failed_key] = f"{type(e).__name__}: {e}"
        log(f"{label}: FAILED ({type(e).__name__}: {e})")
        if os.environ.get("STRUC2MAP_DEBUG"):
            traceback.print_exc()
        return None, None
    meta = {**identity, **made}
    _save_npz(path, {**arrays, "meta": json.dumps(meta)})
    log(f"{label}: prepared, {note}")
    return meta, arrays


def _pair_file(pair: Pair, config: PrepareConfig) -> tuple[dict, dict, str]:
    """A pair's meta, arrays and log note (for :func:`_reuse_or_make`)."""
    data = prepare_pair(pair, config)
    meta = {"pair": pair.to_json(),
            **{k: data[k] for k in ("atoms", "bfactors_informative", "bfactors_note",
                                    "molmap_correlation", "molmap_correlation_about_mean")},
            "levels": data["levels"].tolist(),
            "origin": data["origin"].tolist(), "voxel_size": data["voxel_size"].tolist()}
    note = (f"grid {data['input'].shape[:0:-1]}, molmap correlation {meta['molmap_correlation']:.3f}, "
            f"levels {meta['levels']}, "
            f"B-factors {'used' if meta['bfactors_informative'] else 'not used: ' + meta['bfactors_note']}")
    return meta, {"input": data["input"], "targets": data["targets"], "levels": data["levels"]}, note


def _unpaired_file(source: Path, config: PrepareConfig) -> tuple[dict, dict, str]:
    """An unpaired map's meta, arrays and log note (for :func:`_reuse_or_make`)."""
    from .unpaired import prepare_unpaired

    data = prepare_unpaired(source, config)
    corners = data["corners"].tolist()
    meta = {"region_fraction": data["region_fraction"], "corners": corners}
    return meta, {"volume": data["volume"]}, f"grid {data['volume'].shape[::-1]}, {len(corners)} tiles with density"


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
            unpaired: list[Path] = (), log: Callable[[str], None] = print) -> dict:
    """Prepare every pair (and ``unpaired`` real maps) into ``out_dir``; returns (and writes) the index.

    The index lists, per kept pair, its file and quality numbers, and per tile
    its pair, corner (z, y, x) and occupancy (fraction of input voxels above
    0.01), as the list of an ``index.Tile``. Dropped and failed pairs are
    listed with the reason. Unpaired maps (``unpaired.py``) are listed under
    ``unpaired``, their tiles under ``real_tiles`` (lists of ``index.RealTile``).
    """
    out_dir = output_folder(out_dir, "dataset folder")
    output_folder(out_dir / "pairs", "dataset folder")
    key = config.key()
    index = {"format_version": FORMAT_VERSION, "config": asdict(config), "config_key": key,
             "pairs": {}, "dropped": {}, "failed": {}, "tiles": [], "unpaired": {}, "real_tiles": []}
    for pair in pairs:
        path = out_dir / "pairs" / f"{pair.name}.npz"
        meta, arrays = _reuse_or_make(path, pair.name, pair.name, {"config_key": key},
                                      lambda: _pair_file(pair, config), index, log)
        if meta is None:
            continue
        inp = None if arrays is None else arrays["input"]  # the input volume, once in memory
        if meta["molmap_correlation"] < config.min_correlation:
            index["dropped"][pair.name] = (f"molmap correlation {meta['molmap_correlation']:.3f} "
                                           f"< {config.min_correlation}")
            log(f"{pair.name}: dropped ({index['dropped'][pair.name]})")
            continue
        if inp is None:
            with np.load(path) as z:
                inp = z["input"]
        corners = tile_corners(inp.shape[1:], config.tile_size, config.stride)
        t = config.tile_size
        occupied = (inp[0] > 0.01)
        for corner in corners:
            occupancy = float(occupied[corner_box(corner, t)].mean())
            index["tiles"].append(list(Tile(pair.name, *map(int, corner), round(occupancy, 4))))
        index["pairs"][pair.name] = {"file": f"pairs/{pair.name}.npz", **meta, "tiles": len(corners)}
    if unpaired:
        _prepare_unpaired(unpaired, out_dir, config, index, log)
    write_text(out_dir / "index.json", json.dumps(index, indent=1), overwrite=True)
    return index
