"""The paper's GAN training loop: generator, discriminator, checkpoints, resume, several processes.

Generator loss SmoothL1(G(x, r), y) (β = 1) + σ·(1 − SSIM) + α·BCE(D(G(x, r)), real),
where r is the target resolution the tile's target has (the SSIM term is ours,
off by default; the paper has σ = 0); discriminator
loss ½[BCE(D(y), real) + BCE(D(G(x)), fake)]; one generator step then one discriminator step;
NAdam and ReduceLROnPlateau on the validation loss. ``adv_weight = 0`` trains
the generator alone (no discriminator is built), the cheap choice on a CPU.
Under ``torchrun`` every process draws its own batches and gradients are
averaged by DistributedDataParallel (NCCL on GPUs, gloo on CPUs); process 0
validates, logs and checkpoints.
"""
from __future__ import annotations

import copy
import importlib.util
import json
import math
import signal
import time
from dataclasses import asdict
from pathlib import Path
from typing import Callable

import numpy as np
import torch
import torch.distributed as dist
import torch.nn.functional as F
from torch.nn.parallel import DistributedDataParallel

from ..channels import condition_resolution
from ..device import autocast as _autocast, process_device, rank_from_env, started_by_torchrun
from ..errors import InputError
from ..files import atomic_path, output_folder, write_csv, write_text
from ..file_checks import readable_file
from ..network import Discriminator, Generator
from .augment import Degradation
from .config import TrainConfig
from .dataset import RealTileSampler, TileSampler
from .losses import amplitude_falloff_loss, ssim_loss
from .warm_start import warm_start


def read_checkpoint(path: Path, keys: tuple[str, ...] = ("config", "epoch", "step", "seconds", "history",
                                                          "best_val", "G", "optG", "schedG")) -> dict:
    """A file the trainer wrote (checkpoint.pt with ``keys``, or best_generator.pt: ``keys=()``) as plain
    tensors and values, on the CPU; an InputError when it is anything else."""
    readable_file(path, "checkpoint")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types; its message may advise weights_only=False, never wise here
        raise InputError(f"{path} cannot be read as a checkpoint of 'struc2map train': it is damaged, not a PyTorch "
                         f"file, or holds Python objects that are refused because they could run code "
                         f"({type(err).__name__}).") from None
    missing = [key for key in keys if key not in state] if isinstance(state, dict) else ["everything"]
    if missing:
        raise InputError(f"{path} is not a checkpoint of 'struc2map train' (it lacks {', '.join(missing)}).")
    return state


def _distributed() -> tuple[int, int]:
    """(rank, world size); joins the process group when torchrun started several processes."""
    rank, world = rank_from_env()
    if world == 1:
        return 0, 1
    if not started_by_torchrun():
        raise InputError(f"WORLD_SIZE is {world} but torchrun did not start this process: train several processes "
                         "with torchrun (docs/training.md), or unset RANK and WORLD_SIZE.")
    if not dist.is_initialized():
        dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return dist.get_rank(), dist.get_world_size()


