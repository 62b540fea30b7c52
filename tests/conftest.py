"""Shared fixtures: the real test data, and a tiny generator.

Real maps and models are found by their path in the layout of the full data set
(``shared/data``, see ``tests/data/README.md``), e.g. ``t20s_fragment_emd5623/test_model.pdb``,
through the ``data`` fixture, which looks

1. in ``tests/data`` (small real files committed with the tests) and ``examples/``;
2. in the full data set: ``$STRUC2MAP_DATA``, else ``../shared/data`` beside the repository.

A test whose file is in neither is skipped, and the summary says which file and how to
get it. Nothing here reads a file at import time.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
BUNDLED = REPO / "tests" / "data"
# Files of the full data set that the repository already ships elsewhere (byte-identical copies).
ELSEWHERE = {"haemoglobin_emd3488/5me2.pdb": REPO / "examples" / "5me2.pdb",
             "haemoglobin_emd3488/emd_3488.mrc.gz": REPO / "examples" / "emd_3488.mrc.gz"}


def full_data_dir() -> Path:
    """Where the full data set is looked for: ``$STRUC2MAP_DATA``, else ``../shared/data`` beside the repository."""
    return Path(os.environ.get("STRUC2MAP_DATA") or REPO.parent / "shared" / "data")


class TestData:
    """Paths of real test files, by their path in the full data set's layout."""

    __test__ = False  # not a test class

    def __init__(self, full: Path) -> None:
        self.full = full

    def __call__(self, relative: str) -> Path:
        """The file (or folder) ``relative``, from the repository if it ships it, else from the full data set;
        skips the calling test when neither has it."""
        for candidate in (ELSEWHERE.get(relative), BUNDLED / relative, self.full / relative):
            if candidate is not None and candidate.exists():
                return candidate
        pytest.skip(f"needs {relative} from the full test data, not found in {self.full} "
                    "(set STRUC2MAP_DATA to the data folder to run it)")

    def full_set(self, relative: str) -> Path:
        """A file that only the full data set has (e.g. its pair list), or skip."""
        path = self.full / relative
        if not path.exists():
            pytest.skip(f"needs the full test data ({relative} not found in {self.full}; set STRUC2MAP_DATA)")
        return path


def pytest_configure(config) -> None:
    """Always list skipped tests with their reason (as ``-rs``), so that missing data is seen;
    and refuse a STRUC2MAP_DATA that names no folder, rather than skip everything it would have run."""
    if "s" not in config.option.reportchars and "a" not in config.option.reportchars.lower():
        config.option.reportchars += "s"
    given = os.environ.get("STRUC2MAP_DATA")
    if given and not Path(given).is_dir():
        raise pytest.UsageError(f"STRUC2MAP_DATA={given} is not a folder.")


@pytest.fixture(scope="session")
def data() -> TestData:
    """``data("folder/file")``: a real test file (see the module docstring)."""
    return TestData(full_data_dir())


@pytest.fixture(scope="session")
def tiny_weights(tmp_path_factory):
    """A small *randomly initialised* generator saved in our weights format.

    Good for testing tiling, I/O and the command line; its maps mean nothing.
    """
    import torch

    from chimerax.struc2map.network import Generator
    from chimerax.struc2map.weights_io import load_weights, save_weights

    torch.manual_seed(0)
    path = save_weights(tmp_path_factory.mktemp("weights") / "tiny", Generator((4, 8, 16, 32)),
                        {"output": {"normalisation": "minmax", "background": None, "resolution": 3.0}})
    return load_weights(path)
