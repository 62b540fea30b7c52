"""How much memory a job needs and how much it may have, checked before any large allocation.

A job too large for the machine is refused in one sentence that names the
size and the way out, instead of ending in a MemoryError (or being killed)
halfway. What it may have is the smallest of: the memory available now
(MemAvailable), the room left under the cgroup memory limit (v1 or v2, the
container's or job's), and the room left under the address-space limit
(RLIMIT_AS, ``ulimit -v``).

The bytes per voxel and factors below are measured; the measurements (which
maps, which machine, what each step peaked at) are in benchmarks/README.md,
section 11.
"""
from __future__ import annotations

import math
import os
import resource
import zlib
from pathlib import Path

from .errors import InputError

GENERATE_BYTES_PER_VOXEL = 42
"""generate(): molmap input, B-factor channel, padded channels, output, envelope, low-pass (float32), measured
with the default weights."""
TILE_BYTES_PER_VOXEL = 1500
"""One generator call on the CPU in fp32, per voxel of the batch of tiles (activations), measured."""
MOLMAP_BYTES_PER_VOXEL = 17
"""molmap of a model and writing it, measured."""
COMPARE_BYTES_PER_VOXEL = 60
"""Comparing a map with a reference, per voxel of the reference, measured (reading them included)."""
MAP_READ_FACTOR = 2
"""Reading a map needs about twice its unpacked size (the file's bytes, then the array), measured."""
MODEL_READ_FACTOR = 12
"""Reading a model with gemmi, per byte of the unpacked file: measured 4-9×, with room to spare."""
DEFLATE_MAX_RATIO = 1032
"""The largest unpacked/packed size ratio deflate can reach: a bound when the gzip trailer cannot be trusted."""

_UNLIMITED = 1 << 60  # cgroup v1 writes "no limit" as a number near 2**63


def _read(path: Path) -> str | None:
    try:
        return path.read_text()
    except (OSError, UnicodeDecodeError):
        return None


def _number(text: str | None) -> int | None:
    try:
        return int(text.strip()) if text is not None else None
    except ValueError:
        return None


def _meminfo_available(meminfo: Path) -> int | None:
    for line in (_read(meminfo) or "").splitlines():
        if line.startswith("MemAvailable:"):
            return int(line.split()[1]) * 1024
    return None


def _stat_field(text: str | None, name: str) -> int:
    for line in (text or "").splitlines():
        key, _, value = line.partition(" ")
        if key == name:
            return _number(value) or 0
    return 0


def cgroup_headroom(proc_cgroup: str | os.PathLike = "/proc/self/cgroup",
                    root: str | os.PathLike = "/sys/fs/cgroup") -> int | None:
    """Bytes left under this process's cgroup memory limits (v1 and v2, the tightest level), or None.

    Each level from the process's cgroup up to the mount's root that exists is
    read (in a container the cgroup named in ``/proc/self/cgroup`` is often the
    mount's root); reclaimable page cache (inactive files) counts as free.
    """
    root, rooms = Path(root), []
    for line in (_read(Path(proc_cgroup)) or "").splitlines():
        _, controllers, path = (line.split(":", 2) + ["", ""])[:3]
        if controllers == "":  # v2: memory.max, memory.current
            bases, limit_name, usage_name, cache = [root, root / "unified"], "memory.max", "memory.current", \
                "inactive_file"
        elif "memory" in controllers.split(","):
            bases, limit_name, usage_name, cache = [root / "memory"], "memory.limit_in_bytes", \
                "memory.usage_in_bytes", "total_inactive_file"
        else:
            continue
        parts = [p for p in path.strip().split("/") if p]
        for base in bases:
            for depth in range(len(parts), -1, -1):
                folder = base.joinpath(*parts[:depth])
                limit = _number(_read(folder / limit_name))
                usage = _number(_read(folder / usage_name))
                if limit is None or usage is None or limit >= _UNLIMITED:
                    continue
                rooms.append(max(0, limit - usage + _stat_field(_read(folder / "memory.stat"), cache)))
    return min(rooms) if rooms else None


def address_space_headroom(status: str | os.PathLike = "/proc/self/status") -> int | None:
    """Bytes of address space left under RLIMIT_AS (``ulimit -v``), or None when there is no limit."""
    soft, _ = resource.getrlimit(resource.RLIMIT_AS)
    if soft == resource.RLIM_INFINITY:
        return None
    used = 0
    for line in (_read(Path(status)) or "").splitlines():
        if line.startswith("VmSize:"):
            used = int(line.split()[1]) * 1024
    return max(0, soft - used)


def memory_limit() -> tuple[int, str] | None:
    """(bytes this process may still allocate, what limits it), or None when nothing is known."""
    candidates = [(_meminfo_available(Path("/proc/meminfo")), "free memory"),
                  (cgroup_headroom(), "the cgroup (container or job) memory limit"),
                  (address_space_headroom(), "the address-space limit (ulimit -v)")]
    known = [(have, why) for have, why in candidates if have is not None]
    if not known:
        try:
            return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"), "free memory"
        except (ValueError, OSError, AttributeError):
            return None
    return min(known)


def size_text(nbytes: float) -> str:
    """A byte count for people: '3.2 GB', '250 MB' (powers of 1024)."""
    for unit, scale in (("TB", 2 ** 40), ("GB", 2 ** 30), ("MB", 2 ** 20)):
        if nbytes >= scale or unit == "MB":
            return f"{nbytes / scale:.1f} {unit}"
    raise AssertionError("unreachable")


