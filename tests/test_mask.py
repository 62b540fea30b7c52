"""Masks around atoms and the zero-background output."""
import numpy as np
import pytest

from chimerax.struc2map.map_data import MapData
from chimerax.struc2map.mask import atom_mask, mask_to_background


def test_atom_mask_is_a_ball_of_the_radius():
    grid = MapData(np.zeros((21, 21, 21), np.float32), (-10, -10, -10), 1.0)
    mask = atom_mask(grid, np.array([[0.0, 0.0, 0.0]]), 3.0)
    k, j, i = np.indices(mask.shape) - 10
    np.testing.assert_array_equal(mask, i ** 2 + j ** 2 + k ** 2 <= 9)


def test_background_becomes_zero_and_is_recorded():
    rng = np.random.default_rng(0)
    values = (0.3 + 0.01 * rng.standard_normal((20, 20, 20))).astype(np.float32)
    values[8:12, 8:12, 8:12] = 1.0
    m = MapData(values, (0, 0, 0), 1.0)
    inside = atom_mask(m, np.array([[10.0, 10.0, 10.0]]), 4.0)
    out = mask_to_background(m, inside)
    assert abs(out.header["background"] - 0.3) < 0.005
    assert np.all(out.array[~inside] == 0)
    np.testing.assert_allclose(out.array[inside], values[inside] - out.header["background"], rtol=1e-6)


def test_background_level_comes_from_computed_voxels_only():
    values = np.full((20, 20, 20), 0.3, np.float32)
    values[:, :, 8:] = 5.0  # filler of tiles that were not run
    values[8:12, 8:12, 8:12] = 1.0
    m = MapData(values, (0, 0, 0), 1.0)
    inside = atom_mask(m, np.array([[10.0, 10.0, 10.0]]), 3.0)
    computed = np.zeros(values.shape, bool)
    computed[:, :, :8] = True
    assert mask_to_background(m, inside, computed).header["background"] == pytest.approx(0.3)
    assert mask_to_background(m, inside).header["background"] == pytest.approx(5.0)
    nothing_outside = inside.copy()
    assert mask_to_background(m, inside, nothing_outside).header["background"] == pytest.approx(5.0)
