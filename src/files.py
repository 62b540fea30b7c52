"""Writing files so that no reader ever sees half of one, and a failed write leaves nothing behind."""
from __future__ import annotations

import os
import tempfile
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


@contextmanager
def atomic_path(target: str | os.PathLike, suffix: str = ".tmp") -> Iterator[Path]:
    """A temporary path beside ``target`` to write to; on a clean exit it replaces ``target``.

    On any error the temporary file is removed and ``target`` is left as it
    was. The file gets the permissions a newly created file would (the umask),
    not mkstemp's private ones. Errors from the folder (missing, read-only)
    surface as OSError.
    """
    target = Path(target)
    fd, name = tempfile.mkstemp(prefix=f".{target.name}.", suffix=suffix, dir=target.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        os.chmod(tmp, 0o666 & ~_umask())
        yield tmp
        os.replace(tmp, target)
    finally:
        tmp.unlink(missing_ok=True)
