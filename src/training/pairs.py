"""Lists of map/model pairs for training: whitespace table, CSV or JSON."""
from __future__ import annotations

import csv
import json
from dataclasses import asdict, dataclass
from pathlib import Path

from ..errors import InputError
from ..files import is_plain_name


@dataclass
class Pair:
    """One experimental map with the model fitted in it."""

    name: str
    map: Path
    model: Path
    resolution: float
    emdb: str = ""
    pdb: str = ""

    def to_json(self) -> dict:
        d = asdict(self)
        d["map"], d["model"] = str(self.map), str(self.model)
        return d


def _pair(row: dict, base: Path, where: str) -> Pair:
    try:
        name = row.get("name") or Path(row["map"]).parent.name or Path(row["map"]).stem
        resolution = float(row["resolution"] if "resolution" in row else row["resolution_A"])
        pair = Pair(str(name), base / row["map"], base / row["model"], resolution,
                    str(row.get("emdb") or ""), str(row.get("pdb") or ""))
    except (KeyError, ValueError, TypeError) as e:
        raise InputError(f"{where}: a pair needs map, model and resolution ({e}).") from None
    if not is_plain_name(pair.name):
        raise InputError(f"{where}: the pair name {pair.name!r} cannot name a file in the dataset; use letters, "
                         "digits, '.', '_' and '-', starting with a letter or digit.")
    return pair


def read_pairs(path: str | Path) -> list[Pair]:
    """Read a pair list; relative paths are taken relative to the list's folder.

    Formats: ``.json`` (a list of objects), ``.csv`` (header row), or a
    whitespace table ``name map model resolution_A`` with ``#`` comments
    (the format of shared/data/pairs.txt).
    """
    path = Path(path)
    if not path.is_file():
        raise InputError(f"Pair list {path} does not exist.")
    base = path.parent
    try:
        text = path.read_text(encoding="utf-8")
        rows = json.loads(text) if path.suffix.lower() == ".json" else None
    except UnicodeDecodeError:
        raise InputError(f"Pair list {path} is not a text file (it is not UTF-8 text).") from None
    except json.JSONDecodeError as err:
        raise InputError(f"Pair list {path} is not valid JSON ({err}).") from None
    if path.suffix.lower() == ".csv":
        rows = list(csv.DictReader(text.splitlines()))
    elif rows is None:
        rows = []
        for line in text.splitlines():
            fields = line.split("#", 1)[0].split()
            if fields:
                if len(fields) < 4:
                    raise InputError(f"{path}: expected 'name map model resolution' in line {line!r}.")
                rows.append(dict(zip(("name", "map", "model", "resolution"), fields)))
    if not isinstance(rows, list) or not rows:
        raise InputError(f"Pair list {path} lists no pairs.")
    pairs = [_pair(r, base, str(path)) for r in rows]
    names = [p.name for p in pairs]
    if len(set(names)) != len(names):
        raise InputError(f"{path}: pair names must be unique.")
    return pairs


def select(pairs: list[Pair], names: list[str] | None) -> list[Pair]:
    """The pairs with the given names (all when names is None), in list order."""
    if names is None:
        return pairs
    known = {p.name for p in pairs}
    unknown = [n for n in names if n not in known]
    if unknown:
        raise InputError(f"Unknown pair name(s): {', '.join(unknown)}.")
    return [p for p in pairs if p.name in set(names)]
