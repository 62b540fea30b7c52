"""The struc2mapGAN networks: a nested U-Net (U-Net++) generator and a small 3D CNN discriminator.

Layer and attribute names follow the published checkpoint (see
``rename_published_state_dict``) so that its generator loads into ``Generator``
after a key rename.  The generator pools three times, so every spatial size of
its input must be a multiple of ``TILE_MULTIPLE`` (8), and at least ``MIN_TILE``
(16) so that instance norm at the deepest level sees more than one voxel (the
rule lives in options.py, where the front ends check it without torch); the
paper's tiles are 32³.
"""
from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
import torch.nn.functional as F
from torch import nn

from .errors import WeightsError
from .options import MIN_TILE, TILE_MULTIPLE, valid_tile_size  # TILE_MULTIPLE = 2 ** (LEVELS - 1)

LEVELS = 4
"""Depth of the generator's U-Net++ (nodes conv{i}_{j} with i + j < LEVELS)."""

MAX_WIDTH = 4096
"""The most channels a layer may have (a guard against metadata or settings that would need terabytes)."""

DEFAULT_WIDTHS = (32, 64, 128, 256)


def widths_fit(widths: Sequence[int]) -> bool:
    """Whether ``widths`` can make a generator: LEVELS layer widths, each from 1 to MAX_WIDTH. The one rule the
    network, weights files, imported checkpoints and training settings are held to (each says why in its words)."""
    return len(widths) == LEVELS and all(1 <= int(w) <= MAX_WIDTH for w in widths)


class InstanceNorm3d(nn.InstanceNorm3d):
    """Instance norm that keeps a channels-last (NDHWC) bf16 or fp16 input channels-last.

    PyTorch's own copies such an input to the standard layout; on CPU that
    copy, and the one back for the next convolution, cost more than the
    channels-last convolutions save. Each sample is instead normalised on its
    own with batch norm, which computes the same per-channel statistics and
    keeps the layout. That kernel is less exact (errors ~1e-3 on 32³ tiles in
    our tests, against ~1e-5 for PyTorch's instance norm): no worse than
    bf16's own rounding, too much for fp32, so fp32 and other inputs go
    through ``nn.InstanceNorm3d``.
    """

    def forward(self, x: torch.Tensor, scale: torch.Tensor | None = None,
                shift: torch.Tensor | None = None) -> torch.Tensor:
        """Normalise ``x``; then, if given, multiply by ``1 + scale`` and add ``shift`` (each (N, C): FiLM),
        in the same pass on the fast path."""
        fast = (x.dtype in (torch.bfloat16, torch.float16) and x.dim() == 5
                and x.is_contiguous(memory_format=torch.channels_last_3d)
                and not (self.affine or self.track_running_stats))
        if not fast:
            out = super().forward(x)
            if scale is None:
                return out
            shape = (*scale.shape, 1, 1, 1)
            return out * (1 + scale).to(out.dtype).view(shape) + shift.to(out.dtype).view(shape)
        out = torch.empty_like(x)
        for i in range(x.shape[0]):
            weight = None if scale is None else 1 + scale[i].float()
            bias = None if shift is None else shift[i].float()
            out[i:i + 1] = F.batch_norm(x[i:i + 1], None, None, weight, bias, training=True, eps=self.eps)
        return out


class ConvBlock(nn.Module):
    """Two 3³ convolutions with instance norm and PReLU, plus a residual path.

    The residual path is the identity when ``in_channels == out_channels`` and
    a 3³ convolution with instance norm (``downsample``) otherwise.
    """

    def __init__(self, in_channels: int, mid_channels: int, out_channels: int, condition_dim: int = 0):
        super().__init__()
        self.conv1 = nn.Conv3d(in_channels, mid_channels, 3, padding=1)
        self.norm1 = InstanceNorm3d(mid_channels, affine=False)
        self.prelu1 = nn.PReLU()
        self.conv2 = nn.Conv3d(mid_channels, out_channels, 3, padding=1)
        self.norm2 = InstanceNorm3d(out_channels, affine=False)
        self.prelu2 = nn.PReLU()
        self.downsample = None
        if in_channels != out_channels:
            self.downsample = nn.Sequential(
                nn.Conv3d(in_channels, out_channels, 3, padding=1),
                InstanceNorm3d(out_channels, affine=False),
            )
        self.film = None
        if condition_dim > 0:  # starts as the identity: scale 1, shift 0
            self.film = nn.Linear(condition_dim, 2 * out_channels)
            nn.init.zeros_(self.film.weight)
            nn.init.zeros_(self.film.bias)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        residual = x if self.downsample is None else self.downsample(x)
        out = self.prelu1(self.norm1(self.conv1(x)))
        scale = shift = None
        if self.film is not None:
            scale, shift = self.film(condition).chunk(2, dim=1)
        out = self.norm2(self.conv2(out), scale, shift)
        return self.prelu2(out + residual)


def _node_name(i: int, j: int) -> str:
    return f"conv{i}_{j}"


