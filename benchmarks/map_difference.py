"""How far two predictions of one map differ: the numbers the tiling benchmarks and tests compare schemes by."""
from __future__ import annotations

import numpy as np
from chimerax.struc2map.metrics import pearson


def map_difference(a: np.ndarray, b: np.ndarray, mask: np.ndarray | None = None) -> dict[str, float]:
    """max_abs, mean_abs and correlation of two arrays of one shape (over ``mask`` if given)."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if a.shape != b.shape:
        raise ValueError(f"Maps to compare must have one shape, got {a.shape} and {b.shape}.")
    if mask is not None:
        a, b = a[mask], b[mask]
    difference = np.abs(a - b)
    return {"max_abs": float(difference.max()), "mean_abs": float(difference.mean()),
            "correlation": pearson(a, b)}
