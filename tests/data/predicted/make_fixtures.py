"""Make the predicted-model fixtures of this folder from the AlphaFold 3 model 6vrc_af3_rough.cif of the full data set.

    python tests/data/predicted/make_fixtures.py [/path/to/shared/data]

All five hold the same atoms: chain A residues 562-721 of that model (pLDDT 17-96: a
disordered loop between confident strands and helices), each in the layout its program writes:

- ``6vrc_af3_A562-721.cif``: the AlphaFold 3 mmCIF cut line by line (its _software
  rows, "AlphaFold" / "Structure prediction", kept; per-atom pLDDT);
- ``modelcif_plddt.cif``: ModelCIF as AlphaFold DB writes it, with _ma_qa_metric and
  _ma_qa_metric_local (per-residue pLDDT) and no _software, so that only the QA tables mark it;
- ``AF-P0DTC2-F1-model_v4.pdb``: an AlphaFold DB PDB file (HEADER, TITLE "ALPHAFOLD
  MONOMER V2.0 PREDICTION FOR ...", per-residue pLDDT);
- ``esmfold_fragment.pdb``: ESMFold's PDB (a PARENT N/A line first, pLDDT on a 0-1 scale);
- ``fragment_unrelaxed_rank_001_alphafold2_ptm_model_1_seed_000.pdb``: ColabFold's PDB
  (no header: MODEL 1, then atoms; only the file name marks it).
"""
import sys
from pathlib import Path

import gemmi
import numpy as np

HERE = Path(__file__).resolve().parent
SOURCE = "unpaired/6vrc_af3_rough.cif"
FIRST, LAST = 562, 721


ROW_FILTERS = {  # loop category: (column of the chain, column of the residue number), rows kept in FIRST-LAST
    "_atom_site": ("label_asym_id", "label_seq_id"),
    "_pdbx_poly_seq_scheme": ("asym_id", "seq_id"),
    "_entity_poly_seq": (None, "num"),
    "_struct_asym": ("id", None),
}
DROPPED = ("_struct_conf", "_struct_conf_type", "_struct_sheet", "_struct_sheet_order", "_struct_sheet_range")


def af3_fragment(source: Path) -> Path:
    """The model cut section by section (the file puts a # line between categories), keeping the bytes of what
    is kept: the file declares _atom_site fixed-width, and ChimeraX reads it so."""
    sections, current = [], []
    for line in source.read_text().splitlines():
        if line.strip() == "#":
            sections.append(current)
            current = []
        else:
            current.append(line)
    sections.append(current)
    out = []
    for lines in sections:
        tags = [line.split(".", 1) for line in lines if line.startswith("_")]
        category = tags[0][0] if tags else ""
        if not lines or category in DROPPED:
            continue
        if category == "_entity_poly":  # the one-letter sequence is a ;-delimited text field of one line
            lines = [line[:1] + line[1:][FIRST - 1:LAST] if line.startswith(";") and len(line) > 1 else line
                     for line in lines]
        if category in ROW_FILTERS and lines[0] == "loop_":
            names = [tag.strip() for _, tag in tags]
            chain, number = ROW_FILTERS[category]
            rows = [dict(zip(names, line.split())) for line in lines[1 + len(names):]]
            lines = lines[:1 + len(names)] + [
                line for line, row in zip(lines[1 + len(names):], rows)
                if (chain is None or row[chain] == "A") and (number is None or FIRST <= int(row[number]) <= LAST)]
        out += lines + ["#"]
    fragment = HERE / "6vrc_af3_A562-721.cif"
    fragment.write_text("\n".join(out) + "\n")
    return fragment


def residues(path: Path):
    """(structure, per-residue pLDDT) of the fragment: AlphaFold DB and ColabFold write one value per residue."""
    st = gemmi.read_structure(str(path))
    st.remove_empty_chains()
    plddt = [float(np.mean([a.b_iso for a in r])) for r in st[0]["A"]]
    for r, p in zip(st[0]["A"], plddt):
        for a in r:
            a.b_iso = round(p, 2)
    return st, plddt


def pdb_atoms(st, scale: float = 1.0) -> str:
    if scale != 1.0:
        for r in st[0]["A"]:
            for a in r:
                a.b_iso = round(a.b_iso * scale, 2)
    text = st.make_pdb_string(gemmi.PdbWriteOptions(minimal=True))
    return "".join(line + "\n" for line in text.splitlines() if line.startswith(("ATOM", "HETATM", "TER")))


