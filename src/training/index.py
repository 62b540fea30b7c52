"""The prepared dataset's index.json (written by prepare.py): reading it, and its tile entries by name.

index.json stores each tile as a bare list, ``[pair, z, y, x, occupancy]``
under ``tiles`` and ``[map, z, y, x]`` under ``real_tiles``; that format
stays, so that every dataset prepared so far loads. :func:`read_index` turns
the lists into :class:`Tile` and :class:`RealTile`, so that code reads
``tile.pair`` and ``tile.occupancy``, not ``t[0]`` and ``t[4]``; prepare.py
writes them back as lists (``list(Tile(...))``).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import NamedTuple, Sequence

from ..errors import InputError


class Tile(NamedTuple):
    """A training tile: its pair, its corner (z, y, x) in the pair's volumes and its occupancy (the fraction of
    input voxels above 0.01)."""

    pair: str
    z: int
    y: int
    x: int
    occupancy: float

    @property
    def corner(self) -> tuple[int, int, int]:
        return self.z, self.y, self.x


class RealTile(NamedTuple):
    """A tile of an unpaired real map (``prepare --unpaired``): the map's name and the corner (z, y, x)."""

    map: str
    z: int
    y: int
    x: int

    @property
    def corner(self) -> tuple[int, int, int]:
        return self.z, self.y, self.x


def corner_box(corner: Sequence[int], size: int) -> tuple[slice, slice, slice]:
    """The (z, y, x) slices of the cubic tile of ``size`` voxels whose first voxel is ``corner``."""
    return tuple(slice(int(start), int(start) + size) for start in corner)


def read_index(dataset_dir: str | Path) -> dict:
    """The index.json of a folder made by ``struc2map prepare``, its ``tiles`` as :class:`Tile` and its
    ``real_tiles`` as :class:`RealTile` (empty when it has none); an InputError when there is none."""
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
    index["tiles"] = _entries(index["tiles"], Tile, path, "tiles")
    index["real_tiles"] = _entries(index.get("real_tiles", []), RealTile, path, "real_tiles")
    return index


def _entries(stored, kind: type[Tile] | type[RealTile], path: Path, key: str) -> list:
    """The lists under ``key`` as ``kind``; an InputError naming the first entry that is not such a list."""
    fields = kind._fields
    wrong = stored if not isinstance(stored, list) else next(
        (entry for entry in stored if not isinstance(entry, list) or len(entry) != len(fields)), None)
    if wrong is not None:
        raise InputError(f"{path} is not an index of 'struc2map prepare' ({key} holds {str(wrong)[:80]}, not lists "
                         f"[{', '.join(fields)}]); prepare the dataset again.")
    return [kind(*entry) for entry in stored]
