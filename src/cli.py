"""The ``struc2map`` command line: generate, molmap, compare, weights, and the training steps."""
from __future__ import annotations

import argparse
import json
import sys
import time
import warnings
from pathlib import Path

from . import __version__
from .errors import InputError, Struc2mapError, WeightsError
from .files import check_output, write_text
from .memory import check_compare

WEIGHTS_OPTION_HELP = " On the command line, name weights with --weights FILE or an installed NAME."


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


def _write_json(path: str | None, data: dict, overwrite: bool) -> None:
    """The ``--json`` summary, by the rules of every output (atomic, no overwrite unless asked)."""
    if path:
        write_text(path, json.dumps(data, indent=1, default=float) + "\n", overwrite=overwrite)


def _weights_files(path: str | None) -> list[Path]:
    """The files of ``--weights`` (inputs no output may replace)."""
    from .weights_meta import weights_file_pair

    return list(weights_file_pair(path)) if path else []


def _metric_line(name: str, m: dict) -> str:
    return (f"  {name}: correlation {m['correlation']:.4f}, about mean {m['correlation_about_mean']:.4f}"
            + (f" (within {m['envelope']})" if "envelope" in m else "")
            + (f", PCC {m['pcc']:.4f}, SSIM {m['ssim']:.4f}" if "pcc" in m else ""))


def _generate_options(args: argparse.Namespace):
    """The run's options from the command line, checked before any model is read (a batch included)."""
    from .options import GenerateOptions

    return GenerateOptions(resolution=args.resolution, weights=args.weights, device=args.device,
                           precision=args.precision, tile_size=args.tile_size, margin=args.margin,
                           batch_size=args.batch_size, paper_tiling=args.paper_tiling, bfactors=args.bfactors)


def _generate(args: argparse.Namespace) -> int:
    from .batch import is_batch
    from .model_to_map import generate_model
    from .device import resolve_device
    from .mapio import read_map
    from .metrics import INITIAL_ENVELOPE, MOLMAP_ENVELOPE, compare_maps, molmap_correlation
    from .molmap import molmap
    from .weights_io import load_weights_or_shipped

    options = _generate_options(args)
    resolve_device(options.device)  # a GPU asked for but not there is refused before any model is read
    if args.output_dir or is_batch(args.model):
        return _generate_batch(args, options)
    if not args.output:
        raise InputError("Name the map to write with --output FILE (or a folder for many maps with --output-dir).")
    model = args.model[0]
    inputs = [model, args.compare, *_weights_files(options.weights)]
    out = check_output(args.output, overwrite=args.overwrite, inputs=inputs, others=[args.json])
    if args.json:
        check_output(args.json, overwrite=args.overwrite, inputs=inputs, others=[out])
    experimental = read_map(args.compare) if args.compare else None
    if experimental is not None:
        check_compare(experimental.array.shape)
    weights = load_weights_or_shipped(options.weights, missing_hint=WEIGHTS_OPTION_HELP)
    atoms, generated, report = generate_model(model, out, options.resolution, weights, tiling=options.tiling(),
                                              device=options.device, overwrite=args.overwrite,
                                              bfactors=options.bfactors, progress=_progress_bar("tiles"))
    reference = molmap(atoms.coords, atoms.atomic_numbers, options.resolution, on_grid=generated)
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
    print(_metric_line(f"vs molmap at {options.resolution:g} Å", metrics["molmap"]))
    if experimental is not None:
        print(_metric_line(f"vs {Path(args.compare).name}", metrics["experimental"]))
    _write_json(args.json, summary, args.overwrite)
    return 0


def _generate_batch(args: argparse.Namespace, options) -> int:
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
    weights = load_weights_or_shipped(options.weights, missing_hint=WEIGHTS_OPTION_HELP)
    summary = run_batch(plan, options.resolution, weights, tiling=options.tiling(), device=options.device,
                        overwrite=args.overwrite, bfactors=options.bfactors)
    return 1 if failures_on_all_ranks(len(summary.failed), plan.world) else 0


def _molmap(args: argparse.Namespace) -> int:
    from .mapio import check_map_output, read_map, write_map
    from .memory import check_molmap
    from .molmap import SIGMA_FACTOR, _grid_step, molmap, molmap_grid
    from .resolution import check_resolution
    from .structure import read_structure

    inputs = [args.model, args.on_grid]
    check_resolution(args.resolution)
    check_output(args.output, overwrite=args.overwrite, inputs=inputs)
    atoms = read_structure(args.model)
    on_grid = read_map(args.on_grid) if args.on_grid else None
    sigma_factor = SIGMA_FACTOR if args.sigma_factor is None else args.sigma_factor  # 0 is refused, not a default
    if on_grid is None:
        origin, shape = molmap_grid(atoms.coords, args.resolution, grid_spacing=args.grid_spacing,
                                    edge_padding=args.edge_padding, convention=args.convention)
        spacing = _grid_step(args.resolution, args.grid_spacing)
    else:
        origin, shape, spacing = on_grid.origin, on_grid.array.shape, on_grid.voxel_size
    check_molmap(shape)
    out = check_map_output(args.output, origin, spacing, overwrite=args.overwrite, inputs=inputs)
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

    if args.json:
        check_output(args.json, overwrite=args.overwrite, inputs=[args.map, args.reference])
    reference = read_map(args.reference)
    check_compare(reference.array.shape)
    map_ = read_map(args.map)
    result = compare_maps(map_, reference, level=args.level)
    print(f"{Path(args.map).name} vs {Path(args.reference).name} "
          f"(envelope: reference >= {result['level']:.4g}, {result['points']} points)")
    print(_metric_line("metrics", result))
    _write_json(args.json, {"map": args.map, "reference": args.reference, **result}, args.overwrite)
    return 0


