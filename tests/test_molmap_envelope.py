"""One "vs molmap" score: the command line's (engine) and ChimeraX's log use molmap's own contour.

Checked against ChimeraX's own code (the ``ChimeraX==0.1.71`` wheel): the
level ChimeraX's ``molmap`` gives its map, and ``measure correlation`` of a
map made by the ``struc2map`` command within that molmap's envelope.
"""
import numpy as np
import pytest

from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.metrics import molmap_contour_level, molmap_correlation
from chimerax.struc2map.molmap import molmap
from chimerax.struc2map.structure import read_structure
from tests.chimerax_session import cx_session, open_pdb, run  # noqa: F401

MODELS = {"t20s": ("t20s_fragment_emd5623/test_model.pdb", 3.3),
          "haemoglobin": ("haemoglobin_emd3488/5me2.pdb", 3.5)}


def _mapdata(volume) -> MapData:
    return MapData(volume.full_matrix().copy(), volume.data.origin, volume.data.step)


@pytest.mark.parametrize("name", list(MODELS))
def test_molmap_level_is_the_one_chimerax_molmap_draws(cx_session, data, name):
    path, resolution = MODELS[name]
    (structure,) = open_pdb(cx_session, data(path))
    volume = run(cx_session, f"molmap #{structure.id_string} {resolution}")
    assert molmap_contour_level(_mapdata(volume)) == volume.minimum_surface_level


def test_command_line_and_chimerax_give_one_vs_molmap_score(cx_session, data, tiny_weights):
    from chimerax.struc2map.cmd import register_command

    register_command(cx_session.logger)
    path, resolution = MODELS["haemoglobin"]
    (structure,) = open_pdb(cx_session, data(path))
    (generated,) = run(cx_session, f"struc2map #{structure.id_string} resolution {resolution} "
                                   f"weights {tiny_weights.path}")
    reference = run(cx_session, f"molmap #{structure.id_string} {resolution} onGrid #{generated.id_string}")
    chimerax = run(cx_session, f"measure correlation #{reference.id_string} inMap #{generated.id_string}")

    atoms = read_structure(data(path))
    ours_map = _mapdata(generated)
    ours = molmap_correlation(molmap(atoms.coords, atoms.atomic_numbers, resolution, on_grid=ours_map), ours_map)
    assert ours["level"] == pytest.approx(reference.minimum_surface_level, rel=1e-5)
    assert (ours["correlation"], ours["correlation_about_mean"]) == pytest.approx(chimerax, rel=1e-3, abs=1e-6)
    assert np.isfinite(ours["correlation_about_mean"])
