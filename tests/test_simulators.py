"""Input recipes: the TEMPy-style simulation of the authors' inference script, normalisations, recipe checks."""
import numpy as np
import pytest
from scipy import fft as sp_fft
from scipy.ndimage import fourier_gaussian

from chimerax.struc2map.errors import WeightsError
from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.simulators import (ATOMIC_MASS, NORMALISATIONS, fourier_gaussian_blur, mass_overlay,
                                           normalise, normalize_zscore, tempy_blur)
from chimerax.struc2map.structure import read_structure
from chimerax.struc2map.weights_meta import NORMALISATION_NAMES, RECIPES, GeneratorSpec, input_recipe


def test_mass_overlay_spreads_each_mass_trilinearly():
    grid = MapData(np.zeros((6, 7, 8), np.float32), origin=(10.0, 20.0, 30.0), voxel_size=1.0)
    values = mass_overlay(np.array([[12.25, 21.5, 33.75]]), np.array([6]), grid)
    assert values.sum() == pytest.approx(12.011)
    # x 2.25 -> 0.75 at i=2, 0.25 at i=3; y 1.5 -> 0.5, 0.5; z 3.75 -> 0.25 at k=3, 0.75 at k=4
    assert values[3, 1, 2] == pytest.approx(12.011 * 0.75 * 0.5 * 0.25)
    assert values[4, 2, 3] == pytest.approx(12.011 * 0.25 * 0.5 * 0.75)
    assert np.count_nonzero(values) == 8


def test_mass_overlay_weights_by_mass_and_leaves_others_out(data):
    atoms = read_structure(data("t20s_fragment_emd5623/test_model.pdb"))
    lo = atoms.coords.min(axis=0) - 5
    shape = tuple(int(n) for n in np.ceil(atoms.coords.max(axis=0) - lo + 10)[::-1])
    grid = MapData(np.zeros(shape, np.float32), lo, 1.0)
    numbers = atoms.atomic_numbers.copy()
    numbers[0] = 26  # iron: not in the authors' mass table, adds nothing
    expected = sum(ATOMIC_MASS.get(int(z), 0.0) for z in numbers)
    assert mass_overlay(atoms.coords, numbers, grid).sum() == pytest.approx(expected, rel=1e-9)
    outside = np.vstack([atoms.coords, [[lo[0] - 50, lo[1], lo[2]]]])
    assert mass_overlay(outside, np.append(numbers, 6), grid).sum() == pytest.approx(expected, rel=1e-9)


def test_fourier_blur_is_scipy_fourier_gaussian():
    """The definition TEMPy and the authors' script use: ifftn(fourier_gaussian(fftn(map), σ))."""
    rng = np.random.default_rng(0)
    array = rng.random((12, 15, 10))
    expected = np.real(sp_fft.ifftn(fourier_gaussian(sp_fft.fftn(array), 1.7)))
    np.testing.assert_allclose(fourier_gaussian_blur(array, 1.7), expected, atol=1e-12)


def test_blur_is_skipped_below_one_voxel_as_in_the_authors_script(data):
    atoms = read_structure(data("t20s_fragment_emd5623/test_model.pdb"))
    lo = atoms.coords.min(axis=0) - 8
    grid = MapData(np.zeros((48, 48, 48), np.float32), lo, 1.0)
    splat = mass_overlay(atoms.coords, atoms.atomic_numbers, grid)
    at_2 = tempy_blur(atoms.coords, atoms.atomic_numbers, 2.0, grid).array  # σ = 0.712 voxel: no blur
    np.testing.assert_allclose(at_2, splat, rtol=1e-6)
    at_4 = tempy_blur(atoms.coords, atoms.atomic_numbers, 4.0, grid).array  # σ = 1.424 voxels
    np.testing.assert_allclose(at_4, fourier_gaussian_blur(splat, 1.424), rtol=1e-5, atol=1e-4)


def test_normalisations():
    rng = np.random.default_rng(1)
    array = rng.random((8, 8, 8)) * 5 + 2
    z = normalise(array, "zscore")
    assert z.dtype == np.float32 and abs(z.mean()) < 1e-6 and z.std() == pytest.approx(1, abs=1e-5)
    m = normalise(array, "minmax")
    assert m.min() == 0 and m.max() == 1
    assert np.array_equal(normalize_zscore(np.ones((2, 2, 2))), np.ones((2, 2, 2)))


def test_recipe_checks():
    assert input_recipe({})["simulator"] == "molmap"
    assert input_recipe({"simulator": "tempy-blur"})["sigma_factor"] == 0.356
    with pytest.raises(WeightsError, match="input simulator 'pdb2mrc', which this Struc2map does not know"):
        input_recipe({"simulator": "pdb2mrc"})
    with pytest.raises(WeightsError, match="input normalisation 'percentile'"):
        input_recipe({"simulator": "molmap", "normalisation": "percentile"})


def test_the_weights_spec_holds_the_checked_recipe():
    """The recipe is completed and checked once, when the metadata is parsed; every name it may give is made here."""
    spec = GeneratorSpec.from_metadata({"input": {"simulator": "tempy-blur"}}, "w.json")
    assert spec.recipe == RECIPES["tempy-blur"] and spec.input_resolution == 2.0
    assert GeneratorSpec().recipe == GeneratorSpec.from_metadata({}, "w.json").recipe == RECIPES["molmap"]
    with pytest.raises(WeightsError, match="w.json ask for the input simulator 'pdb2mrc'"):
        GeneratorSpec.from_metadata({"input": {"simulator": "pdb2mrc"}}, "w.json")
    assert set(NORMALISATIONS) == set(NORMALISATION_NAMES)