def _weights_import(args: argparse.Namespace) -> int:
    from .published import import_checkpoint
    from .files import file_sha256
    from .weights_meta import read_metadata

    pt_path = import_checkpoint(args.checkpoint, name=args.name, output=args.output, input_recipe=args.input,
                                overwrite=args.overwrite)
    _print_imported(pt_path, read_metadata(pt_path), file_sha256(args.checkpoint))
    return 0


def _weights_download(args: argparse.Namespace) -> int:
    from .published import PUBLISHED, download_published, import_checkpoint
    from .weights_meta import read_metadata

    progress = _progress_bar("download")
    checkpoint = download_published(args.folder, progress=None if progress is None else
                                    lambda done, total: progress(done >> 20, (total or PUBLISHED.size) >> 20))
    print(f"{checkpoint}: {PUBLISHED.size} bytes, sha256 {PUBLISHED.sha256} (as published: {PUBLISHED.sha256_source})")
    pt_path = import_checkpoint(checkpoint, name=args.name, output=args.output, input_recipe=args.input,
                                overwrite=args.overwrite)
    _print_imported(pt_path, read_metadata(pt_path), PUBLISHED.sha256)
    return 0


def _print_imported(pt_path: Path, meta: dict, checkpoint_sha256: str) -> None:
    provenance = meta["provenance"]
    print(f"checkpoint sha256 {checkpoint_sha256}: "
          + (f"the published struc2mapGAN checkpoint, licence {provenance['licence']}" if provenance["published"]
             else "not the published checkpoint"))
    print(f"imported as {pt_path} (widths {'/'.join(map(str, meta['widths']))}, input {meta['input']['simulator']}); "
          f"use it with --weights {pt_path.stem}")


def _weights_list(args: argparse.Namespace) -> int:
    from .weights_meta import GeneratorSpec, installed_weights

    found = installed_weights()
    if not found:
        print("No weights are installed.")
    for w in found:
        meta = w.metadata
        try:
            spec = GeneratorSpec.from_metadata(meta, str(w.path.with_suffix(".json")))
        except WeightsError as e:  # one bad file is named, and hides none of the others
            print(f"{w.name}: cannot be used: {e}\n  {w.path}")
            continue
        inputs = meta.get("input", {}).get("simulator", "molmap") + (" + B-factors" if spec.in_channels > 1 else "")
        resolution = (f"resolution {spec.resolution_range[0]:g}–{spec.resolution_range[1]:g} Å as asked"
                      if spec.resolution_range else f"native resolution {spec.native_resolution:g} Å")
        print(f"{w.name}{' (shipped)' if w.shipped else ''}: {w.description}\n  {w.path}\n"
              f"  widths {'/'.join(map(str, meta['widths']))}; input {inputs}; {resolution}; "
              f"sha256 {meta['sha256'][:12]}")
    return 0


def _shipped_range() -> str:
    """What the shipped weights make, from their metadata (no torch): the --resolution help."""
    from .weights_meta import default_weights_path, read_metadata

    try:
        path = default_weights_path()
        span = read_metadata(path).get("output", {}).get("resolution_range") if path else None
    except WeightsError:  # a damaged install: generate says so when it loads them
        span = None
    if not span:
        return "the weights' own range; see 'struc2map weights list'"
    low, high = span
    return (f"the default weights make {low:g}–{high:g} Å; finer is made at {low:g}, coarser at {high:g} and "
            "low-pass filtered, with a note")


