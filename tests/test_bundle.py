"""The ChimeraX bundle inside real ChimeraX code (the ``ChimeraX==0.1.71`` wheel).

- The bundle wheel built from bundle_info.xml by ChimeraX's bundle builder, installed
  as ``toolshed install`` does (pip, no dependencies), is found by the toolshed from its
  installed metadata, registers ``struc2map`` lazily on first use, carries its help pages
  and weights, and runs (in a subprocess, so this session stays clean).
- ``struc2map`` run through ChimeraX's command parser on a real model and map: the
  volume's grid, origin and position (also for a submodel under a moved parent); the
  logged table against ChimeraX's own ``measure correlation``; onGrid and gridSpacing
  against ChimeraX's ``volume resample``; several structures, stop; errors; ``fit``
  against ChimeraX's own ``fitmap``.
- Background runs as in the GUI: the wheel has no GUI, so the test UI says ``is_gui``
  and the tests fire the ``'new frame'`` trigger as ChimeraX's redraw loop does; the
  worker thread, the trigger set, the models and the commands are real.

The generator is ``tiny_weights``, small and randomly initialised: its maps mean
nothing, so the tests check placement and bookkeeping, not map quality.
"""
import gzip
import json
import os
import re
import shutil
import subprocess
import sys
import threading
import time
import zipfile
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

from chimerax.core.errors import UserError  # noqa: E402
from tests.chimerax_session import cx_session, open_pdb, run  # noqa: E402,F401

torch.set_num_threads(1)
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


def _unzip(src: Path, dest: Path) -> Path:
    with gzip.open(src, "rb") as f_in, open(dest, "wb") as f_out:
        shutil.copyfileobj(f_in, f_out)
    return dest


def _logged_scores(html: str) -> dict:
    return {label: (float(c), float(cm)) for label, c, cm in ROW.findall(html)}


def _volumes(session):
    from chimerax.map import Volume

    return [m for m in session.models.list() if isinstance(m, Volume)]


def test_real_pair_volume_grid_position_and_logged_correlations(cx, data, tiny_weights, tmp_path):
    structure = open_pdb(cx, data("haemoglobin_emd3488/5me2.pdb"))[0]
    run(cx, f"open {_unzip(data('haemoglobin_emd3488/emd_3488.mrc.gz'), tmp_path / 'emd_3488.mrc')}")
    (volume,) = run(cx, f"struc2map #1 resolution 3.5 compare #2 weights {tiny_weights.path}")
    (html,) = [h for h in cx.capture.html if "struc2map map" in h]

    assert volume.id == (3,) and volume.name == "5me2.pdb struc2map 3.5"
    assert volume.scene_position == structure.scene_position
    # The generator's input: ChimeraX's molmap at 2 Å on a 1 Å grid with 3 × 3.5 Å of padding (5me2 has no H).
    simulated = run(cx, "molmap #1 2 gridSpacing 1 edgePadding 10.5")
    assert volume.data.step == (1.0, 1.0, 1.0)
    assert volume.data.size == simulated.data.size
    assert np.allclose(volume.data.origin, simulated.data.origin)

    print(re.sub(r"<tr>", "\n<tr>", html))  # the logged table, for the record
    scores = _logged_scores(html)
    expected = {"emd_3488.mrc #2": run(cx, "measure correlation #2 inMap #3")}
    reference = run(cx, "molmap #1 3.5 onGrid #3")
    expected["molmap 3.5 Å"] = run(cx, f"measure correlation #{reference.id_string} inMap #3")
    assert scores.keys() == expected.keys()
    for label, values in expected.items():
        assert scores[label] == pytest.approx(values, rel=1e-3, abs=1e-6), label
    assert "measure correlation #2 inMap #3" in html and "molmap #1 3.5 onGrid #3" in html

    # The contour encloses as many voxels as molmap's envelope at 3.5 Å: the fewest voxels holding 95% of its
    # mass, counted here from its sorted values (ChimeraX places its level from a histogram, to within a bin).
    mass = np.sort(reference.full_matrix().ravel())[::-1].astype(np.float64)
    envelope = int(np.searchsorted(np.cumsum(mass), 0.95 * mass.sum())) + 1
    (level,) = [s.level for s in volume.surfaces]
    assert np.count_nonzero(volume.full_matrix() >= level) == pytest.approx(envelope, rel=0.02)
    assert any(re.search(r"struc2map 5me2.pdb: \d+ of \d+ tiles", s) for s in cx.capture.status_lines)


