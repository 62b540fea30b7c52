"""Map-to-map scores: ChimeraX's ``measure correlation`` and the paper's PCC and SSIM.

ChimeraX parts reproduce ChimeraX 1.x code (``map_fit/fitmap.py``
``map_overlap_and_correlation``, ``map/volume.py`` ``initial_surface_levels``,
``map_data/arrays.py`` ``MatrixValueStatistics`` and the C++ in ``map/_map``),
including its float32 steps where they decide which voxels count. The paper's
PCC and SSIM follow the authors' ``evaluation/eval_funcs.py``.
"""
from __future__ import annotations

import warnings

import numpy as np
from scipy.ndimage import uniform_filter

from .errors import InputError
from .map_data import MapData
from .resample import interpolate_at, resample_onto

_HISTOGRAM_BINS = 10000          # MatrixValueStatistics default
_INITIAL_VOXEL_FRACTION = 0.01   # Volume.initial_surface_levels vfrac[0]
MOLMAP_MASS_FRACTION = 0.95      # molmap's display_threshold: its contour encloses 95% of the mass
MOLMAP_ENVELOPE = "molmap's contour enclosing 95% of its mass"  # how outputs name the two envelopes
INITIAL_ENVELOPE = "the reference's initial contour, its top 1% of voxels"
_DISPLAY_VOXEL_LIMIT = 16 * 2**20  # default 'voxel_limit' (16 Mvoxels) for the initial step
_SLAB_VOXELS = 1 << 20           # voxels per pass in the big-array loops (bounds memory)
_SSIM_WINDOW = 7
_OUTSIDE_ENVELOPE_NOTED = 0.01  # compare warns when more of the envelope than this lies outside the map


def default_contour_level(mapdata: MapData) -> float:
    """The contour level ChimeraX gives this map when it is opened: the right edge of
    the 10000-bin histogram bin where the cumulative voxel count reaches 99%.

    Values are taken as float32 (what an MRC file stores and ChimeraX reads). Like
    ChimeraX, the histogram covers the voxels at the initial display step: every
    voxel up to 16 Mvoxels, every 2nd (4th, ...) along each axis above that.
    ChimeraX's minimum omits values that were a new running maximum when reached in
    memory order (so a unique minimum in the first voxel is skipped); we keep that.
    Not reproduced: maps of 256 Mvoxels or more, which ChimeraX opens as one plane.
    """
    first, _, bin_size, counts = _histogram(mapdata)
    cumulative = np.cumsum(counts)
    b = int(np.searchsorted(cumulative, (1 - _INITIAL_VOXEL_FRACTION) * cumulative[-1]))
    return float(first + b * bin_size + 0.5 * bin_size)


def molmap_contour_level(mapdata: MapData, mass_fraction: float = MOLMAP_MASS_FRACTION) -> float:
    """The contour level ChimeraX's ``molmap`` gives the map it makes: the voxels above it
    hold ``mass_fraction`` (95%) of the map's mass.

    ``MatrixValueStatistics.mass_rank_data_value(1 - mass_fraction, 'high')`` on the
    histogram of :func:`default_contour_level`, with its bin values (first bin centre
    plus i × range / bins) and negative masses counted as 0.
    """
    first, last, bin_size, counts = _histogram(mapdata)
    values = np.arange(len(counts)) * ((last - first) / _HISTOGRAM_BINS) + first
    cumulative = np.maximum(counts * values, 0).cumsum()
    b = int(np.searchsorted(cumulative, (1 - mass_fraction) * cumulative[-1]))
    return float(first + b * bin_size + 0.5 * bin_size)


def _histogram(mapdata: MapData) -> tuple[float, float, float, np.ndarray]:
    """ChimeraX's ``MatrixValueStatistics`` of a newly made volume: first and last bin
    centres, bin size and the 10000 bin counts of the voxels at the initial display step."""
    step = _initial_step(mapdata.array.shape)
    values = np.asarray(mapdata.array)[::step, ::step, ::step]
    minimum, maximum = _chimerax_minimum_maximum(values)
    first, last, bin_size = _bin_range(minimum, maximum)
    return first, last, bin_size, _bin_counts(values, first - 0.5 * bin_size, last + 0.5 * bin_size)