def refusal(need: float, limit: tuple[int, str] | None, what: str, way_out: str) -> str | None:
    """The sentence refusing a job that needs ``need`` bytes under ``limit``, or None when it fits."""
    if limit is None or need <= limit[0]:
        return None
    have, why = limit
    return f"{what} needs about {size_text(need)} of memory but {size_text(have)} is available ({why}); {way_out}."


def check_memory(need: float, what: str, way_out: str) -> None:
    """Raise InputError (one sentence: size, limit, way out) if ``need`` bytes cannot be allocated now."""
    message = refusal(need, memory_limit(), what, way_out)
    if message:
        raise InputError(message)


def voxel_count(shape: tuple[float, ...]) -> int:
    """Voxels of a grid as an exact integer (no int64 overflow for absurd grids)."""
    return math.prod(int(n) for n in shape)


def grid_text(shape_zyx: tuple[float, ...]) -> str:
    """'X×Y×Z voxels' for a [z, y, x] shape."""
    return "×".join(str(int(n)) for n in shape_zyx[::-1]) + " voxels"


def generate_need(shape_zyx: tuple[int, int, int], tile_size: int, batch_size: int) -> tuple[int, int]:
    """(bytes for the map's arrays, bytes for one batch of tiles on the CPU) of a generate run."""
    return voxel_count(shape_zyx) * GENERATE_BYTES_PER_VOXEL, batch_size * tile_size ** 3 * TILE_BYTES_PER_VOXEL


def check_generate(shape_zyx: tuple[int, int, int], tile_size: int = 32, batch_size: int = 8) -> None:
    """Refuse a generate run whose grid or tile batches would not fit, naming the part that does not."""
    grid, tiles = generate_need(shape_zyx, tile_size, batch_size)
    if tiles > grid:
        way_out = "use a smaller batch size or tile size"
    else:
        way_out = ("split the model into parts or use a finer resolution (the box is padded by 3 × resolution), "
                   "or use a machine with more memory")
    check_memory(grid + tiles, f"A map of {grid_text(shape_zyx)} generated in batches of {batch_size} tiles of "
                               f"{tile_size}³", way_out)


def check_molmap(shape_zyx: tuple[int, int, int], way_out: str = "use a coarser grid spacing, a smaller edge "
                 "padding or a smaller model") -> None:
    """Refuse a molmap whose grid would not fit (also run before ChimeraX's own molmap)."""
    check_memory(voxel_count(shape_zyx) * MOLMAP_BYTES_PER_VOXEL, f"A molmap of {grid_text(shape_zyx)}", way_out)


def check_compare(reference_shape_zyx: tuple[int, int, int]) -> None:
    """Refuse a comparison on a reference grid too large for the memory (resampling, PCC, SSIM)."""
    check_memory(voxel_count(reference_shape_zyx) * COMPARE_BYTES_PER_VOXEL,
                 f"Comparing on the reference's grid of {grid_text(reference_shape_zyx)}",
                 "cut a smaller box from the reference or use a machine with more memory")


def _trailer(path: Path) -> int:
    """A gzip file's ISIZE: its last member's unpacked size modulo 4 GiB."""
    with path.open("rb") as f:
        f.seek(max(0, path.stat().st_size - 4))
        return int.from_bytes(f.read(4), "little")


def gzip_unpacked_size(path: str | os.PathLike, stop_above: int) -> int:
    """Bytes a gzip file unpacks to (at least ``stop_above`` + 1 when more), without holding them in memory.

    When even deflate's largest ratio could not pass ``stop_above``, the
    trailer (ISIZE, the size modulo 4 GiB) is taken, capped by that bound.
    Otherwise the file is unpacked in a stream and counted, stopping as soon
    as the count passes ``stop_above``: neither the trailer nor the size a
    map's header implies can be trusted, as both can be forged. A corrupt
    stream ends the count (the reader reports it).
    """
    path = Path(path)
    bound = path.stat().st_size * DEFLATE_MAX_RATIO
    if bound <= stop_above:
        return min(_trailer(path), bound)
    with path.open("rb") as f:
        counted, inflater, pending = 0, zlib.decompressobj(wbits=31), b""
        try:
            while counted <= stop_above:
                if not pending:
                    pending = f.read(1 << 20)
                    if not pending:
                        break
                counted += len(inflater.decompress(pending, 1 << 24))
                pending = inflater.unconsumed_tail
                if inflater.eof:  # another member may follow (after zero padding, as gzip allows)
                    pending = (inflater.unused_data + pending).lstrip(b"\0")
                    inflater = zlib.decompressobj(wbits=31)
        except zlib.error:
            pass
        return counted


def check_file_read(path: str | os.PathLike, factor: float = MAP_READ_FACTOR,
                    way_out: str = "use a machine with more memory or cut a smaller box from it") -> None:
    """Refuse to read a file (gzipped or not) that would need more than ``factor`` × its size in memory.

    A gzip file's unpacked size is counted in a stream before it is unpacked
    whole (a gzip bomb is refused in a sentence instead of failing inside the
    decompressor).
    """
    path = Path(path)
    limit = memory_limit()
    if limit is None:
        return
    with path.open("rb") as f:
        gzipped = f.read(2) == b"\x1f\x8b"
    stop_above = int(limit[0] / factor)
    size = gzip_unpacked_size(path, stop_above) if gzipped else path.stat().st_size
    if not gzipped:
        what = f"Reading {path.name} ({size_text(size)})"
    else:  # a count stopped early says only "more than"
        more = "over " if size > stop_above else ""
        what = f"Reading {path.name} ({more}{size_text(size)} unpacked)"
    message = refusal(size * factor, limit, what, way_out)
    if message:
        raise InputError(message)
