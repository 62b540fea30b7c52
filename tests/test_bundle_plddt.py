"""The ``struc2map`` command on predicted models, in real ChimeraX code (the ``ChimeraX==0.1.71`` wheel).

Models are opened with ChimeraX's own ``open`` (so ``structure.metadata`` and ``filename`` are what
ChimeraX keeps); the ``bfactors`` keyword goes through ChimeraX's parser; the logged table carries the
note. The generator is the tiny random one: the maps mean nothing here.
"""
import re

import numpy as np
import pytest

from chimerax.core.errors import UserError
from tests.chimerax_session import cx_session, run  # noqa: F401
from tests.bundle_support import cx  # noqa: F401

from chimerax.struc2map.plddt import LOW_CONFIDENCE_WEIGHT


def _notes(cx) -> list[str]:
    (html,) = [h for h in cx.capture.html if "struc2map map" in h]
    return re.findall(r"<th align=left>Note</th><td colspan=3>([^<]*)</td>", html)


@pytest.mark.parametrize("relative, marker", [
    ("predicted/6vrc_af3_A562-721.cif", "_software names AlphaFold (Structure prediction)"),
    ("predicted/modelcif_plddt.cif", "ModelCIF local QA metric pLDDT"),
    ("predicted/AF-P0DTC2-F1-model_v4.pdb", "TITLE record: ALPHAFOLD MONOMER V2.0 PREDICTION"),
    ("predicted/esmfold_fragment.pdb", "a PARENT record"),
    ("predicted/fragment_unrelaxed_rank_001_alphafold2_ptm_model_1_seed_000.pdb", "ColabFold&#x27;s file name"),
])
def test_predicted_models_are_read_as_plddt_and_the_log_says_so(cx, data, tiny_weights, relative, marker):
    run(cx, f"open {data(relative)}")
    run(cx, f"struc2map #1 resolution 4 weights {tiny_weights.path}")
    notes = _notes(cx)
    assert notes[0].startswith("pLDDT read from the B column (" + marker)


def test_keyword_overrides_and_refuses_a_bad_value(cx, data, tiny_weights):
    from chimerax.struc2map.cmd import _job

    (structure,) = run(cx, f"open {data('predicted/6vrc_af3_A562-721.cif')}")
    as_b = _job(structure, "b")
    assert np.array_equal(as_b.b_factors, structure.atoms.bfactors) and "as asked" in as_b.note
    assert np.array_equal(as_b.element_weights, structure.atoms.element_numbers)
    read = _job(structure, "auto")
    low = structure.atoms.bfactors < 50
    assert np.allclose(read.element_weights[low], LOW_CONFIDENCE_WEIGHT * structure.atoms.element_numbers[low])

    with pytest.raises(UserError, match="bfactors"):
        run(cx, f"struc2map #1 resolution 4 bfactors sideways weights {tiny_weights.path}")
    run(cx, f"struc2map #1 resolution 4 bfactors b weights {tiny_weights.path}")
    assert _notes(cx)[0].startswith("the B column is read as B-factors, as asked")


def test_plddt_forced_on_b_factors_beyond_100_is_a_user_error(cx, data, tiny_weights):
    run(cx, f"open {data('vp6_emd6272/6272.pdb')}")  # an experimental model, B up to 290
    with pytest.raises(UserError, match="pLDDT lies between 0 and 100"):
        run(cx, f"struc2map #1 resolution 4 bfactors plddt weights {tiny_weights.path}")


def test_experimental_model_is_left_as_it_is(cx, data, tiny_weights):
    from chimerax.struc2map.cmd import _job

    (structure,) = run(cx, f"open {data('spike_ntd_emd21457/6vyb_Ndom.pdb')}")
    job = _job(structure, "auto")
    assert job.note == "" and np.array_equal(job.b_factors, structure.atoms.bfactors)


def test_a_model_fetched_from_alphafold_db_is_read_as_plddt(cx, data, tmp_path):
    """``alphafold fetch`` marks its models with the database they came from (the test cannot fetch: the
    marker is set as that command sets it, on a copy of the AlphaFold DB fixture without its header)."""
    from chimerax.alphafold.match import _set_model_database_info
    from chimerax.alphafold.search import DatabaseEntryId

    from chimerax.struc2map.cmd import _job

    text = data("predicted/AF-P0DTC2-F1-model_v4.pdb").read_text()
    plain = tmp_path / "model.pdb"
    plain.write_text(text[text.index("MODEL"):])
    (structure,) = run(cx, f"open {plain}")
    assert _job(structure, "auto").note == ""
    _set_model_database_info([structure], DatabaseEntryId("P0DTC2"))
    assert _job(structure, "auto").note.startswith("pLDDT read from the B column (fetched from the AlphaFold database")
