"""The user's Struc2map data folder: imported weights and downloads, shared by the command line and ChimeraX.

``STRUC2MAP_HOME`` overrides it; otherwise it is the platform's per-user
data folder (``~/.local/share/struc2map`` or ``$XDG_DATA_HOME/struc2map`` on
Linux, ``~/Library/Application Support/struc2map`` on macOS,
``%LOCALAPPDATA%\\struc2map`` on Windows).
"""
from __future__ import annotations

import os
import sys
from pathlib import Path

HOME_VARIABLE = "STRUC2MAP_HOME"


def data_folder() -> Path:
    """The per-user folder Struc2map keeps its data in (not created here)."""
    if os.environ.get(HOME_VARIABLE):
        return Path(os.environ[HOME_VARIABLE]).expanduser()
    if sys.platform == "win32":
        base = os.environ.get("LOCALAPPDATA") or str(Path.home() / "AppData" / "Local")
    elif sys.platform == "darwin":
        base = str(Path.home() / "Library" / "Application Support")
    else:
        base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base) / "struc2map"


def weights_folder() -> Path:
    """Where imported weights go and where ``--weights NAME`` looks first."""
    return data_folder() / "weights"


def downloads_folder() -> Path:
    """Where downloaded files (e.g. the published checkpoint) are kept."""
    return data_folder() / "downloads"
