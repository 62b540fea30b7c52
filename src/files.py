"""The one way the project writes files: checked before the work, written whole, never over what it must not replace.

- :func:`check_output` runs before any work: the folder exists and is
  writable, the path is a regular file or absent (never a FIFO, device or
  folder, even when overwriting is allowed), it exists only if overwriting is
  allowed, and it is none of the run's inputs nor another output of the run.
- :func:`atomic_path` writes to a temporary file beside the target and
  publishes it at the end: with a hard link when the target must not be
  replaced (so a file created meanwhile is never lost), with a rename when it
  may be. Its temporary files are named ``.NAME.struc2map-HOST-PID-XXXX.tmp``;
  those left by a dead process of this host (kill -9) are removed the next
  time the same target is written, with a warning.
- :func:`open_appending` opens the files that grow in place (a batch log, a
  download's ``.part``), never through a symbolic link and never a FIFO or
  device, which would block or write elsewhere.
- :func:`output_folder` makes sure a folder outputs go to exists and is writable.
- :func:`is_plain_name` says whether a name read from a list can name a file
  inside a folder (no folder separators, no ``..``).
"""
from __future__ import annotations

import csv
import errno
import hashlib
import io
import os
import re
import socket
import stat
import tempfile
import warnings
from contextlib import contextmanager
from pathlib import Path
from typing import BinaryIO, Iterable, Iterator

from .errors import InputError

TEMP_TAG = "struc2map"
PLAIN_NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")
_NO_LINKS = (errno.EPERM, errno.EOPNOTSUPP, errno.ENOTSUP, errno.EXDEV, errno.EMLINK, errno.ENOSYS)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _host() -> str:
    """This machine's name as it goes into temporary names (letters and digits only)."""
    return re.sub(r"[^A-Za-z0-9]", "", socket.gethostname())[:24] or "host"


def _temp_pattern(target: Path, suffix: str) -> re.Pattern:
    return re.compile(rf"\.{re.escape(target.name)}\.{TEMP_TAG}-(?P<host>[A-Za-z0-9]+)-(?P<pid>\d+)-\w+"
                      rf"{re.escape(suffix)}")


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # someone else's process
        return True
    return True


def remove_stale_temporaries(target: str | os.PathLike, suffix: str = ".tmp") -> list[Path]:
    """Remove the temporary files for ``target`` left by dead processes of this host; returns them.

    Temporaries of live processes, and of other hosts (a shared folder of a
    cluster), are left alone.
    """
    target = Path(target)
    pattern, host, removed = _temp_pattern(target, suffix), _host(), []
    try:
        names = os.listdir(target.parent if str(target.parent) else ".")
    except OSError:
        return removed
    for name in names:
        match = pattern.fullmatch(name)
        if match and match["host"] == host and not _alive(int(match["pid"])):
            stale = target.parent / name
            try:
                stale.unlink()
            except OSError:
                continue
            removed.append(stale)
    return removed


def _same_file(a: Path, b: Path) -> bool:
    try:
        return os.path.samefile(a, b)
    except OSError:  # one is missing, or a link that loops: compare the names they resolve to
        return os.path.realpath(a) == os.path.realpath(b)


def special_file_kind(mode: int) -> str | None:
    """What a file of ``os.stat`` mode ``mode`` is when it is not a regular file ('a FIFO', ...), else None."""
    kinds = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (named pipe)"), (stat.S_ISCHR, "a character device"),
             (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))
    if stat.S_ISREG(mode):
        return None
    return next((kind for test, kind in kinds if test(mode)), "not a regular file")


def _check_kind(path: Path) -> bool:
    """Whether ``path`` exists; raises InputError when it is anything but a regular file."""
    try:
        mode = path.stat().st_mode
    except FileNotFoundError:
        if path.is_symlink():
            raise InputError(f"Cannot write {path}: it is a link to a missing file.") from None
        return False
    except OSError as e:
        raise InputError(f"Cannot write {path}: {e.strerror or e}.") from e
    kind = special_file_kind(mode)
    if kind:
        raise InputError(f"Cannot write {path}: it is {kind}, not a regular file, and is never replaced.")
    return True


def check_output(path: str | os.PathLike, *, overwrite: bool, inputs: Iterable[str | os.PathLike | None] = (),
                 others: Iterable[str | os.PathLike | None] = (), flag: str = "--overwrite") -> Path:
    """``path`` if it can be written; else InputError, before any work is done.

    ``inputs`` are files the run reads (never replaced, even when overwriting is
    allowed); ``others`` are the run's other outputs (two outputs must not share
    a path); None entries are ignored. ``flag`` names the way to allow overwriting.
    """
    out = Path(path).expanduser()
    if not out.name or out.name in (".", "..") or str(path).endswith(("/", os.sep)):
        raise InputError(f"Cannot write {path}: it names a folder, not a file.")
    folder = out.parent
    if not folder.is_dir():
        raise InputError(f"Cannot write {out}: folder {folder} does not exist.")
    if not os.access(folder, os.W_OK | os.X_OK):
        raise InputError(f"Cannot write {out}: folder {folder} is not writable.")
    exists = _check_kind(out)
    for other in others:
        if other is not None and _same_file(out, Path(other).expanduser()):
            raise InputError(f"Cannot write two outputs to the same file {out}; give each its own name.")
    for source in inputs:
        if source is not None and _same_file(out, Path(source).expanduser()):
            raise InputError(f"Cannot write {out}: it is an input of this run ({source}) and would be replaced "
                             "while it is used; choose another name.")
    if exists and not overwrite:
        raise InputError(f"{out} already exists; choose another name or use {flag} to replace it.")
    return out


