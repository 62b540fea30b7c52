"""The second generator's inputs and outputs: resolution condition (FiLM), B-factor channel, soft envelope."""
import json
import warnings

import numpy as np
import pytest
import torch

from chimerax.struc2map import generate as gen
from chimerax.struc2map.errors import WeightsError
from chimerax.struc2map.channels import (bfactor_channel, bfactors_informative, condition_resolution, input_channels,
                                         resolution_condition)
from chimerax.struc2map.mask import atom_distance, envelope_radii, soft_envelope
from chimerax.struc2map.molmap import molmap, normalize_minmax
from chimerax.struc2map.network import FixedCondition, Generator
from chimerax.struc2map.structure import read_structure
from chimerax.struc2map.tiling import TilingConfig, predict_tiled
from chimerax.struc2map.training.losses import amplitude_falloff_loss, ssim_loss
from chimerax.struc2map.training.warm_start import warm_start
from chimerax.struc2map.weights_io import load_weights, save_weights

WIDTHS = (4, 8, 16, 32)


@pytest.fixture(scope="module")
def fragment(data):
    return read_structure(data("t20s_fragment_emd5623/test_model.pdb"))


def _conditioned_weights(tmp_path, film_scale: float = 0.0):
    torch.manual_seed(0)
    g = Generator(WIDTHS, 2, condition_dim=2)
    if film_scale:
        with torch.no_grad():
            for m in g.modules():
                if getattr(m, "film", None) is not None:
                    m.film.weight.normal_(0, film_scale)
    meta = {"network": {"condition": "resolution"},
            "output": {"envelope": "soft", "resolution": 3.3, "resolution_range": [2.5, 8.0]}}
    return load_weights(save_weights(tmp_path / "cond", g, meta))


def test_bfactors_informative_refuses_flat_zero_and_nonfinite():
    rng = np.random.default_rng(0)
    assert bfactors_informative(rng.uniform(20, 120, 500))[0]
    assert not bfactors_informative(np.zeros(500))[0]
    assert not bfactors_informative(np.ones(500))[0]  # flat, as in some refined boxes
    assert "flat" in bfactors_informative(np.full(500, 80.0))[1]
    assert not bfactors_informative(np.array([30.0, np.nan, 40.0]))[0]


def test_bfactor_channel_is_molmap_when_b_equal_and_wider_where_b_high(fragment):
    coords, z = fragment.coords, fragment.atomic_numbers.astype(float)
    reference = molmap(coords, z, 2.0, grid_spacing=1.0, edge_padding=6.0)
    flat = bfactor_channel(coords, z, np.full(len(coords), 40.0), reference, 2.0)
    assert np.allclose(flat, normalize_minmax(reference.array), atol=1e-6)
    b = np.full(len(coords), 20.0)
    b[coords[:, 0] > np.median(coords[:, 0])] = 220.0  # one half of the fragment mobile
    varied = bfactor_channel(coords, z, b, reference, 2.0)
    assert varied.shape == flat.shape
    # blurring some atoms more lowers the density at their centres relative to the sharp half
    ijk = np.round((coords - reference.origin) / reference.voxel_size).astype(int)
    at_atoms, at_atoms_flat = (v[ijk[:, 2], ijk[:, 1], ijk[:, 0]] for v in (varied, flat))
    mobile = b > 100
    ratio = at_atoms[mobile].mean() / at_atoms[~mobile].mean()
    assert ratio < 0.6 * at_atoms_flat[mobile].mean() / at_atoms_flat[~mobile].mean()


def test_input_channels_zero_second_channel_without_bfactors(fragment):
    coords, z = fragment.coords, fragment.atomic_numbers
    sim = molmap(coords, z, 2.0, grid_spacing=1.0)
    two = input_channels(sim.array * 7.0, coords, z, None, sim, 2.0, channels=2)
    assert two.shape == (2,) + sim.array.shape
    assert np.allclose(two[0], normalize_minmax(sim.array)) and not two[1].any()
    assert input_channels(sim.array, coords, z, None, sim, 2.0, channels=1).shape == (1,) + sim.array.shape


def test_soft_envelope_is_one_inside_zero_outside_and_smooth():
    d = np.linspace(0, 12, 121, dtype=np.float32)
    inner, outer = envelope_radii(3.2)
    w = soft_envelope(d, inner, outer)
    assert np.all(w[d <= inner] == 1) and np.all(w[d >= outer] == 0)
    assert np.all(np.diff(w) <= 0) and np.max(np.abs(np.diff(w))) < 0.06  # no step
    assert envelope_radii(8.0)[0] > envelope_radii(3.0)[0]