def alphafold_db(st) -> None:
    header = ["HEADER                                            01-JUN-22",
              "TITLE     ALPHAFOLD MONOMER V2.0 PREDICTION FOR SPIKE GLYCOPROTEIN (P0DTC2)",
              "COMPND    MOL_ID: 1;", "COMPND   2 MOLECULE: SPIKE GLYCOPROTEIN;", "COMPND   3 CHAIN: A",
              "SOURCE    MOL_ID: 1;", "SOURCE   2 ORGANISM_SCIENTIFIC: SARS-COV-2;",
              "REMARK   1", "REMARK   1 REFERENCE 1",
              "REMARK   1  AUTH   JOHN JUMPER, RICHARD EVANS, ALEXANDER PRITZEL, TIM GREEN,",
              "REMARK   1 REF    NATURE V. 596 583 2021", "REMARK   1 DOI    10.1038/s41586-021-03819-2",
              "CRYST1    1.000    1.000    1.000  90.00  90.00  90.00 P 1           1",
              "MODEL        1"]
    (HERE / "AF-P0DTC2-F1-model_v4.pdb").write_text("\n".join(f"{h:<80}" for h in header) + "\n"
                                                    + pdb_atoms(st) + "ENDMDL\nEND\n")


def esmfold(st) -> None:
    (HERE / "esmfold_fragment.pdb").write_text("PARENT N/A\n" + pdb_atoms(st, 0.01) + "END\n")


def colabfold(st) -> None:
    name = "fragment_unrelaxed_rank_001_alphafold2_ptm_model_1_seed_000.pdb"
    (HERE / name).write_text("MODEL     1\n" + pdb_atoms(st) + "ENDMDL\nEND\n")


def modelcif(st, plddt) -> None:
    lines = ["data_model", "#", "_entry.id model", "#",
             "loop_", "_ma_qa_metric.id", "_ma_qa_metric.mode", "_ma_qa_metric.name",
             "_ma_qa_metric.software_group_id", "_ma_qa_metric.type",
             "1 global pLDDT 1 pLDDT", "2 local pLDDT 1 pLDDT", "#",
             "_ma_qa_metric_global.metric_id 1", "_ma_qa_metric_global.metric_value %.2f" % np.mean(plddt),
             "_ma_qa_metric_global.model_id 1", "_ma_qa_metric_global.ordinal_id 1", "#",
             "loop_", "_ma_qa_metric_local.label_asym_id", "_ma_qa_metric_local.label_comp_id",
             "_ma_qa_metric_local.label_seq_id", "_ma_qa_metric_local.metric_id",
             "_ma_qa_metric_local.metric_value", "_ma_qa_metric_local.model_id", "_ma_qa_metric_local.ordinal_id"]
    lines += [f"A {r.name} {i} 2 {p:.2f} 1 {i}" for i, (r, p) in enumerate(zip(st[0]["A"], plddt), 1)]
    lines += ["#", "loop_"] + [f"_atom_site.{t}" for t in (
        "group_PDB", "id", "type_symbol", "label_atom_id", "label_alt_id", "label_comp_id", "label_asym_id",
        "label_entity_id", "label_seq_id", "pdbx_PDB_ins_code", "Cartn_x", "Cartn_y", "Cartn_z", "occupancy",
        "B_iso_or_equiv", "auth_seq_id", "auth_asym_id", "pdbx_PDB_model_num")]
    n = 0
    for i, r in enumerate(st[0]["A"], 1):
        for a in r:
            n += 1
            p = a.pos
            lines.append(f"ATOM {n} {a.element.name} {a.name} . {r.name} A 1 {i} ? {p.x:.3f} {p.y:.3f} {p.z:.3f} "
                         f"1.00 {a.b_iso:.2f} {r.seqid.num} A 1")
    (HERE / "modelcif_plddt.cif").write_text("\n".join(lines) + "\n#\n")


if __name__ == "__main__":
    data = Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2].parent / "shared" / "data"
    fragment = af3_fragment(data / SOURCE)
    st, plddt = residues(fragment)
    modelcif(st, plddt)
    alphafold_db(st)
    colabfold(st)
    esmfold(st)  # last: it rescales the B column in place
