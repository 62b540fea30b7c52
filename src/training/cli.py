"""``struc2map prepare | train | evaluate | export | fetch`` (the training side of the command line).

Only the flag definitions are imported with the parser (config.py has no
torch); each command imports its work modules when it runs, so the rest of
``struc2map`` neither needs torch nor pays for importing it.
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import signal
import sys
from pathlib import Path

from .config import PrepareConfig, TrainConfig


def _boolean(text: str) -> bool:
    """true/yes/on/1 or false/no/off/0 (any case); anything else is refused, not read as false."""
    word = text.strip().lower()
    if word in ("true", "yes", "on", "1"):
        return True
    if word in ("false", "no", "off", "0"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def _add_config_flags(parser: argparse.ArgumentParser, cls, skip: tuple[str, ...] = ()) -> None:
    """One ``--flag`` per dataclass field, typed after its default."""
    for f in dataclasses.fields(cls):
        if f.name in skip:
            continue
        flag = "--" + f.name.replace("_", "-")
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        if isinstance(default, bool):
            parser.add_argument(flag, type=_boolean, default=default, metavar="BOOL", help=f"(default {default})")
        elif isinstance(default, tuple):
            kind = type(default[0]) if default else int
            parser.add_argument(flag, type=kind, nargs="+", default=default,
                                help=f"(default {' '.join(map(str, default))})")
        elif isinstance(default, list) or default is None:
            kind = float if f.name.endswith("minutes") else str
            nargs = "+" if "list" in str(f.type) else None
            parser.add_argument(flag, type=kind, nargs=nargs, default=default, help="(default: none)")
        else:
            parser.add_argument(flag, type=type(default), default=default, help=f"(default {default})")


def _config(cls, args: argparse.Namespace):
    values = {f.name: getattr(args, f.name) for f in dataclasses.fields(cls) if hasattr(args, f.name)}
    for f in dataclasses.fields(cls):
        if isinstance(values.get(f.name), list) and isinstance(f.default, tuple):
            values[f.name] = tuple(values[f.name])
    return cls(**values)


def add_subcommands(sub: argparse._SubParsersAction) -> None:
    """Register prepare, train, evaluate and export on the main parser's subcommands."""
    p = sub.add_parser("prepare", help="make a training dataset from map/model pairs")
    p.add_argument("pairs", nargs="+", help="pair lists: whitespace table (name map model resolution), CSV or JSON")
    p.add_argument("--output", "-o", required=True, help="dataset folder (reused: prepared pairs are skipped)")
    p.add_argument("--only", nargs="+", help="names of the pairs to prepare (default: all)")
    p.add_argument("--unpaired", nargs="+", default=[], metavar="MAP",
                   help="real maps without a model: extra real samples for the discriminator")
    _add_config_flags(p, PrepareConfig)
    p.set_defaults(func=_prepare)

    t = sub.add_parser("train", help="train the generator (resumes when the run folder has a checkpoint)")
    t.add_argument("dataset", help="folder made by 'struc2map prepare'")
    t.add_argument("--run-dir", required=True, help="run folder: checkpoint.pt, history.csv, losses.png")
    _add_config_flags(t, TrainConfig)
    t.set_defaults(func=_train)

    e = sub.add_parser("evaluate", help="score weights on held-out pairs against molmap baselines")
    e.add_argument("pairs", nargs="+", help="pair lists (as for prepare)")
    e.add_argument("--weights", required=True, help="weights file (NAME.pt with NAME.json)")
    e.add_argument("--output", "-o", required=True, help="folder for results.csv, results.md, scatter.png")
    e.add_argument("--only", nargs="+", help="names of the pairs to evaluate (default: all)")
    e.add_argument("--device", default="auto")
    e.set_defaults(func=_evaluate)

    x = sub.add_parser("export", help="write a run's generator as a weights file")
    x.add_argument("run", help="run folder of 'struc2map train'")
    x.add_argument("--dataset", required=True, help="the dataset folder the run trained on")
    x.add_argument("--output", "-o", required=True, help="weights path (NAME.pt; NAME.json is written beside)")
    x.add_argument("--which", choices=["last", "best", "average"], default="last",
                   help="last weights, best on the validation loss, or their moving average (--ema-decay)")
    x.add_argument("--metrics", help="evaluate's results.csv to record as held-out metrics")
    x.add_argument("--overwrite", action="store_true")
    x.set_defaults(func=_export)

    f = sub.add_parser("fetch", help="download EMDB maps and PDB models by ID and write a pair list")
    f.add_argument("ids", help="text file: one 'EMD-1234 1ABC [resolution]' a line")
    f.add_argument("--output", "-o", required=True, help="folder for the files and pairs.csv")
    f.add_argument("--emdb-url", default=None, help="EMDB structures base URL (default: the wwPDB archive)")
    f.add_argument("--pdb-url", default=None, help="PDB download base URL (default: RCSB)")
    f.set_defaults(func=_fetch)


def _prepare(args: argparse.Namespace) -> int:
    from .pairs import read_pairs, select
    from .prepare import prepare

    pairs = select([pair for path in args.pairs for pair in read_pairs(path)], args.only)
    index = prepare(pairs, args.output, _config(PrepareConfig, args), unpaired=[Path(m) for m in args.unpaired])
    print(f"{len(index['pairs'])} pairs kept, {len(index['dropped'])} dropped, {len(index['failed'])} failed; "
          f"{len(index['tiles'])} tiles, {len(index['unpaired'])} unpaired maps "
          f"({len(index['real_tiles'])} tiles) in {Path(args.output) / 'index.json'}")
    return 1 if index["failed"] else 0


def _train(args: argparse.Namespace) -> int:
    from .train import Trainer

    config = _config(TrainConfig, args)
    trainer = Trainer(args.dataset, args.run_dir, config, log=lambda s: print(s, flush=True))
    history = trainer.run()
    if history and trainer.rank == 0:
        print(json.dumps(history[-1]))
    if trainer.stopped_by is not None:  # a scheduler must not read success: the shell's 128 + signal number
        name = signal.Signals(trainer.stopped_by).name
        print(f"struc2map: stopped by {name} at epoch {trainer.epoch}; the checkpoint is saved and running the "
              "command again resumes from it.", file=sys.stderr)
        return 128 + trainer.stopped_by
    return 0


def _evaluate(args: argparse.Namespace) -> int:
    from ..weights_io import load_weights
    from .evaluate import evaluate
    from .pairs import read_pairs, select

    pairs = select([pair for path in args.pairs for pair in read_pairs(path)], args.only)
    rows = evaluate(pairs, load_weights(args.weights), args.output, device=args.device)
    print((Path(args.output) / "results.md").read_text(encoding="utf-8"))
    return 0 if rows else 1


def _export(args: argparse.Namespace) -> int:
    from .export import export_run

    path = export_run(args.run, args.dataset, args.output, which=args.which, metrics=args.metrics,
                      overwrite=args.overwrite)
    print(f"wrote {path} and {path.with_suffix('.json')}")
    return 0


def _fetch(args: argparse.Namespace) -> int:
    from . import fetch as fetching

    urls = {k: v for k, v in (("emdb_url", args.emdb_url), ("pdb_url", args.pdb_url)) if v}
    pairs, failed = fetching.fetch(fetching.read_ids(args.ids), args.output, **urls)
    print(f"wrote {pairs}; {len(failed)} failed")
    return 1 if failed else 0