def test_film_starts_as_identity_and_then_depends_on_resolution():
    torch.manual_seed(0)
    plain = Generator(WIDTHS, 2)
    torch.manual_seed(0)
    conditioned = Generator(WIDTHS, 2, condition_dim=2)
    conditioned.load_state_dict(plain.state_dict(), strict=False)
    x = torch.rand(2, 2, 16, 16, 16)
    c = torch.from_numpy(np.stack([resolution_condition(3.0), resolution_condition(8.0)]))
    with torch.no_grad():
        assert torch.allclose(conditioned(x, c), plain(x), atol=1e-6)
        for m in conditioned.modules():
            if getattr(m, "film", None) is not None:
                m.film.weight.normal_(0, 0.5)
        same_x = x[:1].expand(2, -1, -1, -1, -1)
        out = conditioned(same_x, c)
    assert not torch.allclose(out[0], out[1], atol=1e-4)
    with pytest.raises(ValueError, match="condition"):
        conditioned(x)


def test_warm_start_reproduces_the_previous_generator(tmp_path):
    torch.manual_seed(1)
    old = Generator(WIDTHS)
    with torch.no_grad():
        for p in old.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    path = save_weights(tmp_path / "old", old, {})
    new = Generator(WIDTHS, 2, condition_dim=2)
    message = warm_start(new, str(path))
    assert "2 widened" in message
    x = torch.rand(1, 1, 16, 16, 16)
    with torch.no_grad():
        expected = old(x)
        got = new(torch.cat([x, torch.zeros_like(x)], dim=1), torch.zeros(1, 2))
        assert torch.allclose(got, expected, atol=1e-5)
        # the new channel's kernels start at zero: it has no influence until training gives it one
        assert torch.allclose(new(torch.cat([x, torch.rand_like(x)], dim=1), torch.zeros(1, 2)), expected, atol=1e-5)
    assert new.conv0_0.conv1.weight[:, 1].abs().sum() == 0 and new.conv0_0.conv1.weight[:, 0].abs().sum() > 0


def test_tiled_two_channel_prediction_matches_one_call(tmp_path):
    torch.manual_seed(0)
    g = Generator(WIDTHS, 2, condition_dim=2).eval()
    volume = np.zeros((2, 40, 40, 40), np.float32)
    volume[:, 8:32, 8:32, 8:32] = np.random.default_rng(0).random((2, 24, 24, 24))
    module = FixedCondition(g, torch.from_numpy(resolution_condition(4.0)))
    config = TilingConfig(tile_size=32, margin=4, precision="fp32", skip_empty=False)
    tiled, report = predict_tiled(module, volume, config, device="cpu")
    assert tiled.shape == (40, 40, 40) and report.tiles_run == report.tiles_total
    # the second channel matters: zeroing it changes the output
    other, _ = predict_tiled(module, np.stack([volume[0], 0 * volume[1]]), config, device="cpu")
    assert np.abs(tiled - other).max() > 1e-4


def test_conditioned_generate_envelope_notes_and_header(fragment, tmp_path):
    weights = _conditioned_weights(tmp_path, film_scale=0.5)
    coords, z = fragment.coords, fragment.atomic_numbers
    b = np.random.default_rng(0).uniform(20, 120, len(coords))
    out, report = gen.generate(coords, z, 4.0, weights, b_factors=b, device="cpu")
    inner, outer = envelope_radii(4.0)
    distance = atom_distance(out, coords, outer + 2)
    assert np.all(out.array[~(distance < outer)] == 0)  # solvent exactly 0 beyond the envelope
    assert np.abs(out.array[distance < inner]).max() > 0
    assert out.header["resolution"] == 4.0 and "envelope" in out.header["values"]
    assert not report.notes
    flat, report_flat = gen.generate(coords, z, 4.0, weights, b_factors=np.zeros(len(coords)), device="cpu")
    assert any("B-factors not used" in n for n in report_flat.notes)
    off, report_off = gen.generate(coords, z, 4.0, weights, b_factors=b, use_bfactors=False, device="cpu")
    assert any("switched off" in n for n in report_off.notes)
    assert np.array_equal(off.array, flat.array) and not np.array_equal(off.array, out.array)
    at8, _ = gen.generate(coords, z, 8.0, weights, b_factors=b, device="cpu")
    assert not np.allclose(at8.array[:out.array.shape[0]].mean(), out.array.mean())  # resolution is an input
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # outside the weights' range: a note says so, once, not a warning too
        fine, report_fine = gen.generate(coords, z, 1.5, weights, b_factors=b, device="cpu")
        coarse, report_coarse = gen.generate(coords, z, 12.0, weights, b_factors=b, device="cpu")
    assert report_fine.effective_resolution == 2.5 and any("finer" in n for n in report_fine.notes)
    assert report_coarse.effective_resolution == 12.0 and any("low-pass" in n for n in report_coarse.notes)


