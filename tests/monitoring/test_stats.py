"""The drift statistics against SciPy (or a brute-force loop) on hypothesis-generated data."""

from __future__ import annotations

import math
import warnings
from unittest.mock import patch

import numpy as np
import pytest
import scipy.stats
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy.spatial.distance import jensenshannon

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring import stats

# Values from a small pool (many ties) or anywhere in +-1e6: both shapes matter, ties are
# where merged-CDF code goes wrong.
_pool = st.lists(
    st.floats(-1e3, 1e3, allow_nan=False, allow_subnormal=False), min_size=1, max_size=6
)
_anywhere = st.floats(-1e6, 1e6, allow_nan=False, allow_subnormal=False)


@st.composite
def samples(draw: st.DrawFn, min_size: int = 1, max_size: int = 80) -> np.ndarray:
    if draw(st.booleans()):
        pool = draw(_pool)
        values = draw(st.lists(st.sampled_from(pool), min_size=min_size, max_size=max_size))
    else:
        values = draw(st.lists(_anywhere, min_size=min_size, max_size=max_size))
    return np.array(values, dtype=np.float64)


@st.composite
def large_samples(draw: st.DrawFn, size: tuple[int, int]) -> np.ndarray:
    """Arrays past KS's exact-p-value limit, drawn from a seed (hypothesis picks the shape)."""
    rng = np.random.default_rng(draw(st.integers(0, 2**32 - 1)))
    n = draw(st.integers(*size))
    if draw(st.booleans()):
        return rng.integers(0, draw(st.integers(1, 50)), size=n).astype(np.float64)
    return rng.normal(draw(st.floats(-1, 1)), draw(st.floats(0.1, 3)), size=n)


def close(a: float, b: float, scale: float = 1.0) -> bool:
    return math.isclose(a, b, rel_tol=1e-9, abs_tol=1e-9 * max(1.0, scale))


def span(*arrays: np.ndarray) -> float:
    both = np.concatenate(arrays)
    return float(both.max() - both.min())


def scipy_ks(u: np.ndarray, v: np.ndarray) -> scipy.stats._stats_py.KstestResult:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # "exact calculation unsuccessful"
        return scipy.stats.ks_2samp(u, v)


