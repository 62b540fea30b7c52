"""Check a Struc2map install inside a real ChimeraX (no GUI needed):

    chimerax --nogui --exit --script tests/chimerax_smoke.py
    chimerax --nogui --exit --script "tests/chimerax_smoke.py MODEL MAP RESOLUTION [WEIGHTS.pt]"

Without arguments it uses the repository's example, haemoglobin 5ME2 in EMD-3488
(examples/), at 3.5 Å with the installed weights. MAP may be gzipped (it is
unpacked to a temporary folder, as ChimeraX opens only plain map files). It runs
``struc2map ... compare ... wait true`` through ChimeraX's command line (``wait true``: the
script needs the map when the command returns, also in the GUI), checks the new map's
grid and placement and that its logged correlation equals ChimeraX's own
``measure correlation``, and prints "struc2map smoke test passed". Any failure
raises, so ChimeraX exits with a non-zero status.
"""
import gzip
import shutil
import sys
import tempfile
import time
from pathlib import Path

from chimerax.core.commands import quote_if_necessary, run


def _plain_map(path: Path, folder: str) -> Path:
    if path.suffix != ".gz":
        return path
    plain = Path(folder) / path.stem
    with gzip.open(path, "rb") as f_in, open(plain, "wb") as f_out:
        shutil.copyfileobj(f_in, f_out)
    return plain


def smoke_test(session, args: list) -> None:
    examples = Path(__file__).resolve().parents[1] / "examples"
    model, map_path, resolution = (args + [examples / "5me2.pdb", examples / "emd_3488.mrc.gz", "3.5"][len(args):])[:3]
    weights = f" weights {quote_if_necessary(str(args[3]))}" if len(args) > 3 else ""
    bundle = session.toolshed.find_bundle("ChimeraX-Struc2map", session.logger)
    print("Struc2map bundle:", f"{bundle.name} {bundle.version}" if bundle else "not installed through the toolshed")

    from chimerax.struc2map.cmd import RESULT_TRIGGER, struc2map_triggers

    results = []
    handler = struc2map_triggers(session).add_handler(RESULT_TRIGGER, lambda _name, data: results.append(data))
    with tempfile.TemporaryDirectory() as folder:
        (structure,) = run(session, f"open {quote_if_necessary(str(model))}")
        (experimental,) = run(session, f"open {quote_if_necessary(str(_plain_map(Path(map_path), folder)))}")
        started = time.perf_counter()
        try:
            (volume,) = run(session, f"struc2map #{structure.id_string} resolution {resolution} "
                                     f"compare #{experimental.id_string}{weights} wait true")
        finally:
            handler.remove()
        seconds = time.perf_counter() - started

    assert volume.data.step == (1.0, 1.0, 1.0), volume.data.step
    assert volume.scene_position == structure.scene_position
    values = volume.full_matrix()
    assert values.min() < values.max(), "the generated map is constant"
    (result,) = results
    logged = result["correlations"][experimental.name_with_id()]
    measured = run(session, f"measure correlation #{experimental.id_string} inMap #{volume.id_string}")
    assert all(abs(a - b) < 1e-6 for a, b in zip(logged, measured)), (logged, measured)
    print(f"struc2map smoke test passed in {seconds:.1f} s: map #{volume.id_string} "
          f"{'x'.join(str(n) for n in volume.data.size)} voxels; correlation with "
          f"{experimental.name} {measured[0]:.4f}, about mean {measured[1]:.4f}")


smoke_test(session, sys.argv[1:])  # noqa: F821 (ChimeraX puts the session in a script's namespace)
