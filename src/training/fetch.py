"""Download EMDB maps and PDB models by ID and write a pair list for ``struc2map prepare``.

The ID list has one pair a line: ``EMD-1234 1ABC [resolution_Å]`` (``#``
comments). Without a resolution, it is read from the EMDB entry's header XML.
Files already downloaded are kept and an interrupted download is resumed
(``download.py``); a failed entry is reported and left out of the pair list,
never half-written.
"""
from __future__ import annotations

import re
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

from ..download import download
from ..errors import InputError, Struc2mapError
from ..files import output_folder, write_csv
from ..file_checks import readable_file

EMDB_URL = "https://files.wwpdb.org/pub/emdb/structures"
PDB_URL = "https://files.rcsb.org/download"
GZIP_MAGIC = b"\x1f\x8b"  # maps and models come gzipped: anything else (an HTML page) is not kept


@dataclass
class Entry:
    """One line of the ID list."""

    emdb: str  # digits only, e.g. "3488"
    pdb: str  # lower case, e.g. "5me2"
    resolution: float | None = None


def read_ids(path: str | Path) -> list[Entry]:
    """Parse ``EMD-1234 1ABC [resolution]`` lines."""
    path = readable_file(path, "ID list")
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise InputError(f"The ID list {path} is not a text file (it is not UTF-8 text).") from None
    entries = []
    for n, line in enumerate(text.splitlines(), 1):
        fields = line.split("#", 1)[0].split()
        if not fields:
            continue
        match = re.fullmatch(r"(?:EMD-?)?(\d{4,5})", fields[0], re.IGNORECASE)
        resolution = _resolution(fields[2]) if len(fields) > 2 else None
        if len(fields) not in (2, 3) or not match or not re.fullmatch(r"[0-9][A-Za-z0-9]{3}", fields[1]) \
                or resolution == 0:
            raise InputError(f"{path}, line {n}: expected 'EMD-1234 1ABC [resolution in Å]', got {line.strip()!r}.")
        entries.append(Entry(match.group(1), fields[1].lower(), resolution))
    if not entries:
        raise InputError(f"The ID list {path} lists no entries.")
    return entries


def _resolution(text: str) -> float:
    """A resolution in Å from an ID list, or 0 when the text is not one."""
    try:
        value = float(text)
    except ValueError:
        return 0.0
    return value if 0 < value < 100 else 0.0


def header_resolution(xml_path: Path) -> float:
    """The reported resolution in an EMDB header XML (v3 ``resolution`` or v1.9 ``resolutionByAuthor``)."""
    root = ET.parse(xml_path).getroot()
    for tag in ("resolution", "resolutionByAuthor"):
        for element in root.iter():
            if element.tag.split("}")[-1] == tag and element.text and element.text.strip():
                try:
                    return float(element.text)
                except ValueError:
                    continue
    raise InputError(f"{xml_path.name} gives no resolution.")


def fetch(entries: list[Entry], out_dir: str | Path, *, emdb_url: str = EMDB_URL, pdb_url: str = PDB_URL,
          log: Callable[[str], None] = print) -> tuple[Path, dict[str, str]]:
    """Download every entry; write ``OUT/pairs.csv``; return its path and the failures {name: reason}."""
    out_dir = output_folder(out_dir)
    rows, failed = [], {}
    for e in entries:
        name = f"emd{e.emdb}_{e.pdb}"
        try:
            map_path = download(f"{emdb_url}/EMD-{e.emdb}/map/emd_{e.emdb}.map.gz",
                                out_dir / name / f"emd_{e.emdb}.map.gz", starts_with=GZIP_MAGIC)
            model_path = download(f"{pdb_url}/{e.pdb}.cif.gz", out_dir / name / f"{e.pdb}.cif.gz",
                                  starts_with=GZIP_MAGIC)
            resolution = e.resolution
            if resolution is None:
                xml = download(f"{emdb_url}/EMD-{e.emdb}/header/emd-{e.emdb}.xml", out_dir / name / f"emd-{e.emdb}.xml")
                resolution = header_resolution(xml)
        except (OSError, Struc2mapError, ET.ParseError) as err:  # network, wrong file, bad header
            failed[name] = f"{type(err).__name__}: {err}"
            log(f"{name}: FAILED ({failed[name]})")
            continue
        rows.append({"name": name, "map": str(map_path.relative_to(out_dir)),
                     "model": str(model_path.relative_to(out_dir)), "resolution": resolution,
                     "emdb": f"EMD-{e.emdb}", "pdb": e.pdb.upper()})
        log(f"{name}: ok ({resolution:g} Å)")
    pairs = out_dir / "pairs.csv"
    write_csv(pairs, rows, overwrite=True, fieldnames=["name", "map", "model", "resolution", "emdb", "pdb"])
    return pairs, failed
