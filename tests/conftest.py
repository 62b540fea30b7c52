"""Shared fixtures: where the real data lives."""
import os
from pathlib import Path

import pytest

DATA_DIR = Path(os.environ.get("STRUC2MAP_DATA", Path(__file__).resolve().parents[2] / "shared" / "data"))


@pytest.fixture(scope="session")
def data_dir() -> Path:
    if not DATA_DIR.is_dir():
        pytest.fail(f"real test data not found at {DATA_DIR} (set STRUC2MAP_DATA)")
    return DATA_DIR