def test_map_is_placed_with_a_moved_structure(cx, data, tiny_weights):
    from chimerax.geometry import rotation, translation

    structure = open_pdb(cx, data("t20s_fragment_emd5623/test_model.pdb"))[0]
    structure.position = translation((30, -20, 5)) * rotation((1, 1, 0), 70, center=(10, 0, 0))
    (volume,) = run(cx, f"struc2map #1 resolution 4 weights {tiny_weights.path} name frag modelId 7")
    assert volume.id == (7,) and volume.name == "frag"
    assert volume.scene_position == structure.scene_position
    # every atom lies inside the grid with the padding, in the volume's own coordinates
    ijk = volume.data.xyz_to_ijk(volume.position.inverse() * structure.atoms.scene_coords)
    size = np.array(volume.data.size)
    assert ijk.min() >= 3 * 4 - 1 and (size - 1 - ijk.max(axis=0)).min() >= 3 * 4 - 1


def test_weights_trained_on_masked_targets_give_a_masked_map(cx, data, tmp_path):
    from chimerax.struc2map.network import Generator
    from chimerax.struc2map.weights_io import save_weights

    torch.manual_seed(0)
    weights = save_weights(tmp_path / "masked", Generator((4, 8, 16, 32)),
                           {"output": {"normalisation": "minmax", "resolution": 3.0, "mask_radius": 3.0}})
    structure = open_pdb(cx, data("t20s_fragment_emd5623/test_model.pdb"))[0]
    from chimerax.geometry import translation

    structure.position = translation((12, -7, 3))  # masking happens in the structure's own frame
    (volume,) = run(cx, f"struc2map #1 resolution 3 weights {weights}")  # native resolution: no low-pass
    values = volume.full_matrix()
    ijk = np.rint(volume.data.xyz_to_ijk(structure.atoms.coords)).astype(int)
    assert np.count_nonzero(values[ijk[:, 2], ijk[:, 1], ijk[:, 0]]) == len(ijk)  # density at every atom
    assert np.count_nonzero(values == 0) > values.size / 2  # solvent far from atoms is exactly zero


