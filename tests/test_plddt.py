"""Predicted models: pLDDT in the B column recognised in each format, converted, overridden, and said.

The fixtures in tests/data/predicted (made by its make_fixtures.py from the AlphaFold 3 model
unpaired/6vrc_af3_rough.cif) hold the same 160 residues in the layouts AlphaFold 3, ModelCIF,
AlphaFold DB, ESMFold and ColabFold write; the experimental models of tests/data must not be taken
for predictions.
"""
import json
import math

import numpy as np
import pytest

from chimerax.struc2map import cli
from chimerax.struc2map.errors import InputError
from chimerax.struc2map.plddt import LOW_CONFIDENCE_WEIGHT, detect, plddt_to_bfactors, read_b_column
from chimerax.struc2map.structure import read_structure

AF3 = "predicted/6vrc_af3_A562-721.cif"
PREDICTED = [
    (AF3, "_software names AlphaFold (Structure prediction)"),
    ("predicted/modelcif_plddt.cif", "ModelCIF local QA metric pLDDT (_ma_qa_metric_local)"),
    ("predicted/AF-P0DTC2-F1-model_v4.pdb", "TITLE record: ALPHAFOLD MONOMER V2.0 PREDICTION FOR SPIKE"),
    ("predicted/esmfold_fragment.pdb", "a PARENT record"),
    ("predicted/fragment_unrelaxed_rank_001_alphafold2_ptm_model_1_seed_000.pdb", "ColabFold's file name"),
]
EXPERIMENTAL = ["haemoglobin_emd3488/5me2.pdb", "spike_ntd_emd21457/6vyb_Ndom.pdb", "vp6_emd6272/6272.pdb",
                "t20s_fragment_emd5623/test_model.pdb", "kinesin_emd6187/chain_K_box_complete.pdb"]


@pytest.mark.parametrize("relative, marker", PREDICTED)
def test_each_format_is_recognised_and_read_as_plddt(data, relative, marker):
    atoms = read_structure(data(relative))
    assert detect(atoms.header).startswith(marker)
    column = read_b_column(atoms.b_factors, atoms.header)
    assert "pLDDT read from the B column" in column.note and marker in column.note
    assert column.b_factors.min() > 5 and column.b_factors.max() > 300  # pLDDT 17–96 as B-factors
    assert set(np.unique(column.weights)) == {LOW_CONFIDENCE_WEIGHT, 1.0}


def test_esmfold_0_to_1_scale_gives_the_same_bfactors(data):
    esm = read_structure(data("predicted/esmfold_fragment.pdb"))
    afdb = read_structure(data("predicted/AF-P0DTC2-F1-model_v4.pdb"))
    assert esm.b_factors.max() <= 1 and afdb.b_factors.max() > 90
    column = read_b_column(esm.b_factors, esm.header)
    assert "0–1 scale, ×100" in column.note
    assert np.allclose(esm.b_factors * 100, afdb.b_factors, atol=0.5)  # the same pLDDT, to 2 decimals of 0–1
    assert np.allclose(column.b_factors, plddt_to_bfactors(esm.b_factors * 100))


@pytest.mark.parametrize("relative", EXPERIMENTAL)
def test_experimental_models_keep_their_bfactors(data, relative):
    atoms = read_structure(data(relative))
    assert detect(atoms.header) == ""
    column = read_b_column(atoms.b_factors, atoms.header)
    assert np.array_equal(column.b_factors, atoms.b_factors) and column.weights is None and column.note == ""


def test_an_experimental_header_wins_over_a_mention_of_alphafold(data, tmp_path):
    """Experimental entries name AlphaFold as a starting model; their EXPDTA says what they are."""
    text = data("haemoglobin_emd3488/5me2.pdb").read_text()
    first_atom = text.index("\nATOM") + 1
    path = tmp_path / "5me2_af_start.pdb"
    path.write_text(text[:first_atom] + "REMARK 200 STARTING MODEL: ALPHAFOLD PREDICTION\n" + text[first_atom:])
    atoms = read_structure(path)
    assert any("ALPHAFOLD" in line for line in atoms.header.records)
    assert atoms.header.experiment == "ELECTRON MICROSCOPY" and detect(atoms.header) == ""


def test_overrides_in_each_direction(data):
    predicted = read_structure(data(AF3))
    as_b = read_b_column(predicted.b_factors, predicted.header, "b")
    assert np.array_equal(as_b.b_factors, predicted.b_factors) and as_b.weights is None
    assert "as asked" in as_b.note and "AlphaFold" in as_b.note
    ignored = read_b_column(predicted.b_factors, predicted.header, "ignore")
    assert ignored.b_factors is None and ignored.weights is None

    experimental = read_structure(data("spike_ntd_emd21457/6vyb_Ndom.pdb"))  # B 40–72: could be pLDDT
    forced = read_b_column(experimental.b_factors, experimental.header, "plddt")
    assert np.allclose(forced.b_factors, plddt_to_bfactors(experimental.b_factors))
    assert "pLDDT read from the B column (as asked; 0–100 scale)" in forced.note

    high = read_structure(data("vp6_emd6272/6272.pdb"))  # B up to 290
    with pytest.raises(InputError, match="pLDDT lies between 0 and 100, but the B column of 6272.pdb does not"):
        read_b_column(high.b_factors, high.header, "plddt")
    with pytest.raises(InputError, match="must be one of auto, b, plddt, ignore"):
        read_b_column(high.b_factors, high.header, "sideways")


