"""Map scores and resampling, checked against the real ChimeraX code (the 0.1.71 wheel's
``map_fit``, ``map`` and ``_map`` C++), scikit-image's SSIM and the paper's formulas."""
import re

import numpy as np
import pytest
from skimage.metrics import structural_similarity

from chimerax.struc2map import metrics, resample
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.mapio import read_map
from chimerax.struc2map.metrics import chimerax_correlation, compare_maps, default_contour_level
from chimerax.struc2map.resample import interpolate_at, resample_onto
from tests.chimerax_session import cx_session, open_pdb, run, volume_from_mapdata  # noqa: F401

PAIRS = {  # map, model, resolution
    "t20s": ("t20s_fragment_emd5623/test_map.ccp4.gz", "t20s_fragment_emd5623/test_model.pdb", 3.3),
    "haemoglobin": ("haemoglobin_emd3488/emd_3488.mrc.gz", "haemoglobin_emd3488/5me2.pdb", 3.2),
}
TOLERANCE = 1e-5  # ChimeraX interpolates in float32


def _xyz_to_ijk_place(m: MapData):
    from chimerax.geometry import Place

    return Place(((1 / m.voxel_size[0], 0, 0, -m.origin[0] / m.voxel_size[0]),
                   (0, 1 / m.voxel_size[1], 0, -m.origin[1] / m.voxel_size[1]),
                   (0, 0, 1 / m.voxel_size[2], -m.origin[2] / m.voxel_size[2])))


