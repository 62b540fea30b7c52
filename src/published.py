"""The authors' published struc2mapGAN checkpoint: where to get it, and importing it into our weights format.

The checkpoint is a PyTorch Lightning file (a pickle): generator and
discriminator parameters under ``state_dict`` with the prefixes
``generator.`` and ``discriminator.``, optimiser and scheduler states,
hyper-parameters and version keys. It is read with
``torch.load(weights_only=True)``, which builds only tensors and plain Python
values; before that, the pickle's imports are listed without running it and
any outside a small allow-list (Lightning's AttributeDict, rebuilt as a plain
dict) refuse the file. Only the generator is kept.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from .download import DownloadError, download, part_path
from .errors import WeightsError
from .files import file_sha256, is_plain_name
from .network import LEVELS, MAX_WIDTH, Generator, rename_published_state_dict, widths_fit
from .weights_meta import RECIPES
from .userdata import downloads_folder, weights_folder
from .weights_io import fitted_generator, save_weights


@dataclass(frozen=True)
class PublishedCheckpoint:
    """Where the published checkpoint is and how to recognise it."""

    url: str
    file_name: str
    size: int
    sha256: str
    sha256_source: str
    repository: str
    licence: str
    description: str


PUBLISHED = PublishedCheckpoint(
    url="https://osf.io/download/397v2/",
    file_name="struc2mapGAN.ckpt",
    size=137_908_774,
    sha256="460393c14635539c5f985fdbb11d674106de155dee90880d4439a2575c788c1d",
    sha256_source="the Git LFS pointer of ckpt/struc2mapGAN.ckpt in github.com/chenwei-zhang/struc2mapGAN "
                  "(commit f8973d3, 2024-07-24), which gives this size too",
    repository="https://github.com/chenwei-zhang/struc2mapGAN",
    licence="GPL-3.0 (the authors' licence for their code and checkpoint)",
    description="struc2mapGAN as published by its authors (Zhang, Condon & Dao Duc 2024): "
                "trained on 134 EMDB maps at 2.2-3.9 Å",
)
"""The one place that says where the published checkpoint is, its size and its sha256."""

PUBLISHED_OUTPUT = {"normalisation": "minmax after masking around atoms (phenix.map_box mask_atoms)",
                    "background": None, "mask_radius": 3.0, "resolution": 3.3}
"""What the authors' generator produces: targets masked around the model and min-max scaled (background
≈0.3); 3 Å is the mask radius our own training uses; 3.3 Å is the median resolution of their training maps."""


ALLOWED_GLOBALS = {name: dict for name in (
    "lightning.fabric.utilities.data.AttributeDict",
    "lightning_fabric.utilities.data.AttributeDict",
    "pytorch_lightning.utilities.parsing.AttributeDict",
)}
"""The only imports a checkpoint's pickle may name beyond what ``weights_only`` allows, and what each becomes:
Lightning's AttributeDict (a dict subclass some versions store hyper-parameters in) is rebuilt as a plain dict."""

def load_checkpoint(path: str | os.PathLike) -> dict:
    """A Lightning checkpoint as plain values and tensors (on the CPU), refused if it needs anything else."""
    path = Path(path)
    if not path.is_file():
        raise WeightsError(f"The checkpoint {path} does not exist.")
    try:
        needed = torch.serialization.get_unsafe_globals_in_checkpoint(str(path))
    except Exception as err:  # not a zip, truncated, not a pickle: torch raises many types
        raise WeightsError(f"{path} is not a readable PyTorch checkpoint ({type(err).__name__}: {err}).") from err
    refused = sorted(set(needed) - set(ALLOWED_GLOBALS))
    if refused:
        raise WeightsError(f"{path} is refused: reading it would import {', '.join(refused)}, which could run "
                           "code; a checkpoint may hold only tensors and plain values.")
    try:
        with torch.serialization.safe_globals([(ALLOWED_GLOBALS[name], name) for name in needed]):
            checkpoint = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as err:
        raise WeightsError(f"{path} cannot be read as plain tensors and values ({type(err).__name__}: {err}).") \
            from err
    if not isinstance(checkpoint, dict) or not isinstance(checkpoint.get("state_dict"), dict):
        raise WeightsError(f"{path} is not a PyTorch Lightning checkpoint (it has no state_dict).")
    return checkpoint


