"""Read and write MRC/CCP4 maps (``.mrc``, ``.map``, ``.ccp4``, gzipped too), placed as ChimeraX places them.

Placement follows ChimeraX's own reader (``chimerax/map_data/mrc/mrc_format.py``):

- Voxel size = cell lengths / (MX, MY, MZ); 1 Å when any of them is not positive.
- ``.map`` and ``.ccp4`` files are CCP4 maps for ChimeraX: their ORIGIN field is
  ignored and the first voxel sits at NSTART × voxel size. Other files (``.mrc``)
  use ORIGIN when the map id reads exactly ``MAP `` and ORIGIN is finite and not
  (0, 0, 0); otherwise NSTART × voxel size. NSTART larger than 10 × the grid or
  cell size counts as uninitialised: origin (0, 0, 0).
- MAPC/MAPR/MAPS reorder the stored axes; if they are not a permutation of 1, 2, 3
  the file order is taken as x, y, z.
- Mode 0 is unsigned for old-style MRC files (no ``MAP `` id) and IMOD files, as
  in ChimeraX. Values come back as float32.

Header fields ChimeraX tolerates (bad cell, bad cell angles, bad map id, bad
axis order, ignored ORIGIN) give a warning; files that are not maps, are
truncated or hold complex values raise InputError. Skewed cells (valid angles
other than 90°) are refused: a MapData grid is orthogonal.

Writing mirrors ChimeraX's writers: MRC-2014 float32 with axis order 1, 2, 3 and
cell = shape × voxel size; ``.mrc`` files carry the origin in ORIGIN (NSTART 0),
``.map``/``.ccp4`` files in NSTART (whole voxels only, ORIGIN 0), so that ChimeraX
places them where they belong. Files are written to a temporary name in the
destination folder and renamed, so a failed write leaves no partial file (``files.py``).
A file too large for the memory (a gzip bomb too) is refused before it is unpacked
(``memory.py``).
"""
from __future__ import annotations

import warnings
from pathlib import Path

import mrcfile
import numpy as np

from .errors import InputError
from .files import atomic_path, check_output
from .map_data import MapData
from .memory import check_file_read
from .file_checks import readable_file

CCP4_SUFFIXES = (".map", ".ccp4")
IMOD_SUFFIXES = (".rec",)
IMOD_STAMP = 1146047817
READABLE_MODES = (0, 1, 2, 6, 12)  # int8/uint8, int16, float32, uint16, float16: as ChimeraX


def read_map(path) -> MapData:
    """Read an MRC/CCP4 map (gzipped or not) with ChimeraX's placement rules."""
    path = readable_file(path, "map file")
    check_file_read(path)
    h, data = _read_mrc(path)
    crs_size = (int(h.nx), int(h.ny), int(h.nz))
    if min(crs_size) <= 0:
        raise InputError(f"{path.name} has an empty or negative grid size {crs_size}.")
    if int(h.mode) not in READABLE_MODES:
        raise InputError(f"{path.name} stores values of MRC mode {int(h.mode)}, not real numbers that can be read.")
    file_type = _file_type(path)
    raw = h.tobytes()
    mrc2000 = file_type != "ccp4" and raw[208:212] == b"MAP "

    ijk_to_crs = _axis_order(path, (int(h.mapc), int(h.mapr), int(h.maps)))
    array = _values(data, crs_size, ijk_to_crs, _unsigned_8bit(raw, h, file_type, mrc2000))
    step = _voxel_size(path, h)
    _check_cell_angles(path, h)
    origin = _origin(path, h, step, ijk_to_crs, array.shape[::-1], mrc2000)
    labels = [lab.decode("ascii", "replace").rstrip("\0 ") for lab in h.label]
    return MapData(array, origin, step, {"labels": [lab for lab in labels if lab],
                                         "rms": float(h.rms), "source": path.name})


def check_map_output(path, origin, voxel_size, *, overwrite: bool, inputs=(), others=()) -> Path:
    """``path`` if a map with this placement can be written there (see ``files.check_output``); run it
    before the work, as :func:`write_map` does again before writing."""
    path = check_output(path, overwrite=overwrite, inputs=inputs, others=others)
    origin, voxel_size = np.asarray(origin, dtype=np.float64), np.asarray(voxel_size, dtype=np.float64)
    if _file_type(path) == "ccp4":
        _whole_voxel_start(path, origin, voxel_size)
    else:
        _check_float32_origin(path, origin, voxel_size)
    return path