def _publish(tmp: Path, target: Path, overwrite: bool) -> None:
    """Move the finished ``tmp`` to ``target``; without ``overwrite`` never replace a file, however new."""
    if overwrite:
        _check_kind(target)  # a FIFO or device put there meanwhile is not replaced either
        os.replace(tmp, target)
        return
    try:
        os.link(tmp, target)  # fails if target exists, atomically
    except FileExistsError:
        raise InputError(f"{target} was created by something else while this ran; it was left as it was "
                         "and the new file was not saved.") from None
    except OSError as e:
        if e.errno not in _NO_LINKS:
            raise
        # A file system without hard links: claim the name exclusively, then rename over the claim.
        try:
            os.close(os.open(target, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            raise InputError(f"{target} was created by something else while this ran; it was left as it was "
                             "and the new file was not saved.") from None
        os.replace(tmp, target)


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ".tmp", *, overwrite: bool = True) -> Iterator[Path]:
    """A temporary path beside ``target`` to write to; on a clean exit it becomes ``target``.

    With ``overwrite=False`` an existing ``target`` is never replaced, even one
    created while the caller wrote (InputError). Special files (FIFOs,
    devices, folders) are never replaced. On any error the temporary file is
    removed and ``target`` is left as it was. The file gets the permissions a
    newly created file would (the umask), not mkstemp's private ones. Errors
    from the folder (missing, read-only) surface as OSError.
    """
    target = Path(target)
    _check_kind(target)
    for stale in remove_stale_temporaries(target, suffix):
        warnings.warn(f"removed {stale}, a temporary file left by an interrupted run.", stacklevel=3)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.{TEMP_TAG}-{_host()}-{os.getpid()}-", suffix=suffix,
                                dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        _publish(tmp, target, overwrite)
    finally:
        tmp.unlink(missing_ok=True)


def write_text(path: str | os.PathLike, text: str, *, overwrite: bool) -> None:
    """Write a small text file (e.g. a JSON summary) atomically, by the rules of :func:`atomic_path`."""
    try:
        with atomic_path(path, overwrite=overwrite) as tmp:
            tmp.write_text(text, encoding="utf-8")
    except OSError as e:
        raise InputError(f"Could not write {path}: {e.strerror or e}.") from e


def output_folder(path: str | os.PathLike, what: str = "output folder") -> Path:
    """``path`` as a folder to write into, created with its parents if missing; an InputError when it is a
    file or cannot be created or written (``what`` names it in the message)."""
    path = Path(path).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except FileExistsError:
        raise InputError(f"The {what} {path} is a file, not a folder.") from None
    except OSError as e:
        raise InputError(f"Cannot create the {what} {path}: {e.strerror or e}.") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise InputError(f"The {what} {path} is not writable.")
    return path


def write_csv(path: str | os.PathLike, rows: list[dict], *, overwrite: bool,
              fieldnames: list[str] | None = None) -> None:
    """Write ``rows`` as a CSV table with a header (``fieldnames``, default the first row's keys; missing
    values empty) by the rules of :func:`write_text`."""
    text = io.StringIO()
    writer = csv.DictWriter(text, fieldnames=fieldnames or list(rows[0]), restval="", lineterminator="\n")
    writer.writeheader()
    writer.writerows(rows)
    write_text(path, text.getvalue(), overwrite=overwrite)


def is_plain_name(name: str) -> bool:
    """Whether ``name`` can name a file in a folder: letters, digits, '.', '_' and '-', starting with neither
    of the first two (so never a path, '..' or a hidden file)."""
    return bool(PLAIN_NAME.fullmatch(name))


def open_appending(path: str | os.PathLike, *, truncate: bool = False) -> BinaryIO:
    """``path`` opened for binary writes at its end (created if missing; emptied first with ``truncate``).

    A symbolic link, FIFO, device or folder there is refused with an
    InputError (opened without blocking, then checked), so nothing is written
    through a planted link and nothing hangs.
    """
    path = Path(path)
    if path.is_symlink():
        raise InputError(f"Cannot write {path}: it is a symbolic link, and files are never written through one.")
    flags = (os.O_WRONLY | os.O_APPEND | os.O_CREAT | getattr(os, "O_NOFOLLOW", 0) | getattr(os, "O_NONBLOCK", 0)
             | getattr(os, "O_BINARY", 0))
    try:
        fd = os.open(path, flags, 0o666)
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(f"Cannot write {path}: it is a symbolic link, and files are never written through "
                             "one.") from None
        if e.errno in (errno.ENXIO, errno.EISDIR):  # a FIFO without a reader; a folder
            raise InputError(f"Cannot write {path}: it is not a regular file, and is never written to.") from None
        raise InputError(f"Cannot write {path}: {e.strerror or e}.") from None
    kind = special_file_kind(os.fstat(fd).st_mode)
    if kind:
        os.close(fd)
        raise InputError(f"Cannot write {path}: it is {kind}, not a regular file, and is never written to.")
    if hasattr(os, "set_blocking"):
        os.set_blocking(fd, True)
    if truncate:
        os.ftruncate(fd, 0)
    return os.fdopen(fd, "ab")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()
