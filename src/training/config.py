"""The settings of the prepare and train steps, as plain dataclasses without torch.

The command line makes one flag per field (training/cli.py), so this module
must stay importable without torch: ``struc2map compare`` or ``molmap`` build
the same parser and must not pay for, or need, the training stack.
"""
from __future__ import annotations

import hashlib
import json
import math
from dataclasses import asdict, dataclass, field

from ..errors import InputError
from ..channels import CONDITION_DIM
from ..weights_meta import DEFAULT_INPUT

FORMAT_VERSION = 3  # 3: cut_to_map


@dataclass
class PrepareConfig:
    """Settings of the prepare step (all recorded in the dataset)."""

    input_resolution: float = DEFAULT_INPUT["resolution"]  # the generator's input: the molmap recipe
    grid_spacing: float = DEFAULT_INPUT["grid_spacing"]
    edge_padding: float = 10.0
    target_levels: tuple[float, ...] = (3.0, 4.0, 5.0, 6.0, 8.0)  # coarser copies, where ≥ 0.75 Å coarser
    scale_percentile: float = 99.0
    min_correlation: float = 0.6
    tile_size: int = 32
    stride: int = 20
    cut_to_map: bool = True  # False: the model's whole padded grid, zeros beyond a box-cut map (the default weights')

    def key(self) -> str:
        """Checksum of the settings, to know whether a prepared pair can be reused."""
        text = json.dumps({**asdict(self), "format": FORMAT_VERSION}, sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def levels(self, reported: float) -> list[float]:
        """Target resolutions of a pair: its reported one, then the coarser levels."""
        return [float(reported)] + [float(r) for r in self.target_levels if r >= reported + 0.75]


@dataclass
class TrainConfig:
    """Every hyper-parameter of a run (recorded in checkpoints and the exported weights)."""

    widths: tuple[int, ...] = (32, 64, 128, 256)
    in_channels: int = 2  # molmap and the B-factor channel (channels.py)
    condition_dim: int = CONDITION_DIM  # 0: no resolution input
    bfactor_dropout: float = 0.3
    init_weights: str | None = None  # a weights file to start from (e.g. the previous generator)
    disc_widths: tuple[int, ...] = (32, 64, 128, 256)
    adv_weight: float = 0.01
    real_fraction: float = 0.5  # share of the discriminator's real samples from unpaired maps, when the dataset has some
    ssim_weight: float = 0.0
    falloff_weight: float = 0.0  # weight of the amplitude fall-off loss (losses.amplitude_falloff_loss)
    smooth_l1_beta: float = 1.0
    lr: float = 1e-4
    disc_lr: float = 1e-4
    plateau_factor: float = 0.5
    plateau_patience: int = 15
    batch_size: int = 8
    epochs: int = 150
    steps_per_epoch: int = 50
    val_tiles: int = 64
    empty_fraction: float = 0.05
    rotate: bool = True
    degrade_p: float = 0.25
    seed: int = 0
    ema_decay: float = 0.0  # > 0 keeps an exponential moving average of the generator's weights
    max_minutes: float | None = None
    precision: str = "auto"  # "fp32" | "bf16" | "auto" (bf16 autocast where the device has it, CPUs too)
    train_pairs: list[str] | None = None
    val_pairs: list[str] = field(default_factory=list)

    def check(self) -> None:
        """An InputError naming the first setting that cannot train, before anything is built."""
        from ..device import check_precision_name  # torch modules: imported to train, never to parse flags
        from ..network import LEVELS, MAX_WIDTH, widths_fit

        discriminator_fits = bool(self.disc_widths) and all(1 <= w <= MAX_WIDTH for w in self.disc_widths)
        if not widths_fit(self.widths) or not discriminator_fits:
            raise InputError(f"--widths must be {LEVELS} layer widths and --disc-widths one or more, each from 1 to "
                             f"{MAX_WIDTH}, got {' '.join(map(str, self.widths))} and "
                             f"{' '.join(map(str, self.disc_widths))}.")
        if self.in_channels not in (1, 2) or self.condition_dim not in (0, CONDITION_DIM):
            raise InputError(f"--in-channels must be 1 or 2 and --condition-dim 0 or {CONDITION_DIM}, got "
                             f"{self.in_channels} and {self.condition_dim}.")
        bounds = {"batch-size": (self.batch_size, 1, None), "steps-per-epoch": (self.steps_per_epoch, 1, None),
                  "val-tiles": (self.val_tiles, 1, None), "epochs": (self.epochs, 0, None),
                  "plateau-patience": (self.plateau_patience, 0, None), "adv-weight": (self.adv_weight, 0, None),
                  "ssim-weight": (self.ssim_weight, 0, None), "falloff-weight": (self.falloff_weight, 0, None),
                  "smooth-l1-beta": (self.smooth_l1_beta, 0, None),
                  "bfactor-dropout": (self.bfactor_dropout, 0, 1), "real-fraction": (self.real_fraction, 0, 1),
                  "empty-fraction": (self.empty_fraction, 0, 1), "degrade-p": (self.degrade_p, 0, 1)}
        for flag, (value, low, high) in bounds.items():
            if not (low <= value <= (math.inf if high is None else high)):  # NaN fails too
                span = f"at least {low:g}" if high is None else f"from {low:g} to {high:g}"
                raise InputError(f"--{flag} must be {span}, got {value:g}.")
        for flag, value, high in (("lr", self.lr, math.inf), ("disc-lr", self.disc_lr, math.inf),
                                  ("plateau-factor", self.plateau_factor, 1.0)):
            if not 0 < value < high:
                raise InputError(f"--{flag} must be above 0" + ("" if high == math.inf else f" and below {high:g}")
                                 + f", got {value:g}.")
        if not 0 <= self.ema_decay < 1:
            raise InputError(f"--ema-decay must be 0 (no average) or a decay below 1, got {self.ema_decay:g}.")
        if self.max_minutes is not None and not self.max_minutes > 0:
            raise InputError(f"--max-minutes must be a positive number of minutes, got {self.max_minutes:g}.")
        check_precision_name(self.precision)
