"""The ``struc2map`` command inside real ChimeraX code (the ``ChimeraX==0.1.71`` wheel), blocking runs.

Run through ChimeraX's command parser on a real model and map: the volume's grid, origin and position (also
for a submodel under a moved parent); the logged table against ChimeraX's own ``measure correlation``;
onGrid and gridSpacing against ChimeraX's ``volume resample``; several structures, stop; errors. Runs in
the background as in the GUI are in test_bundle_background.py, ``fit`` in test_bundle_fit.py, the built
and installed wheel in test_bundle_wheel.py, refusals in test_bundle_refusals.py, predicted models in
test_bundle_plddt.py; what they share in bundle_support.py.

The generator is ``tiny_weights``, small and randomly initialised: its maps mean
nothing, so the tests check placement and bookkeeping, not map quality.
"""
import os
import re
import shutil
import sys
from pathlib import Path

import numpy as np
import pytest

os.environ.setdefault("OMP_NUM_THREADS", "1")
import torch  # noqa: E402

from chimerax.core.errors import UserError  # noqa: E402
from tests.bundle_support import REPO, logged_scores, unzip_gz, open_volumes  # noqa: E402
from tests.bundle_support import cx  # noqa: E402,F401  (a fixture)
from tests.chimerax_session import open_pdb, run  # noqa: E402
from tests.chimerax_session import cx_session  # noqa: E402,F401  (the fixture cx needs)

torch.set_num_threads(1)


def test_real_pair_volume_grid_position_and_logged_correlations(cx, data, tiny_weights, tmp_path):
    structure = open_pdb(cx, data("haemoglobin_emd3488/5me2.pdb"))[0]
    run(cx, f"open {unzip_gz(data('haemoglobin_emd3488/emd_3488.mrc.gz'), tmp_path / 'emd_3488.mrc')}")
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
    scores = logged_scores(html)
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
    run(cx, f"open {unzip_gz(data('t20s_fragment_emd5623/test_map.ccp4.gz'), tmp_path / 'test_map.ccp4')}")
    from chimerax.geometry import translation

    target = open_volumes(cx)[0]
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
    assert len(open_volumes(cx)) == 4  # the intermediate 1 Å maps were not left open
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
    assert volumes == [] and open_volumes(cx) == []
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
    assert open_volumes(cx) == []


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
    assert logged_scores(html)["molmap 3 Å"] == pytest.approx(expected, rel=1e-3)
    envelope = reference.full_matrix() >= reference.minimum_surface_level  # same grid as the generated map
    assert np.count_nonzero(volume.full_matrix()[envelope]) == np.count_nonzero(envelope)  # molmap lies in the mask
