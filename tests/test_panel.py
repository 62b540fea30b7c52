"""The Struc2mapGAN panel built in a real Qt (PyQt6), clicked, and pictured.

Test stand-ins, because the ChimeraX wheel has no GUI:
- ``Qt``: ChimeraX ships a ``Qt`` package that re-exports PyQt6 (or PySide6); where it is
  absent, ``Qt.QtWidgets``/``QtCore``/``QtGui`` are mapped onto PyQt6's modules here.
- ``chimerax.ui.MainToolWindow``: a plain QWidget as ``ui_area``, shown by ``manage``.
The panel code itself, the session, models, triggers and the command are real.

Qt uses the offscreen platform unless a display is set (e.g. under ``xvfb-run``).
``STRUC2MAP_PANEL_PNG=docs/struc2map_panel.png`` makes the screenshot test write the
README's picture (with the installed weights when there are any).
"""
import importlib
import os
import sys
import types

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
if not os.environ.get("DISPLAY"):
    os.environ["QT_QPA_PLATFORM"] = "offscreen"
import torch  # noqa: E402

from tests.chimerax_session import cx_session, open_pdb, run  # noqa: E402,F401
from tests.test_bundle import _unzip, _volumes  # noqa: E402

torch.set_num_threads(1)
QtWidgets = pytest.importorskip("PyQt6.QtWidgets")


def _install_qt_shim(monkeypatch) -> None:
    try:
        importlib.import_module("Qt.QtWidgets")
        return
    except ImportError:
        pass
    package = types.ModuleType("Qt")
    package.__path__ = []
    monkeypatch.setitem(sys.modules, "Qt", package)
    for name in ("QtWidgets", "QtCore", "QtGui"):
        module = importlib.import_module(f"PyQt6.{name}")
        setattr(package, name, module)
        monkeypatch.setitem(sys.modules, f"Qt.{name}", module)


class MainToolWindow:
    """Stand-in for chimerax.ui.MainToolWindow (absent from the wheel): ui_area is a top-level QWidget."""

    def __init__(self, tool_instance, **kw):
        from Qt.QtWidgets import QWidget

        self.tool_instance = tool_instance
        self.ui_area = QWidget()
        self.ui_area.setWindowTitle(tool_instance.display_name)
        self.shown = False

    def manage(self, placement, **kw):
        self.ui_area.show()
        self.shown = True


@pytest.fixture(scope="module")
def qapp():
    return QtWidgets.QApplication.instance() or QtWidgets.QApplication(["struc2map-test"])


@pytest.fixture
def panel(cx_session, qapp, monkeypatch):
    _install_qt_shim(monkeypatch)
    try:
        importlib.import_module("chimerax.ui")
    except ImportError:
        monkeypatch.setitem(sys.modules, "chimerax.ui", types.SimpleNamespace(MainToolWindow=MainToolWindow))
    from chimerax.struc2map.cmd import register_command
    from chimerax.struc2map.tool import Struc2mapTool

    register_command(cx_session.logger)
    tools = []

    def make():
        tools.append(Struc2mapTool(cx_session, "Struc2mapGAN"))
        return tools[-1]

    yield make
    for tool in tools:
        tool.delete()


@pytest.fixture
def t20s(cx_session, data, tmp_path):
    open_pdb(cx_session, data("t20s_fragment_emd5623/test_model.pdb"))
    run(cx_session, f"open {_unzip(data('t20s_fragment_emd5623/test_map.ccp4.gz'), tmp_path / 'test_map.ccp4')}")
    return cx_session


def _items(menu) -> list:
    return [menu.itemText(i) for i in range(menu.count())]


def test_run_builds_the_command_from_the_choices(panel, t20s, monkeypatch):
    import chimerax.core.commands

    tool = panel()
    assert _items(tool.structure_menu) == ["#1 test_model.pdb"]
    assert _items(tool.compare_menu) == ["none", "#2 test_map.ccp4"]
    assert tool.resolution.value() == 3.5 and tool.device_menu.currentText() == "auto"

    ran = []
    monkeypatch.setattr(chimerax.core.commands, "run", lambda session, text, **kw: ran.append(text))
    tool.run_button.click()
    tool.resolution.setValue(4.2)
    tool.device_menu.setCurrentText("cpu")
    tool.compare_menu.setCurrentIndex(1)
    tool.run_button.click()
    tool.help_button.click()
    assert ran == ["struc2map #1 resolution 3.5", "struc2map #1 resolution 4.2 device cpu compare #2",
                   "help help:user/tools/struc2mapgan.html"]
    assert tool.run_button.isEnabled() and not tool.stop_button.isEnabled()


