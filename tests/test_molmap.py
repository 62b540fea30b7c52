"""ChimeraX's molmap reproduced by the engine, checked against the real ChimeraX code
(the ChimeraX 0.1.71 wheel, whose molmap uses the "corner" grid of ChimeraX ≤ 1.8)."""

import numpy as np
import pytest

from chimerax.struc2map.errors import InputError
from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.molmap import (SIGMA_FACTOR, gaussian_density, molmap, molmap_grid,
                                       normalize_minmax)
from tests.chimerax_session import cx_session, open_pdb, run, volume_from_mapdata  # noqa: F401

T20S = "t20s_fragment_emd5623/test_model.pdb"
HAEMOGLOBIN = "haemoglobin_emd3488/5me2.pdb"
ACTIN = "actin_emd5168/3MFP.pdb"
HCN4 = "hcn4_emd0093/6gyn.pdb"


def _open_atoms(session, data, model):
    (structure,) = open_pdb(session, data(model))
    return structure, structure.atoms


def _assert_matches_chimerax(ours: MapData, volume, *, tolerance: float = 1e-6, origin_atol: float = 1e-6) -> float:
    """Same grid as the ChimeraX volume and values within ``tolerance`` of its maximum; returns
    the maximum deviation relative to ChimeraX's maximum value. On one grid the deviation
    measured is 0.9–5.1e-7 (float32 sums in a different order; 5.1e-7 for actin at 6.6 Å)."""
    reference = volume.full_matrix()
    assert ours.array.dtype == np.float32
    assert ours.array.shape == reference.shape
    np.testing.assert_allclose(ours.origin, volume.data.origin, rtol=0, atol=origin_atol)
    np.testing.assert_allclose(ours.voxel_size, volume.data.step, rtol=1e-12)
    deviation = float(np.abs(ours.array - reference).max() / reference.max())
    assert deviation <= tolerance
    return deviation


def test_chimerax_session_runs_molmap_and_correlation(cx_session, data):
    structure, _ = _open_atoms(cx_session, data, T20S)
    assert structure.num_atoms == 218
    v = run(cx_session, f"molmap #{structure.id_string} 3.3 gridSpacing 1")
    assert v.data.step == (1, 1, 1) and v.full_matrix().max() > 0
    copy = volume_from_mapdata(cx_session, MapData(v.full_matrix().copy(), v.data.origin, v.data.step))
    run(cx_session, f"volume #{copy.id_string} level 0.1")
    assert np.array_equal(copy.full_matrix(), v.full_matrix())
    corr, _corr_about_mean = run(cx_session, f"measure correlation #{copy.id_string} inMap #{v.id_string}")
    assert corr > 0.999999


@pytest.mark.parametrize("model, resolution, options", [
    (T20S, 3.3, {}),
    (HAEMOGLOBIN, 3.2, {}),
    (ACTIN, 6.6, {}),
    (HCN4, 2.0, {"grid_spacing": 1.0}),
    (T20S, 3.3, {"grid_spacing": 0.7}),
    (T20S, 4.0, {"sigma_factor": 0.187}),
    (HAEMOGLOBIN, 3.2, {"edge_padding": 2.5}),
    (T20S, 3.3, {"cutoff_range": 3.0}),
], ids=["t20s-defaults", "haemoglobin-defaults", "actin-6.6A", "hcn4-2A-1A-spacing",
        "grid-spacing", "sigma-factor", "edge-padding", "cutoff-range"])
def test_molmap_matches_chimerax(cx_session, data, model, resolution, options):
    from chimerax.map.molmap import molmap as cx_molmap

    _, atoms = _open_atoms(cx_session, data, model)
    volume = cx_molmap(cx_session, atoms, resolution, open_model=False, **options)
    ours = molmap(atoms.coords, atoms.element_numbers, resolution, convention="corner", **options)
    _assert_matches_chimerax(ours, volume)
    step = options.get("grid_spacing", resolution / 3)
    assert ours.header == {"resolution": resolution, "grid_spacing": pytest.approx(step),
                           "sigma_factor": options.get("sigma_factor", SIGMA_FACTOR)}


