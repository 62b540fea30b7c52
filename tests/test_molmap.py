"""ChimeraX's molmap reproduced by the engine, checked against the real ChimeraX code."""
import numpy as np

from chimerax.struc2map.grid import MapData
from tests.chimerax_session import cx_session, open_pdb, run, volume_from_mapdata  # noqa: F401


def test_chimerax_session_runs_molmap_and_correlation(cx_session, data_dir):
    (model,) = open_pdb(cx_session, data_dir / "t20s_fragment_emd5623" / "test_model.pdb")
    assert model.num_atoms == 218
    v = run(cx_session, f"molmap #{model.id_string} 3.3 gridSpacing 1")
    assert v.data.step == (1, 1, 1) and v.full_matrix().max() > 0
    copy = volume_from_mapdata(cx_session, MapData(v.full_matrix().copy(), v.data.origin, v.data.step))
    run(cx_session, f"volume #{copy.id_string} level 0.1")
    assert np.array_equal(copy.full_matrix(), v.full_matrix())
    corr, _corr_about_mean = run(cx_session, f"measure correlation #{copy.id_string} inMap #{v.id_string}")
    assert corr > 0.999999
