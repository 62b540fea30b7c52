"""The architecture's boundaries, enforced: what runs without ChimeraX, what runs without torch.

- the engine (every module but cmd.py and tool.py) imports without ChimeraX or Qt;
- the ChimeraX command registers and the panel starts without torch, and the generate options are checked
  without it (options.py);
- ``struc2map compare`` and ``molmap`` run, and ``--help`` lists the training steps, without torch;
- the command never imports the training subpackage.

Each check runs in its own Python process with an import blocker (a ``sys.meta_path``
finder raising ImportError for the blocked packages), so no module leaks between tests.
"""
import gzip
import os
import shutil
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
T20S = REPO / "tests" / "data" / "t20s_fragment_emd5623"

BLOCKER = '''
import sys

class Blocker:
    """Refuse the packages in BLOCKED (and their submodules) as if they were not installed."""

    def find_spec(self, name, path=None, target=None):
        if any(name == b or name.startswith(b + ".") for b in BLOCKED):
            raise ImportError(f"{name} is blocked by test_boundaries")
        return None

sys.meta_path.insert(0, Blocker())
'''

NO_CHIMERAX = ("chimerax.core", "chimerax.map", "chimerax.map_fit", "chimerax.atomic", "chimerax.ui", "Qt",
               "PyQt6", "PySide6")
NO_TORCH = ("torch",)


def run_blocked(blocked: tuple[str, ...], code: str, cwd: Path = REPO) -> subprocess.CompletedProcess:
    """Run ``code`` in a fresh interpreter with ``blocked`` packages refused; fail with its output if it fails."""
    script = f"BLOCKED = {blocked!r}\n" + BLOCKER + textwrap.dedent(code)
    # UTF-8 both ways whatever locale an earlier test (a ChimeraX session) left: the outputs hold Å and ×
    done = subprocess.run([sys.executable, "-c", script], cwd=cwd, capture_output=True, text=True, encoding="utf-8",
                          timeout=600, env={**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1",
                                            "PYTHONIOENCODING": "utf-8"})
    assert done.returncode == 0, f"exit {done.returncode}\n{done.stdout}\n{done.stderr}"
    return done


def test_engine_modules_import_without_chimerax_or_qt():
    src = REPO / "src"
    modules = []
    for path in sorted(src.rglob("*.py")):
        parts = path.relative_to(src).with_suffix("").parts
        if parts not in (("cmd",), ("tool",)):
            modules.append(".".join(("chimerax", "struc2map") + parts[:-1 if parts[-1] == "__init__" else None]))
    assert "chimerax.struc2map.molmap" in modules and "chimerax.struc2map.training.train" in modules
    run_blocked(NO_CHIMERAX, f'''
        import importlib
        import types

        # Without ChimeraX, "chimerax" is only this bundle's namespace (the wheel's __init__ imports its core).
        sys.modules["chimerax"] = types.ModuleType("chimerax")
        sys.modules["chimerax"].__path__ = []
        for name in {modules!r}:
            importlib.import_module(name)
        import chimerax.struc2map
        assert chimerax.struc2map.BundleAPI is None  # the bundle glue stays out where ChimeraX is missing
    ''')


def test_command_registers_and_panel_starts_without_torch():
    run_blocked(NO_TORCH, '''
        from chimerax.core.commands import command_function
        from tests.chimerax_session import chimerax_session
        from tests.panel_standins import install_gui_standins, qt_application

        session = chimerax_session()
        from chimerax.struc2map.cmd import register_command, request_stop, struc2map

        register_command(session.logger)
        assert command_function("struc2map") is struc2map and command_function("struc2map stop") is request_stop
        install_gui_standins()
        qt_application()
        from chimerax.struc2map.tool import Struc2mapTool

        tool = Struc2mapTool(session, "Struc2mapGAN")
        assert tool.weights_menu.itemText(0) == "shipped (default)"
        assert "torch" not in sys.modules
    ''')


def test_generate_options_are_checked_without_torch():
    run_blocked(NO_TORCH, '''
        from chimerax.struc2map.errors import InputError
        from chimerax.struc2map.options import GenerateOptions

        options = GenerateOptions(3.5, device="cuda:1", precision="bf16", tile_size=48, margin=4, bfactors="b")
        assert options.tiling().core == 40
        for bad in ({"tile_size": 20}, {"device": "quantum"}, {"resolution": -1}, {"precision": "fp64"}):
            try:
                GenerateOptions(**{"resolution": 3.5, **bad})
            except InputError:
                pass
            else:
                raise AssertionError(f"{bad} was accepted")
        assert "torch" not in sys.modules
    ''')


def test_command_never_imports_training():
    done = run_blocked((), '''
        import chimerax.struc2map.cmd
        print(sorted(m for m in sys.modules if m.startswith("chimerax.struc2map.training")))
    ''')
    assert done.stdout.strip() == "[]"


def test_compare_and_molmap_run_without_torch(tmp_path):
    map_path = tmp_path / "test_map.ccp4"
    with gzip.open(T20S / "test_map.ccp4.gz") as src, open(map_path, "wb") as dst:
        shutil.copyfileobj(src, dst)
    run_blocked(NO_TORCH, f'''
        from chimerax.struc2map.cli import main

        assert main(["molmap", {str(T20S / "test_model.pdb")!r}, "-r", "6", "-o", "molmap.mrc"]) == 0
        assert main(["compare", "molmap.mrc", "--reference", {str(map_path)!r}, "--json", "scores.json"]) == 0
    ''', cwd=tmp_path)
    assert (tmp_path / "molmap.mrc").stat().st_size > 0
    assert '"correlation"' in (tmp_path / "scores.json").read_text(encoding="utf-8")


def test_help_lists_the_training_steps_without_torch():
    done = run_blocked(NO_TORCH, '''
        from chimerax.struc2map.cli import main

        try:
            main(["--help"])
        except SystemExit as stop:
            assert stop.code == 0
    ''')
    for command in ("generate", "molmap", "compare", "weights", "prepare", "train", "evaluate", "export", "fetch"):
        assert command in done.stdout
