"""Struc2map's own weights format: ``NAME.pt`` (generator state dict) plus ``NAME.json`` (metadata).

The JSON records what the generator expects (input simulator, resolution, grid
spacing, normalisation), what it produces, how it was trained, and the sha256
of the ``.pt`` file, which is checked before the file is unpickled.  The
``.pt`` is read with ``torch.load(weights_only=True)``, so a weights file cannot
run code.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import torch

from . import __version__
from .errors import WeightsError
from .files import atomic_path, check_output, output_folder
from .inputs import CONDITION_DIM
from .network import LEVELS, MAX_WIDTH, Generator
from .userdata import weights_folder

FORMAT = "struc2map-weights"
FORMAT_VERSION = 1
ARCHITECTURE = "unet++"
SHIPPED_NAME = "struc2map_generator.pt"

DEFAULT_INPUT = {"simulator": "molmap", "resolution": 2.0, "grid_spacing": 1.0, "normalisation": "minmax"}
"""How the paper's generator inputs were made: molmap at 2 Å on a 1 Å grid, min-max normalised."""

DEFAULT_OUTPUT = {"normalisation": "minmax", "background": None}

MISSING_WEIGHTS_HELP = (
    "No trained Struc2map weights are installed. "
    "The Struc2map package normally ships them as weights/struc2map_generator.pt (with its .json): "
    "reinstall the package or ChimeraX bundle to get them back, "
    "pass a weights file of your own with --weights FILE (NAME.pt with NAME.json beside it), "
    "or train one with 'struc2map train' (see docs/training.md)."
)


@dataclass(frozen=True)
class GeneratorSpec:
    """What a generator reads and writes, parsed and checked from its metadata (one place for it).

    Version-1 weights (the first shipped generator) read molmap only, have one
    native resolution and a hard mask (``mask_radius``); conditioned weights
    read ``in_channels`` channels (see inputs.py), take the target resolution
    as input over ``resolution_range`` and fade into solvent with a soft
    ``envelope``.
    """

    in_channels: int = 1
    condition: str | None = None  # "resolution": the target resolution is an input
    input_resolution: float = 2.0
    grid_spacing: float = 1.0
    native_resolution: float = 2.0
    resolution_range: tuple[float, float] | None = None
    mask_radius: float | None = None
    envelope: str | None = None  # "soft": mask.envelope_radii / soft_envelope

    @property
    def condition_dim(self) -> int:
        return CONDITION_DIM if self.condition == "resolution" else 0

    @classmethod
    def from_metadata(cls, meta: dict, where: str) -> "GeneratorSpec":
        """The spec of a metadata dict; a WeightsError naming the field when one is unusable."""
        def section(name: str) -> dict:
            value = meta.get(name, {})
            if not isinstance(value, dict):
                raise WeightsError(f"{where}: the field '{name}' must be an object, got {value!r}.")
            return value

        def number(name: str, value, default: float | None, low: float = 0.0, high: float = 1e3) -> float | None:
            if value is None:
                return default
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not low < value <= high:
                raise WeightsError(f"{where}: the field '{name}' must be a number in ({low:g}, {high:g}], "
                                   f"got {value!r}.")
            return float(value)

        network, inp, out = section("network"), section("input"), section("output")
        in_channels = network.get("in_channels", 1)
        if in_channels not in (1, 2) or isinstance(in_channels, bool):
            raise WeightsError(f"{where}: the field 'network.in_channels' must be 1 or 2, got {in_channels!r}.")
        condition = network.get("condition")
        if condition not in (None, "resolution"):
            raise WeightsError(f"{where}: the field 'network.condition' must be \"resolution\" or absent, "
                               f"got {condition!r}.")
        input_resolution = number("input.resolution", inp.get("resolution"), 2.0, high=20.0)
        spacing = number("input.grid_spacing", inp.get("grid_spacing"), 1.0, high=10.0)
        native = number("output.resolution", out.get("resolution"), input_resolution, high=100.0)
        span = out.get("resolution_range")
        if span is not None:
            if not (isinstance(span, list) and len(span) == 2):
                raise WeightsError(f"{where}: the field 'output.resolution_range' must be [lowest, highest] Å.")
            span = (number("output.resolution_range", span[0], None, high=100.0),
                    number("output.resolution_range", span[1], None, high=100.0))
            if span[0] > span[1]:
                raise WeightsError(f"{where}: the field 'output.resolution_range' is empty ({span[0]} > {span[1]}).")
        if condition == "resolution" and span is None:
            raise WeightsError(f"{where}: a resolution-conditioned generator needs 'output.resolution_range'.")
        envelope = out.get("envelope")
        if envelope not in (None, "soft"):
            raise WeightsError(f"{where}: the field 'output.envelope' must be \"soft\" or absent, got {envelope!r}.")
        return cls(in_channels=in_channels, condition=condition, input_resolution=input_resolution,
                   grid_spacing=spacing, native_resolution=native, resolution_range=span,
                   mask_radius=number("output.mask_radius", out.get("mask_radius"), None, high=50.0),
                   envelope=envelope)

    def network(self) -> dict:
        """The metadata's "network" section for this spec."""
        return {"in_channels": self.in_channels, "condition": self.condition, "condition_dim": self.condition_dim}


