"""Target resolution: checks and the Gaussian low-pass in molmap's convention."""
import math
import warnings

import numpy as np
import pytest

from chimerax.struc2map.errors import InputError
from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.molmap import SIGMA_FACTOR, molmap
from chimerax.struc2map.resolution import check_resolution, extra_sigma, lowpass_to_resolution
from chimerax.struc2map.structure import read_structure


@pytest.mark.parametrize("bad", [0, -1, float("nan"), float("inf"), 0.1, 500, "abc"])
def test_bad_resolutions_are_refused(bad):
    with pytest.raises(InputError, match="[Rr]esolution"):
        check_resolution(bad)


def test_possible_resolutions_pass_without_a_warning():
    """Whether the weights make a resolution themselves is generate's note (their range), not a fixed warning."""
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert check_resolution(35) == 35.0 and check_resolution("3.5") == 3.5


def test_extra_sigma_adds_in_quadrature():
    s = extra_sigma(5.0, 3.0)
    assert math.isclose((5.0 * SIGMA_FACTOR) ** 2, (3.0 * SIGMA_FACTOR) ** 2 + s ** 2)
    assert extra_sigma(2.0, 3.0) == 0.0


def test_lowpass_of_molmap_matches_molmap_at_target(data):
    """molmap at 2 Å filtered to 5 Å is molmap at 5 Å (Gaussians compose), on a real model."""
    atoms = read_structure(data("t20s_fragment_emd5623/test_model.pdb"))
    at5 = molmap(atoms.coords, atoms.atomic_numbers, 5.0, grid_spacing=1.0)
    at2 = molmap(atoms.coords, atoms.atomic_numbers, 2.0, on_grid=at5)
    filtered, effective = lowpass_to_resolution(at2, 5.0, 2.0)
    assert effective == 5.0
    a, b = filtered.array.ravel(), at5.array.ravel()
    assert np.corrcoef(a, b)[0, 1] > 0.999
    assert abs(a.sum() - b.sum()) / b.sum() < 0.02  # density is conserved


def test_finer_target_leaves_map_untouched():
    m = MapData(np.random.default_rng(0).random((8, 9, 10), dtype=np.float32), (0, 0, 0), 1.0)
    out, effective = lowpass_to_resolution(m, 2.0, 3.0)
    assert effective == 3.0 and out is m


def test_constant_background_stays_constant():
    m = MapData(np.full((20, 20, 20), 0.3, np.float32), (0, 0, 0), 1.0)
    out, _ = lowpass_to_resolution(m, 8.0, 3.0)
    np.testing.assert_allclose(out.array, 0.3, rtol=1e-5)
