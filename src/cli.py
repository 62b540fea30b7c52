"""The ``struc2map`` command line: generate, molmap, compare, and the training steps."""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
import warnings
from pathlib import Path

from . import __version__
from .errors import InputError, Struc2mapError


def _progress_bar(label: str):
    """A progress callback drawing one line on stderr (only when it is a terminal)."""
    if not sys.stderr.isatty():
        return None
    started = time.perf_counter()

    def show(done: int, total: int) -> None:
        width = 30
        filled = int(width * done / max(total, 1))
        sys.stderr.write(f"\r{label} [{'#' * filled}{'.' * (width - filled)}] {done}/{total} "
                         f"{time.perf_counter() - started:.0f} s")
        if done >= total:
            sys.stderr.write("\n")
        sys.stderr.flush()

    return show


def _check_output(path: str, overwrite: bool) -> Path:
    """Fail before any work if the output cannot be written."""
    out = Path(path)
    if out.exists() and not overwrite:
        raise InputError(f"Output {out} already exists; use --overwrite to replace it.")
    folder = out.parent if str(out.parent) else Path(".")
    if not folder.is_dir():
        raise InputError(f"Cannot write {out}: folder {folder} does not exist.")
    if not os.access(folder, os.W_OK):
        raise InputError(f"Cannot write {out}: folder {folder} is not writable.")
    return out


def _write_json(path: str | None, data: dict) -> None:
    if path:
        Path(path).write_text(json.dumps(data, indent=1, default=float) + "\n", encoding="utf-8")


def _metric_line(name: str, m: dict) -> str:
    return (f"  {name}: correlation {m['correlation']:.4f}, about mean {m['correlation_about_mean']:.4f}"
            + (f" (within {m['envelope']})" if "envelope" in m else "")
            + (f", PCC {m['pcc']:.4f}, SSIM {m['ssim']:.4f}" if "pcc" in m else ""))


def _tiling(args: argparse.Namespace):
    from .tiling import TilingConfig

    tiling = TilingConfig.paper() if args.paper_tiling else TilingConfig()
    for name in ("tile_size", "margin", "batch_size", "precision"):  # 0 is a value, not "not given"
        if getattr(args, name) is not None:
            setattr(tiling, name, getattr(args, name))
    tiling.check()
    return tiling


def _check_generate_options(args: argparse.Namespace) -> None:
    """Refuse a bad resolution, tiling or device before any model is read (a batch included)."""
    from .device import resolve_device
    from .resolution import check_resolution

    check_resolution(args.resolution, warn=False)  # generate warns once per map
    _tiling(args)
    resolve_device(args.device)


def _generate(args: argparse.Namespace) -> int:
    from .batch import generate_model, is_batch
    from .mapio import read_map
    from .metrics import INITIAL_ENVELOPE, MOLMAP_ENVELOPE, compare_maps, molmap_correlation
    from .molmap import molmap
    from .weights_io import load_weights_or_shipped

    _check_generate_options(args)
    if args.output_dir or is_batch(args.model):
        return _generate_batch(args)
    if not args.output:
        raise InputError("Name the map to write with --output FILE (or a folder for many maps with --output-dir).")
    model = args.model[0]
    out = _check_output(args.output, args.overwrite)
    experimental = read_map(args.compare) if args.compare else None
    weights = load_weights_or_shipped(args.weights)
    atoms, generated, report = generate_model(model, out, args.resolution, weights, tiling=_tiling(args),
                                              device=args.device, overwrite=args.overwrite,
                                              use_bfactors=not args.ignore_bfactors,
                                              progress=_progress_bar("tiles"))
    reference = molmap(atoms.coords, atoms.atomic_numbers, args.resolution, on_grid=generated)
    metrics = {"molmap": {**molmap_correlation(reference, generated), "envelope": MOLMAP_ENVELOPE}}
    if experimental is not None:
        metrics["experimental"] = {**compare_maps(generated, experimental), "envelope": INITIAL_ENVELOPE}
    summary = {"model": str(model), "output": str(out), **report.to_dict(), "metrics": metrics}
    print(f"{Path(model).name}: {report.atoms} atoms -> {out} "
          f"({report.grid_xyz[0]}×{report.grid_xyz[1]}×{report.grid_xyz[2]} voxels of {report.voxel_size:g} Å)")
    print(f"  tiles: {report.tiles_run} run, {report.tiles_skipped} skipped of {report.tiles_total}; "
          f"device {report.device}; {report.seconds:.1f} s; weights {report.weights}; "
          f"resolution {report.effective_resolution:g} Å")
    for note in report.notes:
        print(f"  note: {note}")
    print(_metric_line(f"vs molmap at {args.resolution:g} Å", metrics["molmap"]))
    if experimental is not None:
        print(_metric_line(f"vs {Path(args.compare).name}", metrics["experimental"]))
    _write_json(args.json, summary)
    return 0


