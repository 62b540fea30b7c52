"""Batch generation: many models, one map each, resumable, shared out among processes by rank.

Ranks share nothing while they work: each takes every ``world``-th model of
the same list (``RANK``/``WORLD_SIZE`` from torchrun or set by hand, e.g.
from a Slurm job array), writes its maps with atomic renames and keeps its
own JSON-lines log. A map already on disk is skipped, so a rerun resumes; a
model that fails is logged and the batch goes on. Under torchrun the
processes meet once, at the end, only to agree on the exit status.
"""
from __future__ import annotations

import json
import os
import time
import traceback
import warnings
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Callable, Sequence

import torch

from .device import process_device, rank_from_env, started_by_torchrun
from .errors import InputError, Struc2mapError
from .files import check_output, open_appending
from .model_to_map import generate_model
from .tiling import TilingConfig
from .weights_io import Weights

MODEL_SUFFIXES = (".pdb", ".cif", ".ent", ".mmcif")
LOG_NAME = "struc2map_batch.rank{rank}.jsonl"
MEETING_TIMEOUT = timedelta(hours=24)  # how long a finished torchrun process waits for the slowest one


def is_batch(models: Sequence[str | Path]) -> bool:
    """Whether MODEL arguments name a batch (several, a folder or an @list) rather than one file."""
    return len(models) != 1 or str(models[0]).startswith("@") or Path(models[0]).is_dir()


def model_stem(path: str | Path) -> str:
    """The file name without ``.gz`` and the model suffix: ``1abc.cif.gz`` -> ``1abc``."""
    name = Path(path).name
    if name.lower().endswith(".gz"):
        name = name[:-3]
    base, dot, suffix = name.rpartition(".")
    return base if dot and base and f".{suffix.lower()}" in MODEL_SUFFIXES else name


def _is_model_file(path: Path) -> bool:
    name = path.name.lower()
    name = name[:-3] if name.endswith(".gz") else name
    return path.is_file() and name.endswith(MODEL_SUFFIXES)


def _expand(path: Path, missing: list[str]) -> list[Path]:
    """A model file as is, a folder as its model files (sorted by name)."""
    if path.is_dir():
        found = sorted((p for p in path.iterdir() if _is_model_file(p)), key=lambda p: p.name)
        if not found:
            raise InputError(f"The folder {path} holds no model files ({', '.join(MODEL_SUFFIXES)}, gzipped too).")
        return found
    if not path.is_file():
        missing.append(str(path))
    return [path]


def _read_list(path: Path) -> list[Path]:
    """Paths of a list file: one a line, ``#`` comment lines, relative to the list's folder."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise InputError(f"Could not read the model list {path}: {getattr(e, 'strerror', None) or e}.") from e
    entries = [s for s in (line.strip() for line in lines) if s and not s.startswith("#")]
    if not entries:
        raise InputError(f"The model list {path} names no models.")
    return [path.parent / Path(s).expanduser() for s in entries]


def collect_inputs(models: Sequence[str | Path]) -> list[Path]:
    """Model files from arguments that are files, folders or ``@list`` files, in order, each once."""
    paths, missing = [], []
    for arg in models:
        arg = str(arg)
        listed = _read_list(Path(arg[1:]).expanduser()) if arg.startswith("@") else [Path(arg).expanduser()]
        for p in listed:
            paths.extend(_expand(p, missing))
    if missing:
        more = f" and {len(missing) - 5} more" if len(missing) > 5 else ""
        raise InputError(f"These model files do not exist: {', '.join(missing[:5])}{more}.")
    seen, unique = set(), []
    for p in paths:  # the same file named twice (a list and its folder) counts once
        if p.resolve() not in seen:
            seen.add(p.resolve())
            unique.append(p)
    return unique


def output_paths(inputs: Sequence[Path], output_dir: Path) -> list[Path]:
    """``output_dir/<stem>.mrc`` per model; two models with one stem would overwrite each other."""
    by_stem: dict[str, list[Path]] = {}
    for p in inputs:
        by_stem.setdefault(model_stem(p), []).append(p)
    clashes = [f"{stem} ({', '.join(map(str, ps))})" for stem, ps in by_stem.items() if len(ps) > 1]
    if clashes:
        raise InputError(f"Models with the same name would write the same map: {'; '.join(clashes[:5])}. "
                         "Rename them or run them into different output folders.")
    return [output_dir / f"{model_stem(p)}.mrc" for p in inputs]


@dataclass
class BatchPlan:
    """Every (model, map) pair of a batch, and the share of this process."""

    models: list[Path]
    outputs: list[Path]
    output_dir: Path
    rank: int = 0
    world: int = 1

    @property
    def share(self) -> list[tuple[Path, Path]]:
        return list(zip(self.models, self.outputs))[self.rank::self.world]

    @property
    def log_path(self) -> Path:
        return self.output_dir / LOG_NAME.format(rank=self.rank)


def plan_batch(models: Sequence[str | Path], output_dir: str | Path, *,
               rank: int | None = None, world: int | None = None) -> BatchPlan:
    """Check the inputs and names, create ``output_dir``, and pick this process's share (before any work)."""
    inputs = collect_inputs(models)
    output_dir = Path(output_dir).expanduser()
    outputs = output_paths(inputs, output_dir)
    if rank is None or world is None:
        rank, world = rank_from_env()
    try:
        output_dir.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise InputError(f"Cannot create the output folder {output_dir}: {e.strerror or e}.") from e
    if not os.access(output_dir, os.W_OK):
        raise InputError(f"Cannot write to the output folder {output_dir}.")
    plan = BatchPlan(inputs, outputs, output_dir, rank, world)
    # Existing maps are skipped, but never a FIFO, device or folder in their place. (A map's name,
    # <stem>.mrc, can never be a model's: model_stem keeps any suffix that is not a model suffix.)
    for _, output in plan.share:
        check_output(output, overwrite=True)
    open_appending(plan.log_path).close()  # the log is opened now: a link or FIFO there is refused before any work
    return plan


