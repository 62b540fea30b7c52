"""Read the atoms of a model (PDB, mmCIF/PDBx, optionally gzipped) into flat arrays.

Policy (what ChimeraX's ``molmap #1`` would use, except for hydrogens):

- First model only (NMR ensembles, trajectories), all chains.
- Hydrogens and deuterium are dropped by default: models differ in whether they
  carry them, and the generator is trained without them.
- Waters, ligands and ions are kept (molmap uses every atom it is given).
- Alternate locations: one conformer per residue, the one ChimeraX shows: the
  highest mean occupancy, ties broken by the lower mean B-factor, then the first
  letter alphabetically; atoms without an altloc are always kept. (ChimeraX also
  links bonded neighbour residues that share the same altloc letters into one
  decision; here each residue decides alone, which differs only when adjacent
  residues would prefer different letters.) Atoms that exist only in the other
  conformers are dropped.
- Unknown elements (``X``, e.g. UNX atoms) count as carbon (Z = 6) with a
  warning: a modelled atom presumably has density. ChimeraX's molmap gives them
  weight 0.
"""
from __future__ import annotations

import warnings
from dataclasses import dataclass
from pathlib import Path

import gemmi
import numpy as np

from .errors import InputError

UNKNOWN_ELEMENT_Z = 6


@dataclass
class Atoms:
    """Atoms as parallel arrays (one row per atom)."""

    coords: np.ndarray  # (N, 3) float64, x y z in Å
    atomic_numbers: np.ndarray  # (N,) int
    b_factors: np.ndarray  # (N,) float64
    elements: np.ndarray  # (N,) str
    source: str = ""  # file name, for messages

    def __len__(self) -> int:
        return len(self.coords)


def read_structure(path, *, hydrogens: bool = False, waters: bool = True) -> Atoms:
    """Read the first model of a PDB or mmCIF file (``.gz`` too) with the policy above."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"The structure file {path} does not exist.")
    try:
        st = gemmi.read_structure(str(path), merge_chain_parts=True)
    except Exception as e:  # gemmi raises RuntimeError/ValueError/IndexError on bad input
        raise InputError(f"Could not read {path.name} as a PDB or mmCIF model: {e}") from e
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        raise InputError(f"{path.name} contains no atoms (is it a PDB or mmCIF model?).")
    model = st[0]
    if not hydrogens:
        model.remove_hydrogens()  # H and D
    if not waters:
        model.remove_waters()
    columns = _atom_columns(model)
    if len(columns[0]) == 0:
        dropped = " or ".join(k for k, drop in (("hydrogens", not hydrogens), ("waters", not waters)) if drop)
        raise InputError(f"{path.name} has no atoms left in its first model once {dropped} are left out.")
    res, alt, occ, xyz, z, b, el = (np.asarray(c) for c in columns)
    xyz = xyz.astype(np.float64).reshape(-1, 3)
    keep = _best_altloc_mask(res, alt, occ.astype(np.float64), b.astype(np.float64))
    xyz, z, b, el = xyz[keep], z[keep].astype(np.int64), b[keep].astype(np.float64), el[keep]
    if not np.isfinite(xyz).all():
        raise InputError(f"{path.name} has atoms with non-finite coordinates.")
    unknown = z == 0
    if unknown.any():
        warnings.warn(f"{path.name}: {int(unknown.sum())} atoms of unknown element are treated as carbon.")
        z = np.where(unknown, UNKNOWN_ELEMENT_Z, z)
    return Atoms(xyz, z, b, el, source=path.name)


def _atom_columns(model: gemmi.Model) -> tuple[list, ...]:
    """Per-atom residue key, altloc, occupancy, xyz, Z, B, element (gemmi offers no array access)."""
    res, alt, occ, xyz, z, b, el = [], [], [], [], [], [], []
    keys: dict[tuple, int] = {}
    for ci, chain in enumerate(model):
        for residue in chain:
            # Residues of one seqid (microheterogeneity) share a key, so one conformer wins.
            key = keys.setdefault((ci, residue.seqid.num, residue.seqid.icode), len(keys))
            for atom in residue:
                p = atom.pos
                res.append(key)
                alt.append(atom.altloc)
                occ.append(atom.occ)
                xyz.extend((p.x, p.y, p.z))
                z.append(atom.element.atomic_number)
                b.append(atom.b_iso)
                el.append(atom.element.name)
    return res, alt, occ, xyz, z, b, el


def _best_altloc_mask(res: np.ndarray, alt: np.ndarray, occ: np.ndarray, b: np.ndarray) -> np.ndarray:
    """True for atoms without altloc and for those of each residue's best conformer."""
    has_alt = alt != "\0"
    if not has_alt.any():
        return np.ones(len(res), dtype=bool)
    r, a = res[has_alt], alt[has_alt]
    pairs, inverse = np.unique(np.rec.fromarrays([r, a]), return_inverse=True)
    count = np.bincount(inverse)
    mean_occ = np.bincount(inverse, occ[has_alt]) / count
    mean_b = np.bincount(inverse, b[has_alt]) / count
    # Sort by residue, then best first: higher occupancy, lower B, earlier letter.
    order = np.lexsort((pairs.f1, mean_b, -mean_occ, pairs.f0))
    first = np.ones(len(order), dtype=bool)
    first[1:] = pairs.f0[order][1:] != pairs.f0[order][:-1]
    best = np.zeros(len(pairs), dtype=bool)
    best[order[first]] = True
    keep = ~has_alt
    keep[has_alt] = best[inverse]
    return keep
