"""Tiled inference: the fast tiler against a plain loop over the paper's scheme, and its options."""
import dataclasses
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from chimerax.struc2map.errors import Cancelled, InputError
from chimerax.struc2map.network import Generator
from chimerax.struc2map.tiling import (
    TilingConfig,
    background_value,
    predict_tiled,
)

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
from map_difference import map_difference  # noqa: E402  (a benchmark helper: not part of the product)


def predict_tiled_reference(generator: nn.Module, volume: np.ndarray) -> np.ndarray:
    """The paper's inference as plainly as possible: pad, every 32³ box at stride 20, keep the central 20³."""
    box, stride, margin = 32, 20, 6
    shape = np.array(volume.shape)
    cores = -(-shape // stride)
    padded = np.zeros(cores * stride + 2 * margin, dtype=np.float32)
    padded[margin:margin + shape[0], margin:margin + shape[1], margin:margin + shape[2]] = volume
    out = np.zeros(cores * stride, dtype=np.float32)
    generator.eval()
    with torch.no_grad():
        for z in range(0, cores[0] * stride, stride):
            for y in range(0, cores[1] * stride, stride):
                for x in range(0, cores[2] * stride, stride):
                    tile = torch.from_numpy(padded[z:z + box, y:y + box, x:x + box].copy())[None, None]
                    predicted = generator(tile)[0, 0].numpy()
                    core = predicted[margin:-margin, margin:-margin, margin:-margin]
                    out[z:z + stride, y:y + stride, x:x + stride] = core
    return out[:shape[0], :shape[1], :shape[2]]


def small_generator(seed: int = 0, inner_biases: bool = True) -> Generator:
    """A tiny generator with PyTorch's default (larger) initialisation, so outputs are of order one.

    With ``inner_biases`` off only the final 1³ convolution keeps a bias: the
    output for an all-zero input is then exactly that bias in floating point too.
    """
    torch.manual_seed(seed)
    generator = Generator(widths=(4, 8, 16, 32))
    for module in generator.modules():
        if isinstance(module, nn.Conv3d):
            module.reset_parameters()
            if not inner_biases and module is not generator.final:
                nn.init.zeros_(module.bias)
    return generator


def blobs(shape: tuple[int, int, int], centres, sigma: float = 3.0) -> np.ndarray:
    """Gaussian blobs in [0, 1] cut to exactly 0 beyond 3σ, like molmap's background."""
    z, y, x = np.indices(shape, dtype=np.float32)
    volume = np.zeros(shape, dtype=np.float32)
    for cz, cy, cx, height in centres:
        r2 = (z - cz) ** 2 + (y - cy) ** 2 + (x - cx) ** 2
        volume += height * np.exp(-r2 / (2 * sigma**2)) * (r2 <= (3 * sigma) ** 2)
    return volume / volume.max()


class Doubler(nn.Module):
    """A 'generator' whose tiles cannot disagree: any error in placement or cropping shows.

    2x + 1, plus 1 in every tile that holds density: an all-zero tile gives 1 (the
    background value of skipped tiles), but the zeros of a tile that was run give 2,
    so a tile skipped or run by mistake shows too.
    """

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return 2 * x + 1 + (x.amax(dim=(1, 2, 3, 4), keepdim=True) > 0).to(x.dtype)


def doubled(volume: np.ndarray, tile_size: int, margin: int) -> np.ndarray:
    """What Doubler gives through the tiler, plainly: each core sees its tile's box, ``margin`` wider on every side."""
    core = tile_size - 2 * margin
    seen = np.zeros(volume.shape, dtype=bool)
    for z in range(0, volume.shape[0], core):
        for y in range(0, volume.shape[1], core):
            for x in range(0, volume.shape[2], core):
                box = volume[max(z - margin, 0):z + core + margin, max(y - margin, 0):y + core + margin,
                             max(x - margin, 0):x + core + margin]
                seen[z:z + core, y:y + core, x:x + core] = box.max() > 0
    return np.where(seen, 2 * volume + 2, np.float32(1))


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """Tiny tensors: on a shared 2-core machine OpenMP threads cost far more than they give."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.fixture(scope="module")
def volume() -> np.ndarray:
    return blobs((37, 50, 29), [(8, 10, 6, 1.0), (20, 30, 15, 0.7), (30, 45, 25, 0.5), (18, 4, 22, 0.9)])


@pytest.fixture(scope="module")
def generator() -> Generator:
    return small_generator()


@pytest.fixture(scope="module")
def reference(generator, volume) -> np.ndarray:
    return predict_tiled_reference(generator, volume)


def test_paper_config_matches_plain_loop(generator, volume, reference):
    # One tile per batch, like the loop: batching alone moves CPU convolutions by ~1e-5 (next test).
    config = dataclasses.replace(TilingConfig.paper(), batch_size=1)
    predicted, report = predict_tiled(generator, volume, config, device="cpu")
    assert predicted.dtype == np.float32 and predicted.shape == volume.shape
    assert report.tiles_total == report.tiles_run == 2 * 3 * 2 and report.tiles_skipped == 0
    assert report.background is None and report.peak_memory_bytes is None and report.device == "cpu"
    assert predicted.std() > 0.1
    np.testing.assert_allclose(predicted, reference, rtol=0, atol=1e-6)


def test_batch_size_does_not_change_the_result(generator, volume, reference):
    config = dataclasses.replace(TilingConfig.paper(), batch_size=5)
    predicted, _ = predict_tiled(generator, volume, config, device="cpu")
    # fp32 convolutions may take another algorithm for another batch size: on a 2-core AVX2 CPU one voxel of
    # 53,650 came out 1.6e-5 off (rounding, on values of order 0.2)
    np.testing.assert_allclose(predicted, reference, rtol=1e-5, atol=5e-5)


@pytest.mark.parametrize("tile_size, margin, shape", [(16, 2, (37, 50, 29)), (32, 6, (3, 40, 5)), (64, 8, (70, 9, 33))])
def test_each_voxel_comes_from_its_own_position(tile_size, margin, shape):
    volume = np.random.default_rng(1).random(shape, dtype=np.float32)
    core = tile_size - 2 * margin
    # Empty tiles, skipped; where the volume is long enough, tile 1 then holds density only in its margin.
    volume[: 2 * core + 1 if shape[0] > 2 * core + 1 else shape[0] // 2] = 0
    config = TilingConfig(tile_size=tile_size, margin=margin, batch_size=3)
    predicted, report = predict_tiled(Doubler(), volume, config, device="cpu")
    np.testing.assert_array_equal(predicted, doubled(volume, tile_size, margin))
    assert report.tiles_run + report.tiles_skipped == report.tiles_total
    assert report.background == (1 if report.tiles_skipped else None)


def test_tiles_whose_cores_hold_no_needed_voxel_are_skipped():
    volume = np.random.default_rng(2).random((45, 30, 20), dtype=np.float32)  # no empty tile
    needed = np.zeros(volume.shape, bool)
    needed[2:5, 3, 19] = True  # lattice core (0, 0, 0) holds them all: packing cannot do better
    config = TilingConfig(tile_size=32, margin=6, batch_size=3)
    predicted, report = predict_tiled(Doubler(), volume, config, device="cpu", needed=needed)
    assert (report.tiles_total, report.tiles_run, report.tiles_skipped) == (6, 1, 5)
    computed = np.zeros(volume.shape, bool)
    computed[:20, :20, :20] = True
    np.testing.assert_array_equal(report.predicted, computed)
    np.testing.assert_array_equal(predicted[computed], 2 * volume[computed] + 2)
    assert report.background == 1 and np.all(predicted[~computed] == 1)
    _, every = predict_tiled(Doubler(), volume, config, device="cpu")
    assert every.tiles_skipped == 0 and every.predicted is None
    with pytest.raises(InputError, match="needed"):
        predict_tiled(Doubler(), volume, config, device="cpu", needed=needed[:-1])


def test_cores_are_packed_around_needed_voxels_when_that_runs_fewer_tiles():
    volume = np.random.default_rng(2).random((45, 30, 20), dtype=np.float32)
    needed = np.zeros(volume.shape, bool)
    needed[18:23, 3, 19] = True  # across lattice cores 0 and 1 along z; one core starting at z 18 holds them
    needed[40, 25:28, 0] = True  # a second run, in z cores of its own: [40, 60) clipped to the map
    config = TilingConfig(tile_size=32, margin=6, batch_size=3)
    predicted, report = predict_tiled(Doubler(), volume, config, device="cpu", needed=needed)
    assert (report.tiles_total, report.tiles_run, report.tiles_skipped) == (6, 2, 4)  # the lattice needs 3
    computed = np.zeros(volume.shape, bool)
    computed[18:38, 3:23, 19:] = True
    computed[40:, 25:, 0:20] = True
    np.testing.assert_array_equal(report.predicted, computed)
    # each packed core saw its own box of the input: Doubler's 2x + 2 where run, its background 1 elsewhere
    np.testing.assert_array_equal(predicted[computed], 2 * volume[computed] + 2)
    assert np.all(predicted[~computed] == 1)
    _, lattice = predict_tiled(Doubler(), volume, config, device="cpu", needed=needed, pack=False)
    assert lattice.tiles_run == 3 and lattice.predicted[:40, :20, :20].all()


def test_skipping_empty_tiles_changes_nothing_when_zeros_give_a_constant():
    # Blobs reach voxel 12 at most from (6, 6, 6) and stay within 28..40 around (34, 34, 6): with
    # 20³ cores and margin 6 only tiles (0, 0, 0) and (1, 1, 0) of the 2 x 2 x 2 see anything.
    volume = blobs((40, 40, 25), [(6, 6, 6, 1.0), (34, 34, 6, 0.6)], sigma=2.0)
    generator = small_generator(inner_biases=False)
    config = TilingConfig(tile_size=32, margin=6, batch_size=1, precision="fp32")
    skipped, report = predict_tiled(generator, volume, config, device="cpu")
    every, every_report = predict_tiled(generator, volume, dataclasses.replace(config, skip_empty=False), device="cpu")
    assert (report.tiles_run, report.tiles_skipped) == (2, 6) and every_report.tiles_run == 8
    assert report.background == pytest.approx(generator.final.bias.item(), abs=1e-7)
    np.testing.assert_array_equal(skipped, every)


def test_a_tile_with_density_only_in_its_margin_is_run():
    # Along z (core 20, margin 6) tile 1 reads input voxels 14..45 and keeps 20..39; tile 2 reads 34..65.
    # The blob (z 14..18) lies in tile 0's core and only in tile 1's margin; tile 2 sees nothing.
    volume = blobs((60, 20, 20), [(16, 10, 10, 1.0)], sigma=0.7)
    assert volume[14:19].any() and not volume[:14].any() and not volume[19:].any()
    generator = small_generator(inner_biases=False)  # zeros give exactly its final bias: skipping changes nothing
    config = TilingConfig(tile_size=32, margin=6, batch_size=1, precision="fp32")
    skipped, report = predict_tiled(generator, volume, config, device="cpu")
    every, every_report = predict_tiled(generator, volume, dataclasses.replace(config, skip_empty=False), device="cpu")
    assert (report.tiles_run, report.tiles_skipped, every_report.tiles_run) == (2, 1, 3)
    np.testing.assert_array_equal(skipped, every)
    # the margin's density reaches tile 1's core: skipping it (as an emptiness test on the core would) shows
    assert np.abs(every[20:40] - report.background).max() > 1e-3
    assert np.all(every[40:] == report.background)


def test_background_value_is_the_exact_arithmetic_output_for_zeros(generator):
    # With biases everywhere, every instance norm sees a constant channel: exactly 0 after it,
    # so the whole U-Net++ outputs only its final bias.
    for tile_size in (16, 32):
        assert background_value(generator, tile_size, "cpu") == pytest.approx(generator.final.bias.item(), abs=1e-6)
    assert not generator.training and not generator.conv0_0.norm1._forward_hooks


def test_volume_smaller_than_a_tile(generator):
    volume = blobs((5, 9, 3), [(2, 4, 1, 1.0)], sigma=1.5)
    config = dataclasses.replace(TilingConfig.paper(), batch_size=1)
    predicted, report = predict_tiled(generator, volume, config, device="cpu")
    assert report.tiles_total == 1
    np.testing.assert_allclose(predicted, predict_tiled_reference(generator, volume), rtol=0, atol=1e-6)


def test_progress_counts_up_to_the_tiles_run(volume):
    calls = []
    config = TilingConfig(tile_size=16, margin=2, batch_size=4)
    _, report = predict_tiled(Doubler(), volume, config, device="cpu",
                              progress=lambda done, total: calls.append((done, total)))
    done = [d for d, _ in calls]
    assert done == sorted(set(done)) and done[-1] == report.tiles_run > 4
    assert {total for _, total in calls} == {report.tiles_run}
    assert len(calls) == -(-report.tiles_run // 4)


def test_should_stop_cancels_before_the_next_batch(volume):
    calls = []
    asked = iter([False, False, True])
    with pytest.raises(Cancelled):
        predict_tiled(Doubler(), volume, TilingConfig(tile_size=16, margin=2, batch_size=2), device="cpu",
                      progress=lambda done, total: calls.append(done), should_stop=lambda: next(asked))
    assert calls == [2, 4]


def test_bf16_on_cpu_stays_close_to_fp32(generator, volume, reference):
    config = dataclasses.replace(TilingConfig.paper(), precision="bf16", channels_last=True)
    try:
        bf16, _ = predict_tiled(generator, volume, config, device="cpu")
    except RuntimeError as error:
        pytest.skip(f"bf16 autocast is not supported on this CPU: {error}")
    assert bf16.dtype == np.float32
    difference = map_difference(reference, bf16)
    assert difference["correlation"] > 0.98
    assert difference["mean_abs"] < 0.1 * reference.std()
    ncdhw = dataclasses.replace(config, channels_last=False)
    standard_layout, _ = predict_tiled(generator, volume, ncdhw, device="cpu")
    # channels-last (the default on CPU in bf16) changes only bf16 rounding
    assert map_difference(standard_layout, bf16)["correlation"] > 0.999
    assert difference["mean_abs"] < 1.5 * map_difference(reference, standard_layout)["mean_abs"]
    background = background_value(generator, 32, "cpu", precision="bf16")
    assert background == pytest.approx(generator.final.bias.item(), abs=1e-3)


@pytest.mark.parametrize("kwargs", [{"tile_size": 30}, {"tile_size": 8, "margin": 0}, {"margin": 32}, {"margin": -1},
                                    {"batch_size": 0}, {"precision": "fp64"}])
def test_unusable_configs_are_refused(kwargs):
    with pytest.raises(InputError):
        TilingConfig(**kwargs)


def test_the_tile_size_rule_is_the_generators():
    from chimerax.struc2map import network, options

    assert options.TILE_MULTIPLE == 2 ** (network.LEVELS - 1) and options.MIN_TILE == 2 * options.TILE_MULTIPLE
    assert network.valid_tile_size is options.valid_tile_size and TilingConfig is options.TilingConfig


def test_a_config_changed_after_creation_is_checked_again():
    config = TilingConfig()
    config.margin = 40
    with pytest.raises(InputError, match="margin"):
        predict_tiled(Doubler(), np.zeros((4, 4, 4), np.float32), config, device="cpu")


@pytest.mark.parametrize("bad", [np.zeros((4, 4)), np.zeros((0, 4, 4)), np.full((4, 4, 4), np.nan)])
def test_unusable_volumes_are_refused(bad):
    with pytest.raises(InputError):
        predict_tiled(Doubler(), bad, device="cpu")


def test_map_difference():
    a = np.arange(24, dtype=np.float32).reshape(2, 3, 4)
    same = map_difference(a, a)
    assert same["max_abs"] == 0 and same["mean_abs"] == 0 and same["correlation"] == pytest.approx(1)
    b = a.copy()
    b[0, 0, 0] += 3
    moved = map_difference(a, b)
    assert moved["max_abs"] == 3 and moved["mean_abs"] == pytest.approx(3 / 24) and moved["correlation"] < 1
    masked = map_difference(a, -b, mask=a > 12)
    assert masked["correlation"] == pytest.approx(-1)
    with pytest.raises(ValueError):
        map_difference(a, a[0])
