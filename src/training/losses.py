"""Loss terms beyond the paper's SmoothL1 and BCE."""
from __future__ import annotations

import functools

import torch
import torch.nn.functional as F

from ..realism import LOW_FREQUENCY

SSIM_WINDOW = 7
"""Voxels per side of SSIM's uniform window, as scikit-image's default that the paper's metric uses."""


def ssim_loss(prediction: torch.Tensor, target: torch.Tensor, data_range: float = 1.0) -> torch.Tensor:
    """1 − mean 3D SSIM of (N, 1, D, H, W) batches, uniform 7³ window, valid region only.

    The constants are SSIM's usual K1 = 0.01, K2 = 0.03 of ``data_range``
    (targets are scaled so that density near the atoms is about 1).
    """
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def local_mean(v: torch.Tensor) -> torch.Tensor:
        return F.avg_pool3d(v, SSIM_WINDOW, stride=1)

    mx, my = local_mean(prediction), local_mean(target)
    vx = local_mean(prediction * prediction) - mx * mx
    vy = local_mean(target * target) - my * my
    cov = local_mean(prediction * target) - mx * my
    ssim = ((2 * mx * my + c1) * (2 * cov + c2)) / ((mx * mx + my * my + c1) * (vx + vy + c2))
    return 1.0 - ssim.mean()


@functools.lru_cache(maxsize=8)
def _shell_geometry(n: int, voxel_size: float, device: torch.device) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """For an n³ tile: a 3D Hann window (so that the tile's cut edges do not add power to every shell), the
    (shells, rfft voxels) matrix that averages amplitudes into shells of width 1/(n·voxel_size) from
    ``realism.LOW_FREQUENCY`` up, and each shell's upper edge (Å⁻¹). Built once per tile shape, not per step."""
    w = torch.hann_window(n, periodic=False, device=device)
    window = w[:, None, None] * w[None, :, None] * w[None, None, :]
    freqs = [torch.fft.fftfreq(n, voxel_size, device=device)] * 2 + [torch.fft.rfftfreq(n, voxel_size, device=device)]
    fz, fy, fx = torch.meshgrid(*freqs, indexing="ij")
    radius = torch.sqrt(fz ** 2 + fy ** 2 + fx ** 2).flatten()
    step = 1.0 / (n * voxel_size)
    shell = torch.floor((radius - LOW_FREQUENCY) / step).long()
    shells = int((0.5 / voxel_size - LOW_FREQUENCY) // step)
    inside = (shell >= 0) & (shell < shells)
    members = torch.zeros(shells, radius.numel(), device=device)
    members[shell[inside], torch.nonzero(inside).flatten()] = 1.0
    members = members / members.sum(1, keepdim=True).clamp(min=1.0)
    upper = LOW_FREQUENCY + step * torch.arange(1, shells + 1, device=device)
    return window, members, upper


def amplitude_falloff_loss(prediction: torch.Tensor, target: torch.Tensor, resolution: torch.Tensor,
                           voxel_size: float) -> torch.Tensor:
    """Mean |log10 shell-amplitude ratio| of prediction to target, scale removed, from 12 Å to each tile's
    resolution: the fall-off measure of ``realism.amplitude_falloff``, per (N, 1, n, n, n) tile and
    differentiable, so that training can aim at how a map's power falls with resolution, which a regression
    loss does not. ``resolution`` is each tile's target resolution in Å. Tiles with fewer than two shells in
    the band add nothing; zero when none has two. Per tile it misses whole-map scales and sharpening
    (weights/MODEL_CARD.md, run B)."""
    window, members, upper = _shell_geometry(prediction.shape[-1], float(voxel_size), prediction.device)

    def shell_amplitudes(values: torch.Tensor) -> torch.Tensor:
        spectrum = torch.fft.rfftn(values.float()[:, 0] * window, dim=(-3, -2, -1)).abs().flatten(1)
        return spectrum @ members.T

    a, b = shell_amplitudes(prediction), shell_amplitudes(target)
    band = (upper[None, :] <= 1.0 / resolution.to(prediction.device)[:, None]).float()
    counted = band.sum(1)
    used = counted >= 2
    if not used.any():
        return prediction.sum() * 0.0
    tiny = 1e-6 * b.amax(1, keepdim=True).clamp(min=1e-12)
    log_ratio = torch.log10((a + tiny) / (b + tiny))
    offset = (log_ratio * band).sum(1) / counted.clamp(min=1.0)
    error = ((log_ratio - offset[:, None]).abs() * band).sum(1) / counted.clamp(min=1.0)
    return error[used].mean()