@dataclass
class BatchSummary:
    """What one process did with its share."""

    done: int = 0
    skipped: int = 0
    failed: list[tuple[str, str]] = field(default_factory=list)  # (model, error)
    seconds: float = 0.0


def _append(log: Path, record: dict) -> None:
    with open_appending(log) as f:
        f.write((json.dumps(record, default=float) + "\n").encode("utf-8"))


def _run_one(model: Path, output: Path, resolution: float, weights: Weights, tiling: TilingConfig | None,
             device: str, overwrite: bool, bfactors: str) -> dict:
    """One model's log record; a failure becomes part of the record instead of stopping the batch."""
    if output.exists() and not overwrite:  # a finished map is a non-empty file: anything else is not done
        if output.is_file() and output.stat().st_size > 0:
            return {"status": "skipped", "error": None}
        what = "is empty (0 bytes)" if output.is_file() else "is not a regular file"
        return {"status": "failed", "error": f"{output} exists but {what}, so it is not a finished map; "
                "delete it or use --overwrite."}
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            _, _, report = generate_model(model, output, resolution, weights, tiling=tiling,
                                          device=device, overwrite=overwrite, bfactors=bfactors)
    except Struc2mapError as e:
        return {"status": "failed", "error": str(e)}
    except Exception as e:  # anything else about one model must not end the batch either
        return {"status": "failed", "error": f"{type(e).__name__}: {e}", "traceback": traceback.format_exc()}
    notes = report.notes + [str(w.message) for w in caught]
    return {"status": "ok", "error": None, **report.to_dict(), "notes": notes}


def run_batch(plan: BatchPlan, resolution: float, weights: Weights, *, tiling: TilingConfig | None = None,
              device: str = "auto", overwrite: bool = False, bfactors: str = "auto",
              echo: Callable[[str], None] = print) -> BatchSummary:
    """Generate this process's share of the plan, one log record per model; returns the counts."""
    device = str(process_device(device))
    share = plan.share
    prefix = f"[rank {plan.rank}/{plan.world}] " if plan.world > 1 else ""
    summary = BatchSummary()
    started = time.perf_counter()
    for i, (model, output) in enumerate(share, 1):
        when = datetime.now(timezone.utc).isoformat(timespec="seconds")
        t0 = time.perf_counter()
        record = _run_one(model, output, resolution, weights, tiling, device, overwrite, bfactors)
        record = {"model": str(model.absolute()), "output": str(output.absolute()), **record,
                  "seconds": time.perf_counter() - t0, "rank": plan.rank, "started": when}
        _append(plan.log_path, record)
        status = record["status"]
        if status == "ok":
            summary.done += 1
            detail = (f"{record['atoms']} atoms, {record['tiles_run']}/{record['tiles_total']} tiles, "
                      f"{record['seconds']:.1f} s -> {output}")
        elif status == "skipped":
            summary.skipped += 1
            detail = f"{output} already exists"
        else:
            summary.failed.append((str(model), record["error"]))
            detail = record["error"]
        echo(f"{prefix}{i}/{len(share)} {model.name}: {status}: {detail}")
        for note in record.get("notes", []):
            echo(f"{prefix}  note: {note}")
    summary.seconds = time.perf_counter() - started
    echo(f"{prefix}batch: {summary.done} done, {summary.skipped} skipped (map already there), "
         f"{len(summary.failed)} failed of {len(share)} models in {summary.seconds:.1f} s; log {plan.log_path}")
    for model, error in summary.failed:
        echo(f"{prefix}  failed: {model}: {error}")
    return summary


def failures_on_all_ranks(failed: int, world: int, echo: Callable[[str], None] = print) -> int:
    """Failures summed over torchrun's processes, known to each once all have finished.

    torchrun stops every process as soon as one exits with an error, so a
    process with failures must not exit before the others are done. Under
    torchrun the processes meet once, at the end, over gloo (CPU sockets, no
    NCCL), each saying whom it waits for and for how long (MEETING_TIMEOUT);
    elsewhere (one process, a job array, a MASTER_ADDR left in the
    environment) each reports its own.
    """
    if world == 1 or not started_by_torchrun():
        return failed
    import torch.distributed as dist

    rank, _ = rank_from_env()
    where = f"{os.environ.get('MASTER_ADDR', '?')}:{os.environ.get('MASTER_PORT', '?')}"
    hours = MEETING_TIMEOUT.total_seconds() / 3600
    echo(f"[rank {rank}/{world}] waiting for the other {world - 1} torchrun processes to finish (meeting at "
         f"{where}, for up to {hours:g} h) to agree on the exit status")
    try:
        dist.init_process_group("gloo", timeout=MEETING_TIMEOUT)
    except (RuntimeError, ValueError) as err:  # torch's DistStoreError for a timeout is a RuntimeError
        raise InputError(f"The other torchrun processes did not meet at {where} within {hours:g} h, so this "
                         f"one reports only its own {failed} failed models ({type(err).__name__}).") from err
    try:
        total = torch.tensor([failed])
        dist.all_reduce(total)
        return int(total.item())
    finally:
        dist.destroy_process_group()