def test_on_grid_matches_chimerax_ongrid(cx_session, data):
    """An anisotropic grid that cuts through the model: atoms outside it still reach its
    edge voxels exactly as ChimeraX clamps them."""
    structure, atoms = _open_atoms(cx_session, data, HAEMOGLOBIN)
    low, high = atoms.coords.min(axis=0), atoms.coords.max(axis=0)
    target = MapData(np.zeros((40, 45, 50), np.float32), low + 0.3 * (high - low), (1.216, 1.05, 0.9))
    grid = volume_from_mapdata(cx_session, target, name="target")
    volume = run(cx_session, f"molmap #{structure.id_string} 3.2 onGrid #{grid.id_string}")
    ours = molmap(atoms.coords, atoms.element_numbers, 3.2, on_grid=target)
    _assert_matches_chimerax(ours, volume)
    assert ours.header["grid_spacing"] == pytest.approx(1.216)


def _chimerax_1_9_molmap(path):
    """The molmap module of ChimeraX >= 1.9: github.com/RBVI/ChimeraX src/bundles/map/src/molmap.py, copied
    unmodified to tests/data/chimerax/molmap.py (see tests/data/README.md), loaded into the wheel's
    ``chimerax.map`` package so that its relative imports (the C sum_of_gaussians, volume_from_grid_data)
    are the wheel's. Its grid: shape ceil((extent + 2 pad) / step) per axis, centred on the atoms' box."""
    import importlib.util

    import chimerax.map  # noqa: F401  (the package the module's relative imports resolve in)

    spec = importlib.util.spec_from_file_location("chimerax.map._molmap_chimerax_1_9", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize("model, resolution, options", [
    (T20S, 3.3, {}),
    (HAEMOGLOBIN, 3.2, {}),
    (T20S, 3.3, {"grid_spacing": 0.7}),
    (HAEMOGLOBIN, 3.2, {"edge_padding": 2.5}),
    (T20S, 4.0, {"sigma_factor": 0.187, "cutoff_range": 3.0}),
], ids=["t20s-defaults", "haemoglobin-defaults", "grid-spacing", "edge-padding", "sigma-factor-cutoff"])
def test_centered_grid_matches_chimerax_1_9(cx_session, data, model, resolution, options):
    """The default ``centered`` convention against ChimeraX >= 1.9's own molmap code: same grid, same values."""
    chimerax_1_9 = _chimerax_1_9_molmap(data("chimerax/molmap.py"))
    _, atoms = _open_atoms(cx_session, data, model)
    volume = chimerax_1_9.molmap(cx_session, atoms, resolution, open_model=False, **options)
    ours = molmap(atoms.coords, atoms.element_numbers, resolution, **options)
    # ChimeraX takes the atoms' bounds in float32, so its centre differs from ours by up to 1.9e-6 Å here,
    # and the values by up to 3.4e-6 of the maximum; on ChimeraX's very grid they agree as closely as elsewhere.
    _assert_matches_chimerax(ours, volume, tolerance=5e-6, origin_atol=1e-5)
    same_grid = MapData(np.zeros(ours.array.shape, np.float32), volume.data.origin, volume.data.step)
    _assert_matches_chimerax(molmap(atoms.coords, atoms.element_numbers, resolution, on_grid=same_grid,
                                    **{k: v for k, v in options.items() if k in ("sigma_factor", "cutoff_range")}), volume)
    # the grid alone, as generate lays it out before making molmap on it
    origin, shape = molmap_grid(atoms.coords, resolution, grid_spacing=options.get("grid_spacing"),
                                edge_padding=options.get("edge_padding"))
    assert shape == volume.full_matrix().shape
    np.testing.assert_allclose(origin, volume.data.origin, rtol=0, atol=1e-5)
    # the wheel's ChimeraX (<= 1.8) puts the same grid at the atoms' lower corner minus the padding
    corner = molmap(atoms.coords, atoms.element_numbers, resolution, convention="corner", **options)
    assert corner.array.shape == ours.array.shape and not np.allclose(corner.origin, ours.origin, atol=1e-3)


def test_density_integrates_to_weights():
    """Away from the edges each atom contributes its weight (atomic number) in total."""
    coords = np.array([[10.0, 11.3, 9.7], [14.2, 10.1, 12.6]])
    weights = np.array([6, 8])
    grid = MapData(np.zeros((40, 40, 40), np.float32), (0, 0, 0), 0.5)
    density = gaussian_density(coords, weights, 1.0, grid)
    assert density.sum() * 0.5 ** 3 == pytest.approx(14, rel=1e-4)
    assert density[0, 0, 0] == 0  # beyond 5 σ of both atoms


def test_large_model_chunks_agree_with_one_pass(monkeypatch):
    """Chunking and z slabs (forced tiny here) do not change the sum."""
    from chimerax.struc2map import molmap as molmap_module

    rng = np.random.default_rng(0)
    coords = rng.uniform(0, 30, size=(3000, 3))
    weights = rng.choice([1, 6, 7, 8, 16], size=3000)
    whole = molmap(coords, weights, 3.0)
    monkeypatch.setattr(molmap_module, "_CHUNK_VALUES", 1000)
    monkeypatch.setattr(molmap_module, "_SLAB_VOXELS", 500)
    chunked = molmap(coords, weights, 3.0)
    np.testing.assert_allclose(chunked.array, whole.array, rtol=1e-5, atol=1e-6 * whole.array.max())


@pytest.mark.parametrize("resolution", [0, -2.0, float("nan"), float("inf"), "3"])
def test_bad_resolution_is_refused(resolution):
    with pytest.raises(InputError, match="resolution must be a positive finite number"):
        molmap(np.zeros((2, 3)), [6, 6], resolution)


@pytest.mark.parametrize("coords, message", [
    (np.array([[0.0, 1.0, np.nan]]), "not finite"),
    (np.array([[0.0, 1.0, np.inf]]), "not finite"),
    (np.zeros((0, 3)), "no atoms"),
    (np.zeros((4, 2)), "N×3 array"),
])
def test_bad_coordinates_are_refused(coords, message):
    with pytest.raises(InputError, match=message):
        molmap(coords, np.ones(len(coords)), 3.0)


@pytest.mark.parametrize("options, message", [
    ({"grid_spacing": 0.0}, "grid spacing"),
    ({"sigma_factor": -1.0}, "sigma factor"),
    ({"cutoff_range": 0.0}, "cutoff range"),
    ({"edge_padding": float("nan")}, "edge padding"),
    ({"convention": "middle"}, "convention"),
])
def test_bad_options_are_refused(options, message):
    with pytest.raises(InputError, match=message):
        molmap(np.zeros((2, 3)), [6, 6], 3.0, **options)


def test_weights_must_match_atoms():
    with pytest.raises(InputError, match="one weight per atom"):
        molmap(np.zeros((2, 3)), [6, 6, 6], 3.0)


def test_normalize_minmax():
    out = normalize_minmax(np.array([[[-2.0, 0.0], [1.0, 6.0]]]))
    np.testing.assert_allclose(out, [[[0.0, 0.25], [0.375, 1.0]]])
    assert out.dtype == np.float32
    assert not normalize_minmax(np.full((2, 2, 2), 3.5)).any()


def test_open_command_and_molmap_on_a_real_map_grid(cx_session, data, tmp_path):
    """The session's ``open`` reads a model and an (uncompressed, as ChimeraX needs) map;
    molmap on that experimental map's grid matches ChimeraX's ``onGrid``."""
    import gzip
    import shutil

    map_path = tmp_path / "test_map.ccp4"
    with gzip.open(data("t20s_fragment_emd5623/test_map.ccp4.gz")) as packed, open(map_path, "wb") as out:
        shutil.copyfileobj(packed, out)
    (structure,) = run(cx_session, f"open {data(T20S)}")
    (volume,) = run(cx_session, f"open {map_path}")
    assert structure.num_atoms == 218 and volume.data.size == (27, 34, 20)
    experimental = MapData(volume.full_matrix(), volume.data.origin, volume.data.step)
    reference = run(cx_session, f"molmap #{structure.id_string} 3.3 onGrid #{volume.id_string}")
    atoms = structure.atoms
    _assert_matches_chimerax(molmap(atoms.coords, atoms.element_numbers, 3.3, on_grid=experimental), reference)