def _generate_batch(args: argparse.Namespace) -> int:
    """Many models into --output-dir (see batch.py); exit status 1 when any model failed."""
    from .batch import failures_on_all_ranks, plan_batch, run_batch
    from .weights_io import load_weights_or_shipped

    for value, flag, why in ((args.output, "--output", "names one map; use --output-dir DIR for many models"),
                             (args.compare, "--compare", "works with a single model"),
                             (args.json, "--json", "works with a single model; a batch writes a log per process "
                              "in --output-dir")):
        if value:
            raise InputError(f"{flag} {why}.")
    if not args.output_dir:
        raise InputError("Several models (or a folder, or an @list) need --output-dir DIR: one map is written "
                         "there per model.")
    plan = plan_batch(args.model, args.output_dir)
    weights = load_weights_or_shipped(args.weights)
    summary = run_batch(plan, args.resolution, weights, tiling=_tiling(args), device=args.device,
                        overwrite=args.overwrite, use_bfactors=not args.ignore_bfactors)
    return 1 if failures_on_all_ranks(len(summary.failed), plan.world) else 0


def _molmap(args: argparse.Namespace) -> int:
    from .mapio import read_map, write_map
    from .molmap import SIGMA_FACTOR, molmap
    from .structure import read_structure

    out = _check_output(args.output, args.overwrite)
    atoms = read_structure(args.model)
    on_grid = read_map(args.on_grid) if args.on_grid else None
    sigma_factor = SIGMA_FACTOR if args.sigma_factor is None else args.sigma_factor  # 0 is refused, not a default
    result = molmap(atoms.coords, atoms.atomic_numbers, args.resolution, grid_spacing=args.grid_spacing,
                    sigma_factor=sigma_factor, edge_padding=args.edge_padding,
                    on_grid=on_grid, convention=args.convention)
    write_map(out, result, label=f"struc2map {__version__} molmap res {args.resolution:g}",
              overwrite=args.overwrite)
    nx, ny, nz = result.shape_xyz
    print(f"{Path(args.model).name}: {len(atoms.coords)} atoms -> {out} ({nx}×{ny}×{nz} voxels of "
          f"{result.voxel_size[0]:g} Å, origin {', '.join(f'{v:.3f}' for v in result.origin)})")
    return 0


