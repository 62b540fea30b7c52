"""The project's one HTTP download: resumable, checked, and never leaving a half-written file under its name.

Bytes arrive in ``NAME.part`` beside the destination (never through a link
there, nor into a FIFO: ``files.open_appending``); an interrupted
download is resumed from there with an HTTP Range request (from the start
if the server ignores it). A transfer slower than a minimum rate is
abandoned, so a server that trickles bytes cannot hold it forever. When complete, the size and sha256 are checked
(when known) and the file is moved into place with ``files.atomic_path``;
a complete file that fails a check is deleted, not kept for resuming.
"""
from __future__ import annotations

import http.client
import os
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import BinaryIO, Callable

from .errors import Struc2mapError
from .files import atomic_path, file_sha256, open_appending

CHUNK = 1 << 20
MIN_RATE = 1024  # bytes per second, averaged over each ``timeout`` seconds of a transfer


class DownloadError(Struc2mapError):
    """A download that completed but is not the file expected (wrong size, first bytes or checksum)."""


def part_path(dest: str | os.PathLike) -> Path:
    """Where the bytes of ``dest`` are collected until the download is complete."""
    dest = Path(dest)
    return dest.with_name(dest.name + ".part")


def download(url: str, dest: str | os.PathLike, *, size: int | None = None, sha256: str | None = None,
             starts_with: bytes | None = None,
             timeout: float = 60.0, min_rate: float = MIN_RATE,
             progress: Callable[[int, int | None], None] | None = None) -> Path:
    """Fetch ``url`` into ``dest`` unless ``dest`` exists; return ``dest``.

    ``size`` (bytes), ``sha256`` (hex) and the file's first bytes
    (``starts_with``, e.g. gzip's magic number, so that an HTML error page is
    not taken for the file), when given, are checked before the file gets its
    name. ``progress(bytes_so_far, total_or_None)`` is called
    as data arrives. Network errors raise ``OSError`` (urllib's ``URLError``
    and ``HTTPError``, timeouts, ConnectionError for a transfer that broke
    off or brought fewer than ``min_rate`` bytes/s over ``timeout`` seconds)
    with the partial file kept for the next try; a link, FIFO or device in
    place of ``NAME.part`` raises InputError; a file of the wrong size, first
    bytes or checksum raises DownloadError and is deleted.
    """
    dest = Path(dest)
    if dest.exists():
        return dest
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    with open_appending(part) as out:
        have = os.fstat(out.fileno()).st_size
        if size is not None and have > size:
            out.truncate(0)
            have = 0
        try:
            if size is None or have < size:
                _fetch_into(url, out, have, timeout, min_rate, progress)
        except OSError:
            out.flush()
            if os.fstat(out.fileno()).st_size == 0:  # nothing came: no empty .part is left behind
                part.unlink()
            raise
    with atomic_path(dest, suffix=".check") as tmp:
        os.replace(part, tmp)  # a failed check below deletes it: a wrong file is not resumed
        got = tmp.stat().st_size
        if size is not None and got != size:
            raise DownloadError(f"{url} gave {got} bytes, not the {size} expected.")
        if starts_with is not None:
            with open(tmp, "rb") as f:
                if f.read(len(starts_with)) != starts_with:
                    raise DownloadError(f"{url} gave a file that does not begin as expected (an error page?).")
        if sha256 is not None:
            got_sha256 = file_sha256(tmp)
            if got_sha256 != sha256.lower():
                raise DownloadError(f"{url} gave a file with sha256 {got_sha256}, not {sha256}.")
    return dest


def _fetch_into(url: str, out: BinaryIO, have: int, timeout: float, min_rate: float,
                progress: Callable[[int, int | None], None] | None) -> None:
    """Append the rest of ``url`` to ``out`` (which holds its first ``have`` bytes), or rewrite it."""
    headers = {"Range": f"bytes={have}-"} if have else {}
    try:
        response = urllib.request.urlopen(urllib.request.Request(url, headers=headers), timeout=timeout)
    except urllib.error.HTTPError as err:
        if err.code == 416 and have:  # nothing after the bytes we have: the part is complete
            return
        raise
    with response:
        if have and response.status != 206:  # the server sent the whole file: start again
            out.truncate(0)
            have = 0
        length = response.headers.get("Content-Length")
        total = have + int(length) if length and length.isdigit() else None
        window_start, window_bytes = time.monotonic(), 0
        try:
            for chunk in iter(lambda: response.read1(CHUNK), b""):  # read1: what has come, not a full CHUNK
                out.write(chunk)
                have += len(chunk)
                window_bytes += len(chunk)
                if progress is not None:
                    progress(have, total)
                if time.monotonic() - window_start >= timeout:
                    if window_bytes < min_rate * timeout:
                        raise ConnectionError(f"the transfer from {url} slowed to {window_bytes} bytes in "
                                              f"{timeout:g} s, under the minimum of {min_rate:g} bytes/s")
                    window_start, window_bytes = time.monotonic(), 0
        except http.client.HTTPException as err:  # e.g. IncompleteRead
            raise ConnectionError(f"the connection to {url} broke off after {have} bytes ({err!r})") from err
    if total is not None and have < total:  # the server hung up before sending all it announced
        raise ConnectionError(f"the connection to {url} broke off after {have} of {total} bytes")
