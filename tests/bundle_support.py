"""What the ChimeraX bundle tests share: the session with struc2map registered and its log captured, the
models it holds, the scores its table logs, and the GUI's redraw loop played by hand (the wheel has no GUI)."""
import gzip
import re
import shutil
import threading
import time
from pathlib import Path

import pytest

from tests.chimerax_session import cx_session  # noqa: F401

REPO = Path(__file__).resolve().parents[1]
ROW = re.compile(r"<tr><td>([^<]*)</td><td>([-+.\deE]+)</td><td>([-+.\deE]+)</td>")


@pytest.fixture
def cx(cx_session):
    """The shared session with struc2map registered as the bundle would, and a log that keeps HTML and status."""
    from chimerax.core.logger import HtmlLog

    from chimerax.struc2map.cmd import register_command

    class CaptureLog(HtmlLog):
        excludes_other_logs = False

        def __init__(self):
            super().__init__()
            self.html, self.status_lines = [], []

        def log(self, level, msg, image_info, is_html):
            self.html.append(msg)
            return False

        def status(self, msg, color, secondary):
            self.status_lines.append(msg)
            return False

    register_command(cx_session.logger)
    log = CaptureLog()
    cx_session.logger.add_log(log)
    cx_session.capture = log
    yield cx_session
    cx_session.logger.remove_log(log)


def unzip_gz(src: Path, dest: Path) -> Path:
    """A gzipped file unpacked to ``dest`` (ChimeraX opens maps uncompressed)."""
    with gzip.open(src, "rb") as f_in, open(dest, "wb") as f_out:
        shutil.copyfileobj(f_in, f_out)
    return dest


def logged_scores(html: str) -> dict:
    """The logged table's rows: {label: (correlation, about mean)}."""
    return {label: (float(c), float(cm)) for label, c, cm in ROW.findall(html)}


def open_volumes(session):
    """The session's open volumes."""
    from chimerax.map import Volume

    return [m for m in session.models.list() if isinstance(m, Volume)]


def frames(session, background, until=None, timeout: float = 300) -> int:
    """Fire 'new frame' about 60 times a second, as ChimeraX's redraw loop does, until the run has ended
    (or ``until()``); returns how many frames the main thread drew meanwhile."""
    deadline, drawn = time.monotonic() + timeout, 0
    while not background.ended and not (until is not None and until()):
        assert time.monotonic() < deadline, "the background run did not end"
        session.triggers.activate_trigger("new frame", None)
        drawn += 1
        time.sleep(1 / 60)
    return drawn


def record_trigger(session, trigger: str) -> tuple[list, object]:
    """What a struc2map trigger fires, each with whether it fired on the main thread; and the handler."""
    from chimerax.struc2map.cmd import struc2map_triggers

    seen = []
    handler = struc2map_triggers(session).add_handler(
        trigger, lambda _name, data: seen.append((data, threading.current_thread() is threading.main_thread())))
    return seen, handler
