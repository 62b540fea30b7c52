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
- Unknown elements (``X``, e.g. UNX atoms, or a symbol such as ``XX``) count
  as carbon (Z = 6) with a warning naming the atoms: a modelled atom presumably
  has density. ChimeraX's molmap gives them weight 0.
- What the file says about its origin (mmCIF ``_software``, ``_exptl`` and
  ModelCIF QA tables, PDB header lines, the file name) is kept as a
  :class:`plddt.ModelHeader`, so that a predicted model's pLDDT column is
  recognised (plddt.py).
"""
from __future__ import annotations

import gzip
import warnings
from dataclasses import dataclass, field
from pathlib import Path

import gemmi
import numpy as np

from .errors import InputError
from .file_checks import readable_file, shown
from .memory import MODEL_READ_FACTOR, check_file_read
from .plddt import HEADER_RECORDS, ModelHeader

UNKNOWN_ELEMENT_Z = 6
NAMED_ATOMS = 5  # unknown-element atoms named in the warning; the rest are counted


@dataclass
class Atoms:
    """Atoms as parallel arrays (one row per atom)."""

    coords: np.ndarray  # (N, 3) float64, x y z in Å
    atomic_numbers: np.ndarray  # (N,) int
    b_factors: np.ndarray  # (N,) float64
    elements: np.ndarray  # (N,) str
    source: str = ""  # file name, for messages
    header: ModelHeader = field(default_factory=ModelHeader)  # the model's origin, as its file says

    def __len__(self) -> int:
        return len(self.coords)


def read_structure(path, *, hydrogens: bool = False, waters: bool = True) -> Atoms:
    """Read the first model of a PDB or mmCIF file (``.gz`` too) with the policy above."""
    path = readable_file(path, "structure file")
    name = shown(path.name)
    if shown(path) != str(path):
        raise InputError(f"The structure file name {shown(path)} is not valid UTF-8, which the model reader needs; "
                         "rename the file.")
    check_file_read(path, MODEL_READ_FACTOR, way_out="use a machine with more memory or split the model")
    doc = gemmi.cif.Document()  # filled for mmCIF files: their metadata feed the header
    try:
        st = gemmi.read_structure(str(path), merge_chain_parts=True, save_doc=doc)
    except IndexError:  # gemmi's words for an mmCIF file without a data block are C++ internals
        raise InputError(f"Could not read {name} as a PDB or mmCIF model: it holds no mmCIF data block.") from None
    except Exception as e:  # gemmi raises RuntimeError/ValueError on bad input
        raise InputError(f"Could not read {name} as a PDB or mmCIF model: {e}") from e
    if len(st) == 0 or st[0].count_atom_sites() == 0:
        listed = _atoms_without_coordinates(path)
        if listed:
            raise InputError(f"{name} lists {listed} atoms but gives no coordinates for them "
                             "(_atom_site.Cartn_x, Cartn_y, Cartn_z).")
        raise InputError(f"{name} contains no atoms (is it a PDB or mmCIF model?).")
    model = st[0]
    if not hydrogens:
        model.remove_hydrogens()  # H and D
    if not waters:
        model.remove_waters()
    columns = _atom_columns(model)
    if len(columns[0]) == 0:
        dropped = " or ".join(k for k, drop in (("hydrogens", not hydrogens), ("waters", not waters)) if drop)
        raise InputError(f"{name} has no atoms left in its first model once {dropped} are left out.")
    res, alt, occ, xyz, z, b, el = (np.asarray(c) for c in columns)
    xyz = xyz.astype(np.float64).reshape(-1, 3)
    keep = _best_altloc_mask(res, alt, occ.astype(np.float64), b.astype(np.float64))
    xyz, z, b, el = xyz[keep], z[keep].astype(np.int64), b[keep].astype(np.float64), el[keep]
    if not np.isfinite(xyz).all():
        raise InputError(f"{name} has atoms with non-finite coordinates.")
    unknown = z == 0
    if unknown.any():
        which = _describe_atoms(model, np.flatnonzero(keep)[unknown][:NAMED_ATOMS])
        more = f" and {int(unknown.sum()) - NAMED_ATOMS} more" if unknown.sum() > NAMED_ATOMS else ""
        warnings.warn(f"{name}: {int(unknown.sum())} atom(s) of unknown element are treated as carbon: "
                      f"{', '.join(which)}{more}.")
        z = np.where(unknown, UNKNOWN_ELEMENT_Z, z)
    return Atoms(xyz, z, b, el, source=name, header=_model_header(path, doc))


def _model_header(path: Path, doc: gemmi.cif.Document) -> ModelHeader:
    """The file's word on the model's origin: mmCIF metadata when ``doc`` holds a block, else PDB header lines."""
    if len(doc) == 0:
        records = _pdb_header_lines(path)
        experiment = " ".join(line[10:].strip() for line in records if line.startswith("EXPDTA"))
        return ModelHeader(records=tuple(records), experiment=experiment, file_name=path.name)
    block = doc[0]
    software = tuple(" | ".join(row.str(i) if row.has(i) else "" for i in range(3))
                     for row in block.find("_software.", ["name", "?classification", "?description"]))
    with_values = set(block.find_values("_ma_qa_metric_local.metric_id"))
    metrics = tuple(" ".join(dict.fromkeys(row.str(i) for i in (1, 2) if row.has(i)))  # name, and type if other
                    for row in block.find("_ma_qa_metric.", ["id", "name", "?type"]) if row[0] in with_values)
    experiment = " ".join(gemmi.cif.as_string(v) for v in block.find_values("_exptl.method"))
    return ModelHeader(software=software, local_metrics=metrics, experiment=experiment, file_name=path.name)


def _pdb_header_lines(path: Path) -> list[str]:
    """The PDB file's ``HEADER_RECORDS`` lines before its first atom (or model)."""
    lines = []
    with (gzip.open if path.name.lower().endswith(".gz") else open)(path, "rt", errors="replace") as f:
        for line in f:
            if line.startswith(("ATOM", "HETATM", "MODEL")):
                break
            if line.startswith(HEADER_RECORDS):
                lines.append(line.rstrip())
    return lines


def _atoms_without_coordinates(path: Path) -> int:
    """How many atoms an mmCIF file lists in _atom_site without coordinates (0 for other files)."""
    try:
        block = gemmi.cif.read(str(path)).sole_block()
    except Exception:  # not mmCIF (or not one block): nothing to say beyond "no atoms"
        return 0
    return 0 if len(block.find_values("_atom_site.Cartn_x")) else len(block.find_values("_atom_site.id"))


def _describe_atoms(model: gemmi.Model, indices: np.ndarray) -> list[str]:
    """``chain/residue number/atom`` for atoms at ``indices`` of the model's atom order (as _atom_columns)."""
    wanted, found, i = set(int(k) for k in indices), [], 0
    for chain in model:
        for residue in chain:
            for atom in residue:
                if i in wanted:
                    found.append(f"{chain.name}/{residue.name} {residue.seqid.num}{residue.seqid.icode.strip()}"
                                 f"/{atom.name}")
                i += 1
    return found


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