def _check_float32_origin(path: Path, origin: np.ndarray, voxel_size: np.ndarray) -> None:
    """Refuse an origin that the MRC header's float32 fields would move by more than 1% of a voxel."""
    off = np.abs(origin.astype(np.float32).astype(np.float64) - origin).max()
    if off > 0.01 * voxel_size.min():
        raise InputError(f"Cannot save {path.name}: its origin {tuple(np.round(origin, 3))} Å is too far out for the "
                         f"MRC header's float32 fields, which would place the map {off:.2g} Å off; move the model "
                         "nearer the coordinate origin.")


def _whole_voxel_start(path: Path, origin: np.ndarray, voxel_size: np.ndarray) -> np.ndarray:
    """NSTART of a CCP4 map (``.map``/``.ccp4``), which places the grid in whole voxels only."""
    fstart = origin / voxel_size
    start = np.round(fstart).astype(int)
    if np.abs(start - fstart).max() > 0.01:
        raise InputError(f"Cannot save {path.name}: ChimeraX reads .map/.ccp4 files as CCP4 maps, which place "
                         f"the grid only in whole voxels, and origin {tuple(np.round(origin, 4))} is not; "
                         "use a .mrc name instead.")
    return start


def write_map(path, mapdata: MapData, *, label: str | list[str] | None = None, overwrite: bool = False) -> None:
    """Write a map as MRC mode 2 (float32), atomically; ``.gz`` names are gzipped. ``label``: up to 10
    lines of 80 characters for the header.

    Without ``overwrite`` no file is ever replaced, not even one created while
    the map was written; special files (FIFOs, devices) never are.
    """
    path = check_map_output(path, mapdata.origin, mapdata.voxel_size, overwrite=overwrite)
    origin, start = mapdata.origin, np.zeros(3, dtype=int)
    if _file_type(path) == "ccp4":
        start = _whole_voxel_start(path, mapdata.origin, mapdata.voxel_size)
        origin = np.zeros(3)
    compression = "gzip" if path.suffix.lower() == ".gz" else None
    try:
        with atomic_path(path, overwrite=overwrite) as tmp, \
                mrcfile.new(tmp, compression=compression, overwrite=True) as mrc:
            mrc.set_data(np.ascontiguousarray(mapdata.array, dtype=np.float32))
            mrc.voxel_size = tuple(mapdata.voxel_size)
            h = mrc.header
            h.origin = tuple(origin)
            h.nxstart, h.nystart, h.nzstart = (int(s) for s in start)
            labels = [label] if isinstance(label, str) else list(label or [])
            for k, text in enumerate(labels[:10]):
                h.label[k] = text.encode("ascii", "replace")[:80]
            h.nlabl = min(len(labels), 10)
    except OSError as e:
        raise InputError(f"Could not write the map {path}: {e.strerror or e}.") from e


def _file_type(path: Path) -> str:
    """ChimeraX's format by suffix (``.gz`` aside): 'ccp4', 'imod' or 'mrc'."""
    name = path.name.lower().removesuffix(".gz")
    if name.endswith(CCP4_SUFFIXES):
        return "ccp4"
    return "imod" if name.endswith(IMOD_SUFFIXES) else "mrc"


def _read_mrc(path: Path):
    """Header and raw data via mrcfile (permissive); its complaints become warnings or InputError."""
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with mrcfile.open(path, permissive=True) as mrc:
                header, data = mrc.header.copy(), mrc.data
        except Exception as e:  # mrcfile/gzip raise ValueError, OSError, EOFError... on non-maps
            raise InputError(f"{path.name} is not a readable MRC/CCP4 map ({e}).") from e
    # ChimeraX infers byte order from NX, not the machine stamp: a bad stamp is harmless when NX is plausible.
    harmless = "Unrecognised machine stamp" if 0 < int(header.nx) < 65536 else None
    problems = [str(w.message) for w in caught if not (harmless and str(w.message).startswith(harmless))]
    if data is None:
        raise InputError(f"{path.name} is not a readable MRC/CCP4 map ({'; '.join(problems)}).")
    for problem in problems:
        warnings.warn(f"{path.name}: {problem}", stacklevel=3)
    return header, data