@dataclass
class Weights:
    """A loaded generator with its metadata (raw and parsed) and the file it came from."""

    generator: Generator
    metadata: dict
    path: Path
    sha256: str
    spec: GeneratorSpec = GeneratorSpec()

    @property
    def short_id(self) -> str:
        """First 12 hex digits of the ``.pt`` file's sha256, to name the weights in logs and map headers."""
        return self.sha256[:12]


def weights_file_pair(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(NAME.pt, NAME.json)`` pair for a path given as NAME.pt, NAME.json or NAME."""
    path = Path(path)
    if path.suffix in (".pt", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".pt"), path.with_name(path.name + ".json")


def file_sha256(path: Path) -> str:
    """Hex sha256 of a file, read in chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            digest.update(chunk)
    return digest.hexdigest()


def save_weights(path: str | os.PathLike, generator: Generator, metadata: dict, *, overwrite: bool = False,
                 inputs: Iterable[str | os.PathLike] = ()) -> Path:
    """Write ``generator``'s weights as NAME.pt and NAME.json; return the ``.pt`` path.

    ``metadata`` supplies "input", "output" and "training" (defaults: the
    paper's molmap input, min-max output, no training record); the format
    fields, widths, sha256, creation time and Struc2map version are filled in.
    The folder is created if missing; both files are checked as every output
    is (``files.check_output``: never one of ``inputs``, even with
    ``overwrite``), written to temporary files and moved into place.
    """
    if not isinstance(generator, Generator):
        raise TypeError(f"save_weights needs a Generator, got {type(generator).__name__}.")
    pt_path, json_path = weights_file_pair(path)
    output_folder(pt_path.parent, "weights folder")
    inputs = list(inputs)
    check_output(pt_path, overwrite=overwrite, inputs=inputs, others=[json_path])
    check_output(json_path, overwrite=overwrite, inputs=inputs, others=[pt_path])
    state = {key: value.detach().cpu().contiguous() for key, value in generator.state_dict().items()}
    with atomic_path(pt_path, overwrite=overwrite) as pt_tmp, atomic_path(json_path, overwrite=overwrite) as json_tmp:
        with open(pt_tmp, "wb") as handle:  # to a file object the archive's inner folder is "archive", not the
            torch.save(state, handle)       # temporary file's name: the same tensors give the same bytes
        meta = {"input": dict(DEFAULT_INPUT), "output": dict(DEFAULT_OUTPUT), "training": {}}
        meta.update(metadata)
        meta.setdefault("network", {})
        meta["network"].update(in_channels=generator.in_channels, condition_dim=generator.condition_dim)
        meta.update(
            format=FORMAT,
            format_version=FORMAT_VERSION,
            architecture=ARCHITECTURE,
            widths=list(generator.widths),
            sha256=file_sha256(pt_tmp),
            created=datetime.now(timezone.utc).isoformat(timespec="seconds"),
            struc2map_version=__version__,
        )
        json_tmp.write_text(json.dumps(meta, indent=2) + "\n", encoding="utf-8")
    return pt_path


def read_metadata(path: str | os.PathLike) -> dict:
    """The checked metadata of a weights file (format, version, architecture, widths, sha256)."""
    pt_path, json_path = weights_file_pair(path)
    if not json_path.is_file():
        raise WeightsError(f"The metadata file {json_path} that must accompany the weights {pt_path} is missing.")
    try:
        meta = json.loads(json_path.read_text(encoding="utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as err:
        raise WeightsError(f"The weights metadata {json_path} is not valid JSON ({err}).") from err
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        raise WeightsError(f"{json_path} does not describe Struc2map weights (its format is not '{FORMAT}').")
    version = meta.get("format_version")
    if not isinstance(version, int) or version < 1:
        raise WeightsError(f"{json_path} has no valid format_version.")
    if version > FORMAT_VERSION:
        raise WeightsError(
            f"{json_path} was written by a newer Struc2map (weights format version {version}; "
            f"this version reads up to {FORMAT_VERSION}). Update Struc2map to use these weights."
        )
    if meta.get("architecture") != ARCHITECTURE:
        raise WeightsError(
            f"{json_path} describes a '{meta.get('architecture')}' network; this Struc2map runs '{ARCHITECTURE}'."
        )
    widths = meta.get("widths")
    if not (isinstance(widths, list) and all(isinstance(w, int) and w > 0 for w in widths)):
        raise WeightsError(f"{json_path} has no valid list of layer widths.")
    if not isinstance(meta.get("sha256"), str):
        raise WeightsError(f"{json_path} has no sha256 checksum of the weights.")
    return meta


def load_weights(path: str | os.PathLike, *, map_location: str | torch.device = "cpu") -> Weights:
    """Load the generator described by NAME.json from NAME.pt, in eval mode on ``map_location``.

    ``path`` may name the ``.pt``, the ``.json`` or NAME.  The ``.pt`` file's
    sha256 is checked against the metadata before it is unpickled.
    """
    pt_path, json_path = weights_file_pair(path)
    if not pt_path.is_file():
        raise WeightsError(f"The weights file {pt_path} does not exist.")
    meta = read_metadata(pt_path)
    sha = file_sha256(pt_path)
    if sha != meta["sha256"]:
        raise WeightsError(
            f"The weights file {pt_path} is corrupt or was changed: sha256 {sha}, "
            f"expected {meta['sha256']} (from {json_path.name})."
        )
    try:
        state = torch.load(pt_path, map_location="cpu", weights_only=True)
    except Exception as err:  # torch raises many types for unreadable or unsafe pickles
        raise WeightsError(
            f"The weights file {pt_path} cannot be read as plain tensors: it is damaged, not a PyTorch file, "
            f"or holds Python objects that are refused because unpickling them could run code ({type(err).__name__})."
        ) from err
    if not (isinstance(state, dict) and state and all(isinstance(v, torch.Tensor) for v in state.values())):
        raise WeightsError(f"The weights file {pt_path} does not hold a state dict of tensors.")
    spec = GeneratorSpec.from_metadata(meta, str(json_path))
    if len(meta["widths"]) != LEVELS or max(meta["widths"]) > MAX_WIDTH:
        raise WeightsError(f"{json_path}: the field 'widths' must be {LEVELS} layer widths of at most {MAX_WIDTH} "
                           f"channels, got {meta['widths']}.")
    generator = fitted_generator(state, meta["widths"], pt_path, in_channels=spec.in_channels,
                                 condition_dim=spec.condition_dim)
    generator.to(map_location).eval()
    return Weights(generator=generator, metadata=meta, path=pt_path, sha256=sha, spec=spec)


def fitted_generator(state: dict, widths: list[int], pt_path: Path, *, in_channels: int = 1,
                     condition_dim: int = 0) -> Generator:
    """A generator of ``widths`` holding ``state``, or a WeightsError; the shapes are checked first on a
    generator without storage (the "meta" device), so that widths the state does not fit allocate nothing."""
    with torch.device("meta"):
        shapes_only = Generator(widths, in_channels, condition_dim=condition_dim)
    check_state_matches(shapes_only, state, pt_path, widths)
    generator = Generator(widths, in_channels, condition_dim=condition_dim)
    generator.load_state_dict(state, strict=True)
    return generator


def check_state_matches(generator: Generator, state: dict, pt_path: Path, widths: list) -> None:
    """Raise a WeightsError naming the keys that differ between ``state`` and ``generator`` (``pt_path``: where
    ``state`` came from, for the message)."""
    expected = generator.state_dict()
    problems = []
    missing = sorted(set(expected) - set(state))
    unexpected = sorted(set(state) - set(expected))
    wrong_shape = sorted(k for k in set(expected) & set(state) if expected[k].shape != state[k].shape)
    for label, keys in (("missing", missing), ("unexpected", unexpected), ("of the wrong shape", wrong_shape)):
        if keys:
            shown = ", ".join(keys[:5]) + (f" and {len(keys) - 5} more" if len(keys) > 5 else "")
            problems.append(f"{label}: {shown}")
    if problems:
        raise WeightsError(
            f"The weights in {pt_path} do not fit a U-Net++ generator of widths {widths} "
            f"(parameters {'; '.join(problems)})."
        )


def default_weights_path() -> Path | None:
    """The shipped weights' ``.pt`` if it and its ``.json`` are installed, else None.

    Looks in the package's ``weights`` folder, then in the source checkout's
    top-level ``weights`` folder (editable installs map it there).
    """
    for folder in shipped_weights_folders():
        pt_path, json_path = weights_file_pair(folder / SHIPPED_NAME)
        if pt_path.is_file() and json_path.is_file():
            return pt_path
    return None


def load_weights_or_shipped(path: str | os.PathLike | None, *, missing_hint: str = "") -> Weights:
    """The weights at ``path``, or the shipped ones when no path is given.

    Raises WeightsError with MISSING_WEIGHTS_HELP (and ``missing_hint``, how
    the caller's interface names a weights file) when none are installed.
    """
    path = resolve_weights(path) if path else default_weights_path()
    if path is None:
        raise WeightsError(MISSING_WEIGHTS_HELP + missing_hint)
    return load_weights(path)


@dataclass
class InstalledWeights:
    """A weights set found in the user's weights folder or shipped with the package."""

    name: str
    path: Path
    metadata: dict
    shipped: bool

    @property
    def description(self) -> str:
        """One line: the metadata's own description, or what the training record says."""
        if self.metadata.get("description"):
            return str(self.metadata["description"])
        training = self.metadata.get("training")
        pairs = training.get("pairs") if isinstance(training, dict) else None
        return f"trained by Struc2map on {len(pairs)} map/model pairs" if isinstance(pairs, list) and pairs \
            else "no description"


def shipped_weights_folders() -> list[Path]:
    """The package's ``weights`` folder, then the source checkout's (editable installs map it there)."""
    here = Path(__file__).resolve().parent
    return [here / "weights", here.parent / "weights"]


def installed_weights() -> list[InstalledWeights]:
    """Every weights set ``--weights NAME`` can name: the user's weights folder first, then the shipped ones.

    Files whose metadata cannot be read as Struc2map weights are left out.
    """
    found = []
    folders = [(weights_folder(), False)] + [(f, True) for f in shipped_weights_folders()]
    for folder, shipped in folders:
        for json_path in sorted(folder.glob("*.json")) if folder.is_dir() else []:
            pt_path = json_path.with_suffix(".pt")
            if not pt_path.is_file() or any(w.path == pt_path for w in found):
                continue
            try:
                found.append(InstalledWeights(json_path.stem, pt_path, read_metadata(pt_path), shipped))
            except WeightsError:
                continue
    return found


def resolve_weights(name_or_path: str | os.PathLike) -> Path:
    """The ``.pt`` of weights given as a path or as the name of installed weights.

    A path holds a folder separator or ends in .pt or .json (NAME.pt, ./NAME);
    it is returned as such, for load_weights to say what is missing. A bare
    name is only ever an installed name: files of that name in the working
    folder are not taken for it (``./NAME`` names them).
    """
    name = str(name_or_path)
    path = Path(name_or_path).expanduser()
    if path.suffix in (".pt", ".json") or "/" in name or "\\" in name or name.startswith("~"):
        return weights_file_pair(path)[0]
    installed = installed_weights()
    for entry in installed:
        if entry.name == name:
            return entry.path
    names = ", ".join(dict.fromkeys(w.name for w in installed)) or "none"
    here = f"; for the file {name}.pt in this folder give ./{name}.pt" if weights_file_pair(path)[0].is_file() else ""
    raise WeightsError(f"No weights '{name}': it is not the name of installed weights (installed: {names}; see "
                       f"'struc2map weights list', and 'struc2map weights import' to add the published "
                       f"checkpoint){here}.")
