"""Struc2map's own weights format: ``NAME.pt`` (generator state dict) plus ``NAME.json`` (metadata).

The metadata, the installed sets and name resolution are in weights_meta.py
(no torch); this module writes and loads the tensors. The ``.pt`` file's
sha256 is checked against the metadata before the file is unpickled, and it
is read with ``torch.load(weights_only=True)``, so a weights file cannot run
code.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Iterable

import torch

from . import __version__
from .errors import WeightsError
from .files import atomic_path, check_output, file_sha256, output_folder
from .network import LEVELS, MAX_WIDTH, Generator, widths_fit
from .weights_meta import (ARCHITECTURE, DEFAULT_INPUT, DEFAULT_OUTPUT, FORMAT, FORMAT_VERSION, GeneratorSpec,
                           default_weights_path, read_metadata, resolve_weights, weights_file_pair)

MISSING_WEIGHTS_HELP = (
    "No trained Struc2map weights are installed. "
    "The Struc2map package normally ships them as weights/struc2map_generator.pt (with its .json): "
    "reinstall the package or ChimeraX bundle to get them back, "
    "name a weights file of your own (NAME.pt with NAME.json beside it), "
    "or train one with 'struc2map train' (see docs/training.md)."
)


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
    if not isinstance(generator, Generator):  # a caller's mistake, not the user's: Python's type
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
    if not widths_fit(meta["widths"]):
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


def load_weights_or_shipped(path: str | os.PathLike | None, *, missing_hint: str = "") -> Weights:
    """The weights at ``path``, or the shipped ones when no path is given.

    Raises WeightsError with MISSING_WEIGHTS_HELP (and ``missing_hint``, how
    the caller's interface names a weights file) when none are installed.
    """
    path = resolve_weights(path) if path else default_weights_path()
    if path is None:
        raise WeightsError(MISSING_WEIGHTS_HELP + missing_hint)
    return load_weights(path)