def test_a_marked_model_with_b_factors_beyond_100_is_read_as_b(data):
    atoms = read_structure(data(AF3))
    refined = atoms.b_factors * 3  # e.g. after refinement: real B-factors under the same header
    column = read_b_column(refined, atoms.header)
    assert np.array_equal(column.b_factors, refined) and column.weights is None
    assert "leaves 0–100" in column.note and "read as B-factors, not pLDDT" in column.note


def test_conversion_is_phenix_relation():
    """rmsd = 1.5·exp(4·(0.7 − pLDDT/100)) Å (≤ 20 Å), B = 8π²·rmsd²/3 (cctbx process_predicted_model.py)."""
    b = plddt_to_bfactors(np.array([100.0, 90.0, 70.0, 50.0, 0.0, 120.0, -5.0]))
    rmsd = np.array([1.5 * math.exp(4 * (0.7 - f)) for f in (1.0, 0.9, 0.7, 0.5)] + [20.0, 1.5 * math.exp(-1.2),
                                                                                    20.0])
    assert np.allclose(b, 8 * math.pi ** 2 * rmsd ** 2 / 3)
    assert b[2] == pytest.approx(59.22, abs=0.01) and b[4] == pytest.approx(10527.6, abs=0.1)
    assert np.all(np.diff(b[:4]) > 0)  # less confident, more blurred


def test_cli_note_and_json_say_plddt(data, tiny_weights, tmp_path, capsys):
    model = data("predicted/AF-P0DTC2-F1-model_v4.pdb")
    js = tmp_path / "out.json"
    assert cli.main(["generate", str(model), "-r", "4", "-o", str(tmp_path / "out.mrc"), "--json", str(js),
                     "--weights", str(tiny_weights.path), "--device", "cpu"]) == 0
    printed = capsys.readouterr().out
    assert "note: pLDDT read from the B column (TITLE record: ALPHAFOLD MONOMER" in printed
    notes = json.loads(js.read_text(encoding="utf-8"))["notes"]
    assert notes[0].startswith("pLDDT read from the B column") and "Phenix" in notes[0]

    assert cli.main(["generate", str(model), "-r", "4", "-o", str(tmp_path / "b.mrc"), "--bfactors", "b",
                     "--weights", str(tiny_weights.path), "--device", "cpu"]) == 0
    assert "note: the B column is read as B-factors, as asked" in capsys.readouterr().out


def test_cli_options_and_alias():
    parse = cli.build_parser().parse_args
    assert parse(["generate", "m.pdb", "-r", "3"]).bfactors == "auto"
    assert parse(["generate", "m.pdb", "-r", "3", "--ignore-bfactors"]).bfactors == "ignore"
    assert parse(["generate", "m.pdb", "-r", "3", "--bfactors", "plddt"]).bfactors == "plddt"
    with pytest.raises(SystemExit):
        parse(["generate", "m.pdb", "-r", "3", "--bfactors", "sideways"])


def _ratio(generated, atoms) -> float:
    """Mean density at atoms below pLDDT 50 over that at atoms above 90 (trilinear, per atom)."""
    from scipy.ndimage import map_coordinates

    ijk = ((atoms.coords - generated.origin) / generated.voxel_size)[:, ::-1].T
    values = map_coordinates(generated.array, ijk, order=1)
    return values[atoms.b_factors < 50].mean() / values[atoms.b_factors > 90].mean()


def test_low_confidence_comes_out_weaker_than_with_no_information(data):
    """The shipped generator on a real AlphaFold 3 fragment: with pLDDT read, its disordered atoms come out
    weaker, relative to its confident ones, than with a flat B column; read as B-factors they came out
    stronger (benchmarks/README.md, pLDDT)."""
    from chimerax.struc2map.generate import generate
    from chimerax.struc2map.weights_io import load_weights_or_shipped

    weights = load_weights_or_shipped(None)
    atoms = read_structure(data(AF3))
    column = read_b_column(atoms.b_factors, atoms.header)
    run = dict(resolution=3.5, weights=weights, device="cpu")
    read, _ = generate(atoms.coords, atoms.atomic_numbers * column.weights, b_factors=column.b_factors, **run)
    flat, _ = generate(atoms.coords, atoms.atomic_numbers, b_factors=np.full(len(atoms), 50.0), **run)
    assert _ratio(read, atoms) < 0.9 * _ratio(flat, atoms)