def test_menus_follow_models_opened_and_closed(panel, t20s):
    tool = panel()
    tool.compare_menu.setCurrentIndex(1)
    open_pdb(t20s, t20s.models.list()[0].filename)
    assert _items(tool.structure_menu) == ["#1 test_model.pdb", "#3 test_model.pdb"]
    assert tool.compare_menu.currentData() == "#2"  # the choice survives a refresh
    t20s.models.close(_volumes(t20s))
    assert _items(tool.compare_menu) == ["none"] and tool.command_text() == "struc2map #1 resolution 3.5"
    t20s.models.close(t20s.models.list())
    assert tool.command_text() is None
    tool.run_button.click()  # nothing to run: says so on the status line, runs nothing
    assert _volumes(t20s) == []


@pytest.fixture
def shipped_tiny(monkeypatch, tiny_weights):
    """The tiny generator stands in for the shipped weights, so the panel's command needs no weights keyword."""
    from chimerax.struc2map import weights_io

    monkeypatch.setattr(weights_io, "default_weights_path", lambda: tiny_weights.path)


def test_run_click_makes_a_map_and_shows_its_correlations(panel, t20s, shipped_tiny):
    tool = panel()
    tool.compare_menu.setCurrentIndex(1)
    tool.run_button.click()
    (volume,) = [v for v in _volumes(t20s) if v.id == (3,)]
    text = tool.result.text()
    assert text.startswith("#3 test_model.pdb struc2map 3.5")
    assert "vs molmap 3.5 Å: correlation" in text and "vs test_map.ccp4 #2: correlation" in text
    assert tool.progress.maximum() > 0 and tool.progress.value() == tool.progress.maximum()
    assert tool.run_button.isEnabled() and not tool.stop_button.isEnabled()
    assert any(m.startswith("Opened test_model.pdb struc2map 3.5") for _, m in t20s.test_log.messages[-5:])


def test_stop_click_during_a_run(panel, cx_session, data, shipped_tiny):
    from chimerax.struc2map.cmd import PROGRESS_TRIGGER

    open_pdb(cx_session, data("haemoglobin_emd3488/5me2.pdb"))  # 8 tiles: two batches of 4
    tool = panel()
    clicks = []

    def click_stop(*_):  # in ChimeraX the click arrives while the command processes events between batches
        clicks.append(tool.stop_button.isEnabled())
        tool.stop_button.click()

    handler = cx_session.triggers.add_handler(PROGRESS_TRIGGER, click_stop)
    try:
        tool.run_button.click()
    finally:
        handler.remove()
    assert clicks == [True] and _volumes(cx_session) == []
    assert tool.result.text() == "No map made yet." and tool.run_button.isEnabled()


def test_screenshot(panel, cx_session, data, tmp_path, tiny_weights, monkeypatch):
    """The panel after a run, saved as a PNG and read back: the picture is the panel, with the result
    the run logged (ChimeraX's own correlations) where the panel showed "No map made yet." before."""
    import re

    from PyQt6.QtGui import QImage

    from chimerax.struc2map import weights_io

    target = os.environ.get("STRUC2MAP_PANEL_PNG")
    if not (target and weights_io.default_weights_path()):  # the installed weights only for the README's picture
        monkeypatch.setattr(weights_io, "default_weights_path", lambda: tiny_weights.path)
    open_pdb(cx_session, data("haemoglobin_emd3488/5me2.pdb"))
    run(cx_session, f"open {_unzip(data('haemoglobin_emd3488/emd_3488.mrc.gz'), tmp_path / 'emd_3488.mrc')}")
    tool = panel()
    tool.compare_menu.setCurrentIndex(1)
    area = tool.tool_window.ui_area
    area.resize(max(area.sizeHint().width(), 420), area.sizeHint().height() + 60)  # room for the result lines
    QtWidgets.QApplication.processEvents()
    before = area.grab().toImage()
    tool.run_button.click()
    QtWidgets.QApplication.processEvents()
    path = target or str(tmp_path / "panel.png")
    assert area.grab().save(path)

    picture = QImage(path).convertToFormat(QImage.Format.Format_RGB32)
    assert picture.size() == before.size() and not picture.isNull()
    ratio = picture.devicePixelRatio()
    box = tool.result.geometry()
    rows = range(int(box.top() * ratio), int(box.bottom() * ratio))
    before = before.convertToFormat(QImage.Format.Format_RGB32)
    changed = [y for y in rows if any(picture.pixel(x, y) != before.pixel(x, y) for x in range(picture.width()))]
    assert len(changed) > len(rows) // 4  # the result text is drawn in the picture
    assert tool.progress.value() == tool.progress.maximum() > 0
    # the numbers shown are ChimeraX's: measure correlation of the experimental map in the new map
    lines = re.findall(r"vs ([^:]+): correlation ([-\d.]+), about mean ([-\d.]+)", tool.result.text())
    shown = {label: (float(c), float(cm)) for label, c, cm in lines}
    measured = run(cx_session, "measure correlation #2 inMap #3")
    assert shown["emd_3488.mrc #2"] == pytest.approx(measured, abs=5e-4)
