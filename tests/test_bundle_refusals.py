"""The ``struc2map`` command refuses, before any work and in one sentence, grids and maps that the command line
refuses too (issue 19): a gridSpacing too fine for the memory or too coarse for two planes, and compare / onGrid /
fit maps that are NaN, constant or lie far from the structure; it takes the generate options the command line
takes (margin, precision: issue 20). Real ChimeraX code (the ``ChimeraX==0.1.71`` wheel)."""
import numpy as np
import pytest

from chimerax.core.errors import UserError
from tests.chimerax_session import cx_session, open_pdb, run, volume_from_mapdata  # noqa: F401
from tests.bundle_support import cx  # noqa: F401

from chimerax.struc2map.map_data import MapData

MODEL = "t20s_fragment_emd5623/test_model.pdb"


def test_grid_spacing_too_fine_or_too_coarse_is_one_sentence(cx, data, tiny_weights):
    open_pdb(cx, data(MODEL))
    with pytest.raises(UserError, match=r"needs about .* of memory .* use a coarser gridSpacing"):
        run(cx, f"struc2map #1 resolution 4 gridSpacing 0.001 weights {tiny_weights.path}")
    with pytest.raises(UserError, match="fewer than 2 grid planes .* use a finer spacing"):
        run(cx, f"struc2map #1 resolution 4 gridSpacing 100 weights {tiny_weights.path}")
    assert len(cx.models) == 1  # nothing was opened


@pytest.mark.parametrize("keyword", ["compare", "onGrid", "fit"])
def test_maps_far_away_or_not_finite_are_refused(cx, data, tiny_weights, keyword):
    (structure,) = open_pdb(cx, data(MODEL))
    centre = structure.atoms.coords.mean(axis=0)
    values = np.random.default_rng(0).random((20, 20, 20)).astype(np.float32)
    far = volume_from_mapdata(cx, MapData(values, centre + 5000.0, 1.0), "far")
    far.set_parameters(surface_levels=[0.5])
    with pytest.raises(UserError, match=rf"Map .*far.* \({keyword}\) does not overlap .* same frame"):
        run(cx, f"struc2map #1 resolution 4 {keyword} #{far.id_string} weights {tiny_weights.path}")
    nan = values.copy()
    nan[3, 4, 5] = np.nan
    bad = volume_from_mapdata(cx, MapData(nan, centre - 10.0, 1.0), "nan")
    bad.set_parameters(surface_levels=[0.5])
    with pytest.raises(UserError, match=rf"\({keyword}\) has 1 voxels that are NaN or infinite"):
        run(cx, f"struc2map #1 resolution 4 {keyword} #{bad.id_string} weights {tiny_weights.path}")
    flat = volume_from_mapdata(cx, MapData(np.full_like(values, 0.5), centre - 10.0, 1.0), "flat")
    flat.set_parameters(surface_levels=[0.4])
    with pytest.raises(UserError, match=rf"\({keyword}\) is constant \(0.5 everywhere\)"):
        run(cx, f"struc2map #1 resolution 4 {keyword} #{flat.id_string} weights {tiny_weights.path}")
    near = volume_from_mapdata(cx, MapData(values, centre - 10.0, 1.0), "near")
    near.set_parameters(surface_levels=[0.5])
    (made,) = run(cx, f"struc2map #1 resolution 4 {keyword} #{near.id_string} weights {tiny_weights.path}")
    assert np.isfinite(made.full_matrix()).all()


@pytest.mark.parametrize("options, expected", [
    ("resolution 1e9", 'Invalid "resolution" argument: Must be less than or equal to 100'),
    ("resolution 4 tileSize 0", 'Invalid "tileSize" argument: Must be greater than or equal to 1'),
    ("resolution 4 margin -1", 'Invalid "margin" argument: Must be greater than or equal to 0'),
    ("resolution 4 precision fp64", 'Invalid "precision" argument: Should be one of'),
])
def test_bad_numbers_fail_in_the_parser_before_a_run(cx, data, tiny_weights, options, expected):
    open_pdb(cx, data(MODEL))
    with pytest.raises(UserError, match=expected):
        run(cx, f"struc2map #1 {options} weights {tiny_weights.path}")
    assert len(cx.models) == 1


def test_margin_and_precision_reach_the_run_as_on_the_command_line(cx, data, tiny_weights, monkeypatch):
    from chimerax.struc2map import generate
    from chimerax.struc2map.options import TilingConfig

    real, seen = generate.generate_from_input, []

    def recording(*args, **kwargs):
        seen.append((kwargs["tiling"], kwargs["device"]))
        return real(*args, **kwargs)

    monkeypatch.setattr(generate, "generate_from_input", recording)
    open_pdb(cx, data(MODEL))
    (made,) = run(cx, f"struc2map #1 resolution 4 tileSize 16 margin 2 batchSize 3 precision fp32 device CPU "
                      f"weights {tiny_weights.path}")
    assert seen == [(TilingConfig(tile_size=16, margin=2, batch_size=3, precision="fp32"), "cpu")]
    models = len(cx.models)
    with pytest.raises(UserError, match="leave a core of at least one voxel in a 16-voxel tile, got 8"):
        run(cx, f"struc2map #1 resolution 4 tileSize 16 margin 8 weights {tiny_weights.path}")
    assert len(seen) == 1 and len(cx.models) == models  # refused before any work
