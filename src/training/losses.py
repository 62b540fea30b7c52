"""Loss terms beyond the paper's SmoothL1 and BCE."""
from __future__ import annotations

import torch
import torch.nn.functional as F

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
