"""The ChimeraX bundle inside real ChimeraX code (the ``ChimeraX==0.1.71`` wheel).

- The bundle wheel built from bundle_info.xml by ChimeraX's bundle builder, installed
  as ``toolshed install`` does (pip, no dependencies), is found by the toolshed from its
  installed metadata, registers ``struc2map`` lazily on first use, carries its help pages
  and weights, and runs (in a subprocess, so this session stays clean).
- ``struc2map`` run through ChimeraX's command parser on a real model and map: the
  volume's grid, origin and position; the logged table against ChimeraX's own
  ``measure correlation``; onGrid, gridSpacing, several structures, stop; errors.

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
    assert volume.position == structure.position
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
    assert f"measure correlation #2 inMap #3" in html and "molmap #1 3.5 onGrid #3" in html

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
    assert volume.position == structure.position
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
    ("resolution 0", "Resolution must be a positive number"),
    ("resolution -2", "Resolution must be a positive number"),
    ("", "resolution"),
    ("resolution 3 weights /nonexistent/w.pt", "does not exist"),
    ("resolution 3 weights CORRUPT", "corrupt or was changed"),
    ("resolution 3 tileSize 20", "multiple of 8"),
    ("resolution 3 batchSize 0", "batch size must be at least 1"),
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
    with pytest.raises(UserError, match="pip install torch") as err:
        run(cx, f"struc2map #1 resolution 4 weights {tiny_weights.path}")
    assert "toolshed install" in str(err.value)


def test_smoke_script_runs_as_chimerax_runs_scripts(cx, data, tiny_weights, capsys):
    from chimerax.core.scripting import open_python_script

    script = REPO / "tests" / "chimerax_smoke.py"
    argv = [str(script), str(data("t20s_fragment_emd5623/test_model.pdb")), str(data("t20s_fragment_emd5623/test_map.ccp4.gz")), "4",
            str(tiny_weights.path)]
    with open(script, "rb") as stream:  # what `chimerax --nogui --exit --script "..."` does with the file
        open_python_script(cx, stream, script.name, argv=argv)
    assert "struc2map smoke test passed" in capsys.readouterr().out


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

    build = ("import logging; from chimerax.bundle_builder import BundleBuilder; "
             "BundleBuilder(logging.getLogger('bundle'), '.').make_wheel()")
    _run([sys.executable, "-c", build], cwd=bundle,
         env={**env, "PYTHONPATH": os.pathsep.join([str(_builder_setuptools()), env.get("PYTHONPATH", "")])})
    (wheel,) = (bundle / "dist").glob("*.whl")
    assert wheel.name == "ChimeraX_Struc2map-0.1.0-py3-none-any.whl"

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
