"""``struc2map ... fit #N``: the generated map and molmap fitted into an experimental map with ChimeraX's own
``fitmap`` and logged side by side (real ChimeraX code from the wheel; ``tiny_weights``)."""
import os

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

from chimerax.core.errors import UserError  # noqa: E402
from tests.bundle_support import record_trigger, unzip_gz  # noqa: E402
from tests.bundle_support import cx  # noqa: E402,F401  (a fixture)
from tests.chimerax_session import open_pdb, run  # noqa: E402
from tests.chimerax_session import cx_session  # noqa: E402,F401  (the fixture cx needs)

torch.set_num_threads(1)


# --- fit #N: fitmap of the generated map and of molmap into an experimental map ------------------------------

def test_fit_logs_fitmap_side_by_side_and_moves_the_structure(cx, data, tiny_weights, tmp_path):
    from chimerax.geometry import rotation, translation
    from chimerax.map_fit import map_overlap_and_correlation

    pair = data("haemoglobin_emd3488")
    structure = open_pdb(cx, pair / "5me2.pdb")[0]
    (target,) = run(cx, f"open {unzip_gz(pair / 'emd_3488.mrc.gz', tmp_path / 'emd_3488.mrc')}")
    centre = structure.atoms.scene_coords.mean(axis=0)
    deposited = structure.atoms.scene_coords
    structure.position = translation((1.5, -1.0, 1.0)) * rotation((1, 2, 0), 4, center=centre)  # off its pose
    off, start = structure.atoms.scene_coords, structure.scene_position
    results, handler = record_trigger(cx, "struc2map result")
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
