"""Predicted models: recognise pLDDT in the B-factor column and turn it into B-factors.

AlphaFold, ESMFold, ColabFold and their kin write pLDDT (0–100, or 0–1 in
some ESMFold files; high = confident) where experimental models keep
B-factors (high = mobile). Read as B-factors, confident cores would come out
blurred and unreliable loops sharp. The column is taken as pLDDT when the
model carries a marker of such a program (``detect``):

- mmCIF: a ModelCIF local QA table (``_ma_qa_metric_local``) whose metric is
  pLDDT; or a ``_software`` row naming a predictor (AlphaFold, ColabFold,
  ESMFold, ...) described or classified as a prediction (AlphaFold DB and
  AlphaFold 3 files: name AlphaFold, description "Structure prediction");
- PDB: a header line naming a predictor or pLDDT (AlphaFold DB: ``TITLE
  ALPHAFOLD MONOMER V2.0 PREDICTION FOR ...``), or a ``PARENT`` record (the
  CASP-style line ESMFold and OpenFold write before the atoms);
- the file name: AlphaFold DB's ``AF-<accession>-F1-model_v4`` and
  ColabFold's ``..._unrelaxed_rank_001_...`` (ColabFold's PDB files carry no
  header at all);
- in ChimeraX: a model fetched from AlphaFold DB or the ESM Atlas
  (``alphafold fetch``, ``esmfold fetch``).

A model whose ``_exptl.method`` or ``EXPDTA`` names an experiment is never
taken as predicted (experimental entries may name AlphaFold as a source of
their starting model), nor is one whose B column leaves 0–100.

pLDDT becomes a B-factor as in Phenix's ``process_predicted_model`` (cctbx,
mmtbx/process_predicted_model.py, after Hiranuma et al., Nat. Commun. 12,
1340 (2021)): rmsd = 1.5·exp(4·(0.7 − pLDDT/100)) Å, at most 20 Å, and
B = 8π²·rmsd²/3 (pLDDT 90: 12 Å², 70: 59 Å², 50: 293 Å²). Residues below
pLDDT 50 are mostly disordered and weak in real maps (about 0.2 of the
density of pLDDT > 90 atoms in two real maps); blurring alone leaves them
twice that, so their atoms also weigh less in the generator's input
(``LOW_CONFIDENCE_WEIGHT``; benchmarks/README.md §9).
"""
from __future__ import annotations

import math
import re
from dataclasses import dataclass

import numpy as np

from .errors import InputError

MODES = ("auto", "b", "plddt", "ignore")
"""How the B column is read: detected, as B-factors, as pLDDT, or not at all."""

RMSD_CAP = 20.0
"""Å: the largest error estimate Phenix's conversion gives (B ≈ 10500 Å²)."""

LOW_CONFIDENCE = 50.0
"""pLDDT below which a residue is taken as disordered (AlphaFold's "very low" band)."""

LOW_CONFIDENCE_WEIGHT = 0.5
"""Factor on the input weight of atoms below ``LOW_CONFIDENCE``: a stated choice (benchmarks/README.md §9)."""

PREDICTORS = ("alphafold", "colabfold", "esmfold", "openfold", "boltz", "chai-1", "protenix")
"""Programs that write pLDDT in the B column (names matched without case)."""

EXPERIMENTAL = ("x-ray", "electron", "neutron", "nmr", "fiber", "diffraction", "crystallograph")
"""Words of ``_exptl.method`` / ``EXPDTA`` that mark an experimental model."""

HEADER_RECORDS = ("HEADER", "TITLE", "COMPND", "KEYWDS", "EXPDTA", "REMARK", "PARENT")
"""PDB records a model's origin is read from (the rest of a PDB header says nothing about it)."""

FILE_NAMES = ((re.compile(r"^AF-[A-Z0-9]+-F\d+-model_v\d+", re.I), "AlphaFold DB's file name"),
              (re.compile(r"_(un)?relaxed_rank_\d+_", re.I), "ColabFold's file name"))


@dataclass(frozen=True)
class ModelHeader:
    """What a model says about where it came from, as read from its file (or its ChimeraX metadata)."""

    software: tuple[str, ...] = ()  # mmCIF _software rows: "name | classification | description"
    local_metrics: tuple[str, ...] = ()  # ModelCIF local QA metrics with values (_ma_qa_metric name and type)
    experiment: str = ""  # _exptl.method or EXPDTA
    records: tuple[str, ...] = ()  # PDB header lines (TITLE, REMARK, PARENT, ...)
    file_name: str = ""
    database: str = ""  # ChimeraX: the database a fetched model came from ("AlphaFold", "ESMFold")


