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
