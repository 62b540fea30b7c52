"""A minimal nogui ChimeraX session from the ``ChimeraX==0.1.71`` wheel, for tests.

The wheel carries ChimeraX's Python code but not ``chimerax.core.nogui`` (the text
UI a nogui session needs) nor per-bundle install metadata, so the toolshed knows no
built-in bundle. This module supplies a tiny text UI, points ``chimerax.app_dirs`` at
a temporary folder, and registers the built-in commands the tests use by calling
their registration functions directly: ``molmap``, ``fitmap``, ``measure correlation``,
``volume`` (with ``volume resample`` and the other filters), and ``open`` for PDB, mmCIF and (uncompressed, as in ChimeraX) CCP4/MRC
files. ``open_pdb`` opens a model directly; ``volume_from_mapdata`` turns an engine
map into a ChimeraX Volume.

Tests use the ``cx_session`` fixture (``from tests.chimerax_session import cx_session``)
or ``chimerax_session()``; both give one session per process, with all models closed
after each test that used the fixture.
"""
from __future__ import annotations

import collections
import collections.abc
import importlib
import os
import sys
import tempfile
import types
from functools import lru_cache
from pathlib import Path

import numpy as np
import pytest

# grako (ChimeraX's atom-spec parser) uses the pre-3.10 names.
for _name in ("Mapping", "MutableMapping", "Sequence", "MutableSequence", "Set", "MutableSet",
              "Iterable", "Callable", "Hashable"):
    if not hasattr(collections, _name):
        setattr(collections, _name, getattr(collections.abc, _name))


class _TextUI:
    """The few attributes ChimeraX's core and bundles read from a nogui ``session.ui``."""

    is_gui = False
    has_graphics = False
    main_window = None
    stereo = False
    autostart_tools = False

    def __init__(self, session) -> None:
        from chimerax.core.triggerset import TriggerSet

        self.session = session
        self.triggers = TriggerSet()
        self.triggers.add_trigger("ready")

    def thread_safe(self, func, *args, **kw) -> None:
        func(*args, **kw)

    def initialize_color_output(self, *args) -> None:
        pass

    def initialize_offscreen_rendering(self) -> None:
        pass


def _text_log():
    """A plain-text log that keeps messages (``session.test_log.messages``) and prints
    warnings and errors to stderr."""
    from chimerax.core.logger import PlainTextLog

    class TextLog(PlainTextLog):
        excludes_other_logs = False

        def __init__(self) -> None:
            super().__init__()
            self.messages: list[tuple[int, str]] = []

        def log(self, level, msg) -> bool:
            self.messages.append((level, msg))
            if level >= self.LEVEL_WARNING:
                print(msg, file=sys.stderr)
            return True

    return TextLog()


def _install_nogui_module() -> None:
    """Provide ``chimerax.core.nogui`` (missing from the wheel) before a Session is built."""
    import chimerax.core

    if "chimerax.core.nogui" not in sys.modules:
        module = types.ModuleType("chimerax.core.nogui")
        module.UI = _TextUI
        sys.modules["chimerax.core.nogui"] = module
        chimerax.core.nogui = module


def _set_app_dirs() -> None:
    """User folders (settings, toolshed cache) in a throwaway temp dir, never in $HOME."""
    import appdirs
    import chimerax

    if getattr(chimerax, "app_dirs", None) is not None:
        return
    root = tempfile.mkdtemp(prefix="chimerax_test_")
    os.environ["XDG_DATA_HOME"] = os.path.join(root, "data")
    os.environ["XDG_CONFIG_HOME"] = os.path.join(root, "config")
    os.environ["XDG_CACHE_HOME"] = os.path.join(root, "cache")
    chimerax.app_dirs = appdirs.AppDirs("ChimeraX", appauthor="UCSF", version="1.8")
    chimerax.app_dirs_unversioned = appdirs.AppDirs("ChimeraX", appauthor="UCSF")
    for attr in ("app_data_dir", "app_bin_dir", "app_lib_dir"):  # the application's install folders
        setattr(chimerax, attr, os.path.join(root, attr))
    for d in (chimerax.app_dirs.user_data_dir, chimerax.app_dirs.user_config_dir,
              chimerax.app_dirs.user_cache_dir):
        os.makedirs(d, exist_ok=True)