def generator_from_checkpoint(checkpoint: dict, path: str | os.PathLike) -> Generator:
    """The checkpoint's generator, its widths read from the tensor shapes, every tensor checked."""
    state = rename_published_state_dict(checkpoint["state_dict"])
    if not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise WeightsError(f"The generator parameters in {path} are not all tensors.")
    try:
        widths = [int(state[f"conv{i}_0.conv1.weight"].shape[0]) for i in range(LEVELS)]
    except (KeyError, IndexError) as err:
        raise WeightsError(f"The generator in {path} has no encoder layer {err}: it is not a struc2mapGAN "
                           "U-Net++.") from err
    if not widths_fit(widths):
        raise WeightsError(f"The generator in {path} has layer widths {widths}; at most {MAX_WIDTH} channels are "
                           "supported.")
    return fitted_generator(state, widths, Path(path)).eval()


def import_checkpoint(path: str | os.PathLike, *, name: str = "published", output: str | os.PathLike | None = None,
                      input_recipe: str = "molmap", overwrite: bool = False) -> Path:
    """Write a Lightning checkpoint's generator as OUTPUT/NAME.pt + NAME.json; return the ``.pt`` path.

    OUTPUT defaults to the user's weights folder, where ``--weights NAME``
    finds it. ``input_recipe`` is the input the weights will be fed
    (weights_meta.RECIPES): "molmap", what the generator was trained on, by
    default. The metadata records the checkpoint's sha256, whether it is the
    published file, and then its source and licence.
    """
    if not is_plain_name(name):
        raise WeightsError(f"'{name}' cannot name weights: use letters, digits, '.', '_' and '-'.")
    if input_recipe not in RECIPES:
        raise WeightsError(f"Unknown input recipe '{input_recipe}' (known: {', '.join(RECIPES)}).")
    path = Path(path)
    checkpoint = load_checkpoint(path)
    generator = generator_from_checkpoint(checkpoint, path)
    sha = file_sha256(path)
    published = sha == PUBLISHED.sha256
    provenance = {"checkpoint": path.name, "checkpoint_sha256": sha, "checkpoint_size": path.stat().st_size,
                  "published": published}
    if published:
        provenance.update(source_url=PUBLISHED.url, repository=PUBLISHED.repository, licence=PUBLISHED.licence)
    hyper = json.loads(json.dumps(checkpoint.get("hyper_parameters") or {}, default=str))
    metadata = {
        "description": PUBLISHED.description if published
        else f"Lightning checkpoint {path.name} (not the published file; sha256 {sha[:12]})",
        "input": dict(RECIPES[input_recipe]),
        "output": dict(PUBLISHED_OUTPUT),
        "training": {"epoch": checkpoint.get("epoch"), "global_step": checkpoint.get("global_step"),
                     "lightning_version": checkpoint.get("pytorch-lightning_version"), "hyper_parameters": hyper},
        "provenance": provenance,
    }
    folder = Path(output).expanduser() if output else weights_folder()
    return save_weights(folder / name, generator, metadata, overwrite=overwrite, inputs=[path])


def download_published(folder: str | os.PathLike | None = None,
                       progress: Callable[[int, int | None], None] | None = None) -> Path:
    """The published checkpoint in ``folder`` (default: the user's downloads folder), downloaded if missing.

    The download resumes an interrupted one; the file's size and sha256 are
    checked against PUBLISHED, also when it was already there.
    """
    dest = Path(folder).expanduser() / PUBLISHED.file_name if folder else downloads_folder() / PUBLISHED.file_name
    try:
        download(PUBLISHED.url, dest, size=PUBLISHED.size, sha256=PUBLISHED.sha256, progress=progress)
    except DownloadError as err:
        raise WeightsError(f"The downloaded checkpoint is not the published one ({err}); it was deleted.") from err
    except OSError as err:
        part = part_path(dest)
        kept = part.stat().st_size if part.exists() else 0
        raise WeightsError(f"Could not download {PUBLISHED.url} ({err}); {kept} bytes are kept in {part}, and "
                           "running the command again resumes from there.") from err
    sha = file_sha256(dest)
    if sha != PUBLISHED.sha256:
        raise WeightsError(f"{dest} is not the published checkpoint (sha256 {sha}, expected {PUBLISHED.sha256}); "
                           "delete it and download again.")
    return dest