@pytest.mark.parametrize("field, value, message", [
    ("network", {"in_channels": 3}, "network.in_channels"),
    ("network", {"condition": "temperature"}, "network.condition"),
    ("input", {"resolution": "abc"}, "input.resolution"),
    ("output", {"resolution": -5}, "output.resolution"),
    ("output", None, "'output'"),
    ("output", {"resolution_range": [8, 2]}, "resolution_range"),
])
def test_bad_metadata_fields_are_named(tmp_path, field, value, message):
    weights = _conditioned_weights(tmp_path)
    meta = json.loads(weights.path.with_suffix(".json").read_text())
    if isinstance(meta.get(field), dict) and isinstance(value, dict):
        meta[field].update(value)
    else:
        meta[field] = value
    weights.path.with_suffix(".json").write_text(json.dumps(meta))
    with pytest.raises(WeightsError, match=message):
        load_weights(weights.path)


def test_ssim_loss_matches_scikit_image():
    from skimage.metrics import structural_similarity

    rng = np.random.default_rng(0)
    a = rng.random((20, 20, 20)).astype(np.float32)
    b = (a + 0.3 * rng.random((20, 20, 20))).astype(np.float32)
    ours = 1 - ssim_loss(torch.from_numpy(a)[None, None], torch.from_numpy(b)[None, None]).item()
    reference = structural_similarity(a, b, win_size=7, data_range=1.0, use_sample_covariance=False)
    assert ours == pytest.approx(reference, abs=1e-4)
    assert ssim_loss(torch.from_numpy(a)[None, None], torch.from_numpy(a)[None, None]).item() == pytest.approx(0, abs=1e-5)


def _textured_tile(seed: int = 0, n: int = 32) -> np.ndarray:
    """A tile with power at every frequency: sharp random blobs, as atoms in a map."""
    from scipy import ndimage

    rng = np.random.default_rng(seed)
    points = np.zeros((n, n, n))
    points[tuple(rng.integers(0, n, (3, 300)))] = 1.0
    return ndimage.gaussian_filter(points, 0.8).astype(np.float32)


def test_resolution_condition_reads_back():
    for r in (2.6, 3.4, 8.0):
        assert float(condition_resolution(resolution_condition(r))) == pytest.approx(r)
        assert float(condition_resolution(torch.from_numpy(resolution_condition(r))[None])[0]) == pytest.approx(r)


def test_amplitude_falloff_loss_is_the_evaluated_fall_off_under_its_window():
    """Per tile, the loss is realism.amplitude_falloff with the tile's Hann window as the mask: what
    evaluate reports is what training aims at."""
    from scipy import ndimage

    from chimerax.struc2map.map_data import MapData
    from chimerax.struc2map.realism import amplitude_falloff

    sharp = _textured_tile()
    blurred = ndimage.gaussian_filter(sharp, 1.5).astype(np.float32)
    window = np.hanning(32)
    mask = window[:, None, None] * window[None, :, None] * window[None, None, :]
    grid = dict(origin=np.zeros(3), voxel_size=np.full(3, 1.0))
    for resolution in (2.5, 3.4, 5.0):
        reference = amplitude_falloff(MapData(blurred, **grid), MapData(sharp, **grid), mask, resolution)
        ours = amplitude_falloff_loss(torch.from_numpy(blurred)[None, None], torch.from_numpy(sharp)[None, None],
                                      torch.tensor([resolution]), 1.0).item()
        assert ours == pytest.approx(reference, rel=1e-3) and ours > 0.05  # float32 and a 1e-6 floor


def test_amplitude_falloff_loss_ignores_scale_and_coarse_tiles_and_its_gradient_sharpens():
    from scipy import ndimage

    sharp = torch.from_numpy(_textured_tile())[None, None]
    assert amplitude_falloff_loss(3 * sharp, sharp, torch.tensor([3.0]), 1.0).item() == pytest.approx(0, abs=1e-5)
    blurred = torch.from_numpy(ndimage.gaussian_filter(sharp[0, 0].numpy(), 1.5))[None, None]
    # 8 Å leaves one shell between 12 Å and 8 Å on a 32 Å tile: nothing to compare
    assert amplitude_falloff_loss(blurred, sharp, torch.tensor([8.0]), 1.0).item() == 0.0
    pair = torch.cat([blurred, blurred]), torch.cat([sharp, sharp])
    assert amplitude_falloff_loss(*pair, torch.tensor([8.0, 3.0]), 1.0).item() == pytest.approx(
        amplitude_falloff_loss(blurred, sharp, torch.tensor([3.0]), 1.0).item())  # the coarse tile adds nothing
    made = blurred.clone().requires_grad_(True)
    before = amplitude_falloff_loss(made, sharp, torch.tensor([3.0]), 1.0)
    before.backward()
    with torch.no_grad():
        stepped = made - 0.5 * made.grad / made.grad.abs().max() * made.abs().max()
    assert amplitude_falloff_loss(stepped, sharp, torch.tensor([3.0]), 1.0).item() < before.item()