def build_parser() -> argparse.ArgumentParser:
    from .options import BFACTOR_MODES, DEVICE_FORMS, MIN_TILE, PRECISIONS, TILE_MULTIPLE, TilingConfig

    parser = argparse.ArgumentParser(prog="struc2map", description="Experimental-like cryo-EM maps from atomic "
                                     "models (struc2mapGAN), molmap, map comparison and training.")
    parser.add_argument("--version", action="version", version=f"struc2map {__version__}")
    sub = parser.add_subparsers(dest="command", required=True)

    g = sub.add_parser("generate", help="generate an experimental-like map for a model, or for many")
    g.add_argument("model", nargs="+", help="PDB or mmCIF file (gzipped too); for a batch several, a folder, or "
                   "@LIST (a file with one path a line)")
    g.add_argument("--resolution", "-r", type=float, required=True,
                   help=f"target resolution in Å ({_shipped_range()})")
    g.add_argument("--output", "-o", help="MRC file to write (one model)")
    g.add_argument("--output-dir", metavar="DIR", help="folder for a batch: DIR/<model name>.mrc per model, "
                   "existing maps skipped, a log per process (struc2map_batch.rankR.jsonl); see docs/cluster.md")
    g.add_argument("--compare", metavar="MAP", help="experimental map to report correlations with")
    g.add_argument("--weights", metavar="NAME_OR_PATH", help="generator weights: a file (.pt with its .json) or "
                   "the name of installed weights (see 'struc2map weights list'); default: shipped")
    g.add_argument("--device", default="auto", help=f"{DEVICE_FORMS} (default auto: CUDA, then Apple MPS, "
                   "then the CPU)")
    g.add_argument("--tile-size", type=int, help=f"tile edge in voxels, a multiple of {TILE_MULTIPLE}, at least "
                   f"{MIN_TILE} (default {TilingConfig.tile_size}, the training tile size)")
    g.add_argument("--margin", type=int, help=f"voxels dropped at each tile side (default {TilingConfig.margin})")
    g.add_argument("--batch-size", type=int, help=f"tiles per generator call (default {TilingConfig.batch_size})")
    g.add_argument("--precision", choices=PRECISIONS,
                   help="auto (default): bf16 on CUDA GPUs that support it and on CPUs with native bf16, "
                   "else fp32")
    g.add_argument("--paper-tiling", action="store_true", help="the paper's 32³ tiles keeping 20³ cores, all "
                   "tiles, fp32 (for comparison)")
    g.add_argument("--bfactors", choices=BFACTOR_MODES, default="auto", help="how the B-factor column is read: auto "
                   "(default: pLDDT when the model is marked as predicted, by AlphaFold, ESMFold, ColabFold..., else "
                   "B-factors, used when the weights read them and they vary), b (B-factors), plddt (pLDDT, 0-100 or "
                   "0-1: turned into B-factors, atoms below pLDDT 50 weigh half), ignore (left out)")
    g.add_argument("--ignore-bfactors", dest="bfactors", action="store_const", const="ignore",
                   help="the same as --bfactors ignore")
    g.add_argument("--overwrite", action="store_true", help="replace OUTPUT and the --json file (or a batch's maps) "
                   "if they exist (never an input, a folder or a special file)")
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
    c.add_argument("--json", metavar="FILE", help="also write the scores as JSON")
    c.add_argument("--overwrite", action="store_true", help="replace the --json file if it exists")
    c.set_defaults(func=_compare)

    _add_weights_subcommands(sub)

    from .training.cli import add_subcommands

    add_subcommands(sub)
    return parser


def _add_weights_subcommands(sub) -> None:
    from .weights_meta import RECIPES

    w = sub.add_parser("weights", help="list weights; import or download the authors' published checkpoint")
    wsub = w.add_subparsers(dest="weights_command", required=True)
    for command, help_text in (("import", "import a struc2mapGAN Lightning checkpoint (.ckpt) as weights"),
                               ("download", "download the authors' published checkpoint and import it")):
        p = wsub.add_parser(command, help=help_text)
        if command == "import":
            p.add_argument("checkpoint", metavar="FILE.ckpt")
            p.set_defaults(func=_weights_import)
        else:
            p.add_argument("which", choices=["published"])
            p.add_argument("--folder", metavar="DIR", help="where to keep the checkpoint (default: the downloads "
                           "folder in Struc2map's data folder)")
            p.set_defaults(func=_weights_download)
        p.add_argument("--name", default="published", help="name to use with --weights (default: published)")
        p.add_argument("--output", metavar="DIR", help="folder to write NAME.pt and NAME.json to (default: the "
                       "user's weights folder, where --weights NAME looks)")
        p.add_argument("--input", choices=list(RECIPES), default="molmap", help="the input recipe the weights will "
                       "be fed: molmap (default, what the generator was trained on) or tempy-blur (what the "
                       "authors' inference script feeds by default)")
        p.add_argument("--overwrite", action="store_true", help="replace weights of that name")
    lst = wsub.add_parser("list", help="list installed weights (the user's weights folder, then the shipped ones)")
    lst.set_defaults(func=_weights_list)


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
    except MemoryError:  # the estimates in memory.py refuse most jobs too large before they start
        print("struc2map: error: ran out of memory; use a coarser grid, a smaller box or model, or a smaller "
              "--batch-size or --tile-size.", file=sys.stderr)
        return 2
    except RuntimeError as e:
        torch = sys.modules.get("torch")  # loaded only if the command ran the generator: never imported here
        if torch is None or not isinstance(e, torch.cuda.OutOfMemoryError):
            raise
        print("struc2map: error: the GPU ran out of memory; use a smaller --batch-size or --tile-size, or "
              "--device cpu.", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("struc2map: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
