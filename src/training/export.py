"""Turn a training run into a weights file (NAME.pt + NAME.json) that ``generate`` loads."""
from __future__ import annotations

import csv
import statistics
from pathlib import Path

from ..errors import InputError
from ..file_checks import readable_file
from ..weights_io import fitted_generator, save_weights
from ..weights_meta import DEFAULT_INPUT
from .index import read_index
from .train import read_checkpoint


def export_run(run_dir: str | Path, dataset_dir: str | Path, output: str | Path, *, which: str = "last",
               metrics: str | Path | None = None, overwrite: bool = False) -> Path:
    """Save the run's generator with its metadata: ``which`` is "last", "best" (lowest validation
    loss) or "average" (the moving average of the weights, when the run kept one).

    The metadata records the input recipe (channels, resolution condition),
    the output's convention (solvent 0, soft envelope) and the resolution range
    of the training targets, the training pairs, settings, history and the
    held-out scores in ``metrics`` (evaluate's results.csv). The run's and
    the dataset's files are inputs: never replaced, even with ``overwrite``.
    """
    run_dir, dataset_dir = Path(run_dir), Path(dataset_dir)
    if not (run_dir / "checkpoint.pt").is_file():
        raise InputError(f"{run_dir} is not a training run (it has no checkpoint.pt).")
    index = read_index(dataset_dir)
    held_out = read_metrics(metrics) if metrics else []
    state = read_checkpoint(run_dir / "checkpoint.pt")
    config = state["config"]
    chosen, where = state["G"], run_dir / "checkpoint.pt"
    if which == "best":
        where = run_dir / "best_generator.pt"
        chosen = read_checkpoint(where, keys=())
    elif which == "average":
        if state.get("G_ema") is None:
            raise InputError(f"The run {run_dir} kept no average of the weights (train with --ema-decay), "
                             "so --which average has nothing to export.")
        chosen = state["G_ema"]
    generator = fitted_generator(chosen, list(config["widths"]), where, in_channels=config["in_channels"],
                                 condition_dim=config["condition_dim"])
    prep = index["config"]
    train_names = config["train_pairs"] or [n for n in index["pairs"] if n not in config["val_pairs"]]
    train_pairs = [index["pairs"][n] for n in train_names]
    levels = [r for p in train_pairs for r in p["levels"]]
    channels = ["molmap", "bfactor_blur"][:config["in_channels"]]
    metadata = {
        "network": {"condition": "resolution" if config["condition_dim"] else None},
        "input": {**DEFAULT_INPUT, "resolution": prep["input_resolution"], "grid_spacing": prep["grid_spacing"],
                  "channels": channels},
        "output": {"normalisation": (f"experimental map minus its solvent level (0), scaled so that its "
                                     f"{prep['scale_percentile']:g}th percentile within 2 Å of the atoms is 1"),
                   "envelope": "soft",
                   "resolution": statistics.median(p["pair"]["resolution"] for p in train_pairs),
                   "resolution_range": [round(min(levels), 2), round(max(levels), 2)]},
        "training": {
            "pairs": [p["pair"] for p in train_pairs],
            "validation_pairs": [index["pairs"][n]["pair"] for n in config["val_pairs"] if n in index["pairs"]],
            "prepare": prep, "train": config, "epochs": state["epoch"], "steps": state["step"],
            "seconds": state["seconds"], "best_validation_loss": state["best_val"],
            "weights_from": which, "held_out_metrics": held_out or {},
        },
    }
    inputs = [run_dir / "checkpoint.pt", run_dir / "best_generator.pt", dataset_dir / "index.json", metrics]
    return save_weights(output, generator, metadata, overwrite=overwrite, inputs=[p for p in inputs if p])


def read_metrics(path: str | Path) -> list[dict]:
    """The rows of evaluate's results.csv; an InputError when it is missing or not such a table."""
    path = readable_file(path, "metrics file")
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except (UnicodeDecodeError, csv.Error) as err:
        raise InputError(f"The metrics file {path} is not a CSV table of evaluate ({err}).") from None
    if not rows or not {"pair", "method"} <= set(rows[0]):
        raise InputError(f"The metrics file {path} is not evaluate's results.csv (it has no pair and method "
                         "columns).")
    return rows