def _initial_step(shape: tuple[int, ...]) -> int:
    """ChimeraX's initial display step (map/volume.py limit_voxels, full region)."""
    def count(step: int) -> int:
        return int(np.prod([(n - 1) // step + 1 for n in shape]))

    step = 1
    while count(step) > _DISPLAY_VOXEL_LIMIT and count(2 * step) < count(step):
        step *= 2
    return step


def _slabs(values: np.ndarray):
    """float32 z-slabs of ``values`` of about _SLAB_VOXELS each, in memory order."""
    planes = max(1, _SLAB_VOXELS // max(1, values[0].size))
    for z0 in range(0, len(values), planes):
        yield values[z0:z0 + planes].astype(np.float32, copy=False)


def _chimerax_minimum_maximum(values: np.ndarray) -> tuple[float, float]:
    """``_map.minimum_and_maximum``: ``if v > max: max = v elif v < min: min = v``.

    Falls back to the true minimum where every value is a new running maximum
    (ChimeraX would return DBL_MAX there)."""
    running = -np.inf
    minimum = np.inf
    for slab in _slabs(values):
        flat = slab.reshape(-1)
        before = np.empty_like(flat)  # the largest value met before each one
        before[0], before[1:] = running, flat[:-1]
        kept = flat[~(flat > np.maximum.accumulate(before))]
        if kept.size:
            minimum = min(minimum, float(kept.min()))
        running = max(running, float(flat.max()))
    if minimum == np.inf:
        minimum = float(values.min())
    return minimum, running


def _bin_range(minimum: float, maximum: float) -> tuple[float, float, float]:
    """``MatrixValueStatistics.bin_range``: first and last bin centres and bin size."""
    if maximum > minimum:
        first, last = minimum, maximum
    else:
        first, last = minimum - 1, maximum + 1
    return first, last, (last - first) / (_HISTOGRAM_BINS - 1)


def _bin_counts(values: np.ndarray, start: float, end: float) -> np.ndarray:
    """``_map.bin_counts_float64`` in its float32 arithmetic: bin ``int(scale*(v - start))``."""
    start32, end32 = np.float32(start), np.float32(end)
    width = np.float32(end32 - start32)
    counts = np.zeros(_HISTOGRAM_BINS, dtype=np.float64)
    if width == 0:
        return counts
    scale = np.float32(_HISTOGRAM_BINS) / width
    for slab in _slabs(values):
        b = np.trunc(scale * (slab.reshape(-1) - start32))  # C++ cast: toward zero
        b = b[(b >= 0) & (b < _HISTOGRAM_BINS)].astype(np.intp)
        counts += np.bincount(b, minlength=_HISTOGRAM_BINS)
    return counts


def chimerax_correlation(reference: MapData, other: MapData, level: float | None = None) -> dict:
    """ChimeraX's ``measure correlation #reference inMap #other`` at step 1.

    Points: voxels of ``reference`` with float32 value >= float32(``level``) (default
    :func:`default_contour_level`), weighted by those values; ``other`` is
    interpolated trilinearly there (0 outside its grid). Returns ``correlation``
    (Σuv/|u||v|), ``correlation_about_mean`` (Pearson), ``overlap`` (Σuv) and
    ``points``; like ChimeraX, a zero denominator (no points, all zeros) gives 0.
    """
    if level is None:
        level = default_contour_level(reference)
    u, xyz = _envelope(reference, level)
    overlap, correlation, about_mean = _overlap_and_correlation(u, interpolate_at(other, xyz))
    return {"correlation": correlation, "correlation_about_mean": about_mean,
            "overlap": overlap, "points": int(len(u))}


def molmap_correlation(molmap_map: MapData, other: MapData) -> dict:
    """``other`` scored against a molmap within :data:`MOLMAP_ENVELOPE`, as the ChimeraX command logs it.

    The one definition of "vs molmap" (command line and ChimeraX): ``measure
    correlation #molmap inMap #other`` with the molmap at the level ChimeraX's
    ``molmap`` draws it (:func:`molmap_contour_level`). Returns the keys of
    :func:`chimerax_correlation` and ``level``.
    """
    level = molmap_contour_level(molmap_map)
    return {**chimerax_correlation(molmap_map, other, level), "level": level}


def _envelope(reference: MapData, level: float) -> tuple[np.ndarray, np.ndarray]:
    """Values (float64) and positions (N, 3, Å) of the reference's voxels with float32 value >= float32(level)."""
    ref = np.asarray(reference.array, dtype=np.float32)
    kji = np.nonzero(ref >= np.float32(level))
    # Positions in float32 arithmetic, as fitmap.map_points_and_weights makes them: which points fall on or just
    # beyond the other map's highest plane then matches ChimeraX (resample.interpolate_at).
    ijk = np.stack(kji[::-1], axis=1).astype(np.float32)
    xyz = ijk * reference.voxel_size.astype(np.float32) + reference.origin.astype(np.float32)
    return ref[kji].astype(np.float64), xyz.astype(np.float64)


def _overlap_and_correlation(u: np.ndarray, v: np.ndarray) -> tuple[float, float, float]:
    """fitmap.overlap_and_correlation, with its one-pass sums (float64). Where values
    are constant, Σx² - n·mean² is rounding noise and ChimeraX reports noise for
    the correlation about mean; we report 0 (variance below 1e-12 of Σx²)."""
    n = len(u)
    overlap, nu, nv = float(u @ v), float(u @ u), float(v @ v)
    if n == 0:
        return overlap, 0.0, 0.0
    mu, mv = float(u.sum()) / n, float(v.sum()) / n
    var_u, var_v = nu - n * mu * mu, nv - n * mv * mv
    constant = var_u <= 1e-12 * nu or var_v <= 1e-12 * nv
    about_mean = 0.0 if constant else (overlap - n * mu * mv) / np.sqrt(var_u * var_v)
    d = np.sqrt(nu * nv)
    correlation = overlap / d if d > 0 else 0.0
    return overlap, float(correlation), float(about_mean)


def _paper_normalise(a: np.ndarray) -> np.ndarray:
    """The paper's preprocessing: values below the 90th percentile of the non-zero
    voxels set to 0, then min-max scaled to [0, 1] (float64). A map with no non-zero
    voxel is left as is; a constant result becomes all zeros (the authors' code
    would divide by zero)."""
    a = np.asarray(a)
    nonzero = a[a != 0]
    out = a.astype(np.float64, copy=True)
    if nonzero.size:
        out[a < np.percentile(nonzero, 90)] = 0
    low, high = out.min(), out.max()
    out -= low
    if high > low:
        out /= high - low
    return out


def _check_ssim_size(shape: tuple[int, ...]) -> None:
    if min(shape) < _SSIM_WINDOW:
        raise InputError(f"SSIM needs maps at least {_SSIM_WINDOW} voxels along every axis; "
                         f"got shape {tuple(shape)}.")


def pearson(x: np.ndarray, y: np.ndarray, weights: np.ndarray | None = None) -> float:
    """The Pearson correlation of two arrays of one size over all their values (float64), each
    value weighted by ``weights`` if given; 0.0 where either is constant (a zero denominator).

    The project's one Pearson correlation: the paper's PCC, realism's local texture and
    evaluate's closest molmap use it. ChimeraX's correlation about mean
    (:func:`chimerax_correlation`) is not it: that reproduces ChimeraX's one-pass sums.
    """
    x, y = np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)
    if weights is None:
        x = (x - x.mean()).reshape(-1)
        y = (y - y.mean()).reshape(-1)
        d = np.sqrt((x @ x) * (y @ y))
        return float((x @ y) / d) if d > 0 else 0.0
    w = np.asarray(weights, dtype=np.float64).reshape(-1)
    x, y = x.reshape(-1), y.reshape(-1)
    x, y = x - np.average(x, weights=w), y - np.average(y, weights=w)
    d = np.sqrt(np.sum(w * x * x) * np.sum(w * y * y))
    return float(np.sum(w * x * y) / d) if d > 0 else 0.0


def _mean_ssim(x: np.ndarray, y: np.ndarray) -> float:
    """The paper's SSIM of two normalised maps: scikit-image ``structural_similarity`` defaults
    (7-voxel uniform window, K1 0.01, K2 0.03, sample covariance, data_range 1), the mean per-voxel
    value over the box cropped by the window radius.

    Computed in z-slabs (with a 3-plane halo) to bound memory. Constant maps give a defined value
    (two all-zero maps: 1.0).
    """
    pad = (_SSIM_WINDOW - 1) // 2
    nz = x.shape[0]
    planes = max(1, _SLAB_VOXELS // x[0].size)
    total = 0.0
    for z0 in range(pad, nz - pad, planes):
        z1 = min(nz - pad, z0 + planes)
        lo, hi = max(0, z0 - pad), min(nz, z1 + pad)  # halo; true edges reflect as whole
        s = _ssim_map(x[lo:hi], y[lo:hi])
        total += s[z0 - lo:z1 - lo, pad:-pad, pad:-pad].sum()
    count = (nz - 2 * pad) * (x.shape[1] - 2 * pad) * (x.shape[2] - 2 * pad)
    return float(total / count)


def _ssim_map(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """scikit-image's per-voxel SSIM (uniform window, sample covariance, range 1)."""
    np_ = _SSIM_WINDOW ** 3
    cov_norm = np_ / (np_ - 1)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    ux, uy = uniform_filter(x, _SSIM_WINDOW), uniform_filter(y, _SSIM_WINDOW)
    vx = cov_norm * (uniform_filter(x * x, _SSIM_WINDOW) - ux * ux)
    vy = cov_norm * (uniform_filter(y * y, _SSIM_WINDOW) - uy * uy)
    vxy = cov_norm * (uniform_filter(x * y, _SSIM_WINDOW) - ux * uy)
    return ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux ** 2 + uy ** 2 + c1) * (vx + vy + c2))


def compare_maps(map_: MapData, reference: MapData, level: float | None = None, *,
                 resampled: MapData | None = None) -> dict:
    """The paper's four scores for ``map_`` against an experimental ``reference``.

    ChimeraX correlation and correlation about mean interpolate ``map_`` at the
    reference's envelope points (``measure correlation #reference inMap #map``);
    PCC and SSIM use ``map_`` resampled onto the reference's grid
    (``resampled``, when the caller has already made it with
    ``resample_onto(map_, reference)``). ``level`` defaults to the reference's
    ChimeraX contour level. Returns correlation, correlation_about_mean, pcc,
    ssim, level and points (envelope size).
    """
    _check_ssim_size(reference.array.shape)
    if resampled is not None and resampled.array.shape != reference.array.shape:
        raise InputError(f"The resampled map has shape {resampled.array.shape}, not the reference's "
                         f"{reference.array.shape}.")
    check_finite(reference.array, _named(reference, "reference"))
    check_scorable(map_.array, _named(map_, "map"))  # a constant reference: _check_overlap
    if level is None:
        level = default_contour_level(reference)
    _check_overlap(map_, reference, level)
    corr = chimerax_correlation(reference, map_, level)
    x = _paper_normalise(reference.array)
    y = _paper_normalise((resample_onto(map_, reference) if resampled is None else resampled).array)
    return {"correlation": corr["correlation"],
            "correlation_about_mean": corr["correlation_about_mean"],
            "pcc": pearson(x, y), "ssim": _mean_ssim(x, y),
            "level": float(level), "points": corr["points"]}


def _named(mapdata: MapData, role: str) -> str:
    source = mapdata.header.get("source")
    return f"the {role} {source}" if source else f"the {role}"


def check_finite(values: np.ndarray, name: str) -> None:
    """Refuse NaN or infinite voxels (an InputError that names the map ``name``): every score over them would be
    NaN or silently skip them."""
    bad = sum(int(np.count_nonzero(~np.isfinite(slab))) for slab in _slabs(np.asarray(values)))
    if bad:
        raise InputError(f"{name[:1].upper()}{name[1:]} has {bad} voxels that are NaN or infinite; "
                         "scores over it would mean nothing. Fix or mask the map first.")


def check_scorable(values: np.ndarray, name: str) -> None:
    """Refuse a map no score over means anything: NaN or infinite voxels, or one value everywhere (its scores
    would be rounding noise or 0/0). The one home of these checks: compare_maps and the ChimeraX command."""
    check_finite(values, name)
    low, high = float(np.min(values)), float(np.max(values))
    if low == high:
        raise InputError(f"{name[:1].upper()}{name[1:]} is constant ({low:g} everywhere): no correlation "
                         "with it means anything.")


def _check_overlap(map_: MapData, reference: MapData, level: float) -> None:
    """Refuse an empty envelope or a map that misses it; warn when the map covers only part of it.

    Envelope points outside the map's box count as 0 in the correlations, and
    the map resampled onto the reference's grid is 0 there for PCC and SSIM,
    which then rate empty against empty as similar.
    """
    reference_name = _named(reference, "reference")
    u, xyz = _envelope(reference, level)
    if len(u) == 0:
        low, high = float(np.min(reference.array)), float(np.max(reference.array))
        if low == high:
            raise InputError(f"{reference_name.capitalize()} is constant ({low:g} everywhere): it has no envelope "
                             "to compare within.")
        raise InputError(f"No voxel of {reference_name} is at or above the contour level {level:.4g} (its maximum "
                         f"is {high:.4g}): the envelope to compare within is empty. Choose a lower level.")
    inside = np.count_nonzero(~np.isnan(interpolate_at(map_, xyz, outside=np.nan)))
    if inside == 0:
        raise InputError(f"{_named(map_, 'map').capitalize()} does not overlap {reference_name}'s envelope "
                         f"(its box spans {_span(map_)} Å, the envelope {_span(xyz)} Å): the maps cannot be "
                         "compared. Are they placed in the same frame?")
    if inside < (1 - _OUTSIDE_ENVELOPE_NOTED) * len(u):
        warnings.warn(f"Only {100 * inside / len(u):.0f}% of {reference_name}'s envelope lies inside "
                      f"{_named(map_, 'map')}'s box; the rest counts as 0 in the correlations, and PCC and SSIM "
                      "compare the map's zeros there.", stacklevel=3)


def _span(what: MapData | np.ndarray) -> str:
    """x, y, z ranges of a map's box or of points, as text."""
    if isinstance(what, MapData):
        corners = what.ijk_to_xyz(np.array([[0, 0, 0], np.asarray(what.shape_xyz) - 1]))
        low, high = corners.min(0), corners.max(0)
    else:
        low, high = what.min(0), what.max(0)
    return " × ".join(f"{a:.1f}–{b:.1f}" for a, b in zip(low, high))
