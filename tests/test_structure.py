"""Reading models: formats, hydrogen/water policy, altlocs as ChimeraX picks them, errors."""
import gzip
import shutil

import numpy as np
import pytest

from chimerax.struc2map.errors import InputError
from chimerax.struc2map.structure import read_structure
from tests.chimerax_session import cx_session, open_pdb  # noqa: F401


def _atom(serial, name, alt, resname, chain, resnum, xyz, occ, b, element):
    x, y, z = xyz
    return (f"HETATM{serial:5d} {name:<4s}{alt:1s}{resname:>3s} {chain:1s}{resnum:4d}    "
            f"{x:8.3f}{y:8.3f}{z:8.3f}{occ:6.2f}{b:6.2f}          {element:>2s}\n")


# Three one-residue chains far apart (so ChimeraX does not link their altloc
# choices): B wins on occupancy, B on B-factor after an occupancy tie, A on a full tie.
# Each residue has a non-altloc atom, two conformers of two atoms, and a hydrogen.
ALTLOC_CASES = {"A": ((0.4, 20.0), (0.6, 20.0), "B"),
                "B": ((0.5, 30.0), (0.5, 20.0), "B"),
                "C": ((0.5, 20.0), (0.5, 20.0), "A")}


def _altloc_pdb(path):
    lines, serial = [], 1
    for ci, (chain, (conf_a, conf_b, _)) in enumerate(ALTLOC_CASES.items()):
        base = np.array([30.0 * ci, 0.0, 0.0])
        rows = [("CA", " ", (0, 0, 0), 1.0, 15.0, "C"), ("H", " ", (1, 0, 0), 1.0, 15.0, "H")]
        for alt, (occ, b), dy in (("A", conf_a, 1.5), ("B", conf_b, -1.5)):
            rows += [("CB", alt, (0, dy, 0), occ, b, "C"), ("OG", alt, (0, dy, 1.4), occ, b, "O")]
        for name, alt, off, occ, b, el in rows:
            lines.append(_atom(serial, name, alt, "SER", chain, 1, base + off, occ, b, el))
            serial += 1
    path.write_text("".join(lines) + "END\n")
    return path


def test_altlocs_match_chimerax(tmp_path, cx_session):
    path = _altloc_pdb(tmp_path / "alt.pdb")
    atoms = read_structure(path)
    assert len(atoms) == 3 * 3  # CA + one conformer of CB, OG per residue; no H
    chosen = {c: (atoms.coords[:, 0] // 30 == i) & (atoms.coords[:, 1] != 0)
              for i, c in enumerate(ALTLOC_CASES)}
    for chain, (_, _, best) in ALTLOC_CASES.items():
        assert np.all(np.sign(atoms.coords[chosen[chain], 1]) == (1 if best == "A" else -1)), chain
    (model,) = open_pdb(cx_session, path)
    heavy = model.atoms.filter(model.atoms.element_numbers > 1)
    ours, theirs = atoms.coords, heavy.coords
    np.testing.assert_array_equal(ours[np.lexsort(ours.T)], theirs[np.lexsort(theirs.T)])


def test_hydrogens_and_waters_policy(tmp_path):
    path = _altloc_pdb(tmp_path / "alt.pdb")
    assert len(read_structure(path, hydrogens=True)) == 3 * 4
    hoh = _atom(99, "O", " ", "HOH", "W", 1, (5, 5, 5), 1.0, 30.0, "O")
    (tmp_path / "w.pdb").write_text(path.read_text(encoding="utf-8").replace("END\n", hoh + "END\n"))
    assert len(read_structure(tmp_path / "w.pdb")) == 10
    assert len(read_structure(tmp_path / "w.pdb", waters=False)) == 9


def test_real_model_matches_chimerax_atoms(data, cx_session):
    path = data("kinesin_emd6187/chain_K_box_complete.pdb")  # carries riding hydrogens
    atoms = read_structure(path)
    (model,) = open_pdb(cx_session, path)
    heavy = model.atoms.filter(model.atoms.element_numbers > 1)
    assert len(atoms) == len(heavy) == 2477
    np.testing.assert_allclose(atoms.coords, heavy.coords, atol=1e-6)
    np.testing.assert_array_equal(atoms.atomic_numbers, heavy.element_numbers)
    np.testing.assert_allclose(atoms.b_factors, heavy.bfactors, atol=1e-4)
    assert set(atoms.elements) == {"C", "N", "O", "S"} and atoms.source == "chain_K_box_complete.pdb"


def test_mmcif_gzip_and_ions(data, tmp_path):
    cif = read_structure(data("emd35448_8ihl/35448_8ihl.cif"))
    assert len(cif) == 14124 and cif.coords.shape == (14124, 3) and cif.coords.dtype == np.float64
    assert 15 in cif.atomic_numbers  # nucleic-acid phosphorus
    src = data("haemoglobin_emd3488/5me2.pdb")
    with open(src, "rb") as f, gzip.open(tmp_path / "m.pdb.gz", "wb") as g:
        shutil.copyfileobj(f, g)
    plain, zipped = read_structure(src), read_structure(tmp_path / "m.pdb.gz")
    np.testing.assert_array_equal(plain.coords, zipped.coords)
    assert 26 in plain.atomic_numbers  # the haem irons are kept


def test_unknown_element_counts_as_carbon(tmp_path):
    (tmp_path / "x.pdb").write_text(_atom(1, "UNK", " ", "UNX", "A", 1, (1, 2, 3), 1.0, 20.0, "X") + "END\n")
    with pytest.warns(UserWarning, match="unknown element"):
        atoms = read_structure(tmp_path / "x.pdb")
    assert atoms.atomic_numbers.tolist() == [6]


def test_large_model_reads_every_heavy_atom(data):
    # Reading speed is not timed here (a loaded machine would fail it): gemmi parses this in well under a second.
    atoms = read_structure(data("hcn4_emd0093/6gyn.pdb"))
    assert len(atoms) == 16932


@pytest.mark.parametrize("content, message", [
    (None, "does not exist"),
    (b"hello, not a model\n", "no atoms"),
    (bytes(range(256)) * 8, "no atoms"),
    (b"data_x\nloop_\n_atom_site.id\n", "no atoms"),
    (_atom(1, "H", " ", "SER", "A", 1, (0, 0, 0), 1.0, 1.0, "H").encode(), "no atoms left"),
    (_atom(1, "CA", " ", "SER", "A", 1, (0, 0, 0), 1.0, 1.0, "C").replace("   0.000", "     nan", 1).encode(),
     "non-finite"),
])
def test_unusable_files_raise_input_error(tmp_path, content, message):
    path = tmp_path / ("m.cif" if content and content.startswith(b"data_") else "m.pdb")
    if content is not None:
        path.write_bytes(content)
    with pytest.raises(InputError, match=message):
        read_structure(path)


def test_garbage_cif_raises_input_error(tmp_path):
    (tmp_path / "g.cif").write_bytes(b"\x00\x01 not cif at all")
    with pytest.raises(InputError, match="Could not read g.cif"):
        read_structure(tmp_path / "g.cif")