@lru_cache(maxsize=1)
def chimerax_session():
    """One nogui ChimeraX session per process, with the commands the tests need."""
    _install_nogui_module()
    _set_app_dirs()

    from chimerax.core import attributes, core_settings, toolshed
    from chimerax.core.session import Session, register_misc_commands
    from chimerax.core.tools import Tools

    session = Session("ChimeraX", minimal=False)
    session.tools = Tools(session, first=True)  # running tool panels, as the application sets up
    core_settings.init(session)
    register_misc_commands(session)
    attributes.RegAttrManager(session)
    session.test_log = _text_log()
    session.logger.add_log(session.test_log)
    toolshed.init(session.logger, debug=False, check_available=False, session=session)
    session.toolshed = toolshed.get_toolshed()

    from chimerax.atomic import initialize_atomic

    initialize_atomic(session)
    _register_commands(session)
    _register_open_command(session)
    return session


class _BuiltinBundle:
    """Stands in for a built-in bundle's toolshed entry (absent from the wheel) so that the
    open-command manager can call the bundle's own provider code."""

    installed = True

    def __init__(self, package: str) -> None:
        self.name = self.short_name = package
        self._package = package

    def run_provider(self, session, name, mgr, **kw):
        return importlib.import_module(self._package).bundle_api.run_provider(session, name, mgr, **kw)


# The file formats ``open`` reads here, as the bundles' bundle_info.xml declare them:
# (bundle package, format name, data-format attributes, open-command attributes).
_OPEN_FORMATS = [
    ("chimerax.pdb", "PDB", {"category": "Molecular structure", "suffixes": ".pdb,.pdb1,.ent,.pqr",
                             "encoding": "utf-8"}, {}),
    ("chimerax.mmcif", "mmCIF", {"category": "Molecular structure", "suffixes": ".cif,.mmcif",
                                 "encoding": "utf-8"}, {"want_path": "true"}),
    ("chimerax.map", "CCP4 density map", {"category": "Volume data", "nicknames": "ccp4",
                                          "suffixes": ".ccp4,.map"}, {"want_path": "true", "batch": "true"}),
    ("chimerax.map", "MRC density map", {"category": "Volume data", "nicknames": "mrc", "suffixes": ".mrc"},
     {"want_path": "true", "batch": "true"}),
]


def _register_open_command(session) -> None:
    """The ``open`` command for PDB, mmCIF and CCP4/MRC files, wired as the toolshed would
    from bundle metadata. As in ChimeraX, maps must be uncompressed (models may be .gz)."""
    from chimerax.data_formats.manager import FormatsManager
    from chimerax.open_command import cmd
    from chimerax.open_command.manager import OpenManager

    session.data_formats = FormatsManager(session, "data formats")
    session.open_command = OpenManager(session, "open command")
    for package, name, format_attrs, open_attrs in _OPEN_FORMATS:
        bundle = _BuiltinBundle(package)
        session.data_formats.add_provider(bundle, name, **format_attrs)
        session.open_command.add_provider(bundle, name, **open_attrs)
    cmd.register_command("open", session.logger)


def _register_commands(session) -> None:
    from chimerax.map import register_volume_command
    from chimerax.map.molmap import register_molmap_command
    from chimerax.map_filter.vopcommand import register_volume_filtering_subcommands
    from chimerax.map_fit import register_fitmap_command
    from chimerax.std_commands import measure_correlation

    logger = session.logger
    register_volume_command(logger)
    register_volume_filtering_subcommands(logger)
    register_molmap_command(logger)
    register_fitmap_command(logger)
    measure_correlation.register_command(logger)


@pytest.fixture
def cx_session():
    """The shared ChimeraX session; models opened by a test are closed after it."""
    session = chimerax_session()
    yield session
    session.models.close(session.models.list())


def run(session, command: str):
    """Run ChimeraX command text as a user would type it; returns the command's result."""
    from chimerax.core.commands import run as cx_run

    return cx_run(session, command, log=False)


def open_pdb(session, path) -> list:
    """Open a PDB file as AtomicStructure models (added to the session)."""
    from chimerax.pdb import open_pdb as cx_open_pdb

    models, _status = cx_open_pdb(session, str(path), file_name=Path(path).name)
    session.models.add(models)
    return models


def volume_from_mapdata(session, mapdata, name: str = "map"):
    """A ChimeraX Volume (added to the session) holding a MapData's values and placement."""
    from chimerax.map import volume_from_grid_data
    from chimerax.map_data import ArrayGridData

    grid = ArrayGridData(np.ascontiguousarray(mapdata.array, dtype=np.float32),
                         origin=tuple(mapdata.origin), step=tuple(mapdata.voxel_size), name=name)
    return volume_from_grid_data(grid, session, open_model=True, show_dialog=False)
