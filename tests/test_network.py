"""The generator and discriminator: sizes, wiring, naming and published-checkpoint renaming."""
import pytest
import torch

from chimerax.struc2map.errors import WeightsError
from chimerax.struc2map.network import (
    MIN_TILE,
    TILE_MULTIPLE,
    ConvBlock,
    Discriminator,
    Generator,
    InstanceNorm3d,
    rename_published_state_dict,
    valid_tile_size,
)

SMALL = (4, 8, 16, 32)
NODES = ["conv0_0", "conv1_0", "conv0_1", "conv2_0", "conv1_1", "conv0_2", "conv3_0", "conv2_1", "conv1_2", "conv0_3"]


def n_params(model: torch.nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_parameter_counts_match_paper():
    assert n_params(Generator()) == pytest.approx(10.29e6, rel=0.01)
    assert n_params(Discriminator()) == pytest.approx(1.19e6, rel=0.01)


def test_node_channels_match_paper():
    g = Generator()
    expected = {
        "conv0_0": (1, 32), "conv1_0": (32, 64), "conv2_0": (64, 128), "conv3_0": (128, 256),
        "conv0_1": (96, 32), "conv1_1": (192, 64), "conv2_1": (384, 128),
        "conv0_2": (128, 32), "conv1_2": (256, 64), "conv0_3": (160, 32),
    }
    for name, (n_in, n_out) in expected.items():
        block = getattr(g, name)
        assert (block.conv1.in_channels, block.conv2.out_channels) == (n_in, n_out), name
        assert block.downsample[0].kernel_size == (3, 3, 3)
    assert (g.final.in_channels, g.final.out_channels, g.final.kernel_size) == (32, 1, (1, 1, 1))


def test_state_dict_names_follow_published_checkpoint():
    keys = list(Generator(SMALL).state_dict())
    assert [k.split(".")[0] for k in keys if k.endswith("conv1.weight") and "downsample" not in k] == NODES
    assert "conv0_3.downsample.0.weight" in keys and "conv0_0.prelu2.weight" in keys
    assert keys[-2:] == ["final.weight", "final.bias"]
    assert not any("norm" in k for k in keys)  # instance norms without affine parameters
    d_keys = set(Discriminator(SMALL).state_dict())
    assert d_keys == {f"conv{k}.{p}" for k in range(1, 5) for p in ("weight", "bias")} | {
        "prelu.weight"} | {f"fc{k}.{p}" for k in range(1, 4) for p in ("weight", "bias")}


def test_conv_block_residual_paths():
    assert ConvBlock(8, 8, 8).downsample is None
    block = ConvBlock(4, 8, 6)
    assert block.downsample is not None
    assert block(torch.randn(2, 4, 8, 8, 8)).shape == (2, 6, 8, 8, 8)


def test_channels_last_instance_norm_keeps_a_bf16_layout_and_values():
    torch.manual_seed(0)
    x = torch.randn(3, 5, 6, 8, 4) * 3 + 1
    exact = torch.nn.InstanceNorm3d(5)(x.double())
    fast = InstanceNorm3d(5)(x.bfloat16().contiguous(memory_format=torch.channels_last_3d))
    assert fast.dtype == torch.bfloat16 and fast.is_contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(fast.double(), exact, rtol=0, atol=0.03)  # bf16 keeps 8 bits: 2⁻⁸ of |x| ≤ 4
    # fp32, channels-last or not, is PyTorch's own instance norm
    x = x.contiguous(memory_format=torch.channels_last_3d)
    torch.testing.assert_close(InstanceNorm3d(5)(x), torch.nn.InstanceNorm3d(5)(x), rtol=0, atol=0)


def test_instance_norm_applies_film_scale_and_shift_on_both_paths():
    torch.manual_seed(0)
    x = torch.randn(2, 5, 6, 8, 4) * 3 + 1
    scale, shift = torch.randn(2, 5), torch.randn(2, 5)
    expected = (torch.nn.InstanceNorm3d(5)(x.double()) * (1 + scale.double()).view(2, 5, 1, 1, 1)
                + shift.double().view(2, 5, 1, 1, 1))
    plain = InstanceNorm3d(5)(x, scale, shift)
    torch.testing.assert_close(plain.double(), expected, rtol=0, atol=1e-5)
    fast = InstanceNorm3d(5)(x.bfloat16().contiguous(memory_format=torch.channels_last_3d), scale, shift)
    assert fast.dtype == torch.bfloat16 and fast.is_contiguous(memory_format=torch.channels_last_3d)
    assert (fast.double() - expected).abs().max() < 0.03 * expected.abs().max()  # bf16 rounding


def test_generator_gives_the_same_output_channels_last():
    torch.manual_seed(0)
    g = Generator(SMALL).eval()
    x = torch.rand(2, 1, 16, 24, 16)
    with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16):
        plain = g(x).float()
        g.to(memory_format=torch.channels_last_3d)
        fast = g(x.contiguous(memory_format=torch.channels_last_3d)).float()
    assert torch.corrcoef(torch.stack([plain.flatten(), fast.flatten()]))[0, 1] > 0.999


def test_generator_init():
    g = Generator()
    w = torch.cat([m.weight.flatten() for m in g.modules() if isinstance(m, torch.nn.Conv3d)])
    assert w.std().item() == pytest.approx(0.01, rel=0.02)
    assert all(m.bias.abs().max() == 0 for m in g.modules() if isinstance(m, torch.nn.Conv3d))


@pytest.mark.parametrize("shape", [(16, 16, 16), (32, 32, 32), (24, 16, 32)])
def test_forward_shapes(shape):
    torch.manual_seed(0)
    x = torch.randn(2, 1, *shape)
    y = Generator(SMALL)(x)
    assert y.shape == x.shape
    assert Discriminator(SMALL)(x).shape == (2, 1)


def test_every_node_reaches_the_output():
    torch.manual_seed(0)
    g = Generator(SMALL)
    g(torch.randn(1, 1, 16, 16, 16)).square().sum().backward()
    unused = [n for n, p in g.named_parameters() if p.grad is None or p.grad.abs().max() == 0]
    assert unused == []


def test_tile_size_rule():
    assert (TILE_MULTIPLE, MIN_TILE) == (8, 16)
    assert valid_tile_size(32) and valid_tile_size(16)
    assert not valid_tile_size(20) and not valid_tile_size(8) and not valid_tile_size(0)
    g = Generator(SMALL)
    with pytest.raises(ValueError, match="multiples of 8"):
        g(torch.zeros(1, 1, 16, 20, 16))
    with pytest.raises(ValueError, match="at least 16"):
        g(torch.zeros(1, 1, 16, 8, 16))
    with pytest.raises(ValueError, match="shape"):
        g(torch.zeros(1, 16, 16, 16))
    with pytest.raises(ValueError, match="4 widths from 1 to 4096"):
        Generator((4, 8, 16))


def test_rename_published_state_dict():
    torch.manual_seed(0)
    source = Generator(SMALL)
    for p in source.parameters():
        p.data.normal_()
    published = {f"generator.{k}": v for k, v in source.state_dict().items()}
    published.update({f"discriminator.{k}": v for k, v in Discriminator(SMALL).state_dict().items()})
    target = Generator(SMALL)
    target.load_state_dict(rename_published_state_dict(published), strict=True)
    x = torch.randn(1, 1, 16, 16, 16)
    assert torch.equal(source(x), target(x))
    with pytest.raises(WeightsError, match="no 'generator.' parameters"):
        rename_published_state_dict({f"discriminator.{k}": v for k, v in Discriminator(SMALL).state_dict().items()})