class TestWasserstein:
    @settings(max_examples=80, deadline=None)
    @given(samples(), samples())
    def test_equals_scipy(self, u: np.ndarray, v: np.ndarray) -> None:
        expected = scipy.stats.wasserstein_distance(u, v)
        assert close(stats.wasserstein_distance(u, v), expected)

    @settings(max_examples=100, deadline=None)
    @given(samples(), samples())
    def test_quantile_path_with_a_reference_index_equals_scipy(
        self, u: np.ndarray, v: np.ndarray
    ) -> None:
        u_sorted = np.sort(u)
        index = stats.window_index(u_sorted)
        std = max(float(np.std(u)), stats.MIN_STD)
        got = stats.wasserstein_normed(u_sorted, np.sort(v), presorted=True, reference_index=index)
        expected = scipy.stats.wasserstein_distance(u, v) / std
        # Sums of integrals of the quantile function: exact up to rounding on the data's span.
        assert close(got, expected, span(u, v) / std)

    @settings(max_examples=60, deadline=None)
    @given(samples(), samples(), st.integers(1, 9))
    def test_chunked_loops_equal_scipy(self, u: np.ndarray, v: np.ndarray, chunk: int) -> None:
        u_sorted, v_sorted = np.sort(u), np.sort(v)
        index = stats.window_index(u_sorted)
        std = max(float(np.std(u)), stats.MIN_STD)
        with patch.object(stats, "_CHUNK", chunk):
            merged = stats.wasserstein_distance(u, v)
            quantiles = stats.wasserstein_normed(
                u_sorted, v_sorted, presorted=True, reference_index=index
            )
            if max(u.size, v.size) > 4:  # the large-sample KS path, on small samples
                with patch.object(stats, "KS_EXACT_MAX_N", 4):
                    got = stats.ks_2samp(u, v)
                asymp = scipy.stats.ks_2samp(u, v, method="asymp")
                assert got.statistic == asymp.statistic
                assert close(got.p_value, asymp.pvalue)
        expected = scipy.stats.wasserstein_distance(u, v)
        assert close(merged, expected)
        assert close(quantiles, expected / std, span(u, v) / std)

    @settings(max_examples=30, deadline=None)
    @given(large_samples((2_000, 40_000)), st.data())
    def test_window_on_large_references_equals_scipy(
        self, u: np.ndarray, data: st.DataObject
    ) -> None:
        v = data.draw(large_samples((1, u.size // data.draw(st.sampled_from([1, 16, 200])))))
        u_sorted = np.sort(u)
        index = stats.window_index(u_sorted)
        std = max(float(np.std(u)), stats.MIN_STD)
        got = stats.wasserstein_normed(u_sorted, np.sort(v), presorted=True, reference_index=index)
        expected = scipy.stats.wasserstein_distance(u, v) / std
        assert close(got, expected, span(u, v) / std)

    @settings(max_examples=60, deadline=None)
    @given(samples(min_size=2))
    def test_normed_divides_by_the_population_std_with_evidentlys_floor(
        self, u: np.ndarray
    ) -> None:
        v = u + 1.0
        expected = scipy.stats.wasserstein_distance(u, v) / max(np.std(u), 0.001)
        assert close(stats.wasserstein_normed(u, v), expected)

    def test_constant_reference_uses_the_floor(self) -> None:
        assert stats.wasserstein_normed([3.0, 3.0, 3.0], [3.0, 3.0]) == 0.0
        assert stats.wasserstein_normed([3.0, 3.0], [3.5]) == pytest.approx(500.0)

    @pytest.mark.parametrize(
        ("u", "message"),
        [
            ([], "reference sample is empty"),
            ([1.0, float("nan")], "reference sample holds NaN or infinite"),
            ([1.0, float("-inf")], "reference sample holds NaN or infinite"),
        ],
    )
    def test_bad_samples_raise(self, u: list[float], message: str) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            stats.wasserstein_distance(u, [1.0])

    def test_two_dimensional_input_raises(self) -> None:
        with pytest.raises(InvalidArgumentError, match=r"must be 1-D, got shape \(2, 2\)"):
            stats.wasserstein_distance(np.ones((2, 2)), [1.0])


class TestKolmogorovSmirnov:
    @settings(max_examples=80, deadline=None)
    @given(samples(), samples())
    def test_exact_regime_equals_scipy(self, u: np.ndarray, v: np.ndarray) -> None:
        expected = scipy_ks(u, v)
        got = stats.ks_2samp(u, v)
        assert close(got.statistic, expected.statistic)
        assert close(got.p_value, expected.pvalue)

    @settings(max_examples=12, deadline=None)
    @given(large_samples((10_001, 16_000)), large_samples((9_000, 14_000)))
    def test_large_samples_equal_scipy(self, u: np.ndarray, v: np.ndarray) -> None:
        expected = scipy_ks(u, v)
        got = stats.ks_2samp(u, v)
        assert got.statistic == expected.statistic
        assert close(got.p_value, expected.pvalue)

    @settings(max_examples=12, deadline=None)
    @given(large_samples((16_000, 24_000)), st.data())
    def test_small_window_against_a_large_sample_equals_scipy(
        self, u: np.ndarray, data: st.DataObject
    ) -> None:
        v = data.draw(large_samples((1, u.size // 16)))
        for a, b in ((u, v), (v, u)):
            expected = scipy_ks(a, b)
            got = stats.ks_2samp(a, b)
            assert got.statistic == expected.statistic
            assert close(got.p_value, expected.pvalue)


class TestCounts:
    @settings(max_examples=80, deadline=None)
    @given(st.data())
    def test_chi_square_equals_scipy_with_expected_from_the_reference(
        self, data: st.DataObject
    ) -> None:
        k = data.draw(st.integers(2, 12))
        ref = np.array(data.draw(st.lists(st.integers(1, 10**6), min_size=k, max_size=k)))
        cur = np.array(data.draw(st.lists(st.integers(0, 10**6), min_size=k, max_size=k)))
        if cur.sum() == 0:
            cur[0] = 1
        expected = scipy.stats.chisquare(cur, ref * (cur.sum() / ref.sum()))
        got = stats.chi_square(ref, cur)
        assert close(got.statistic, expected.statistic)
        assert close(got.p_value, expected.pvalue)

    def test_chi_square_new_category_is_certain_drift(self) -> None:
        assert stats.chi_square([10, 20, 0], [10, 20, 1]) == (math.inf, 0.0)

    def test_chi_square_skips_categories_neither_side_has(self) -> None:
        assert stats.chi_square([10, 0, 20], [12, 0, 18]) == stats.chi_square([10, 20], [12, 18])

    def test_chi_square_single_category_is_no_drift(self) -> None:
        assert stats.chi_square([40], [3]) == (0.0, 1.0)

    @settings(max_examples=80, deadline=None)
    @given(st.data(), st.sampled_from([None, 2.0, math.e, 10.0]))
    def test_jensen_shannon_equals_scipy(self, data: st.DataObject, base: float | None) -> None:
        k = data.draw(st.integers(1, 12))
        counts = st.lists(st.integers(0, 10**6), min_size=k, max_size=k)
        ref, cur = np.array(data.draw(counts)), np.array(data.draw(counts))
        ref[0] += ref.sum() == 0
        cur[-1] += cur.sum() == 0
        assert close(stats.jensen_shannon(ref, cur, base=base), jensenshannon(ref, cur, base=base))

    def test_jensen_shannon_of_disjoint_distributions_is_sqrt_ln2(self) -> None:
        assert stats.jensen_shannon([5, 0], [0, 7]) == pytest.approx(math.sqrt(math.log(2)))

    @settings(max_examples=100, deadline=None)
    @given(st.integers(0, 500), st.integers(0, 500), st.integers(0, 500), st.integers(0, 500))
    def test_z_test_equals_the_two_proportion_formula(
        self, a0: int, a1: int, b0: int, b1: int
    ) -> None:
        if a0 + a1 == 0 or b0 + b1 == 0:
            return
        got = stats.z_test_proportions([a0, a1], [b0, b1])
        n1, n2 = a0 + a1, b0 + b1
        p1, p2 = a1 / n1, b1 / n2
        pooled = (a1 + b1) / (n1 + n2)
        if pooled in (0.0, 1.0):
            assert got == (0.0, 1.0)
            return
        z = (p1 - p2) / math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
        assert close(got.statistic, z)
        assert close(got.p_value, 2 * (1 - scipy.stats.norm.cdf(abs(z))))

    def test_z_test_refuses_more_than_two_values(self) -> None:
        with pytest.raises(InvalidArgumentError, match="compares two proportions: the column"):
            stats.z_test_proportions([1, 2, 3], [1, 2, 3])

    @pytest.mark.parametrize(
        ("ref", "cur", "message"),
        [
            ([1, 2], [1, 2, 3], "must be 1-D and aligned"),
            ([0, 0], [1, 2], "sums to 0: one side has no values"),
            ([1, -1], [1, 2], "must not be negative"),
        ],
    )
    def test_bad_counts_raise(self, ref: list[int], cur: list[int], message: str) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            stats.jensen_shannon(ref, cur)


def brute_force_psi(u: np.ndarray, v: np.ndarray, bins: int, epsilon: float) -> float:
    edges = sorted(set(np.quantile(u, [i / bins for i in range(1, bins)]).tolist()))

    def shares(sample: np.ndarray) -> list[float]:
        counts = [0] * (len(edges) + 1)
        for x in sample.tolist():
            counts[sum(1 for e in edges if e <= x)] += 1
        return [c / len(sample) or epsilon for c in counts]

    return sum((q - p) * math.log(q / p) for p, q in zip(shares(u), shares(v), strict=True))


class TestPSI:
    @settings(max_examples=80, deadline=None)
    @given(samples(), samples(), st.integers(2, 12), st.sampled_from([1e-4, 1e-6]))
    def test_equals_a_brute_force_loop(
        self, u: np.ndarray, v: np.ndarray, bins: int, epsilon: float
    ) -> None:
        expected = brute_force_psi(u, v, bins, epsilon)
        assert close(stats.psi(u, v, bins=bins, epsilon=epsilon), expected)

    def test_identical_samples_have_zero_psi_and_a_shift_a_large_one(self) -> None:
        rng = np.random.default_rng(0)
        u = rng.normal(size=5000)
        assert stats.psi(u, u) == 0.0
        assert stats.psi(u, u + 1.0) > 0.25

    def test_counts_give_empty_categories_epsilon(self) -> None:
        got = stats.psi_counts([50, 50, 0], [50, 40, 10])
        p, q = [0.5, 0.5, 1e-4], [0.5, 0.4, 0.1]
        assert got == pytest.approx(
            sum((b - a) * math.log(b / a) for a, b in zip(p, q, strict=True))
        )

    def test_needs_two_bins(self) -> None:
        with pytest.raises(InvalidArgumentError, match="PSI needs at least 2 bins, got 1"):
            stats.psi([1.0, 2.0], [1.0], bins=1)


class TestHistogramCounts:
    @settings(max_examples=100, deadline=None)
    @given(samples(), samples())
    def test_equals_numpys_sturges_histogram_or_value_counts(
        self, u: np.ndarray, v: np.ndarray
    ) -> None:
        ref_counts, cur_counts = stats.histogram_counts(u, v)
        if np.unique(u).size > 20:
            edges = np.histogram_bin_edges(np.concatenate([u, v]), bins="sturges")
            assert ref_counts.tolist() == np.histogram(u, edges)[0].tolist()
            assert cur_counts.tolist() == np.histogram(v, edges)[0].tolist()
        else:
            keys = np.union1d(u, v)
            assert ref_counts.tolist() == [int(np.sum(u == k)) for k in keys]
            assert cur_counts.tolist() == [int(np.sum(v == k)) for k in keys]
