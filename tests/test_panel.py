"""The Struc2mapGAN panel built in a real Qt (PyQt6, offscreen unless a display is set), clicked, and pictured.

The GUI parts ChimeraX's wheel lacks (``Qt``, ``chimerax.ui.MainToolWindow``) are the test
stand-ins of tests/panel_standins.py; the panel code, the session, models, triggers and the
command are real. Runs as in the GUI say ``wait false`` and fire 'new frame' as the redraw loop
does (tests/bundle_support.py's ``frames``). tools/make_panel_figure.py makes the README's picture.
"""
import os

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

from tests.chimerax_session import cx_session, open_pdb, run  # noqa: E402,F401
from tests.panel_standins import install_gui_standins, qt_application  # noqa: E402
from tests.bundle_support import frames, unzip_gz, open_volumes  # noqa: E402

torch.set_num_threads(1)
QtWidgets = pytest.importorskip("PyQt6.QtWidgets")


@pytest.fixture(scope="module")
def qapp():
    return qt_application()


@pytest.fixture
def panel(cx_session, qapp, monkeypatch):
    install_gui_standins(monkeypatch.setitem)
    from chimerax.struc2map.cmd import register_command
    from chimerax.struc2map.tool import Struc2mapTool

    register_command(cx_session.logger)
    tools = []

    def make():
        tools.append(Struc2mapTool(cx_session, "Struc2mapGAN"))
        return tools[-1]

    yield make
    for tool in tools:
        if tool in cx_session.tools.list():
            tool.delete()


def _close_panel(tool) -> None:
    """Close the panel as ChimeraX does: delete the tool, then its window's widgets are destroyed."""
    from PyQt6 import sip

    tool.delete()
    sip.delete(tool.tool_window.ui_area)


@pytest.fixture
def t20s(cx_session, data, tmp_path):
    open_pdb(cx_session, data("t20s_fragment_emd5623/test_model.pdb"))
    run(cx_session, f"open {unzip_gz(data('t20s_fragment_emd5623/test_map.ccp4.gz'), tmp_path / 'test_map.ccp4')}")
    return cx_session


def _items(menu) -> list:
    return [menu.itemText(i) for i in range(menu.count())]


def test_run_builds_the_command_from_the_choices(panel, t20s, monkeypatch):
    import chimerax.core.commands

    tool = panel()
    assert _items(tool.structure_menu) == ["#1 test_model.pdb"]
    assert _items(tool.compare_menu) == _items(tool.fit_menu) == ["none", "#2 test_map.ccp4"]
    assert tool.resolution.value() == 3.5 and tool.device_menu.currentText() == "auto"

    ran = []
    monkeypatch.setattr(chimerax.core.commands, "run", lambda session, text, **kw: ran.append(text))
    tool.run_button.click()
    tool.resolution.setValue(4.2)
    tool.device_menu.setCurrentText("cpu")
    tool.compare_menu.setCurrentIndex(1)
    tool.run_button.click()
    tool.compare_menu.setCurrentIndex(0)
    tool.fit_menu.setCurrentIndex(1)
    tool.run_button.click()
    tool.move_structure.setChecked(True)
    tool.run_button.click()
    tool.precision_menu.setCurrentText("fp32")
    tool.fit_menu.setCurrentIndex(0)
    tool.run_button.click()
    tool.help_button.click()
    assert ran == ["struc2map #1 resolution 3.5", "struc2map #1 resolution 4.2 device cpu compare #2",
                   "struc2map #1 resolution 4.2 device cpu fit #2",
                   "struc2map #1 resolution 4.2 device cpu fit #2 moveStructure true",
                   "struc2map #1 resolution 4.2 device cpu precision fp32",
                   "help help:user/tools/struc2mapgan.html"]
    assert tool.run_button.isEnabled() and not tool.stop_button.isEnabled()


def test_menus_offer_the_names_the_command_takes(panel, t20s):
    from chimerax.struc2map.options import DEVICES, PRECISIONS
    from chimerax.struc2map.resolution import MAX_RESOLUTION, MIN_RESOLUTION

    tool = panel()
    assert tuple(_items(tool.device_menu)) == DEVICES and tuple(_items(tool.precision_menu)) == PRECISIONS
    assert (tool.resolution.minimum(), tool.resolution.maximum()) == (MIN_RESOLUTION, MAX_RESOLUTION)


def test_menus_follow_models_opened_and_closed(panel, t20s):
    tool = panel()
    tool.compare_menu.setCurrentIndex(1)
    open_pdb(t20s, t20s.models.list()[0].filename)
    assert _items(tool.structure_menu) == ["#1 test_model.pdb", "#3 test_model.pdb"]
    assert tool.compare_menu.currentData() == "#2"  # the choice survives a refresh
    t20s.models.close(open_volumes(t20s))
    assert _items(tool.compare_menu) == ["none"] and tool.command_text() == "struc2map #1 resolution 3.5"
    t20s.models.close(t20s.models.list())
    assert tool.command_text() is None
    tool.run_button.click()  # nothing to run: says so on the status line, runs nothing
    assert open_volumes(t20s) == []