def _axis_order(path: Path, mapcrs: tuple[int, int, int]) -> list[int]:
    """For each of x, y, z, which file axis (0 = column, 1 = row, 2 = section) holds it."""
    if sorted(mapcrs) != [1, 2, 3]:
        warnings.warn(f"{path.name}: axis order MAPC/MAPR/MAPS {mapcrs} is invalid; using 1, 2, 3.", stacklevel=3)
        mapcrs = (1, 2, 3)
    ijk_to_crs = [0, 0, 0]
    for crs, axis in enumerate(mapcrs):
        ijk_to_crs[axis - 1] = crs
    return ijk_to_crs


def _unsigned_8bit(raw: bytes, header, file_type: str, mrc2000: bool) -> bool:
    """ChimeraX's rule for mode 0: unsigned for IMOD (unless flagged signed) and old-style MRC."""
    if mrc2000:
        stamp, flags = np.frombuffer(raw, dtype=header.dtype["mode"], count=2, offset=152)
        if stamp == IMOD_STAMP:
            return not flags & 1
    return file_type == "imod" or (file_type == "mrc" and not mrc2000)


def _values(data: np.ndarray, crs_size, ijk_to_crs: list[int], unsigned: bool) -> np.ndarray:
    """The file's values as a float32 array indexed [z, y, x]."""
    matrix = data.reshape(crs_size[::-1])  # file order [section, row, column]
    if matrix.dtype.kind == "i" and matrix.dtype.itemsize == 1 and unsigned:
        matrix = matrix.view(np.uint8)
    zyx_axes = [2 - ijk_to_crs[2 - a] for a in range(3)]
    return np.ascontiguousarray(matrix.transpose(zyx_axes), dtype=np.float32)


def _voxel_size(path: Path, header) -> np.ndarray:
    grid = np.array([header.mx, header.my, header.mz], dtype=np.float64)
    cell = np.array([header.cella.x, header.cella.y, header.cella.z], dtype=np.float64)
    if (grid > 0).all() and (cell > 0).all():
        return cell / grid
    warnings.warn(f"{path.name}: cell {tuple(cell)} over grid {tuple(grid.astype(int))} gives no voxel size; "
                  "using 1 Å.", stacklevel=3)
    return np.ones(3)


def _check_cell_angles(path: Path, header) -> None:
    """Invalid angles are taken as 90° (as ChimeraX does); valid skewed ones cannot be represented."""
    angles = np.array([header.cellb.alpha, header.cellb.beta, header.cellb.gamma], dtype=np.float64)
    valid = ((angles > 0) & (angles < 180)).all() and angles.sum() < 360 and angles.max() < 0.5 * angles.sum()
    if not valid:
        warnings.warn(f"{path.name}: invalid cell angles {tuple(angles)}; using 90°.", stacklevel=3)
    elif not np.allclose(angles, 90, atol=1e-3):
        raise InputError(f"{path.name} has a skewed cell (angles {tuple(angles)}); only orthogonal grids are supported.")


def _origin(path: Path, header, step: np.ndarray, ijk_to_crs: list[int], size_xyz, mrc2000: bool) -> np.ndarray:
    """Position of voxel (0, 0, 0): ORIGIN or NSTART × step, by ChimeraX's rule."""
    origin = np.array([header.origin.x, header.origin.y, header.origin.z], dtype=np.float64)
    usable = np.isfinite(origin).all() and not (origin + step == origin).any()  # huge = uninitialised
    if origin.any() and usable and mrc2000:
        return origin
    if origin.any() and usable:
        why = "a .map/.ccp4 file" if _file_type(path) == "ccp4" else "a file without the MAP id"
        warnings.warn(f"{path.name}: ORIGIN {tuple(origin)} is ignored for {why}, as ChimeraX does; "
                      "placing the map by NSTART.", stacklevel=3)
    crs_start = (int(header.nxstart), int(header.nystart), int(header.nzstart))
    ijk_start = np.array([crs_start[c] for c in ijk_to_crs], dtype=np.float64)
    limit = 10 * max(int(header.mx), int(header.my), int(header.mz), *size_xyz)
    if (np.abs(ijk_start) > limit).any():
        return np.zeros(3)
    return ijk_start * step
