"""What a weights set is, without torch: the metadata format, the installed sets and their names.

``NAME.json`` records what the generator expects (input simulator,
resolution, grid spacing, normalisation), what it produces, how it was
trained, and the sha256 of ``NAME.pt``. Reading it, listing the installed
sets and resolving ``--weights NAME`` need no torch, so the ChimeraX panel and
``struc2map weights list`` work where torch is missing; loading the tensors is
weights_io.py's job.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from .errors import WeightsError
from .channels import CONDITION_DIM
from .userdata import weights_folder

FORMAT = "struc2map-weights"
FORMAT_VERSION = 1
ARCHITECTURE = "unet++"
SHIPPED_NAME = "struc2map_generator.pt"

DEFAULT_INPUT = {"simulator": "molmap", "resolution": 2.0, "grid_spacing": 1.0, "normalisation": "minmax"}
"""How the paper's generator inputs were made: molmap at 2 Å on a 1 Å grid, min-max normalised."""

TEMPY_BLUR_INPUT = {"simulator": "tempy-blur", "resolution": 2.0, "grid_spacing": 1.0, "sigma_factor": 0.356,
                    "normalisation": "zscore"}
"""The authors' inference default: --mode pdb2vol --res 2.0 --sigma_coeff 0.356, normalised."""

RECIPES = {"molmap": DEFAULT_INPUT, "tempy-blur": TEMPY_BLUR_INPUT}
"""Each input recipe's full settings (simulators.py makes them), by the name the metadata's "simulator" gives."""

NORMALISATION_NAMES = ("minmax", "zscore")
"""How a simulated input may be scaled (simulators.normalise)."""

DEFAULT_OUTPUT = {"normalisation": "minmax", "background": None}


def input_recipe(inp: dict, where: str = "The weights") -> dict:
    """A weights file's "input" section completed from its recipe's defaults; a WeightsError for unknown names."""
    name = inp.get("simulator", "molmap")
    if name not in RECIPES:
        raise WeightsError(f"{where} ask for the input simulator '{name}', which this Struc2map does not know "
                           f"(known: {', '.join(RECIPES)}).")
    recipe = {**RECIPES[name], **inp}
    if recipe["normalisation"] not in NORMALISATION_NAMES:
        raise WeightsError(f"{where} ask for the input normalisation '{recipe['normalisation']}', which this "
                           f"Struc2map does not know (known: {', '.join(NORMALISATION_NAMES)}).")
    return recipe


@dataclass(frozen=True)
class GeneratorSpec:
    """What a generator reads and writes, parsed and checked from its metadata (one place for it).

    Version-1 weights (the first shipped generator) read molmap only, have one
    native resolution and a hard mask (``mask_radius``); conditioned weights
    read ``in_channels`` channels (see channels.py), take the target resolution
    as input over ``resolution_range`` and fade into solvent with a soft
    ``envelope``.
    """

    in_channels: int = 1
    condition: str | None = None  # "resolution": the target resolution is an input
    native_resolution: float = 2.0
    resolution_range: tuple[float, float] | None = None
    mask_radius: float | None = None
    envelope: str | None = None  # "soft": mask.envelope_radii / soft_envelope
    recipe: dict = field(default_factory=lambda: dict(DEFAULT_INPUT), hash=False)  # the complete input recipe

    @property
    def input_resolution(self) -> float:
        """Å of the molmap (or other simulated map) the generator reads: the recipe's."""
        return self.recipe["resolution"]

    @property
    def grid_spacing(self) -> float:
        """Å between the voxels the generator reads and writes: the recipe's."""
        return self.recipe["grid_spacing"]

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
        recipe = input_recipe(inp, where)
        input_resolution = number("input.resolution", recipe["resolution"], None, high=20.0)
        recipe.update(resolution=input_resolution,
                      grid_spacing=number("input.grid_spacing", recipe["grid_spacing"], None, high=10.0))
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
        return cls(in_channels=in_channels, condition=condition, native_resolution=native, resolution_range=span,
                   mask_radius=number("output.mask_radius", out.get("mask_radius"), None, high=50.0),
                   envelope=envelope, recipe=recipe)


def weights_file_pair(path: str | os.PathLike) -> tuple[Path, Path]:
    """The ``(NAME.pt, NAME.json)`` pair for a path given as NAME.pt, NAME.json or NAME."""
    path = Path(path)
    if path.suffix in (".pt", ".json"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".pt"), path.with_name(path.name + ".json")


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
        if not isinstance(pairs, list) or not pairs:
            return "no description"
        start = (training.get("train") or {}).get("init_weights")
        return f"trained by Struc2map on {len(pairs)} map/model pairs" + (f", from {Path(start).name}" if start else "")


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