@pytest.fixture
def shipped_tiny(monkeypatch, tiny_weights):
    """The tiny generator stands in for the shipped weights, so the panel's command needs no weights keyword."""
    from chimerax.struc2map import weights_io

    monkeypatch.setattr(weights_io, "default_weights_path", lambda: tiny_weights.path)


def test_run_click_makes_a_map_and_shows_its_correlations(panel, t20s, shipped_tiny):
    tool = panel()
    tool.compare_menu.setCurrentIndex(1)
    tool.run_button.click()
    (volume,) = [v for v in open_volumes(t20s) if v.id == (3,)]
    text = tool.result.text()
    assert text.startswith("#3 test_model.pdb struc2map 3.5")
    assert "vs molmap 3.5 Å: correlation" in text and "vs test_map.ccp4 #2: correlation" in text
    assert tool.progress.maximum() > 0 and tool.progress.value() == tool.progress.maximum()
    assert tool.run_button.isEnabled() and not tool.stop_button.isEnabled()
    assert any(m.startswith("Opened test_model.pdb struc2map 3.5") for _, m in t20s.test_log.messages[-5:])


def test_stop_click_during_a_blocking_run(panel, cx_session, data, shipped_tiny):
    from chimerax.struc2map.cmd import PROGRESS_TRIGGER

    open_pdb(cx_session, data("haemoglobin_emd3488/5me2.pdb"))
    tool = panel()
    clicks = []

    def click_stop(*_):  # a click delivered while the (blocking, nogui) command reports progress
        clicks.append(tool.stop_button.isEnabled())
        tool.stop_button.click()

    handler = cx_session.triggers.add_handler(PROGRESS_TRIGGER, click_stop)
    try:
        tool.run_button.click()
    finally:
        handler.remove()
    assert clicks == [True] and open_volumes(cx_session) == []
    assert tool.result.text() == "No map made yet." and tool.run_button.isEnabled()
    assert not tool.stop_button.isEnabled()


def _start_typed_run(session, tool, command: str):
    """Type a background run (as in the GUI) and let it reach its tiles."""
    background = run(session, command)
    frames(session, background, until=lambda: tool.progress.maximum() > 0)
    assert not background.ended
    return background


def test_buttons_and_stop_follow_a_typed_background_run(panel, cx_session, data, tiny_weights):
    open_pdb(cx_session, data("haemoglobin_emd3488/5me2.pdb"))
    tool = panel()
    assert tool.run_button.isEnabled() and not tool.stop_button.isEnabled()
    background = _start_typed_run(cx_session, tool, f"struc2map #1 resolution 3.5 batchSize 1 "
                                                     f"weights {tiny_weights.path} wait false")
    assert tool.stop_button.isEnabled() and not tool.run_button.isEnabled()
    tool.stop_button.click()
    frames(cx_session, background)
    assert background.stop_reason == "on request" and open_volumes(cx_session) == []
    assert tool.run_button.isEnabled() and not tool.stop_button.isEnabled()
    # a panel opened while a run goes on shows it as running
    background = _start_typed_run(cx_session, tool, f"struc2map #1 resolution 3.5 batchSize 1 "
                                                     f"weights {tiny_weights.path} wait false")
    late = panel()
    assert late.stop_button.isEnabled() and not late.run_button.isEnabled()
    late.stop_button.click()
    frames(cx_session, background)


def test_closing_the_panel_mid_run_is_safe(panel, cx_session, data, shipped_tiny):
    from chimerax.struc2map.cmd import PROGRESS_TRIGGER

    open_pdb(cx_session, data("t20s_fragment_emd5623/test_model.pdb"))  # 18 tiles, one per batch
    tool = panel()
    tool.command_text = lambda: "struc2map #1 resolution 3.5 batchSize 1 wait false"
    tool.run_button.click()  # as in the GUI: returns at once
    from chimerax.struc2map.background import current_run

    background = current_run(cx_session)
    frames(cx_session, background, until=lambda: tool.progress.maximum() > 0)
    _close_panel(tool)
    frames(cx_session, background)  # the run goes on and opens its map; nothing touches the closed panel
    assert len(open_volumes(cx_session)) == 1
    errors = [m for level, m in cx_session.test_log.messages[-10:] if level >= cx_session.test_log.LEVEL_ERROR]
    assert errors == []

    # closed from inside a blocking run (the old panel's 'finally' touched its deleted widgets here)
    tool = panel()
    cx_session.triggers.add_handler(PROGRESS_TRIGGER, lambda *_: _close_panel(tool) or "delete handler")
    tool.run_button.click()
    assert len(open_volumes(cx_session)) == 2


def test_screenshot_script(panel, cx_session, tmp_path, tiny_weights):
    """tools/make_panel_figure.py, which makes the README's picture, with the tiny generator."""
    from tools.make_panel_figure import make_figure

    path = tmp_path / "panel.png"
    tool = make_figure(cx_session, path, weights=tiny_weights.path, make_panel=panel)
    assert os.path.getsize(path) > 2000
    assert tool.fit_menu.currentText().endswith("emd_3488.mrc") and "fit struc2map #3" in tool.result.text()
