"""Input files checked before they are read, so that each problem is named in one sentence.

"Does not exist" is said only of a path that does not exist: a folder, a
named pipe (which would block the reader), a symbolic link that loops, an
unreadable file and an empty one each get their own sentence.
"""
from __future__ import annotations

import errno
import os
import stat
from pathlib import Path

from .errors import InputError
from .files import special_file_kind


def shown(path: str | os.PathLike) -> str:
    """The path as text that can be printed, bytes that are not UTF-8 shown as �."""
    return os.fsencode(path).decode("utf-8", "replace")


def readable_file(path: str | os.PathLike, what: str) -> Path:
    """``path`` as a Path if it is a non-empty regular file that can be opened; else an InputError.

    ``what`` names the file in messages, e.g. "structure file".
    """
    path = Path(path)
    try:
        info = path.stat()
    except OSError as e:
        if e.errno == errno.ELOOP:
            raise InputError(f"The {what} {shown(path)} is a symbolic link that points to itself in a loop.") from None
        if e.errno in (errno.ENOENT, errno.ENOTDIR):
            raise InputError(f"The {what} {shown(path)} does not exist.") from None
        raise InputError(f"Cannot read the {what} {shown(path)}: {e.strerror or e}.") from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(f"The {what} {shown(path)} is a folder, not a file.")
    kind = special_file_kind(info.st_mode)
    if kind:
        raise InputError(f"The {what} {shown(path)} is {kind}, not a regular file.")
    if info.st_size == 0:
        raise InputError(f"The {what} {shown(path)} is empty (0 bytes).")
    try:
        with open(path, "rb"):
            pass
    except OSError as e:
        raise InputError(f"Cannot read the {what} {shown(path)}: {e.strerror or e}.") from None
    return path
