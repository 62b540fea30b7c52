"""Amplitude fall-off and local texture (realism.py) on a real map: what each measure must and must not see."""
import numpy as np
import pytest
from scipy import ndimage

from chimerax.struc2map.errors import InputError
from chimerax.struc2map.mapio import read_map
from chimerax.struc2map.mask import atom_distance, envelope_radii, soft_envelope
from chimerax.struc2map.realism import amplitude_falloff, local_texture
from chimerax.struc2map.structure import read_structure

RESOLUTION = 2.6


@pytest.fixture(scope="module")
def vp6(data):
    """EMD-6272 (2.6 Å) with the soft envelope of its fitted model."""
    exp = read_map(data("vp6_emd6272/6272.mrc.gz"))
    atoms = read_structure(data("vp6_emd6272/6272.pdb"))
    inner, outer = envelope_radii(RESOLUTION)
    return exp, soft_envelope(atom_distance(exp, atoms.coords, outer + 1), inner, outer)


def _blurred(exp, sigma_a):
    return exp.with_array(ndimage.gaussian_filter(exp.array.astype(np.float64), sigma_a / exp.voxel_size[0]))


def test_falloff_is_zero_for_the_map_itself_at_any_scale_and_grows_with_blur(vp6):
    exp, mask = vp6
    assert amplitude_falloff(exp, exp, mask, RESOLUTION) == pytest.approx(0.0, abs=1e-12)
    assert amplitude_falloff(exp.with_array(3.0 * exp.array + 0.0), exp, mask, RESOLUTION) == pytest.approx(0.0, abs=1e-9)
    errors = [amplitude_falloff(_blurred(exp, s), exp, mask, RESOLUTION) for s in (0.5, 1.0, 2.0)]
    assert 0.0 < errors[0] < errors[1] < errors[2]
    # sharper than the reference is as wrong as smoother: a sharpened map also scores above zero
    sharp = exp.array - 0.8 * _blurred(exp, 1.0).array
    assert amplitude_falloff(exp.with_array(sharp), exp, mask, RESOLUTION) > 0.05


def test_texture_is_one_for_the_map_itself_and_falls_with_blur_noise_and_misplacement(vp6):
    exp, mask = vp6
    assert local_texture(exp, exp, mask) == pytest.approx(1.0)
    assert local_texture(exp.with_array(2 * exp.array + 5), exp, mask) == pytest.approx(1.0)
    blurred = local_texture(_blurred(exp, 1.5), exp, mask)
    noise = np.random.default_rng(0).normal(0, exp.array.std(), exp.array.shape)
    noisy = local_texture(exp.with_array(exp.array + 2 * noise), exp, mask)
    shifted = local_texture(exp.with_array(np.roll(exp.array, 4, axis=2)), exp, mask)  # contrast in the wrong places
    assert blurred < 0.95 and noisy < 0.9 and shifted < 0.8


def test_maps_on_other_grids_or_without_band_are_refused(vp6):
    exp, mask = vp6
    cut = exp.with_array(exp.array[:-1])
    with pytest.raises(InputError, match="one grid"):
        amplitude_falloff(cut, exp, mask, RESOLUTION)
    with pytest.raises(InputError, match="one grid"):
        local_texture(exp, exp, mask[:-1])
    with pytest.raises(InputError, match="too small or too coarse"):
        amplitude_falloff(exp, exp, mask, 11.0)
