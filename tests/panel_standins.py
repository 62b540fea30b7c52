"""Test stand-ins for the parts of ChimeraX's GUI the Struc2mapGAN panel needs (the wheel has no GUI).

- ``Qt``: ChimeraX ships a ``Qt`` package that re-exports PyQt6 (or PySide6); where it is
  absent, ``Qt.QtWidgets``/``QtCore``/``QtGui`` are mapped onto PyQt6's modules.
- ``chimerax.ui.MainToolWindow``: :class:`MainToolWindowStandIn`, a plain QWidget as ``ui_area``,
  shown by ``manage``.
The panel code itself, the session, models, triggers and the command are real. Used by
tests/test_panel.py and tools/make_panel_figure.py; Qt uses the offscreen platform unless a
display is set.
"""
from __future__ import annotations

import importlib
import os
import sys
import types
from typing import Callable

if not os.environ.get("DISPLAY"):
    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


class MainToolWindowStandIn:
    """Stand-in for chimerax.ui.MainToolWindow: ui_area is a top-level QWidget."""

    def __init__(self, tool_instance, **kw) -> None:
        from Qt.QtWidgets import QWidget

        self.tool_instance = tool_instance
        self.ui_area = QWidget()
        self.ui_area.setWindowTitle(tool_instance.display_name)
        self.shown = False

    def manage(self, placement, **kw) -> None:
        self.ui_area.show()
        self.shown = True


def install_gui_standins(setitem: Callable[[dict, str, object], None] | None = None) -> None:
    """Put the stand-ins in ``sys.modules`` where ChimeraX's own modules are missing (``setitem`` is
    pytest's ``monkeypatch.setitem`` in tests, so they are undone afterwards)."""
    setitem = setitem or (lambda mapping, key, value: mapping.__setitem__(key, value))
    try:
        importlib.import_module("Qt.QtWidgets")
    except ImportError:
        package = types.ModuleType("Qt")
        package.__path__ = []
        setitem(sys.modules, "Qt", package)
        for name in ("QtWidgets", "QtCore", "QtGui"):
            module = importlib.import_module(f"PyQt6.{name}")
            setattr(package, name, module)
            setitem(sys.modules, f"Qt.{name}", module)
    try:
        importlib.import_module("chimerax.ui")
    except ImportError:
        setitem(sys.modules, "chimerax.ui", types.SimpleNamespace(MainToolWindow=MainToolWindowStandIn))


_application = None


def qt_application():
    """The process's QApplication (made if needed, and kept: Qt needs it alive while widgets exist)."""
    global _application
    from PyQt6 import QtWidgets

    _application = QtWidgets.QApplication.instance() or QtWidgets.QApplication(["struc2map"])
    return _application


def screenshot(tool, path: str, min_width: int = 420) -> None:
    """Save the panel as it is drawn now."""
    from PyQt6 import QtWidgets

    area = tool.tool_window.ui_area
    area.resize(max(area.sizeHint().width(), min_width), area.sizeHint().height())
    QtWidgets.QApplication.processEvents()
    if not area.grab().save(path):
        raise OSError(f"could not write {path}")