def _compare(args: argparse.Namespace) -> int:
    from .mapio import read_map
    from .metrics import compare_maps

    result = compare_maps(read_map(args.map), read_map(args.reference), level=args.level)
    print(f"{Path(args.map).name} vs {Path(args.reference).name} "
          f"(envelope: reference >= {result['level']:.4g}, {result['points']} points)")
    print(_metric_line("metrics", result))
    _write_json(args.json, {"map": args.map, "reference": args.reference, **result})
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="struc2map", description="Experimental-like cryo-EM maps from atomic "
                                     "models (struc2mapGAN), molmap, map comparison and training.")
    parser.add_argument("--version", action="version", version=f"struc2map {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate an experimental-like map for a model, or for many")
    g.add_argument("model", nargs="+", help="PDB or mmCIF file (gzipped too); for a batch several, a folder, or "
                   "@LIST (a file with one path a line)")
    g.add_argument("--resolution", "-r", type=float, required=True, help="target resolution in Å")
    g.add_argument("--output", "-o", help="MRC file to write (one model)")
    g.add_argument("--output-dir", metavar="DIR", help="folder for a batch: DIR/<model name>.mrc per model, "
                   "existing maps skipped, a log per process (struc2map_batch.rankR.jsonl); see docs/cluster.md")
    g.add_argument("--compare", metavar="MAP", help="experimental map to report correlations with")
    g.add_argument("--weights", metavar="FILE", help="generator weights (.pt with its .json); default: shipped")
    g.add_argument("--device", default="auto", help="auto (default: CUDA, then Apple MPS, then the CPU), cpu, "
                   "cuda, cuda:N or mps")
    g.add_argument("--tile-size", type=int, help="tile edge in voxels, a multiple of 8 (default 32, "
                   "the training tile size)")
    g.add_argument("--margin", type=int, help="voxels dropped at each tile side (default 6)")
    g.add_argument("--batch-size", type=int, help="tiles per generator call (default 8)")
    g.add_argument("--precision", choices=["auto", "fp32", "bf16", "fp16"],
                   help="auto (default): bf16 on GPUs and on CPUs with native bf16, else fp32")
    g.add_argument("--paper-tiling", action="store_true", help="the paper's 32³ tiles keeping 20³ cores, all "
                   "tiles, fp32 (for comparison)")
    g.add_argument("--ignore-bfactors", action="store_true", help="leave the model's B-factors out (default: used "
                   "when the weights read them and they vary: not for flat or zero B-factors, e.g. predicted models)")
    g.add_argument("--overwrite", action="store_true", help="replace OUTPUT (or a batch's maps) if it exists")
    g.add_argument("--json", metavar="FILE", help="also write the summary as JSON")
    g.set_defaults(func=_generate)

    m = sub.add_parser("molmap", help="ChimeraX's molmap (Gaussian per atom) on a model")
    m.add_argument("model")
    m.add_argument("--resolution", "-r", type=float, required=True)
    m.add_argument("--output", "-o", required=True)
    m.add_argument("--grid-spacing", type=float, help="Å (default resolution/3)")
    m.add_argument("--sigma-factor", type=float, help="σ = factor × resolution (default 1/(π√2))")
    m.add_argument("--edge-padding", type=float, help="Å (default 3 × resolution)")
    m.add_argument("--on-grid", metavar="MAP", help="compute on this map's grid")
    m.add_argument("--convention", choices=["centered", "corner"], default="centered",
                   help="grid placement of ChimeraX ≥ 1.9 (centered, default) or ≤ 1.8 (corner)")
    m.add_argument("--overwrite", action="store_true")
    m.set_defaults(func=_molmap)

    c = sub.add_parser("compare", help="ChimeraX correlations and the paper's PCC and SSIM")
    c.add_argument("map", help="map to score (resampled onto the reference's grid)")
    c.add_argument("--reference", required=True, help="reference map, e.g. the experimental one")
    c.add_argument("--level", type=float, help="envelope contour of the reference (default: ChimeraX's "
                   "initial level, the value above which 1%% of voxels lie)")
    c.add_argument("--json", metavar="FILE")
    c.set_defaults(func=_compare)

    from .training.cli import add_subcommands

    add_subcommands(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    for stream in (sys.stdout, sys.stderr):  # Å and × must not crash an ASCII-only terminal
        if hasattr(stream, "reconfigure"):
            stream.reconfigure(errors="replace")
    args = build_parser().parse_args(argv)
    warnings.formatwarning = lambda msg, *a, **k: f"struc2map: warning: {msg}\n"
    try:
        return int(args.func(args) or 0)
    except Struc2mapError as e:
        print(f"struc2map: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("struc2map: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
