"""The bundle wheel built from bundle_info.xml by ChimeraX's bundle builder, installed as ``toolshed install``
does (pip, no dependencies), found by the toolshed from its metadata, registering ``struc2map`` lazily, with
its help pages and weights, run in a subprocess so the test session stays clean."""
import json
import os
import re
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")

from tests.bundle_support import REPO  # noqa: E402


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