class Generator(nn.Module):
    """U-Net++ mapping simulated map tiles (N, C, D, H, W) to experimental-like ones (N, 1, D, H, W).

    Node conv{i}_{j} works at depth i (i poolings); conv{i}_0 is the encoder and
    a nested node conv{i}_{j} (j > 0) reads the concatenation of conv{i}_0 ...
    conv{i}_{j-1} and the upsampled conv{i+1}_{j-1}.  The output is linear.
    With ``condition_dim`` > 0 every block is FiLM-modulated by a condition
    vector (N, condition_dim), e.g. the target resolution: instance norm would
    erase a constant input channel, a per-channel scale and shift after it
    cannot be erased.
    """

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS, in_channels: int = 1, out_channels: int = 1,
                 condition_dim: int = 0):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        if not widths_fit(widths):
            raise ValueError(f"Generator needs {LEVELS} widths from 1 to {MAX_WIDTH}, got {widths}.")
        if in_channels < 1 or condition_dim < 0:
            raise ValueError(f"Generator needs at least one input channel and a condition size >= 0, "
                             f"got {in_channels} and {condition_dim}.")
        self.widths = widths
        self.in_channels = int(in_channels)
        self.condition_dim = int(condition_dim)
        self.pool = nn.MaxPool3d(2)
        self.up = nn.Upsample(scale_factor=2, mode="trilinear", align_corners=True)
        # Registered diagonal by diagonal, the order of the published checkpoint.
        for k in range(LEVELS):
            for i in range(k, -1, -1):
                j = k - i
                if j == 0:
                    n_in = in_channels if i == 0 else widths[i - 1]
                else:
                    n_in = j * widths[i] + widths[i + 1]
                self.add_module(_node_name(i, j), ConvBlock(n_in, widths[i], widths[i], condition_dim))
        self.final = nn.Conv3d(widths[0], out_channels, 1)
        self._init_weights()

    def _init_weights(self) -> None:
        for m in self.modules():
            if isinstance(m, nn.Conv3d):  # FiLM layers keep their identity start
                nn.init.normal_(m.weight, 0.0, 0.01)
                nn.init.zeros_(m.bias)

    def forward(self, x: torch.Tensor, condition: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 5 or x.shape[1] != self.in_channels:
            raise ValueError(f"Generator input must have shape (N, {self.in_channels}, D, H, W), got {tuple(x.shape)}.")
        if self.condition_dim and (condition is None or tuple(condition.shape) != (x.shape[0], self.condition_dim)):
            raise ValueError(f"This generator needs a condition of shape (N, {self.condition_dim}), got "
                             f"{None if condition is None else tuple(condition.shape)}.")
        if not all(valid_tile_size(n) for n in x.shape[2:]):
            raise ValueError(
                f"Generator input sizes must be multiples of {TILE_MULTIPLE} voxels and at least {MIN_TILE}, "
                f"got {tuple(x.shape[2:])}."
            )
        nodes: dict[tuple[int, int], torch.Tensor] = {}
        for i in range(LEVELS):
            below = x if i == 0 else self.pool(nodes[i - 1, 0])
            nodes[i, 0] = self.get_submodule(_node_name(i, 0))(below, condition)
        for j in range(1, LEVELS):
            for i in range(LEVELS - j):
                inputs = [nodes[i, k] for k in range(j)] + [self.up(nodes[i + 1, j - 1])]
                nodes[i, j] = self.get_submodule(_node_name(i, j))(torch.cat(inputs, dim=1), condition)
        return self.final(nodes[0, LEVELS - 1])


class Discriminator(nn.Module):
    """3D CNN giving one real/fake logit per tile: (N, 1, D, H, W) -> (N, 1).

    Convolutions conv1..convK (3³, stride 1) of the given widths, all but the
    last followed by instance norm and one shared PReLU; global average pool;
    an MLP fc1..fc(M+1) with ReLU between layers.
    """

    def __init__(self, widths: Sequence[int] = DEFAULT_WIDTHS, hidden: Sequence[int] = (100, 25), in_channels: int = 1):
        super().__init__()
        widths = tuple(int(w) for w in widths)
        hidden = tuple(int(h) for h in hidden)
        self.n_conv = len(widths)
        self.n_fc = len(hidden) + 1
        channels = (in_channels,) + widths
        for k in range(self.n_conv):
            self.add_module(f"conv{k + 1}", nn.Conv3d(channels[k], channels[k + 1], 3, padding=1))
            if k < self.n_conv - 1:
                self.add_module(f"norm{k + 1}", nn.InstanceNorm3d(channels[k + 1], affine=False))
        self.prelu = nn.PReLU()
        self.pool = nn.AdaptiveAvgPool3d(1)
        features = (widths[-1],) + hidden + (1,)
        for k in range(self.n_fc):
            self.add_module(f"fc{k + 1}", nn.Linear(features[k], features[k + 1]))
        self.relu = nn.ReLU()

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for k in range(1, self.n_conv):
            x = self.prelu(self.get_submodule(f"norm{k}")(self.get_submodule(f"conv{k}")(x)))
        x = self.pool(self.get_submodule(f"conv{self.n_conv}")(x)).flatten(1)
        for k in range(1, self.n_fc):
            x = self.relu(self.get_submodule(f"fc{k}")(x))
        return self.get_submodule(f"fc{self.n_fc}")(x)


def rename_published_state_dict(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The generator's parameters from a published Lightning ``state_dict``, without the ``generator.`` prefix.

    Discriminator and any other entries are dropped.  Load the result with
    ``Generator().load_state_dict(result)``.
    """
    prefix = "generator."
    renamed = {key[len(prefix):]: value for key, value in state.items() if key.startswith(prefix)}
    if not renamed:
        raise WeightsError(
            "The checkpoint's state dict has no 'generator.' parameters, so it is not a struc2mapGAN checkpoint."
        )
    return renamed


class FixedCondition(nn.Module):
    """A conditioned generator with its condition fixed (e.g. one target resolution), called as ``module(x)``.

    Lets code that runs any generator on tiles (tiling.py) run a conditioned one unchanged.
    """

    def __init__(self, generator: Generator, condition: torch.Tensor):
        super().__init__()
        self.generator = generator
        self.in_channels = generator.in_channels
        self.register_buffer("condition", condition.reshape(1, -1).float())

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.generator(x, self.condition.expand(x.shape[0], -1))
