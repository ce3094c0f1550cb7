"""The drift statistics as pure, vectorized functions of two samples or two count vectors.

No I/O, no state, no Python loops over rows. Samples are 1-D float arrays of finite values;
NaN and infinities are dropped one level up (:mod:`shipyard.monitoring.columns`), where the
missing share is recorded. ``presorted=True`` says both samples are already sorted
ascending, which is how a :class:`~shipyard.monitoring.reference.Reference` is stored, so the
reference is sorted once however many current windows are compared with it.

Count functions take two aligned count vectors over the same categories (the union of both
sides' categories, a category one side lacks counted 0).

Each statistic equals its SciPy reference: :func:`ks_2samp` is ``scipy.stats.ks_2samp``,
:func:`wasserstein_distance` is ``scipy.stats.wasserstein_distance``, :func:`chi_square` is
``scipy.stats.chisquare(current, reference * n_current / n_reference)`` and
:func:`jensen_shannon` is ``scipy.spatial.distance.jensenshannon``. Both Wasserstein and the
two-sample KS work on the merged sorted samples instead of SciPy's two extra searches, and
with a reference's :class:`WindowIndex` normed Wasserstein integrates over quantiles in O(m)
for m current values, and KS against a much larger sample costs O(m log n).
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Iterator
from typing import TYPE_CHECKING, NamedTuple

import numpy as np

from shipyard.errors import InvalidArgumentError

if TYPE_CHECKING:
    from numpy.typing import ArrayLike, NDArray

__all__ = [
    "MIN_STD",
    "PSI_EPSILON",
    "StatResult",
    "WindowIndex",
    "bin_counts",
    "chi_square",
    "histogram_counts",
    "histogram_sorted",
    "jensen_shannon",
    "ks_2samp",
    "psi",
    "psi_counts",
    "quantile_edges",
    "sturges_counts",
    "sturges_edges",
    "union_counts",
    "wasserstein_distance",
    "wasserstein_normed",
    "window_index",
    "z_test_proportions",
]

#: The share an empty bin gets in PSI, so that ``log(p / q)`` stays finite.
PSI_EPSILON = 1e-4
#: Normed Wasserstein divides by ``max(std(reference), MIN_STD)`` (Evidently's floor).
MIN_STD = 0.001
#: Up to this many values on the larger side, KS p-values are exact (SciPy's ``auto``).
KS_EXACT_MAX_N = 10_000
#: A current sample this many times smaller than the reference skips KS's O(n) merge.
_WINDOW_RATIO = 16
#: Merged positions (or current quantile steps) handled at a time: 2 MB per float array.
_CHUNK = 1 << 18


class StatResult(NamedTuple):
    """A test statistic and its p-value."""

    statistic: float
    p_value: float


# --- samples --------------------------------------------------------------------------------


def _sorted_finite(values: ArrayLike, presorted: bool, what: str) -> NDArray[np.float64]:
    arr = np.asarray(values, dtype=np.float64)
    if arr.ndim != 1:
        raise InvalidArgumentError(f"The {what} sample must be 1-D, got shape {arr.shape}.")
    if arr.size == 0:
        raise InvalidArgumentError(
            f"The {what} sample is empty.", hint="Pass at least one finite value on each side."
        )
    if not presorted:
        arr = np.sort(arr)
    # Sorted, so NaN (sorted last) and infinities sit at the ends: an O(1) check.
    if not (math.isfinite(arr[0]) and math.isfinite(arr[-1])):
        raise InvalidArgumentError(
            f"The {what} sample holds NaN or infinite values.",
            hint="Drop them first, or pass a pandas Series/DataFrame to a drift detector, "
            "which drops them and reports the missing share.",
        )
    return arr


def _merged_cdfs(
    u: NDArray[np.float64], v: NDArray[np.float64]
) -> Iterator[tuple[NDArray[np.float64], NDArray[np.float64]]]:
    """Chunks of (gap to the next merged value, ``F_u - F_v`` at the gap's left end).

    The CDFs at merged position i count the values among the first i + 1 merged ones, which
    differs from SciPy's right-searchsorted count only inside runs of ties, where the gap is
    0: every nonzero product ``|F_u - F_v| * gap`` is the float SciPy computes. Chunks keep
    the working memory at a few MB beyond the merged array, whatever the sample sizes.
    """
    n, m = u.size, v.size
    total = n + m
    pos = np.searchsorted(u, v, side="right")
    pos += np.arange(m)
    from_v = np.zeros(total, dtype=bool)
    from_v[pos] = True
    merged = np.empty(total)
    merged[pos] = v
    del pos
    merged[~from_v] = u
    seen_v = 0  # values of v among merged[:start]
    for start in range(0, total - 1, _CHUNK):
        stop = min(start + _CHUNK, total - 1)
        gaps = merged[start + 1 : stop + 1] - merged[start:stop]
        count_v = np.cumsum(from_v[start:stop], dtype=np.int64)
        count_v += seen_v
        seen_v = int(count_v[-1])
        cdf_diff = np.arange(start + 1, stop + 1, dtype=np.float64)
        cdf_diff -= count_v  # values of u among the first i + 1 (exact: integers < 2**53)
        cdf_diff /= n
        cdf_diff -= count_v / m
        yield gaps, cdf_diff


def wasserstein_distance(
    reference: ArrayLike, current: ArrayLike, *, presorted: bool = False
) -> float:
    """First Wasserstein (earth mover's) distance between two samples.

    Args:
        reference: The reference sample (finite values).
        current: The current sample (finite values).
        presorted: Both samples are already sorted ascending.

    Returns:
        ``∫ |F_ref(x) - F_cur(x)| dx``, equal to ``scipy.stats.wasserstein_distance``.

    Raises:
        InvalidArgumentError: A sample is empty, not 1-D, or holds NaN/inf.
    """
    u = _sorted_finite(reference, presorted, "reference")
    v = _sorted_finite(current, presorted, "current")
    if u.size == 1 and v.size == 1:
        return abs(float(u[0]) - float(v[0]))
    total = 0.0
    for gaps, cdf_diff in _merged_cdfs(u, v):
        total += float(np.dot(np.abs(cdf_diff, out=cdf_diff), gaps))
    return total


class WindowIndex(NamedTuple):
    """What a sorted reference keeps so that comparing a window of m values costs O(m).

    Attributes:
        integral: ``integral[i] = Σ_{l<i} (u_l - center) / n``, the reference's quantile
            function integrated up to rank i (centered, so the sums stay small).
        center: The reference's median value.
    """

    integral: NDArray[np.float64]
    center: float


def window_index(reference_sorted: NDArray[np.float64]) -> WindowIndex:
    """Build the :class:`WindowIndex` of a sorted reference (O(n), once).

    Args:
        reference_sorted: The reference sample, sorted ascending, finite.

    Returns:
        The index, to pass to :func:`wasserstein_normed` as ``reference_index``.
    """
    n = reference_sorted.size
    center = float(reference_sorted[n // 2]) if n else 0.0
    integral = np.empty(n + 1)
    integral[0] = 0.0
    steps = reference_sorted - center
    steps /= n or 1
    np.cumsum(steps, out=integral[1:])
    return WindowIndex(integral, center)


def _wasserstein_quantiles(
    u: NDArray[np.float64], index: WindowIndex, v: NDArray[np.float64]
) -> float:
    """W1 of a sorted reference (with its index) and a sorted sample, in quantile space.

    ``W1 = ∫_0^1 |Q_ref(q) - Q_cur(q)| dq``. On the current sample's j-th step,
    q in (j/m, (j+1)/m], Q_cur is the constant v_j and Q_ref runs over reference ranks found
    by integer arithmetic (no search), so the integral of ``Q_ref - v_j`` there comes from
    ``index.integral``. Only where Q_ref crosses v_j inside the step (a few percent of the
    steps, none when m >= n) is the crossing rank searched for. The reference is only read,
    at ranks rising in even strides, never merged: a 10k window against a 1M reference
    touches about 20k of its values.
    """
    integral, center = index
    n, m = u.size, v.size
    total = 0.0
    for start in range(0, m, _CHUNK):
        stop = min(start + _CHUNK, m)
        ranks = np.arange(start, stop + 1, dtype=np.int64) * n
        first = ranks // m  # the reference rank just after q = j/m
        frac = (ranks - first * m) / (m * n)  # q - first/n, exactly
        at_first = u[np.minimum(first, n - 1)]
        at_q = integral[first] + frac * (at_first - center)  # ∫_0^{j/m} (Q_ref - center)
        last = (ranks[1:] + m - 1) // m - 1  # the reference rank at q = (j+1)/m
        vj = v[start:stop]
        above = at_q[1:] - at_q[:-1] + (center - vj) / m  # ∫ (Q_ref - v_j) over the step
        at_last = u[last]
        parts = np.where(at_last <= vj, -above, above)
        crossing = np.flatnonzero((at_first[:-1] < vj) & (vj < at_last))
        if crossing.size:
            vc = vj[crossing]
            j = crossing + start
            k = np.searchsorted(u, vc, side="left")  # Q_ref < v_j up to q = k/n, >= after
            at_k = integral[k]
            below = at_k - at_q[crossing] + (center - vc) * ((k * m - j * n) / (m * n))
            after = at_q[crossing + 1] - at_k + (center - vc) * (((j + 1) * n - k * m) / (m * n))
            parts[crossing] = after - below
        total += float(np.sum(parts))
    return total


def wasserstein_normed(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    presorted: bool = False,
    reference_std: float | None = None,
    reference_index: WindowIndex | None = None,
) -> float:
    """Wasserstein distance divided by the reference's standard deviation (Evidently's score).

    Args:
        reference: The reference sample (finite values).
        current: The current sample (finite values).
        presorted: Both samples are already sorted ascending.
        reference_std: The reference's population std, when already known.
        reference_index: :func:`window_index` of the sorted reference; with it the distance
            is integrated over quantiles in O(m) (a 10k window against a 1M reference reads
            10k of its values), without it over the merged samples in O(n + m). The two
            agree to rounding on the data's span (~1e-14 relative).

    Returns:
        ``wasserstein_distance / max(std(reference), 0.001)``; the std has ddof 0 and the
        floor keeps a constant reference from dividing by zero, both as in Evidently.

    Raises:
        InvalidArgumentError: A sample is empty, not 1-D, or holds NaN/inf.
    """
    u = _sorted_finite(reference, presorted, "reference")
    v = _sorted_finite(current, presorted, "current")
    std = float(np.std(u)) if reference_std is None else reference_std
    if reference_index is not None:
        distance = _wasserstein_quantiles(u, reference_index, v)
    else:
        distance = wasserstein_distance(u, v, presorted=True)
    return distance / max(std, MIN_STD)


def ks_2samp(reference: ArrayLike, current: ArrayLike, *, presorted: bool = False) -> StatResult:
    """Two-sample two-sided Kolmogorov-Smirnov test.

    Args:
        reference: The reference sample (finite values).
        current: The current sample (finite values).
        presorted: Both samples are already sorted ascending.

    Returns:
        ``(D, p_value)`` equal to ``scipy.stats.ks_2samp(reference, current)``: the exact
        p-value up to 10,000 values on the larger side (SciPy's ``method="auto"`` is
        delegated to), Smirnov's asymptotic distribution beyond.

    Raises:
        InvalidArgumentError: A sample is empty, not 1-D, or holds NaN/inf.
    """
    import scipy.stats

    u = _sorted_finite(reference, presorted, "reference")
    v = _sorted_finite(current, presorted, "current")
    n, m = u.size, v.size
    if max(n, m) <= KS_EXACT_MAX_N:
        with warnings.catch_warnings():
            # SciPy falls back to the asymptotic p-value itself when the exact one fails.
            warnings.filterwarnings("ignore", "ks_2samp: Exact calculation", RuntimeWarning)
            result = scipy.stats.ks_2samp(u, v)
        return StatResult(float(result.statistic), float(result.pvalue))
    if min(n, m) * _WINDOW_RATIO <= max(n, m):
        small, big = (u, v) if n < m else (v, u)
        d = _ks_window(big, small)
    else:
        d = 0.0
        for gaps, cdf_diff in _merged_cdfs(u, v):
            at_values = cdf_diff[gaps > 0]  # the CDFs at each distinct value (ends of ties)
            if at_values.size:
                d = max(d, float(np.max(np.abs(at_values))))
    big_n, small_n = float(max(n, m)), float(min(n, m))
    en = big_n * small_n / (big_n + small_n)
    p_value = float(np.clip(scipy.stats.kstwo.sf(d, np.round(en)), 0.0, 1.0))
    return StatResult(d, p_value)


def _ks_window(u: NDArray[np.float64], v: NDArray[np.float64]) -> float:
    """sup |F_u - F_v| for a small sorted v: F_v is constant between its values, so the sup
    on each stretch sits at one of its ends (the first value at or after it, counted right,
    and the last value before the next, counted left)."""
    n, m = u.size, v.size
    last_of_run = np.empty(m, dtype=bool)
    np.not_equal(v[1:], v[:-1], out=last_of_run[:-1])
    last_of_run[-1] = True
    ends = np.flatnonzero(last_of_run)
    xs = v[ends]
    cdf_v = (ends + 1) / m
    cdf_v_before = np.concatenate(([0.0], cdf_v[:-1]))
    at = np.searchsorted(u, xs, side="right") / n - cdf_v
    before = np.searchsorted(u, xs, side="left") / n - cdf_v_before
    return float(max(np.max(np.abs(at)), np.max(np.abs(before))))


# --- binning ---------------------------------------------------------------------------------


def quantile_edges(reference: ArrayLike, bins: int = 10, *, presorted: bool = False) -> NDArray:
    """Inner bin edges at the reference's quantiles 1/bins, ..., (bins-1)/bins.

    Ties between quantiles collapse, so a column with few distinct values gets fewer bins.
    The outer bins are open, so current values beyond the reference's range still count.

    Args:
        reference: The reference sample (finite values).
        bins: How many bins to aim for (at least 2).
        presorted: The sample is already sorted ascending.

    Returns:
        The distinct inner edges, ascending (``numpy.quantile``, linear interpolation).
    """
    if bins < 2:
        raise InvalidArgumentError(f"PSI needs at least 2 bins, got {bins}.")
    u = _sorted_finite(reference, presorted, "reference")
    return np.unique(np.quantile(u, np.arange(1, bins) / bins))


def bin_counts(sorted_values: NDArray[np.float64], inner_edges: NDArray) -> NDArray[np.int64]:
    """Counts of bins ``[e_{i-1}, e_i)`` with open outer bins, from a sorted sample."""
    cut = np.searchsorted(sorted_values, inner_edges, side="left")
    return np.diff(np.concatenate(([0], cut, [sorted_values.size]))).astype(np.int64)


def histogram_counts(
    reference: ArrayLike, current: ArrayLike, *, presorted: bool = False
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Counts of both samples over shared bins, as Evidently bins numeric columns.

    More than 20 distinct reference values: :func:`sturges_counts`. Otherwise one bin per
    distinct value of either sample (:func:`union_counts`).

    Args:
        reference: The reference sample (finite values).
        current: The current sample (finite values).
        presorted: Both samples are already sorted ascending.

    Returns:
        ``(reference_counts, current_counts)``, aligned.
    """
    u = _sorted_finite(reference, presorted, "reference")
    v = _sorted_finite(current, presorted, "current")
    if np.count_nonzero(u[1:] != u[:-1]) + 1 > 20:
        return sturges_counts(u, v, presorted=True)
    return union_counts(*_distinct(u), *_distinct(v))


def sturges_counts(
    reference: ArrayLike, current: ArrayLike, *, presorted: bool = False
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Counts of both samples over ``numpy.histogram_bin_edges(both, "sturges")``.

    The edges need only both samples' extremes and total size, and sorted samples are
    counted with a search per edge, so the samples are never concatenated.

    Args:
        reference: The reference sample (finite values).
        current: The current sample (finite values).
        presorted: Both samples are already sorted ascending.

    Returns:
        ``(reference_counts, current_counts)`` per bin, as ``numpy.histogram`` counts them.
    """
    u = _sorted_finite(reference, presorted, "reference")
    v = _sorted_finite(current, presorted, "current")
    edges = sturges_edges(min(u[0], v[0]), max(u[-1], v[-1]), u.size + v.size)
    return histogram_sorted(u, edges), histogram_sorted(v, edges)


def union_counts(
    reference_values: NDArray,
    reference_counts: NDArray,
    current_values: NDArray,
    current_counts: NDArray,
) -> tuple[NDArray[np.int64], NDArray[np.int64]]:
    """Both sides' counts over the union of their distinct values, ascending.

    Args:
        reference_values: The reference's distinct values, ascending.
        reference_counts: How often each occurs.
        current_values: The current sample's distinct values, ascending.
        current_counts: How often each occurs.

    Returns:
        ``(reference_counts, current_counts)`` aligned on the union, 0 where a side lacks
        a value.
    """
    keys = np.union1d(reference_values, current_values)
    ref_out = np.zeros(keys.size, dtype=np.int64)
    cur_out = np.zeros(keys.size, dtype=np.int64)
    ref_out[np.searchsorted(keys, reference_values)] = reference_counts
    cur_out[np.searchsorted(keys, current_values)] = current_counts
    return ref_out, cur_out


def _distinct(sorted_values: NDArray[np.float64]) -> tuple[NDArray, NDArray[np.int64]]:
    starts = np.flatnonzero(np.concatenate(([True], sorted_values[1:] != sorted_values[:-1])))
    counts = np.diff(np.concatenate((starts, [sorted_values.size])))
    return sorted_values[starts], counts.astype(np.int64)


def sturges_edges(first: float, last: float, size: int) -> NDArray[np.float64]:
    """``numpy.histogram_bin_edges(sample, "sturges")`` from the sample's min, max and size."""
    first, last = float(first), float(last)
    width = (last - first) / (np.log2(size) + 1.0)
    if first == last:
        first, last = first - 0.5, last + 0.5
    n_bins = int(np.ceil((last - first) / width)) if width else 1
    return np.linspace(first, last, n_bins + 1, endpoint=True)


def histogram_sorted(sorted_values: NDArray[np.float64], edges: NDArray) -> NDArray[np.int64]:
    """``numpy.histogram(values, edges)[0]``: half-open bins, the last one closed."""
    cut = np.searchsorted(sorted_values, edges, side="left")
    cut[-1] = np.searchsorted(sorted_values, edges[-1], side="right")
    return np.diff(cut).astype(np.int64)


# --- distances and tests on counts ------------------------------------------------------------


def _counts_pair(
    reference_counts: ArrayLike, current_counts: ArrayLike
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    ref = np.asarray(reference_counts, dtype=np.float64)
    cur = np.asarray(current_counts, dtype=np.float64)
    if ref.ndim != 1 or ref.shape != cur.shape:
        raise InvalidArgumentError(
            f"Count vectors must be 1-D and aligned, got shapes {ref.shape} and {cur.shape}."
        )
    if (ref < 0).any() or (cur < 0).any():
        raise InvalidArgumentError("Counts must not be negative.")
    if ref.sum() <= 0 or cur.sum() <= 0:
        raise InvalidArgumentError(
            "A count vector sums to 0: one side has no values.",
            hint="Pass at least one non-missing value on each side.",
        )
    return ref, cur


def psi(
    reference: ArrayLike,
    current: ArrayLike,
    *,
    bins: int = 10,
    epsilon: float = PSI_EPSILON,
    presorted: bool = False,
    reference_edges: NDArray[np.float64] | None = None,
) -> float:
    """Population stability index of a numeric column over reference-quantile bins.

    The reference is cut at its quantiles (:func:`quantile_edges`, ``bins`` bins, the outer
    ones open), both samples are counted into those bins, and an empty bin's share is
    replaced by ``epsilon`` on either side so the logarithm stays finite. Note Evidently's
    ``psi`` cuts at Sturges edges over both samples instead.

    Args:
        reference: The reference sample (finite values).
        current: The current sample (finite values).
        bins: How many quantile bins (fewer when quantiles tie).
        epsilon: The share an empty bin gets.
        presorted: Both samples are already sorted ascending.
        reference_edges: ``quantile_edges(reference, bins)``, when already known.

    Returns:
        ``Σ (cur_i - ref_i) * ln(cur_i / ref_i)`` over the bins' shares; 0.1-0.25 is the
        usual "moderate shift" band, above 0.25 a major one.
    """
    u = _sorted_finite(reference, presorted, "reference")
    v = _sorted_finite(current, presorted, "current")
    edges = quantile_edges(u, bins, presorted=True) if reference_edges is None else reference_edges
    return psi_counts(bin_counts(u, edges), bin_counts(v, edges), epsilon=epsilon)


def psi_counts(
    reference_counts: ArrayLike, current_counts: ArrayLike, *, epsilon: float = PSI_EPSILON
) -> float:
    """Population stability index over aligned counts (categories or bins).

    Args:
        reference_counts: Reference count per category.
        current_counts: Current count per category, aligned with ``reference_counts``.
        epsilon: The share an empty category gets, so ``ln`` stays finite.

    Returns:
        ``Σ (cur_i - ref_i) * ln(cur_i / ref_i)`` over the shares.
    """
    ref, cur = _counts_pair(reference_counts, current_counts)
    p = ref / ref.sum()
    q = cur / cur.sum()
    p[p == 0] = epsilon
    q[q == 0] = epsilon
    return float(np.sum((q - p) * np.log(q / p)))


def _rel_entr(x: NDArray[np.float64], y: NDArray[np.float64]) -> NDArray[np.float64]:
    """``scipy.special.rel_entr`` for shares (x >= 0, y > 0 where x > 0): x log(x / y)."""
    present = x > 0
    ratio = np.divide(x, y, out=np.ones_like(x), where=present)
    return np.multiply(x, np.log(ratio), out=np.zeros_like(x), where=present)


def jensen_shannon(
    reference_counts: ArrayLike, current_counts: ArrayLike, *, base: float | None = None
) -> float:
    """Jensen-Shannon distance between two distributions given as aligned counts.

    Args:
        reference_counts: Reference count (or share) per category or bin.
        current_counts: Current count per category or bin, aligned.
        base: Logarithm base; ``None`` is the natural log, as Evidently uses (so the
            distance lies in [0, sqrt(ln 2) ≈ 0.833]).

    Returns:
        The distance, equal to ``scipy.spatial.distance.jensenshannon(ref, cur, base)``.
    """
    ref, cur = _counts_pair(reference_counts, current_counts)
    p = ref / ref.sum()
    q = cur / cur.sum()
    mid = (p + q) / 2.0
    js = float(np.sum(_rel_entr(p, mid))) + float(np.sum(_rel_entr(q, mid)))
    if base is not None:
        js /= math.log(base)
    return math.sqrt(max(js, 0.0) / 2.0)


def chi_square(reference_counts: ArrayLike, current_counts: ArrayLike) -> StatResult:
    """Pearson's chi-square goodness-of-fit of the current counts to the reference's shares.

    Expected counts are the reference counts scaled to the current total. A category no side
    has is skipped; a category only the current has (a new category) has expected count 0,
    which makes the statistic infinite and the p-value 0: new values are drift.

    Args:
        reference_counts: Reference count per category.
        current_counts: Current count per category, aligned (new categories: reference 0).

    Returns:
        ``(statistic, p_value)`` equal to ``scipy.stats.chisquare(current, expected)``
        (dof = categories - 1); a single category gives ``(0.0, 1.0)``.
    """
    from scipy.special import chdtrc

    ref, cur = _counts_pair(reference_counts, current_counts)
    seen = (ref > 0) | (cur > 0)
    ref, cur = ref[seen], cur[seen]
    expected = ref * (cur.sum() / ref.sum())
    if (cur[expected == 0] > 0).any():
        return StatResult(math.inf, 0.0)
    if ref.size < 2:
        return StatResult(0.0, 1.0)
    statistic = float(np.sum((cur - expected) ** 2 / expected))
    return StatResult(statistic, float(chdtrc(ref.size - 1, statistic)))


def z_test_proportions(reference_counts: ArrayLike, current_counts: ArrayLike) -> StatResult:
    """Two-proportion z-test for a binary column, from aligned counts of its two values.

    The tested proportion is the share of the second value; the pooled proportion gives the
    standard error, as in Evidently's ``z`` test.

    Args:
        reference_counts: Reference counts of the (at most) two values.
        current_counts: Current counts of the same values.

    Returns:
        ``(z, two_sided_p_value)``; one value seen on both sides gives ``(0.0, 1.0)``.

    Raises:
        InvalidArgumentError: More than two values.
    """
    ref, cur = _counts_pair(reference_counts, current_counts)
    if ref.size > 2:
        raise InvalidArgumentError(
            f"The z-test compares two proportions: the column has {ref.size} values.",
            hint="Use 'chisquare' or 'jensenshannon' for columns with more than two values.",
        )
    n1, n2 = ref.sum(), cur.sum()
    p1 = ref[-1] / n1 if ref.size == 2 else 0.0
    p2 = cur[-1] / n2 if cur.size == 2 else 0.0
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    variance = pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2)
    if variance <= 0:
        return StatResult(0.0, 1.0)
    z = float((p1 - p2) / math.sqrt(variance))
    return StatResult(z, math.erfc(abs(z) / math.sqrt(2.0)))  # = 2 * Phi(-|z|)
