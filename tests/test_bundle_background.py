"""The struc2map command run as in the GUI, in the background (see tests/test_bundle.py on what is real):
the worker thread, the trigger set, the models and the commands are real; the tests fire 'new frame' as
ChimeraX's redraw loop does. The generator is the tiny random ``tiny_weights``."""
import os
import re
import time

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

from chimerax.core.errors import UserError  # noqa: E402
from tests.bundle_support import frames, record_trigger, open_volumes  # noqa: E402
from tests.bundle_support import cx  # noqa: E402,F401  (a fixture)
from tests.chimerax_session import open_pdb, run  # noqa: E402
from tests.chimerax_session import cx_session  # noqa: E402,F401  (the fixture cx needs)

torch.set_num_threads(1)


# --- Background runs, as in the GUI -------------------------------------------------------------------------

@pytest.fixture
def gui(cx):
    """The session for runs as in the GUI: the commands say ``wait false`` (the GUI's default; the wheel
    has no GUI) and the tests fire 'new frame' as the GUI's redraw loop does (``bundle_support.frames``)."""
    return cx


def test_gui_run_returns_at_once_and_opens_the_map_on_the_main_thread(gui, data, tiny_weights):
    from chimerax.struc2map.background import Run
    from chimerax.struc2map.cmd import PROGRESS_TRIGGER, RESULT_TRIGGER, RUN_TRIGGER

    open_pdb(gui, data("t20s_fragment_emd5623/test_model.pdb"))  # 18 tiles, one per batch
    progress, h1 = record_trigger(gui, PROGRESS_TRIGGER)
    results, h2 = record_trigger(gui, RESULT_TRIGGER)
    states, h3 = record_trigger(gui, RUN_TRIGGER)
    try:
        started = time.monotonic()
        background = run(gui, f"struc2map #1 resolution 3.5 batchSize 1 weights {tiny_weights.path} wait false")
        returned = time.monotonic() - started
        assert isinstance(background, Run) and background.in_background and not background.ended
        assert open_volumes(gui) == [] and states == [(True, True)]
        drawn = frames(gui, background)
    finally:
        for h in (h1, h2, h3):
            h.remove()
    (volume,) = open_volumes(gui)
    assert returned < 1.0 and drawn > 20  # the main thread drew frames while the generator ran
    assert len(progress) > 10 and all(main for _, main in progress)  # reported on the main thread
    assert progress[-1][0][0] == progress[-1][0][1]
    assert [(data["volume"], main) for data, main in results] == [(volume, True)]
    assert states == [(True, True), (False, True)]
    assert sum("struc2map map" in h for h in gui.capture.html) == 1
    # the same map as a blocking run ('wait true': the command returns the maps)
    (blocking,) = run(gui, f"struc2map #1 resolution 3.5 batchSize 1 weights {tiny_weights.path} wait true")
    assert np.allclose(blocking.full_matrix(), volume.full_matrix(), atol=1e-6)


def _start_and_wait_for_tiles(session, command: str):
    from chimerax.struc2map.cmd import PROGRESS_TRIGGER

    progress, handler = record_trigger(session, PROGRESS_TRIGGER)
    background = run(session, command)
    frames(session, background, until=lambda: len(progress) >= 2)
    handler.remove()
    assert not background.ended, "the run ended before it could be interrupted"
    return background


def test_typed_stop_during_a_gui_run(gui, data, tiny_weights):
    open_pdb(gui, data("haemoglobin_emd3488/5me2.pdb"))
    background = _start_and_wait_for_tiles(gui, f"struc2map #1 resolution 3.5 batchSize 1 weights {tiny_weights.path} "
                                                   "wait false")
    run(gui, "struc2map stop")  # typed while the run goes on: the command line is free
    frames(gui, background)
    assert open_volumes(gui) == [] and background.stop_reason == "on request"
    line = [m for _, m in gui.test_log.messages if "struc2map stopped on request after" in m][-1]
    assert re.fullmatch(r"struc2map stopped on request after 0 of 1 maps; 5me2.pdb: \d+ of \d+ tiles done, "
                        r"no map opened for it.\n?", line), line
    run(gui, "struc2map stop")  # nothing to stop: says so
    assert gui.test_log.messages[-1][1].startswith("No struc2map run is going")


def test_one_run_at_a_time_and_a_closed_structure_ends_the_run(gui, data, tiny_weights):
    path = data("haemoglobin_emd3488/5me2.pdb")
    open_pdb(gui, path), open_pdb(gui, path)
    background = _start_and_wait_for_tiles(gui, f"struc2map #1,2 resolution 3.5 batchSize 1 "
                                                f"weights {tiny_weights.path} wait false")
    with pytest.raises(UserError, match="already going"):
        run(gui, f"struc2map #2 resolution 3.5 weights {tiny_weights.path}")
    assert not background.stopping  # the refused command did not touch the running one
    gui.models.close([gui.models.list()[0]])  # the structure being worked on
    frames(gui, background)
    assert open_volumes(gui) == []
    assert any(re.match(r"struc2map stopped because 5me2.pdb was closed after 0 of 2 maps", m)
               for _, m in gui.test_log.messages)
    assert not any(level >= gui.test_log.LEVEL_ERROR for level, _ in gui.test_log.messages[-5:])
    # the session is free again
    again = run(gui, f"struc2map #2 resolution 3.5 weights {tiny_weights.path} wait false")
    run(gui, "struc2map stop")
    frames(gui, again)
    assert again.stop_reason == "on request"


def test_closing_the_session_mid_run_is_safe(gui, data, tiny_weights):
    open_pdb(gui, data("haemoglobin_emd3488/5me2.pdb"))
    background = _start_and_wait_for_tiles(gui, f"struc2map #1 resolution 3.5 batchSize 1 "
                                                f"weights {tiny_weights.path} wait false")
    gui.reset()  # what 'close session' does
    frames(gui, background)
    assert gui.models.list() == [] and background.wait(5)
    assert any("struc2map stopped because 5me2.pdb was closed" in m for _, m in gui.test_log.messages)


def test_gui_run_errors_go_to_the_log(gui, data, tmp_path):
    open_pdb(gui, data("t20s_fragment_emd5623/test_model.pdb"))
    background = run(gui, f"struc2map #1 resolution 3.5 weights {tmp_path / 'absent.pt'} wait false")
    frames(gui, background)  # no caller to raise to: the error (met on the worker) is logged
    assert open_volumes(gui) == []
    assert any(level >= gui.test_log.LEVEL_ERROR and "does not exist" in m for level, m in gui.test_log.messages)


def test_gui_run_with_a_bad_option_fails_before_it_starts(gui, data, tiny_weights):
    from chimerax.struc2map.background import current_run

    open_pdb(gui, data("t20s_fragment_emd5623/test_model.pdb"))
    for options, message in (("device quantum", "Unknown compute device 'quantum'"),
                             ("tileSize 32 margin 16", "leave a core of at least one voxel")):
        with pytest.raises(UserError, match=re.escape(message)):
            run(gui, f"struc2map #1 resolution 3.5 {options} weights {tiny_weights.path} wait false")
        assert current_run(gui) is None and open_volumes(gui) == []
