"""Predicted models: how strong do low-confidence regions come out, by how the B column is read?

For each AlphaFold 3 model of ../shared/data/unpaired (pLDDT in its B column, per atom), the
default weights make a map at 3.5 Å with the B column read four ways:

- ``B as is``: taken as B-factors (``--bfactors b``, what ``generate`` did before pLDDT was recognised);
- ``flat B``: every atom the same B-factor (the B-factor channel left empty, as for a model with no B);
- ``pLDDT → B``: pLDDT turned into B-factors (plddt.py), input weights unchanged;
- ``pLDDT (default)``: what ``--bfactors auto`` does with these files: pLDDT turned into B-factors and atoms
  below pLDDT 50 weighted ``plddt.LOW_CONFIDENCE_WEIGHT`` in the input.

Score: the mean of the map (trilinear) at atoms with pLDDT < 50 over the same at atoms with pLDDT > 90,
each atom classed by its own pLDDT (the B column gives one per atom), and, second, by its residue's mean
pLDDT. ``real map`` is that ratio in the experimental map the model was roughly placed in (correlation
0.2-0.4; atoms outside the box left out): a rough guide to what real maps show there, blurred by the
misplacement.

    nice python benchmarks/plddt.py [--models 6ksw 6vrc] [--resolution 3.5] [--device cpu]

Writes benchmarks/results/plddt.json and prints the Markdown table of benchmarks/README.md.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

import numpy as np

os.environ.setdefault("OMP_NUM_THREADS", "1")
ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
DATA = ROOT.parent / "shared" / "data" / "unpaired"
RESULTS = ROOT / "benchmarks" / "results"
MAPS = {"6ksw": "emd0775_6ksw_box.mrc.gz", "6vrc": "emd21367_6vrc_box.mrc.gz", "4uft": "emd2867_4uft_box.mrc.gz"}
WAYS = ("B as is", "flat B", "pLDDT → B", "pLDDT (default)")


def ratio(values: np.ndarray, plddt: np.ndarray, where: np.ndarray | None = None) -> float:
    """Mean of ``values`` at atoms below pLDDT 50 over the mean at atoms above 90 (within ``where``)."""
    where = np.ones(len(plddt), bool) if where is None else where
    return float(values[(plddt < 50) & where].mean() / values[(plddt > 90) & where].mean())


def residue_plddt(path: Path, atoms) -> np.ndarray:
    """Each atom's residue's mean pLDDT (gemmi's atom order is read_structure's: no hydrogens or altlocs here)."""
    import gemmi

    model = gemmi.read_structure(str(path))[0]
    means = [np.full(len(r), np.mean([a.b_iso for a in r])) for chain in model for r in chain]
    per_atom = np.concatenate(means)
    assert len(per_atom) == len(atoms)
    return per_atom


def at_atoms(mapdata, coords: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Trilinear values of the map at the atoms, and which atoms lie inside its box."""
    from scipy.ndimage import map_coordinates

    ijk = ((coords - mapdata.origin) / mapdata.voxel_size)[:, ::-1].T
    inside = np.all((ijk >= 0) & (ijk <= np.array(mapdata.array.shape)[:, None] - 1), axis=0)
    return map_coordinates(mapdata.array, ijk, order=1), inside


def measure(name: str, resolution: float, weights, device: str) -> dict:
    from chimerax.struc2map.generate import generate
    from chimerax.struc2map.mapio import read_map
    from chimerax.struc2map.plddt import read_b_column
    from chimerax.struc2map.structure import read_structure

    path = DATA / f"{name}_af3_rough.cif"
    atoms = read_structure(path)
    plddt, by_residue = atoms.b_factors, residue_plddt(path, atoms)
    column = read_b_column(atoms.b_factors, atoms.header, "auto")
    z = atoms.atomic_numbers.astype(np.float64)
    runs = {"B as is": (z, plddt), "flat B": (z, np.full(len(atoms), 50.0)),
            "pLDDT → B": (z, column.b_factors), "pLDDT (default)": (z * column.weights, column.b_factors)}
    row = {"model": name, "atoms": len(atoms), "below_50": int((plddt < 50).sum()),
           "above_90": int((plddt > 90).sum()), "note": column.note, "ratios": {}, "by_residue": {},
           "seconds": {}}
    for way, (weight, b_factors) in runs.items():
        started = time.perf_counter()
        generated, _ = generate(atoms.coords, weight, resolution, weights, b_factors=b_factors, device=device)
        values = at_atoms(generated, atoms.coords)[0]
        row["ratios"][way], row["by_residue"][way] = ratio(values, plddt), ratio(values, by_residue)
        row["seconds"][way] = time.perf_counter() - started
        print(f"{name}: {way}: {row['ratios'][way]:.3f} / {row['by_residue'][way]:.3f} "
              f"({row['seconds'][way]:.0f} s)", flush=True)
    real, inside = at_atoms(read_map(DATA / MAPS[name]), atoms.coords)
    row["ratios"]["real map"], row["by_residue"]["real map"] = ratio(real, plddt, inside), ratio(real, by_residue,
                                                                                                  inside)
    return row


def table(rows: list[dict]) -> str:
    lines = ["| model | atoms (pLDDT < 50 / > 90) | pLDDT of | " + " | ".join(WAYS) + " | real map |",
             "|---" * (len(WAYS) + 4) + "|"]
    for row in rows:
        for key, label in (("ratios", "atom"), ("by_residue", "residue")):
            lines.append(f"| {row['model']}_af3_rough | {row['atoms']} ({row['below_50']} / {row['above_90']}) | "
                         f"{label} | " + " | ".join(f"{row[key][w]:.3f}" for w in (*WAYS, "real map")) + " |")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--models", nargs="+", default=["6ksw", "6vrc"], choices=sorted(MAPS))
    parser.add_argument("--resolution", type=float, default=3.5)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    import torch

    from chimerax.struc2map.weights_io import load_weights_or_shipped

    torch.set_num_threads(1)
    weights = load_weights_or_shipped(None)
    rows = [measure(name, args.resolution, weights, args.device) for name in args.models]
    RESULTS.mkdir(exist_ok=True)
    (RESULTS / "plddt.json").write_text(json.dumps({"resolution": args.resolution, "weights": weights.short_id,
                                                    "rows": rows}, indent=1) + "\n")
    print(table(rows))


if __name__ == "__main__":
    main()