class Trainer:
    """One training run in ``run_dir``: checkpoint.pt, history.csv, losses.png, config.json."""

    def __init__(self, dataset_dir: str | Path, run_dir: str | Path, config: TrainConfig,
                 log: Callable[[str], None] = print):
        config.check()
        self.config, self.log = config, log
        self.run_dir = Path(run_dir)
        self.rank, self.world = _distributed()
        self.device = process_device("auto")
        torch.manual_seed(config.seed)
        self._load_data(Path(dataset_dir))
        self._build_networks()
        self._build_optimisers()
        self._start_progress()
        output_folder(self.run_dir, "run folder")
        if self._checkpoint_path.exists():
            self._resume()
        self._wrap_for_processes()

    @property
    def _checkpoint_path(self) -> Path:
        return self.run_dir / "checkpoint.pt"

    # -- setting up ---------------------------------------------------------
    def _load_data(self, dataset_dir: Path) -> None:
        """The training tiles, the fixed validation batches, the input degradation and, for the
        discriminator, the dataset's unpaired real tiles (None when not used)."""
        config = self.config
        self.train_data = TileSampler(dataset_dir, config.train_pairs, empty_fraction=config.empty_fraction,
                                      bfactor_dropout=config.bfactor_dropout)
        overlap = set(self.train_data.names) & set(config.val_pairs)
        if overlap:
            raise InputError(f"Pairs both in training and validation: {', '.join(sorted(overlap))}.")
        val = TileSampler(dataset_dir, config.val_pairs) if config.val_pairs else self.train_data
        self.val_batches = val.fixed_batches(config.batch_size, config.val_tiles, seed=config.seed)
        self.degradation = Degradation(p=config.degrade_p) if config.degrade_p > 0 else None
        self.real_data = None
        if config.adv_weight > 0:
            real = RealTileSampler(dataset_dir)
            self.real_data = real if len(real) and config.real_fraction > 0 else None

    def _build_networks(self) -> None:
        """The generator (warm-started on a new run when asked), its moving average and, when adversarial,
        the discriminator, in that order (they draw their initial weights from the seeded generator)."""
        config = self.config
        self.generator = Generator(config.widths, config.in_channels, condition_dim=config.condition_dim)
        if config.init_weights and not self._checkpoint_path.exists():
            self.log(warm_start(self.generator, config.init_weights))
        self.generator.to(self.device)
        self.generator_average = None  # the weights' exponential moving average, when ema_decay > 0
        if config.ema_decay > 0:
            self.generator_average = copy.deepcopy(self.generator).requires_grad_(False)
        self.discriminator = None
        if config.adv_weight > 0:
            self.discriminator = Discriminator(config.disc_widths).to(self.device)

    def _build_optimisers(self) -> None:
        """NAdam for each network, with the learning rate lowered when the validation loss plateaus."""
        config = self.config

        def plateau(optimiser: torch.optim.Optimizer) -> torch.optim.lr_scheduler.ReduceLROnPlateau:
            return torch.optim.lr_scheduler.ReduceLROnPlateau(
                optimiser, factor=config.plateau_factor, patience=config.plateau_patience)

        self.generator_optimiser = torch.optim.NAdam(self.generator.parameters(), lr=config.lr)
        self.generator_schedule = plateau(self.generator_optimiser)
        self.discriminator_optimiser = self.discriminator_schedule = None
        if self.discriminator is not None:
            self.discriminator_optimiser = torch.optim.NAdam(self.discriminator.parameters(), lr=config.disc_lr)
            self.discriminator_schedule = plateau(self.discriminator_optimiser)

    def _start_progress(self) -> None:
        """A new run's counters (a resumed run reads them from its checkpoint)."""
        self.epoch, self.step, self.seconds = 0, 0, 0.0
        self.history: list[dict] = []
        self.best_val = math.inf
        self.stopped_by: int | None = None  # the signal (SIGTERM, SIGINT) that ended the run early
        self._warned_plot = False

    def _wrap_for_processes(self) -> None:
        """The networks as a step calls them: wrapped in DistributedDataParallel under torchrun (which
        averages the gradients across processes), else themselves."""
        several = self.world > 1
        self.generator_ddp = DistributedDataParallel(self.generator) if several else self.generator
        self.discriminator_ddp = self.discriminator
        if several and self.discriminator is not None:
            self.discriminator_ddp = DistributedDataParallel(self.discriminator)

    # -- checkpoints --------------------------------------------------------
    def _state(self) -> dict:
        """checkpoint.pt's contents. Its keys are the first runs' short names (G, D, optG, ...), kept so that
        every run written so far resumes and exports."""
        def state_of(part):
            return None if part is None else part.state_dict()

        return {"config": asdict(self.config), "epoch": self.epoch, "step": self.step, "seconds": self.seconds,
                "history": self.history, "best_val": self.best_val,
                "G": self.generator.state_dict(), "G_ema": state_of(self.generator_average),
                "optG": self.generator_optimiser.state_dict(), "schedG": self.generator_schedule.state_dict(),
                "D": state_of(self.discriminator), "optD": state_of(self.discriminator_optimiser),
                "schedD": state_of(self.discriminator_schedule)}

    def save_checkpoint(self) -> None:
        """Write checkpoint.pt atomically (process 0 only)."""
        if self.rank != 0:
            return
        self._save(self._state(), "checkpoint.pt")

    def _save(self, obj, name: str) -> None:
        """torch.save ``obj`` as run_dir/``name``, whole or not at all (a run may be killed mid-write)."""
        with atomic_path(self.run_dir / name) as tmp:
            torch.save(obj, tmp)

    def _resume(self) -> None:
        """Networks, optimisers, schedules and counters from checkpoint.pt (keys as :meth:`_state` writes)."""
        state = read_checkpoint(self._checkpoint_path)
        if tuple(state["config"]["widths"]) != tuple(self.config.widths):
            raise InputError(f"The checkpoint in {self.run_dir} has widths {tuple(state['config']['widths'])}, not "
                             f"the requested {tuple(self.config.widths)}: resume with those, or use another run folder.")
        self.generator.load_state_dict(state["G"])
        if self.generator_average is not None:  # a run that had no average starts it from the generator it has
            self.generator_average.load_state_dict(state.get("G_ema") or state["G"])
        self.generator_optimiser.load_state_dict(state["optG"])
        self.generator_schedule.load_state_dict(state["schedG"])
        if self.discriminator is not None and state["D"] is not None:
            self.discriminator.load_state_dict(state["D"])
            self.discriminator_optimiser.load_state_dict(state["optD"])
            self.discriminator_schedule.load_state_dict(state["schedD"])
        self.epoch, self.step, self.seconds = state["epoch"], state["step"], state["seconds"]
        self.history, self.best_val = state["history"], state["best_val"]
        self.log(f"resumed from epoch {self.epoch}, step {self.step}")

    # -- one step -----------------------------------------------------------
    def _condition(self, condition: torch.Tensor) -> torch.Tensor | None:
        return condition.to(self.device) if self.config.condition_dim else None

    def train_step(self, inputs: torch.Tensor, condition: torch.Tensor, targets: torch.Tensor,
                   unpaired: torch.Tensor | None = None) -> dict:
        """One generator step, then one discriminator step when adversarial; ``unpaired`` real tiles
        replace as many of the targets among the discriminator's real samples."""
        cfg = self.config
        inputs, targets = inputs[:, :cfg.in_channels].to(self.device), targets.to(self.device)
        with _autocast(self.device, cfg.precision):
            fake = self.generator_ddp(inputs, self._condition(condition))
            rec = F.smooth_l1_loss(fake.float(), targets, beta=cfg.smooth_l1_beta)
            loss = rec
            structural = torch.zeros((), device=self.device)
            if cfg.ssim_weight > 0:
                structural = ssim_loss(fake.float(), targets)
                loss = loss + cfg.ssim_weight * structural
            falloff = torch.zeros((), device=self.device)
            if cfg.falloff_weight > 0:
                falloff = amplitude_falloff_loss(fake.float(), targets, condition_resolution(condition),
                                                 self.train_data.grid_spacing)
                loss = loss + cfg.falloff_weight * falloff
            adv = torch.zeros((), device=self.device)
            if self.discriminator is not None:
                logits = self.discriminator_ddp(fake)
                adv = F.binary_cross_entropy_with_logits(logits.float(), torch.ones_like(logits, dtype=torch.float))
                loss = loss + cfg.adv_weight * adv
        self.generator_optimiser.zero_grad(set_to_none=True)
        loss.backward()
        self.generator_optimiser.step()
        if self.generator_average is not None:
            with torch.no_grad():
                for average, weight in zip(self.generator_average.parameters(), self.generator.parameters()):
                    average.lerp_(weight, 1.0 - cfg.ema_decay)
        out = {"rec": rec.item(), "ssim": structural.item(), "falloff": falloff.item(), "adv": adv.item(), "disc": 0.0}
        if self.discriminator is not None:
            real = targets if unpaired is None else torch.cat([targets[len(unpaired):], unpaired.to(self.device)])
            with _autocast(self.device, cfg.precision):
                real_logits = self.discriminator_ddp(real)
                fake_logits = self.discriminator_ddp(fake.detach())
                disc_loss = 0.5 * (
                    F.binary_cross_entropy_with_logits(real_logits.float(), torch.ones_like(real_logits, dtype=torch.float))
                    + F.binary_cross_entropy_with_logits(fake_logits.float(), torch.zeros_like(fake_logits, dtype=torch.float)))
            self.discriminator_optimiser.zero_grad(set_to_none=True)
            disc_loss.backward()
            self.discriminator_optimiser.step()
            out["disc"] = disc_loss.item()
        return out

    @torch.no_grad()
    def validate(self, model: torch.nn.Module | None = None) -> tuple[float, float]:
        """Mean SmoothL1 and mean amplitude fall-off loss of the generator (or ``model``) over the fixed
        validation tiles (the fall-off per batch, weighted by its tiles)."""
        model = model or self.generator
        model.eval()
        total, n, falloff, tiles = 0.0, 0, 0.0, 0
        for inputs, condition, targets in self.val_batches:
            with _autocast(self.device, self.config.precision):
                pred = model(inputs[:, :self.config.in_channels].to(self.device), self._condition(condition)).float()
            targets = targets.to(self.device)
            total += F.smooth_l1_loss(pred, targets, beta=self.config.smooth_l1_beta, reduction="sum").item()
            n += targets.numel()
            falloff += len(targets) * amplitude_falloff_loss(pred, targets, condition_resolution(condition),
                                                             self.train_data.grid_spacing).item()
            tiles += len(targets)
        self.generator.train()
        return total / max(n, 1), falloff / max(tiles, 1)

    # -- the loop -----------------------------------------------------------
    def _request_stop(self, signum: int, _frame) -> None:
        self.stopped_by = signum

    def run(self) -> list[dict]:
        """Train until ``epochs`` or ``max_minutes``; checkpoint after every epoch and on SIGTERM/SIGINT."""
        cfg = self.config
        if self.rank == 0:
            write_text(self.run_dir / "config.json", json.dumps(asdict(cfg), indent=1), overwrite=True)
        old = {s: signal.signal(s, self._request_stop) for s in (signal.SIGTERM, signal.SIGINT)}
        started = time.time()
        seconds_before = self.seconds
        try:
            self.generator.train()
            while self.epoch < cfg.epochs and self.stopped_by is None:
                rng = np.random.default_rng([cfg.seed, self.rank, self.epoch])
                sums = {"rec": 0.0, "ssim": 0.0, "falloff": 0.0, "adv": 0.0, "disc": 0.0}
                t0 = time.time()
                done = 0
                for _ in range(cfg.steps_per_epoch):
                    inputs, condition, targets = self.train_data.batch(cfg.batch_size, rng, rotate=cfg.rotate,
                                                                       degradation=self.degradation)
                    unpaired = None
                    if self.real_data is not None:
                        unpaired = self.real_data.batch(round(cfg.real_fraction * cfg.batch_size), rng)
                    for k, v in self.train_step(inputs, condition, targets, unpaired).items():
                        sums[k] += v / cfg.steps_per_epoch
                    self.step += 1
                    done += 1
                    if self.stopped_by is not None:
                        break
                if done < cfg.steps_per_epoch:  # a stopped epoch: its means are over the steps it ran
                    sums = {k: v * cfg.steps_per_epoch / max(done, 1) for k, v in sums.items()}
                val, val_falloff = self.validate()
                val_ema, val_ema_falloff = (None, None) if self.generator_average is None \
                    else self.validate(self.generator_average)
                self.generator_schedule.step(val)
                if self.discriminator_schedule is not None:
                    self.discriminator_schedule.step(val)
                self.epoch += 1
                self.seconds = seconds_before + time.time() - started
                row = {"epoch": self.epoch, "step": self.step, "train_rec": sums["rec"], "train_ssim": sums["ssim"],
                       "train_falloff": sums["falloff"], "train_adv": sums["adv"],
                       "train_disc": sums["disc"], "val_rec": val,
                       "val_falloff": val_falloff, "val_ema": val_ema, "val_ema_falloff": val_ema_falloff,
                       "lr": self.generator_optimiser.param_groups[0]["lr"], "seconds": round(self.seconds, 1)}
                self.history.append(row)
                if self.rank == 0:
                    averaged = "" if row["val_ema"] is None else f" (average {row['val_ema']:.5f})"
                    self.log(f"epoch {self.epoch}/{cfg.epochs} step {self.step}: train {sums['rec']:.5f} "
                             f"val {val:.5f}{averaged} lr {row['lr']:.2e} ({time.time() - t0:.0f} s)")
                    if val < self.best_val:
                        self.best_val = val
                        self._save(self.generator.state_dict(), "best_generator.pt")
                    self.save_checkpoint()
                    self.write_history()
                if cfg.max_minutes is not None and (time.time() - started) / 60 >= cfg.max_minutes:
                    break
        finally:
            for s, h in old.items():
                signal.signal(s, h)
            self.save_checkpoint()
        return self.history

    def write_history(self) -> None:
        """history.csv and losses.png in the run folder."""
        if not self.history:
            return
        # the last row's columns: a resumed run may add some
        write_csv(self.run_dir / "history.csv", self.history, overwrite=True, fieldnames=list(self.history[-1]))
        if importlib.util.find_spec("matplotlib") is None:
            if not self._warned_plot:
                self.log("losses.png not drawn: matplotlib is not installed (pip install matplotlib)")
                self._warned_plot = True
            return
        plot_history(self.history, self.run_dir / "losses.png")


def plot_history(history: list[dict], path: Path) -> None:
    """Training and validation loss per epoch (log scale)."""
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    epochs = [h["epoch"] for h in history]
    fig, ax = plt.subplots(figsize=(6, 4))
    ax.plot(epochs, [h["train_rec"] for h in history], label="train SmoothL1")
    ax.plot(epochs, [h["val_rec"] for h in history], label="validation SmoothL1")
    averaged = [float("nan") if h.get("val_ema") is None else h["val_ema"] for h in history]
    if any(v == v for v in averaged):
        ax.plot(epochs, averaged, label="validation, averaged weights")
    if any(h["train_disc"] for h in history):
        ax.plot(epochs, [h["train_disc"] for h in history], label="discriminator BCE", alpha=0.6)
    ax.set_yscale("log")
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.legend()
    fig.tight_layout()
    with atomic_path(path, suffix=".png") as tmp:
        fig.savefig(tmp, dpi=100)
    plt.close(fig)
