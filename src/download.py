"""The project's one HTTP download: resumable, checked, and never leaving a half-written file under its name.

Bytes arrive in ``NAME.part`` beside the destination; an interrupted
download is resumed from there with an HTTP Range request (from the start
if the server ignores it). When complete, the size and sha256 are checked
(when known) and the file is moved into place with ``files.atomic_path``;
a complete file that fails a check is deleted, not kept for resuming.
"""
from __future__ import annotations

import hashlib
import http.client
import os
import urllib.error
import urllib.request
from pathlib import Path
from typing import Callable

from .files import atomic_path

CHUNK = 1 << 20


class DownloadError(OSError):
    """A download that completed but is not the file expected (wrong size or checksum)."""


def part_path(dest: str | os.PathLike) -> Path:
    """Where the bytes of ``dest`` are collected until the download is complete."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def download(url: str, dest: str | os.PathLike, *, size: int | None = None, sha256: str | None = None,
             timeout: float = 60.0, progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Fetch ``url`` into ``dest`` unless ``dest`` exists; return ``dest``.

    ``size`` (bytes) and ``sha256`` (hex), when given, are checked before the
    file gets its name. ``progress(bytes_so_far, total_or_None)`` is called
    as data arrives. Network errors raise ``OSError`` (urllib's ``URLError``
    and ``HTTPError``, timeouts, ConnectionError for a transfer that broke
    off) with the partial file kept for the next try; a wrong size or
    checksum raises DownloadError (an OSError too).
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    have = part.stat().st_size if part.exists() else 0
    if size is not None and have > size:
        part.unlink()
        have = 0
    if size is None or have < size:
        _fetch_into(url, part, have, timeout, progress)
    with atomic_path(dest, suffix=".check") as tmp:
        os.replace(part, tmp)  # a failed check below deletes it: a wrong file is not resumed
        got = tmp.stat().st_size
        if size is not None and got != size:
            raise DownloadError(f"{url} gave {got} bytes, not the {size} expected.")
        if sha256 is not None:
            digest = hashlib.sha256()
            with open(tmp, "rb") as f:
                for chunk in iter(lambda: f.read(CHUNK), b""):
                    digest.update(chunk)
            if digest.hexdigest() != sha256.lower():
                raise DownloadError(f"{url} gave a file with sha256 {digest.hexdigest()}, not {sha256}.")
    return dest


def _fetch_into(url: str, part: Path, have: int, timeout: float,
                progress: Callable[[int, int | None], None] | None) -> None:
    """Append the rest of ``url`` to ``part`` (which holds its first ``have`` bytes), or rewrite it."""
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing after the bytes we have: the part is complete
            return
        raise
    with response:
        if have and response.status != 206:  # the server sent the whole file: start again
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        with open(part, "ab" if have else "wb") as out:
            try:
                for chunk in iter(lambda: response.read(CHUNK), b""):
                    out.write(chunk)
                    have += len(chunk)
                    if progress is not None:
                        progress(have, total)
            except http.client.HTTPException as err:  # e.g. IncompleteRead
                raise ConnectionError(f"the connection to {url} broke off after {have} bytes ({err!r})") from err
    if total is not None and have < total:  # the server hung up before sending all it announced
        raise ConnectionError(f"the connection to {url} broke off after {have} of {total} bytes")