def test_on_grid_and_grid_spacing_resample(cx, data, tiny_weights, tmp_path):
    open_pdb(cx, data("t20s_fragment_emd5623/test_model.pdb"))
    run(cx, f"open {_unzip(data('t20s_fragment_emd5623/test_map.ccp4.gz'), tmp_path / 'test_map.ccp4')}")
    from chimerax.geometry import translation

    target = _volumes(cx)[0]
    target.position = translation((1.5, 0, -2))  # a map moved from its file placement
    w = tiny_weights.path
    (on_grid,) = run(cx, f"struc2map #1 resolution 4 onGrid #2 weights {w}")
    assert on_grid.data.size == target.data.size and on_grid.data.step == target.data.step
    assert np.allclose(on_grid.data.origin, target.data.origin) and on_grid.position == target.position
    assert np.ptp(on_grid.full_matrix()) > 0

    (plain,) = run(cx, f"struc2map #1 resolution 4 weights {w}")
    # the same as ChimeraX's own 'volume resample' (the bundle uses only public Volume methods for it)
    resampled = run(cx, f"volume resample #{plain.id_string} onGrid #2")
    assert resampled.data.size == on_grid.data.size and resampled.position == on_grid.position
    assert np.allclose(resampled.full_matrix(), on_grid.full_matrix(), atol=1e-6)
    cx.models.close([resampled])
    (coarse,) = run(cx, f"struc2map #1 resolution 4 gridSpacing 2 weights {w}")
    assert coarse.data.step == (2.0, 2.0, 2.0) and np.allclose(coarse.data.origin, plain.data.origin)
    assert coarse.data.size == tuple(n // 2 for n in plain.data.size)  # ChimeraX's region_grid rule
    assert len(_volumes(cx)) == 4  # the intermediate 1 Å maps were not left open
    with pytest.raises(UserError, match="not both"):
        run(cx, f"struc2map #1 resolution 4 gridSpacing 2 onGrid #2 weights {w}")


def test_several_structures_give_one_map_each(cx, data, tiny_weights):
    path = data("t20s_fragment_emd5623/test_model.pdb")
    first, second = open_pdb(cx, path)[0], open_pdb(cx, path)[0]
    from chimerax.geometry import translation

    second.position = translation((40, 0, 0))
    volumes = run(cx, f"struc2map #1,2 resolution 5 weights {tiny_weights.path}")
    assert [v.position for v in volumes] == [first.position, second.position]
    assert [v.id for v in volumes] == [(3,), (4,)]
    assert [v.name for v in volumes] == ["test_model.pdb struc2map 5"] * 2
    assert sum("struc2map map" in h for h in cx.capture.html) == 2


def test_stop_ends_the_run_without_a_map(cx, data, tiny_weights):
    open_pdb(cx, data("t20s_fragment_emd5623/test_model.pdb"))
    from chimerax.core.logger import PlainTextLog

    class StopOnFirstTile(PlainTextLog):
        excludes_other_logs = False

        def status(self, msg, color, secondary):
            if re.search(r"\d+ of \d+ tiles", msg):
                run(cx, "struc2map stop")  # as typed while the GUI processes events between batches
            return False

    stopper = StopOnFirstTile()
    cx.logger.add_log(stopper)
    try:
        volumes = run(cx, f"struc2map #1 resolution 4 tileSize 32 batchSize 1 weights {tiny_weights.path}")
    finally:
        cx.logger.remove_log(stopper)
    assert volumes == [] and _volumes(cx) == []
    assert any("stopped on request after 0 of 1" in m for _, m in cx.test_log.messages[-3:])
    # the next run starts afresh
    assert len(run(cx, f"struc2map #1 resolution 4 weights {tiny_weights.path}")) == 1


def _corrupt_copy(weights, folder: Path) -> Path:
    pt = folder / "bad.pt"
    data = bytearray(weights.path.read_bytes())
    data[-10] ^= 0xFF
    pt.write_bytes(bytes(data))
    shutil.copy(weights.path.with_suffix(".json"), folder / "bad.json")
    return pt


@pytest.mark.parametrize("args, message", [
    ("resolution 0", 'Invalid "resolution" argument: Must be greater than or equal to 0.5'),  # in the parser
    ("resolution -2", 'Invalid "resolution" argument: Must be greater than or equal to 0.5'),
    ("", "resolution"),
    ("resolution 3 weights /nonexistent/w.pt", "does not exist"),
    ("resolution 3 weights CORRUPT", "corrupt or was changed"),
    ("resolution 3 tileSize 20", "multiple of 8"),
    ("resolution 3 batchSize 0", 'Invalid "batchSize" argument: Must be greater than or equal to 1'),
    ("resolution 3 device quantum", "Unknown compute device 'quantum'"),
    ("resolution 3 device cuda", "CUDA GPU was requested"),
])
def test_bad_arguments_are_user_errors(cx, data, tiny_weights, tmp_path, args, message):
    if "cuda" in args and torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    open_pdb(cx, data("t20s_fragment_emd5623/test_model.pdb"))
    args = args.replace("CORRUPT", str(_corrupt_copy(tiny_weights, tmp_path)))
    weights = "" if "weights" in args else f" weights {tiny_weights.path}"
    with pytest.raises(UserError, match=re.escape(message)):
        run(cx, f"struc2map #1 {args}{weights}")
    assert _volumes(cx) == []


def test_no_atoms_but_hydrogens(cx, tiny_weights, tmp_path):
    pdb = tmp_path / "h.pdb"
    pdb.write_text("".join(f"HETATM{i:5d}  H   HOH A{i:4d}    {i:8.3f}   0.000   0.000  1.00  0.00           H\n"
                           for i in range(1, 4)) + "END\n")
    open_pdb(cx, pdb)
    with pytest.raises(UserError, match="has no atoms other than hydrogens"):
        run(cx, f"struc2map #1 resolution 4 weights {tiny_weights.path}")


def test_model_id_and_name_need_one_structure_and_a_free_id(cx, data, tiny_weights):
    path = data("t20s_fragment_emd5623/test_model.pdb")
    open_pdb(cx, path), open_pdb(cx, path)
    with pytest.raises(UserError, match="one structure"):
        run(cx, f"struc2map #1,2 resolution 4 modelId 9 weights {tiny_weights.path}")
    with pytest.raises(UserError, match="#2 already exists"):
        run(cx, f"struc2map #1 resolution 4 modelId 2 weights {tiny_weights.path}")


def test_missing_weights_say_where_they_should_be(cx, data, monkeypatch):
    from chimerax.struc2map import weights_io

    monkeypatch.setattr(weights_io, "default_weights_path", lambda: None)
    open_pdb(cx, data("t20s_fragment_emd5623/test_model.pdb"))
    with pytest.raises(UserError) as err:
        run(cx, "struc2map #1 resolution 4")
    assert weights_io.MISSING_WEIGHTS_HELP in str(err.value) and "weights keyword" in str(err.value)


def test_missing_torch_says_how_to_install_it(cx, data, monkeypatch, tiny_weights):
    monkeypatch.setitem(sys.modules, "torch", None)  # what `import torch` meets when PyTorch is absent
    open_pdb(cx, data("t20s_fragment_emd5623/test_model.pdb"))
    with pytest.raises(UserError, match="is not installed") as err:
        run(cx, f"struc2map #1 resolution 4 weights {tiny_weights.path}")
    # what to type in ChimeraX, and the terminal command for other builds
    assert "Type 'pip install torch' at ChimeraX's command line" in str(err.value)
    assert "ChimeraX -m pip install --user --upgrade torch --index-url https://download.pytorch.org/whl/cu126" \
        in str(err.value)


def test_broken_torch_says_what_to_type(cx, data, monkeypatch, tiny_weights):
    import builtins

    real_import = builtins.__import__

    def broken(name, *args, **kw):  # what a torch with a missing CUDA library raises on import
        if name == "torch":
            raise OSError("libcudnn.so.9: cannot open shared object file")
        return real_import(name, *args, **kw)

    monkeypatch.setattr(builtins, "__import__", broken)
    open_pdb(cx, data("t20s_fragment_emd5623/test_model.pdb"))
    with pytest.raises(UserError, match="cannot be loaded .*libcudnn.*Type 'pip install torch'"):
        run(cx, f"struc2map #1 resolution 4 weights {tiny_weights.path}")


def test_smoke_script_runs_as_chimerax_runs_scripts(cx, data, tiny_weights, capsys):
    from chimerax.core.scripting import open_python_script

    script = REPO / "tests" / "chimerax_smoke.py"
    argv = [str(script), str(data("t20s_fragment_emd5623/test_model.pdb")), str(data("t20s_fragment_emd5623/test_map.ccp4.gz")), "4",
            str(tiny_weights.path)]
    with open(script, "rb") as stream:  # what `chimerax --nogui --exit --script "..."` does with the file
        open_python_script(cx, stream, script.name, argv=argv)
    assert "struc2map smoke test passed" in capsys.readouterr().out


def test_submodel_under_a_moved_parent_is_placed_in_the_scene(cx, data, tmp_path):
    from chimerax.core.models import Model
    from chimerax.geometry import rotation, translation

    from chimerax.struc2map.network import Generator
    from chimerax.struc2map.weights_io import save_weights

    torch.manual_seed(0)  # weights trained on masked targets: density at the atoms, exactly zero far away
    weights = save_weights(tmp_path / "masked", Generator((4, 8, 16, 32)),
                           {"output": {"normalisation": "minmax", "resolution": 3.0, "mask_radius": 3.0}})
    group = Model("group", cx)
    cx.models.add([group])
    structure = open_pdb(cx, data("t20s_fragment_emd5623/test_model.pdb"))[0]
    cx.models.remove([structure])
    cx.models.add([structure], parent=group)
    group.position = translation((25, -10, 40)) * rotation((0, 1, 1), 50)
    structure.position = translation((3, 4, -5))
    (volume,) = run(cx, f"struc2map #{structure.id_string} resolution 3 weights {weights}")
    assert structure.id == (1, 1) and volume.scene_position == structure.scene_position
    assert volume.scene_position != structure.position  # the parent's motion counts
    values = volume.interpolated_values(structure.atoms.scene_coords, cx.models.scene_root_model.scene_position)
    assert np.count_nonzero(values) == len(values)  # density at every atom where the scene has it
    # the logged molmap correlation is ChimeraX's own molmap of the atoms where they are in the scene
    reference = run(cx, f"molmap #{structure.id_string} 3 onGrid #{volume.id_string}")
    expected = run(cx, f"measure correlation #{reference.id_string} inMap #{volume.id_string}")
    (html,) = [h for h in cx.capture.html if "struc2map map" in h]
    assert _logged_scores(html)["molmap 3 Å"] == pytest.approx(expected, rel=1e-3)
    envelope = reference.full_matrix() >= reference.minimum_surface_level  # same grid as the generated map
    assert np.count_nonzero(volume.full_matrix()[envelope]) == np.count_nonzero(envelope)  # molmap lies in the mask


# --- Background runs, as in the GUI -------------------------------------------------------------------------

@pytest.fixture
def gui(cx):
    """The session for runs as in the GUI: the commands say ``wait false`` (the GUI's default; the wheel
    has no GUI) and the tests fire 'new frame' as the GUI's redraw loop does (``_frames``)."""
    return cx


def _frames(session, background, until=None, timeout: float = 300) -> int:
    """Fire 'new frame' about 60 times a second, as ChimeraX's redraw loop does, until the run has ended
    (or ``until()``); returns how many frames the main thread drew meanwhile."""
    deadline, frames = time.monotonic() + timeout, 0
    while not background.ended and not (until is not None and until()):
        assert time.monotonic() < deadline, "the background run did not end"
        session.triggers.activate_trigger("new frame", None)
        frames += 1
        time.sleep(1 / 60)
    return frames


def _record(session, trigger: str) -> tuple[list, object]:
    from chimerax.struc2map.cmd import struc2map_triggers

    seen = []
    handler = struc2map_triggers(session).add_handler(
        trigger, lambda _name, data: seen.append((data, threading.current_thread() is threading.main_thread())))
    return seen, handler


def test_gui_run_returns_at_once_and_opens_the_map_on_the_main_thread(gui, data, tiny_weights):
    from chimerax.struc2map.background import Run
    from chimerax.struc2map.cmd import PROGRESS_TRIGGER, RESULT_TRIGGER, RUN_TRIGGER

    open_pdb(gui, data("t20s_fragment_emd5623/test_model.pdb"))  # 18 tiles, one per batch
    progress, h1 = _record(gui, PROGRESS_TRIGGER)
    results, h2 = _record(gui, RESULT_TRIGGER)
    states, h3 = _record(gui, RUN_TRIGGER)
    try:
        started = time.monotonic()
        background = run(gui, f"struc2map #1 resolution 3.5 batchSize 1 weights {tiny_weights.path} wait false")
        returned = time.monotonic() - started
        assert isinstance(background, Run) and background.in_background and not background.ended
        assert _volumes(gui) == [] and states == [(True, True)]
        frames = _frames(gui, background)
    finally:
        for h in (h1, h2, h3):
            h.remove()
    (volume,) = _volumes(gui)
    assert returned < 1.0 and frames > 20  # the main thread drew frames while the generator ran
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

    progress, handler = _record(session, PROGRESS_TRIGGER)
    background = run(session, command)
    _frames(session, background, until=lambda: len(progress) >= 2)
    handler.remove()
    assert not background.ended, "the run ended before it could be interrupted"
    return background


def test_typed_stop_during_a_gui_run(gui, data, tiny_weights):
    open_pdb(gui, data("haemoglobin_emd3488/5me2.pdb"))
    background = _start_and_wait_for_tiles(gui, f"struc2map #1 resolution 3.5 batchSize 1 weights {tiny_weights.path} "
                                                   "wait false")
    run(gui, "struc2map stop")  # typed while the run goes on: the command line is free
    _frames(gui, background)
    assert _volumes(gui) == [] and background.stop_reason == "on request"
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
    _frames(gui, background)
    assert _volumes(gui) == []
    assert any(re.match(r"struc2map stopped because 5me2.pdb was closed after 0 of 2 maps", m)
               for _, m in gui.test_log.messages)
    assert not any(level >= gui.test_log.LEVEL_ERROR for level, _ in gui.test_log.messages[-5:])
    # the session is free again
    again = run(gui, f"struc2map #2 resolution 3.5 weights {tiny_weights.path} wait false")
    run(gui, "struc2map stop")
    _frames(gui, again)
    assert again.stop_reason == "on request"


def test_closing_the_session_mid_run_is_safe(gui, data, tiny_weights):
    open_pdb(gui, data("haemoglobin_emd3488/5me2.pdb"))
    background = _start_and_wait_for_tiles(gui, f"struc2map #1 resolution 3.5 batchSize 1 "
                                                f"weights {tiny_weights.path} wait false")
    gui.reset()  # what 'close session' does
    _frames(gui, background)
    assert gui.models.list() == [] and background.wait(5)
    assert any("struc2map stopped because 5me2.pdb was closed" in m for _, m in gui.test_log.messages)


def test_gui_run_errors_go_to_the_log(gui, data, tmp_path):
    open_pdb(gui, data("t20s_fragment_emd5623/test_model.pdb"))
    background = run(gui, f"struc2map #1 resolution 3.5 weights {tmp_path / 'absent.pt'} wait false")
    _frames(gui, background)  # no caller to raise to: the error (met on the worker) is logged
    assert _volumes(gui) == []
    assert any(level >= gui.test_log.LEVEL_ERROR and "does not exist" in m for level, m in gui.test_log.messages)


def test_gui_run_with_a_bad_option_fails_before_it_starts(gui, data, tiny_weights):
    from chimerax.struc2map.background import current_run

    open_pdb(gui, data("t20s_fragment_emd5623/test_model.pdb"))
    for options, message in (("device quantum", "Unknown compute device 'quantum'"),
                             ("tileSize 32 margin 16", "leave a core of at least one voxel")):
        with pytest.raises(UserError, match=re.escape(message)):
            run(gui, f"struc2map #1 resolution 3.5 {options} weights {tiny_weights.path} wait false")
        assert current_run(gui) is None and _volumes(gui) == []


# --- fit #N: fitmap of the generated map and of molmap into an experimental map ------------------------------

def test_fit_logs_fitmap_side_by_side_and_moves_the_structure(cx, data, tiny_weights, tmp_path):
    from chimerax.geometry import rotation, translation
    from chimerax.map_fit import map_overlap_and_correlation

    pair = data("haemoglobin_emd3488")
    structure = open_pdb(cx, pair / "5me2.pdb")[0]
    (target,) = run(cx, f"open {_unzip(pair / 'emd_3488.mrc.gz', tmp_path / 'emd_3488.mrc')}")
    centre = structure.atoms.scene_coords.mean(axis=0)
    deposited = structure.atoms.scene_coords
    structure.position = translation((1.5, -1.0, 1.0)) * rotation((1, 2, 0), 4, center=centre)  # off its pose
    off, start = structure.atoms.scene_coords, structure.scene_position
    results, handler = _record(cx, "struc2map result")
    try:
        (volume,) = run(cx, f"struc2map #1 resolution 3.2 fit #2 moveStructure true weights {tiny_weights.path}")
    finally:
        handler.remove()
    ((data, _),) = results
    generated_fit, molmap_fit = data["fits"]
    (html,) = [h for h in cx.capture.html if "fitmap into" in h]
    assert "struc2map #3" in html and "molmap 3.2 Å" in html and "metric cam" in html

    # the structure moved with the generated map, by the motion logged
    assert np.allclose(structure.atoms.scene_coords, generated_fit.motion * off, atol=1e-4)
    assert np.allclose(volume.scene_position.matrix, (generated_fit.motion * start).matrix, atol=1e-5)
    # after = ChimeraX's own correlation of the fitted map in the target; fitmap does not make it worse
    assert generated_fit.after == pytest.approx(map_overlap_and_correlation(volume, target, True)[1:], abs=1e-6)
    assert generated_fit.after[1] >= generated_fit.before[1] - 1e-6

    # molmap at 3.2 Å, fitted by fitmap from the same start, finds the deposited pose again
    moved_back = molmap_fit.motion * off
    rmsd = float(np.sqrt(((moved_back - deposited) ** 2).sum(axis=1).mean()))
    assert rmsd < 0.5, rmsd
    assert molmap_fit.after[1] > molmap_fit.before[1] + 0.1
    angle = np.degrees(np.arccos(np.clip((np.trace(molmap_fit.motion.matrix[:, :3]) - 1) / 2, -1, 1)))
    assert molmap_fit.rotation == pytest.approx(angle, abs=1e-3) and 2 < molmap_fit.rotation < 6
    assert molmap_fit.shift == pytest.approx(np.linalg.norm(molmap_fit.motion * off.mean(axis=0)
                                                            - off.mean(axis=0)), abs=1e-3)


def test_fit_and_move_structure_arguments(cx, data, tiny_weights):
    open_pdb(cx, data("t20s_fragment_emd5623/test_model.pdb"))
    with pytest.raises(UserError, match="give a map to fit into"):
        run(cx, f"struc2map #1 resolution 4 moveStructure true weights {tiny_weights.path}")


# --- The wheel, installed as `toolshed install` does, in a fresh process -----------------------------------

_INSTALLED_SESSION = r"""
import json, pkgutil, sys
import chimerax
# As the application does for the per-user site folder that 'toolshed install' fills.
chimerax.__path__ = pkgutil.extend_path(chimerax.__path__, "chimerax")
from tests.chimerax_session import chimerax_session, open_pdb, run
from chimerax.core.commands.cli import _command_info, command_function, command_url

session = chimerax_session()  # the toolshed reads installed bundles' metadata here
bundle = session.toolshed.find_bundle("ChimeraX-Struc2map", session.logger)
out = {"found": bundle is not None}
out["version"] = bundle.version
out["commands"] = sorted(c.name for c in bundle.commands)
out["tools"] = [[t.name, list(t.categories)] for t in bundle.tools]
out["loaded_before_use"] = "chimerax.struc2map.cmd" in sys.modules
word = _command_info.commands.subcommands["struc2map"]  # the registry's entry for the first word
out["deferred_before_use"] = [word.is_deferred(), word.subcommands["stop"].is_deferred()]
open_pdb(session, sys.argv[1])
volumes = run(session, "struc2map #1 resolution 4")  # no weights keyword: the weights shipped in the wheel
import chimerax.struc2map as pkg
from chimerax.struc2map.weights_io import default_weights_path
out["function"] = command_function("struc2map").__module__
out["package_file"] = pkg.__file__
out["weights"] = str(default_weights_path())
out["help_url"] = command_url("struc2map")
out["tool_help"] = bundle.get_path("docs/user/tools/struc2mapgan.html")
out["volumes"] = [[v.name, list(v.data.step)] for v in volumes]
print("RESULT " + json.dumps(out))
"""


def _run(args, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(args, capture_output=True, encoding="utf-8", errors="replace", **kw)
    assert done.returncode == 0, f"{args[:3]} failed:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return done


def _builder_setuptools() -> Path:
    """The folder with the setuptools ChimeraX's bundle builder runs with, set apart by .ci/run.

    The builder of the ChimeraX 1.7/1.8 code checks for ``ChimeraX_Struc2map-*.whl``, which
    setuptools >= 69 names ``chimerax_struc2map-*.whl`` (so it reports a failed build), while
    the test environment's torch needs setuptools >= 77: the old one is put on the path of
    the builder's process only.
    """
    folder = Path(sys.prefix) / "bundle-builder"
    if not (folder / "setuptools").is_dir():
        pytest.skip(f"ChimeraX's bundle builder needs setuptools < 69 in {folder} (made by .ci/run)")
    return folder


def test_built_wheel_is_discovered_and_registers_struc2map_lazily(tiny_weights, data, tmp_path):
    bundle = tmp_path / "bundle"  # the builder writes build/, dist/ and copies into src/: work on a copy
    shutil.copytree(REPO / "src", bundle / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copytree(REPO / "docs", bundle / "docs")
    shutil.copytree(REPO / "weights", bundle / "weights", ignore=shutil.ignore_patterns("*.pt", "*.json"))
    shutil.copy(REPO / "bundle_info.xml", bundle)
    for suffix in (".pt", ".json"):  # ship the tiny generator as the bundle's weights
        shutil.copy(tiny_weights.path.with_suffix(suffix), bundle / "weights" / f"struc2map_generator{suffix}")
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONIOENCODING": "utf-8"}

    stale = bundle / "build" / "lib" / "chimerax" / "struc2map" / "stale_module.py"  # left by an older build
    stale.parent.mkdir(parents=True)
    stale.write_text("raise ImportError('from an old build')\n")
    # the documented build command: 'devel clean .' then 'devel build .'
    build = ("import logging; from chimerax.bundle_builder import BundleBuilder; "
             "BundleBuilder(logging.getLogger('bundle'), '.').make_clean(); "
             "BundleBuilder(logging.getLogger('bundle'), '.').make_wheel()")
    _run([sys.executable, "-c", build], cwd=bundle,
         env={**env, "PYTHONPATH": os.pathsep.join([str(_builder_setuptools()), env.get("PYTHONPATH", "")])})
    (wheel,) = (bundle / "dist").glob("*.whl")
    assert wheel.name == "ChimeraX_Struc2map-0.1.0-py3-none-any.whl"
    names = zipfile.ZipFile(wheel).namelist()
    assert "chimerax/struc2map/cmd.py" in names and not any("stale_module" in n for n in names)
    metadata = zipfile.ZipFile(wheel).read(next(n for n in names if n.endswith(".dist-info/METADATA"))).decode()
    assert re.search(r"Requires-Dist: ChimeraX-Core\b.*>=1\.8", metadata), metadata[:2000]

    site = tmp_path / "site"
    _run([sys.executable, "-m", "pip", "install", "-q", "--no-deps", "--no-index", "--target", str(site), str(wheel)],
         env=env)
    package = site / "chimerax" / "struc2map"
    for part in ("docs/user/commands/struc2map.html", "docs/user/tools/struc2mapgan.html",
                 "weights/struc2map_generator.pt", "weights/struc2map_generator.json", "cmd.py", "tool.py"):
        assert (package / part).is_file(), part

    done = _run([sys.executable, "-c", _INSTALLED_SESSION, str(data("t20s_fragment_emd5623/test_model.pdb"))],
                cwd=REPO, env={**env, "PYTHONPATH": os.pathsep.join([str(site), str(REPO)])})
    out = json.loads(done.stdout.split("RESULT ", 1)[1])
    assert out["found"] and out["version"] == "0.1.0"
    assert out["commands"] == ["struc2map", "struc2map stop"]
    assert out["tools"] == [["Struc2mapGAN", ["Volume Data"]]]
    assert not out["loaded_before_use"] and out["deferred_before_use"] == [True, True]
    assert out["function"] == "chimerax.struc2map.cmd"
    assert Path(out["package_file"]).is_relative_to(site) and Path(out["weights"]).is_relative_to(site)
    assert out["help_url"] == "help:user/commands/struc2map.html"
    assert out["tool_help"] and Path(out["tool_help"]).is_relative_to(site)
    assert out["volumes"] == [["test_model.pdb struc2map 4", [1.0, 1.0, 1.0]]]


def test_bundle_version_matches_package():
    from chimerax.struc2map import __version__

    assert f'version="{__version__}"' in (REPO / "bundle_info.xml").read_text(encoding="utf-8")
