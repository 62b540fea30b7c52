"""One model file in, one map file out: read the model, generate its map, label it and write it.

The steps every model goes through, whether it is the command line's single model or one of a batch
(batch.py).
"""
from __future__ import annotations

from pathlib import Path
from typing import Callable

from . import __version__
from .generate import GenerateReport, generate, input_grid
from .map_data import MapData
from .mapio import check_map_output, write_map
from .plddt import read_b_column
from .structure import Atoms, read_structure
from .tiling import TilingConfig
from .weights_io import Weights
from .weights_meta import weights_file_pair


def map_labels(generated: MapData, weights: Weights) -> list[str]:
    """The MRC labels that say what made a map, at what resolution, and what its values mean."""
    labels = [f"struc2map {__version__} res {generated.header['resolution']:g} weights sha256:{weights.short_id}"]
    if generated.header.get("values"):
        labels.append(generated.header["values"])
    return labels


def generate_model(model: str | Path, output: str | Path, resolution: float, weights: Weights, *,
                   tiling: TilingConfig | None = None, device: str = "auto", overwrite: bool = False,
                   bfactors: str = "auto",
                   progress: Callable[[int, int], None] | None = None) -> tuple[Atoms, MapData, GenerateReport]:
    """Read one model, generate its map and write it: the steps every model goes through.

    ``bfactors`` says how the B column is read (plddt.MODES: detected, B-factors, pLDDT, or left out).
    The output (path, format, placement) is checked here and the memory in ``generate``, both before the
    generator runs.
    """
    atoms = read_structure(model)
    column = read_b_column(atoms.b_factors, atoms.header, bfactors)
    origin, _, spacing = input_grid(atoms.coords, weights, resolution)
    check_map_output(output, origin, spacing, overwrite=overwrite, inputs=[model, *weights_file_pair(weights.path)])
    weight = atoms.atomic_numbers if column.weights is None else atoms.atomic_numbers * column.weights
    generated, report = generate(atoms.coords, weight, resolution, weights, tiling=tiling,
                                 device=device, progress=progress, b_factors=column.b_factors,
                                 use_bfactors=bfactors != "ignore")
    if column.note:
        report.notes.insert(0, column.note)
    write_map(output, generated, label=map_labels(generated, weights), overwrite=overwrite)
    return atoms, generated, report
