"""Make docs/struc2map_panel.png: the Struc2mapGAN panel after a run, drawn by the current code.

The panel runs in ChimeraX's Python code from the ``ChimeraX==0.1.71`` wheel (GUI-less) with
the GUI stand-ins of tests/panel_standins.py, in an offscreen Qt: it makes haemoglobin 5ME2's
map with the shipped weights, compared with and fitted into EMD-3488 (examples/), then saves
the panel. From the repository root, in the test environment (``bash .ci/run`` makes it):

    python tools/make_panel_figure.py --overwrite      # replaces the committed picture; --output writes elsewhere
"""
from __future__ import annotations

import argparse
import gzip
import shutil
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))


def make_figure(session, output, weights=None, make_panel=None):
    """Open the example, run the panel with compare and fit set, save its picture; returns the panel.
    ``make_panel`` makes the panel (the tests' fixture); ``weights`` replaces the shipped weights."""
    from tests.chimerax_session import open_pdb, run
    from tests.panel_standins import install_gui_standins, qt_application, screenshot

    qt_application()
    install_gui_standins()
    examples = ROOT / "examples"
    with tempfile.TemporaryDirectory() as folder:
        emd = Path(folder) / "emd_3488.mrc"
        with gzip.open(examples / "emd_3488.mrc.gz", "rb") as f_in, open(emd, "wb") as f_out:
            shutil.copyfileobj(f_in, f_out)
        structure = open_pdb(session, examples / "5me2.pdb")[0]
        (experimental,) = run(session, f"open {emd}")
    if make_panel is None:
        from chimerax.struc2map.cmd import register_command
        from chimerax.struc2map.tool import Struc2mapTool

        register_command(session.logger)
        make_panel = lambda: Struc2mapTool(session, "Struc2mapGAN")  # noqa: E731
    tool = make_panel()
    tool.structure_menu.setCurrentIndex(tool.structure_menu.findData(f"#{structure.id_string}"))
    tool.resolution.setValue(3.2)
    for menu in (tool.compare_menu, tool.fit_menu):
        menu.setCurrentIndex(menu.findData(f"#{experimental.id_string}"))
    if weights is not None:
        panel_text = tool.command_text
        tool.command_text = lambda: f"{panel_text()} weights {weights}"
    tool.run_button.click()  # no GUI here: the command runs to the end before click() returns
    screenshot(tool, str(output))
    return tool


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--output", default=str(ROOT / "docs" / "struc2map_panel.png"))
    p.add_argument("--overwrite", action="store_true", help="replace an existing --output (the committed picture)")
    args = p.parse_args()
    from chimerax.struc2map.errors import InputError
    from chimerax.struc2map.files import atomic_path, check_output
    from tests.chimerax_session import chimerax_session

    try:
        check_output(args.output, overwrite=args.overwrite)
        with atomic_path(args.output, ".png", overwrite=args.overwrite) as partial:  # no half-drawn picture
            make_figure(chimerax_session(), partial)
    except InputError as e:
        sys.exit(str(e))
    print(f"wrote {args.output}")


if __name__ == "__main__":
    main()