@dataclass(frozen=True)
class BColumn:
    """How a model's B column feeds the generator."""

    b_factors: np.ndarray | None  # for the B-factor channel; None: the channel stays empty
    weights: np.ndarray | None  # factors on the atoms' input weights; None: all 1
    note: str  # what was read, for the run's notes ("" when the column is taken as it is)


def detect(header: ModelHeader) -> str:
    """The marker that says the B column holds pLDDT, in words ("" when there is none)."""
    if header.database.lower() in ("alphafold", "esmfold"):
        return f"fetched from the {header.database} database"
    if any(word in header.experiment.lower() for word in EXPERIMENTAL):
        return ""
    for metric in header.local_metrics:
        if "plddt" in metric.lower():
            return f"ModelCIF local QA metric {metric} (_ma_qa_metric_local)"
    for row in header.software:
        name, *about = (part.strip() for part in row.split("|"))
        said = [part for part in about if "prediction" in part.lower()]
        if _names_predictor(name) and said:
            return f"_software names {name} ({said[0]})"
    for line in header.records:
        if line.startswith("PARENT"):
            return "a PARENT record (written by ESMFold and OpenFold)"
        if _names_predictor(line) or "plddt" in line.lower():
            text = " ".join(line.split()[1:])
            return f"{line.split()[0]} record: {text if len(text) <= 60 else text[:59] + '…'}"
    for pattern, what in FILE_NAMES:
        if pattern.search(header.file_name):
            return what
    return ""


def plddt_to_bfactors(plddt: np.ndarray) -> np.ndarray:
    """B-factors (Å²) from pLDDT (0–100): rmsd = 1.5·exp(4·(0.7 − pLDDT/100)) Å, capped, B = 8π²·rmsd²/3."""
    fraction = np.clip(np.asarray(plddt, dtype=np.float64) / 100.0, 0.0, 1.0)
    rmsd = np.minimum(1.5 * np.exp(4.0 * (0.7 - fraction)), RMSD_CAP)
    return 8.0 * math.pi ** 2 * rmsd ** 2 / 3.0


def read_b_column(b_column: np.ndarray, header: ModelHeader, mode: str = "auto") -> BColumn:
    """The B column read as ``mode`` says (one of ``MODES``; ``auto``: pLDDT when ``detect`` finds a marker)."""
    if mode not in MODES:
        raise InputError(f"The B-factor reading must be one of {', '.join(MODES)}, not {mode!r}.")
    if mode == "ignore":
        return BColumn(None, None, "")
    b = np.asarray(b_column, dtype=np.float64)
    marker = detect(header)
    if mode == "b" or not marker and mode == "auto":
        said = f"the B column is read as B-factors, as asked, though the model looks predicted ({marker})."
        return BColumn(b, None, said if marker else "")
    if not (b.size and np.isfinite(b).all() and b.min() >= 0 and b.max() <= 100):
        if mode == "plddt":
            raise InputError(f"pLDDT lies between 0 and 100, but the B column of {header.file_name or 'the model'} "
                             "does not" + (f" (it holds {b.min():g} to {b.max():g})." if b.size else "."))
        return BColumn(b, None, f"the model looks predicted ({marker}), but its B column leaves 0–100 (up to "
                                f"{np.nanmax(b):g}): read as B-factors, not pLDDT.")
    fractional = bool(b.max() <= 1.0)  # as Phenix decides: 0–1 when every value is
    plddt = b * 100.0 if fractional else b
    low = plddt < LOW_CONFIDENCE
    note = (f"pLDDT read from the B column ({marker if mode == 'auto' else 'as asked'}; "
            f"{'0–1 scale, ×100' if fractional else '0–100 scale'}) and "
            f"turned into B-factors, B = 8π²/3·rmsd² with rmsd = 1.5·exp(4·(0.7 − pLDDT/100)) Å (Phenix's "
            f"process_predicted_model); {int(low.sum())} atoms below pLDDT {LOW_CONFIDENCE:g} weigh "
            f"×{LOW_CONFIDENCE_WEIGHT:g} in the input.")
    return BColumn(plddt_to_bfactors(plddt), np.where(low, LOW_CONFIDENCE_WEIGHT, 1.0), note)


def _names_predictor(text: str) -> bool:
    text = text.lower()
    return any(name in text for name in PREDICTORS)
