"""Re-create 4uft_helical_box.pdb.gz: deposited 4UFT expanded by its own helical operators, cut to the map box.

The EMD-2867 box (../shared/data/unpaired/emd2867_4uft_box.mrc.gz) holds density of neighbouring
nucleoprotein subunits that the deposited asymmetric unit (chains B and R) leaves unexplained. Applying
the entry's assembly 1 (REMARK 350 BIOMT, no fitting) and keeping every residue with an atom within 2 Å
of the box explains it. Usage: python make_model.py MAP [OUT]
"""
import sys
from pathlib import Path

import gemmi
import numpy as np

from chimerax.struc2map.mapio import read_map

HERE = Path(__file__).resolve().parent
NAMES = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"  # PDB format: one-letter chain names

box = read_map(sys.argv[1])
low = box.origin - 2.0
high = box.ijk_to_xyz(np.array(box.shape_xyz, float) - 1.0) + 2.0
deposited = gemmi.read_structure(str(HERE / "4uft.pdb.gz"))
assembly = gemmi.make_assembly(deposited.assemblies[0], deposited[0], gemmi.HowToNameCopiedChain.AddNumber)
out = gemmi.Structure()
out.cell = deposited.cell
model = gemmi.Model("1")


def near_box(residue: gemmi.Residue) -> bool:
    """Whether an atom of the residue lies within 2 Å of the box."""
    xyz = np.array([atom.pos.tolist() for atom in residue])
    return bool(np.all((xyz >= low) & (xyz <= high), axis=1).any())


for chain in assembly:
    kept = [r for r in chain if near_box(r)]
    if kept:
        copy = gemmi.Chain(NAMES[len(model)])
        for residue in kept:
            copy.add_residue(residue)
        print(f"{chain.name} -> {copy.name}: {len(kept)} residues")
        model.add_chain(copy)
out.add_model(model)
out.setup_entities()
out.write_pdb(sys.argv[2] if len(sys.argv) > 2 else "4uft_helical_box.pdb")