def _chimerax_interpolate(m: MapData, xyz: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    from chimerax.map._map import interpolate_volume_data

    return interpolate_volume_data(np.asarray(xyz, np.float32), _xyz_to_ijk_place(m).matrix,
                                   np.ascontiguousarray(m.array, np.float32), "linear")


def _shown(volume):
    """The volume with its initial surface made, as ChimeraX's next frame would make it
    (this session has no graphics loop, so a volume opened after others may wait)."""
    if volume.minimum_surface_level is None:
        volume.update_drawings()
    return volume


def _mapdata(volume) -> MapData:
    return MapData(volume.full_matrix().copy(), volume.data.origin, volume.data.step)


def _grid_points(m: MapData) -> np.ndarray:
    k, j, i = np.indices(m.array.shape).reshape(3, -1)
    return m.ijk_to_xyz(np.stack([i, j, k], axis=1))


# ---------------------------------------------------------------- interpolation

def test_interpolation_matches_chimerax_cpp():
    rng = np.random.default_rng(1)
    m = MapData(rng.random((30, 40, 50)).astype(np.float32), (3.1, -2.2, 5.5), (1.1, 0.9, 1.3))
    xyz = rng.uniform(-5, 70, (50000, 3)).astype(np.float32)
    ours = interpolate_at(m, xyz)
    theirs, outside = _chimerax_interpolate(m, xyz)
    assert np.abs(ours - theirs).max() < TOLERANCE
    # the in/out decision too, float32 ties included: the index is computed in float32 as ChimeraX does
    assert np.array_equal(np.isin(np.arange(len(xyz)), outside), ours == 0)
    on_planes = m.ijk_to_xyz(np.indices((50, 40, 30)).reshape(3, -1).T).astype(np.float32)  # every grid point
    _, planes_outside = _chimerax_interpolate(m, on_planes)
    assert np.array_equal(np.isin(np.arange(len(on_planes)), planes_outside),
                          np.isnan(interpolate_at(m, on_planes, np.nan)))
    assert 0.3 < len(outside) / len(xyz) < 0.95


def test_boundary_rule_is_chimerax_half_open_cell():
    """ChimeraX: inside iff 0 <= floor(index) < n - 1, so the last grid plane is outside."""
    a = np.arange(4 * 5 * 6, dtype=np.float32).reshape(4, 5, 6)
    m = MapData(a, (0, 0, 0), 1.0)
    xyz = np.array([[0, 0, 0], [4.5, 3.5, 2.5], [5, 0, 0], [0, 4, 0], [0, 0, 3], [4.999, 0, 0],
                    [-1e-6, 0, 0], [np.nan, 0, 0]])
    theirs, outside = _chimerax_interpolate(m, xyz)
    ours = interpolate_at(m, xyz, outside=-7.0)
    assert list(outside) == [2, 3, 4, 6, 7]
    assert np.array_equal(ours == -7.0, np.isin(np.arange(len(xyz)), outside))
    inside = ours != -7.0
    np.testing.assert_allclose(ours[inside], theirs[inside], rtol=1e-6)
    assert ours[1] == a[2:4, 3:5, 4:6].mean()
    assert (interpolate_at(MapData(np.ones((1, 5, 5)), (0, 0, 0), 1.0), [[1, 1, 0]]) == 0).all()


def test_resample_onto_other_grid_equals_pointwise_interpolation(monkeypatch):
    rng = np.random.default_rng(2)
    source = MapData(rng.random((30, 40, 50)).astype(np.float32), (3.1, -2.2, 5.5), (1.1, 0.9, 1.3))
    target = MapData(np.zeros((25, 33, 41)), (4.0, -1.0, 6.0), (1.05, 1.0, 0.7))
    monkeypatch.setattr(resample, "_CHUNK_POINTS", 3000)  # several slabs and point chunks
    out = resample_onto(source, target)
    assert out.array.dtype == np.float32 and out.array.shape == target.array.shape
    np.testing.assert_array_equal(out.origin, target.origin)
    np.testing.assert_array_equal(out.voxel_size, target.voxel_size)
    expected = interpolate_at(source, _grid_points(target)).astype(np.float32)
    # the same points, to float32 rounding of their index (interpolate_at computes it in float32, as ChimeraX)
    np.testing.assert_allclose(out.array.reshape(-1), expected, rtol=0, atol=2e-5)
    theirs, _ = _chimerax_interpolate(source, _grid_points(target))
    assert np.abs(out.array.reshape(-1) - theirs).max() < TOLERANCE


def test_resample_onto_same_grid_is_a_copy():
    rng = np.random.default_rng(3)
    m = MapData(rng.random((8, 9, 10)), (1.5, 2.5, 3.5), (1.2, 1.2, 1.2), {"label": "x"})
    out = resample_onto(m, MapData(np.zeros((8, 9, 10)), m.origin + 1e-9, m.voxel_size))
    assert out.array.dtype == np.float64 and out.header == {"label": "x"}
    np.testing.assert_array_equal(out.array, m.array)
    assert out.array is not m.array


# ---------------------------------------------------------------- contour level

@pytest.mark.parametrize("name", ["t20s", "haemoglobin"])
def test_default_level_matches_newly_opened_chimerax_volume(cx_session, data, name):
    m = read_map(data(PAIRS[name][0]))
    v = _shown(volume_from_mapdata(cx_session, m))
    assert default_contour_level(m) == v.minimum_surface_level


def test_default_level_matches_chimerax_histogram_on_hard_cases():
    from chimerax.map_data import MatrixValueStatistics

    rng = np.random.default_rng(4)
    first_is_minimum = rng.normal(size=(40, 40, 40)).astype(np.float32)
    first_is_minimum[0, 0, 0] = -100  # ChimeraX's min/max scan skips it
    cases = [first_is_minimum, np.full((10, 10, 10), 3.5, np.float32),
             np.arange(120, dtype=np.int16)[::-1].copy().reshape(4, 5, 6),
             rng.exponential(size=(30, 31, 32))]
    for a in cases:
        stats = MatrixValueStatistics(np.asarray(a, np.float32))
        theirs = stats.rank_data_value(0.99, estimate="high")
        assert default_contour_level(MapData(a, (0, 0, 0), 1.0)) == theirs


def test_initial_step_matches_chimerax_voxel_limit():
    from chimerax.map.volume import ijk_step_for_voxel_limit

    for shape in [(20, 34, 27), (256, 256, 256), (257, 256, 256), (440, 440, 440), (1000, 50, 50),
                  (700, 700, 700)]:
        size = shape[::-1]
        theirs = ijk_step_for_voxel_limit((0, 0, 0), [n - 1 for n in size], (1, 1, 1), 0, True, 16)
        assert [metrics._initial_step(shape)] * 3 == list(theirs)


# ---------------------------------------------------------------- ChimeraX correlation

def _correlation_pair(session, data, name):
    """The experimental map and ChimeraX's molmap of its model, as volumes and MapData."""
    map_path, model_path, resolution = PAIRS[name]
    exp = read_map(data(map_path))
    exp_volume = _shown(volume_from_mapdata(session, exp, "exp"))
    (structure,) = open_pdb(session, data(model_path))
    sim_volume = run(session, f"molmap #{structure.id_string} {resolution}")
    return exp, exp_volume, _mapdata(sim_volume), sim_volume


def _assert_correlation_matches(ours: dict, reference_volume, other_volume) -> tuple[float, float]:
    from chimerax.map_fit import map_overlap_and_correlation
    from chimerax.map_fit.fitmap import map_points_and_weights

    overlap, corr, corr_mean = map_overlap_and_correlation(reference_volume, other_volume, True)
    assert ours["points"] == len(map_points_and_weights(reference_volume, True)[1])
    deviations = (abs(ours["correlation"] - corr), abs(ours["correlation_about_mean"] - corr_mean))
    assert max(deviations) <= TOLERANCE
    if "overlap" in ours:
        assert ours["overlap"] == pytest.approx(overlap, rel=TOLERANCE)
    return deviations


@pytest.mark.parametrize("name", ["t20s", "haemoglobin"])
def test_correlation_matches_chimerax_both_ways(cx_session, data, name):
    exp, exp_volume, sim, sim_volume = _correlation_pair(cx_session, data, name)
    ours = chimerax_correlation(exp, sim)  # default level = ChimeraX's initial level
    _assert_correlation_matches(ours, exp_volume, sim_volume)
    # molmap's own level (95% of mass), not a newly opened map's: pass it
    in_molmap_envelope = chimerax_correlation(sim, exp, sim_volume.minimum_surface_level)
    _assert_correlation_matches(in_molmap_envelope, sim_volume, exp_volume)
    assert in_molmap_envelope["correlation_about_mean"] > 0.5  # the pairs are in register

    level = float(np.sort(exp.array, axis=None)[-500])  # a voxel's value: ">=" takes it in
    run(cx_session, f"volume #{exp_volume.id_string} level {level!r}")
    at_level = chimerax_correlation(exp, sim, level)
    assert at_level["points"] == (exp.array >= exp.array.dtype.type(level)).sum() >= 500
    _assert_correlation_matches(at_level, exp_volume, sim_volume)


def test_measure_correlation_command_text(cx_session, data):
    exp, exp_volume, sim, sim_volume = _correlation_pair(cx_session, data, "t20s")
    cx_session.test_log.messages.clear()
    returned = run(cx_session, f"measure correlation #{exp_volume.id_string} "
                               f"inMap #{sim_volume.id_string}")
    text = " ".join(msg for _level, msg in cx_session.test_log.messages)
    printed = [float(x) for x in re.findall(r"correlation(?: about mean)? = ([-\d.e]+)", text)]
    ours = chimerax_correlation(exp, sim)
    assert f"above level {exp_volume.minimum_surface_level:.4g}" in text
    assert printed == [float(f"{ours[key]:.4g}") for key in ("correlation", "correlation_about_mean")]
    assert abs(returned[0] - ours["correlation"]) <= TOLERANCE
    assert abs(returned[1] - ours["correlation_about_mean"]) <= TOLERANCE


def test_correlation_on_the_same_grid_matches_chimerax(cx_session, data):
    """molmap onGrid: the envelope's points on the last planes fall outside the other map."""
    exp, exp_volume, _, _ = _correlation_pair(cx_session, data, "t20s")
    on_grid = run(cx_session, f"molmap #2 3.3 onGrid #{exp_volume.id_string}")
    _assert_correlation_matches(chimerax_correlation(exp, _mapdata(on_grid)), exp_volume, on_grid)


def test_a_map_scored_against_itself_matches_chimerax(cx_session, data):
    """Its envelope points lie on its own grid: those on the highest planes fall inside or outside by float32
    rounding, as in ChimeraX (before: 0.8871 / 0.2346, where ChimeraX gives 0.9084 / 0.2567)."""
    exp, exp_volume, _, _ = _correlation_pair(cx_session, data, "t20s")
    ours = chimerax_correlation(exp, exp)
    _assert_correlation_matches(ours, exp_volume, exp_volume)
    assert (ours["correlation"], ours["correlation_about_mean"]) == pytest.approx((0.9084, 0.2567), abs=1e-4)


def test_correlation_edge_cases():
    rng = np.random.default_rng(5)
    m = MapData(rng.random((10, 10, 10)).astype(np.float32), (0, 0, 0), 1.0)
    empty = chimerax_correlation(m, m, level=2.0)
    assert empty == {"correlation": 0.0, "correlation_about_mean": 0.0, "overlap": 0.0, "points": 0}
    constant = chimerax_correlation(m, MapData(np.full((12, 12, 12), 3.0), (-1, -1, -1), 1.0))
    assert constant["correlation_about_mean"] == pytest.approx(0.0, abs=1e-6)
    assert constant["correlation"] > 0.9
    far = MapData(m.array, (100, 100, 100), 1.0)
    assert chimerax_correlation(m, far)["correlation"] == 0.0


# ---------------------------------------------------------------- the paper's PCC and SSIM

def test_pearson_matches_numpy_weighted_formula_and_is_zero_for_a_constant():
    rng = np.random.default_rng(5)
    a = rng.normal(size=(9, 10, 11))
    b = a + rng.normal(size=a.shape)
    assert metrics.pearson(a, b) == pytest.approx(np.corrcoef(a.ravel(), b.ravel())[0, 1], abs=1e-14)
    w = rng.random(a.shape)
    x, y = a.ravel() - np.average(a, weights=w), b.ravel() - np.average(b, weights=w)
    weighted = np.sum(w.ravel() * x * y) / np.sqrt(np.sum(w.ravel() * x * x) * np.sum(w.ravel() * y * y))
    assert metrics.pearson(a, b, weights=w) == pytest.approx(weighted, abs=1e-14)
    assert metrics.pearson(a, b, weights=np.ones_like(a)) == pytest.approx(metrics.pearson(a, b), abs=1e-14)
    assert metrics.pearson(a, np.full_like(a, 3.0)) == 0.0
    assert metrics.pearson(a, np.zeros_like(a), weights=w) == 0.0


def _paper_reference_pcc(map1, map2):
    """The authors' calculate_pcc (evaluation/eval_funcs.py), in float64."""
    map1, map2 = np.array(map1, np.float64), np.array(map2, np.float64)
    t1 = np.percentile(map1[np.nonzero(map1)], 90)
    t2 = np.percentile(map2[np.nonzero(map2)], 90)
    map1[map1 < t1] = 0
    map2[map2 < t2] = 0
    map1 = (map1 - map1.min()) / (map1.max() - map1.min())
    map2 = (map2 - map2.min()) / (map2.max() - map2.min())
    return np.corrcoef(map1.ravel(), map2.ravel())[0, 1]


def paper_pcc(a, b):
    """The paper's PCC over the whole box of two maps on one grid, as compare_maps computes it."""
    return metrics.pearson(metrics._paper_normalise(a), metrics._paper_normalise(b))


def paper_ssim(a, b):
    """The paper's SSIM over the whole box of two maps on one grid, as compare_maps computes it."""
    return metrics._mean_ssim(metrics._paper_normalise(a), metrics._paper_normalise(b))


def _skimage_paper_ssim(a, b):
    return structural_similarity(metrics._paper_normalise(a), metrics._paper_normalise(b),
                                 data_range=1)


def _real_pair(data):
    exp = read_map(data(PAIRS["haemoglobin"][0]))
    rng = np.random.default_rng(6)
    noise = rng.normal(0, exp.array.std(), exp.array.shape).astype(np.float32)
    coarser = MapData(np.zeros((90, 95, 100)), exp.origin + 3.3, exp.voxel_size * 1.1)
    other = resample_onto(exp.with_array(exp.array + noise), coarser)
    return exp.array, resample_onto(other, exp).array


def test_pcc_and_ssim_match_references_on_random_data(monkeypatch):
    rng = np.random.default_rng(7)
    a = rng.normal(size=(20, 23, 26)).astype(np.float32)
    b = (a + rng.normal(size=a.shape)).astype(np.float32)
    b[b < 0] = 0
    assert paper_pcc(a, b) == pytest.approx(_paper_reference_pcc(a, b), abs=1e-12)
    monkeypatch.setattr(metrics, "_SLAB_VOXELS", 1000)  # several z-slabs with halos
    assert abs(paper_ssim(a, b) - _skimage_paper_ssim(a, b)) <= 1e-6


def test_pcc_and_ssim_match_references_on_real_data(data):
    a, b = _real_pair(data)
    # 1e-9: the two sums over 10⁶ voxels are ordered differently, and that order moves with the thread count
    # (1.4e-12 apart with OMP_NUM_THREADS=1)
    assert paper_pcc(a, b) == pytest.approx(_paper_reference_pcc(a, b), abs=1e-9)
    assert abs(paper_ssim(a, b) - _skimage_paper_ssim(a, b)) <= 1e-6
    assert paper_pcc(a, a) == pytest.approx(1.0) and paper_ssim(a, a) == pytest.approx(1.0)


def test_paper_normalisation_thresholds_at_90th_percentile_of_nonzero():
    a = np.zeros((7, 7, 7))
    a.flat[:100] = np.arange(1, 101)
    out = metrics._paper_normalise(a)
    threshold = np.percentile(np.arange(1, 101), 90)  # 90.1
    assert (out[a < threshold] == 0).all()
    assert out.max() == 1.0 and np.count_nonzero(out) == 10


def test_pcc_and_ssim_constant_maps_are_defined():
    rng = np.random.default_rng(8)
    a = rng.random((8, 8, 8))
    zeros, constant = np.zeros_like(a), np.full_like(a, 2.0)
    assert paper_pcc(a, zeros) == 0.0 and paper_pcc(a, constant) == 0.0
    assert paper_ssim(zeros, zeros) == 1.0
    assert paper_ssim(constant, constant) == 1.0  # constant -> all zeros after min-max
    assert 0 <= paper_ssim(a, zeros) < 0.1


def test_ssim_refuses_a_reference_smaller_than_its_window():
    small = MapData(np.arange(6 * 8 * 8, dtype=np.float32).reshape(6, 8, 8), np.zeros(3), 1.0)
    with pytest.raises(InputError, match="at least 7"):
        compare_maps(small, small)


# ---------------------------------------------------------------- compare_maps

def test_compare_maps_combines_the_scores(cx_session, data):
    exp, exp_volume, sim, sim_volume = _correlation_pair(cx_session, data, "haemoglobin")
    scores = compare_maps(sim, exp)
    assert set(scores) == {"correlation", "correlation_about_mean", "pcc", "ssim", "level",
                           "points"}
    assert scores["level"] == exp_volume.minimum_surface_level
    _assert_correlation_matches(scores, exp_volume, sim_volume)
    on_exp_grid = resample_onto(sim, exp).array
    assert scores["pcc"] == paper_pcc(exp.array, on_exp_grid)
    assert scores["ssim"] == paper_ssim(exp.array, on_exp_grid)
    shifted = compare_maps(MapData(sim.array, sim.origin + 4.0, sim.voxel_size), exp)
    for key in ("correlation", "correlation_about_mean", "pcc", "ssim"):
        assert scores[key] > shifted[key] + 0.05  # in register beats a 4 Å shift
