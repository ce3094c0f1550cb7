"""Drift detectors: Evidently's default choice of test, thresholds, verdicts and edge cases."""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring import (
    DETECTORS,
    ChiSquareDetector,
    DriftDetector,
    JensenShannonDetector,
    KSDetector,
    PSIDetector,
    WassersteinDetector,
    ZTestDetector,
    column_sample,
    default_test,
    get_detector,
)
from shipyard.monitoring.detectors import default_detector

RNG = np.random.default_rng(0)


class TestDefaultTest:
    @pytest.mark.parametrize(
        ("kind", "n_reference", "n_unique", "test"),
        [
            ("numeric", 1000, 6, "ks"),
            ("numeric", 1000, 5, "chisquare"),
            ("numeric", 1000, 3, "chisquare"),
            ("numeric", 1000, 2, "z"),
            ("numeric", 10, 1, "z"),
            ("categorical", 1000, 50, "chisquare"),
            ("categorical", 1000, 3, "chisquare"),
            ("categorical", 1000, 2, "z"),
            ("numeric", 1001, 6, "wasserstein"),
            ("numeric", 1001, 5, "jensenshannon"),
            ("numeric", 1001, 1, "jensenshannon"),
            ("categorical", 1001, 2, "jensenshannon"),
            ("categorical", 10**6, 10, "jensenshannon"),
            ("numeric", 10**6, 10**6, "wasserstein"),
        ],
    )
    def test_matches_evidentlys_rule(
        self, kind: str, n_reference: int, n_unique: int, test: str
    ) -> None:
        assert default_test(kind, n_reference, n_unique) == test

    def test_counts_distinct_values_of_both_sides_together(self) -> None:
        ref = column_sample(np.tile([1.0, 2.0, 3.0], 400))  # 1200 values, 3 distinct
        assert default_detector(ref, column_sample([1.0, 2.0])).name == "jensenshannon"
        assert default_detector(ref, column_sample([4.0, 5.0, 6.0])).name == "wasserstein"

    def test_counts_reference_values_after_dropping_missing_ones(self) -> None:
        values = np.concatenate([RNG.normal(size=1000), [np.nan] * 500])
        ref = column_sample(values)
        assert ref.n == 1000
        assert default_detector(ref, column_sample(RNG.normal(size=10))).name == "ks"

    def test_default_thresholds_are_evidentlys(self) -> None:
        defaults = {name: cls().threshold for name, cls in DETECTORS.items()}
        assert defaults == {
            "chisquare": 0.05,
            "jensenshannon": 0.1,
            "ks": 0.05,
            "psi": 0.1,
            "wasserstein": 0.1,
            "z": 0.05,
        }


class TestVerdicts:
    def test_wasserstein_score_is_the_normed_distance(self) -> None:
        ref, cur = RNG.normal(size=3000), RNG.normal(0.3, size=2000)
        result = WassersteinDetector().compute(ref, cur)
        expected = scipy.stats.wasserstein_distance(ref, cur) / np.std(ref)
        assert result.score == pytest.approx(expected, rel=1e-12)
        assert (result.test, result.kind, result.p_value, result.drifted) == (
            "wasserstein",
            "numeric",
            None,
            True,
        )
        assert result.statistic == result.score

    def test_distance_drifts_at_the_threshold_itself(self) -> None:
        ref, cur = np.array([0.0, 2.0]), np.array([0.1, 2.1])  # std 1, distance 0.1
        assert WassersteinDetector(threshold=0.1).compute(ref, cur).drifted
        assert not WassersteinDetector(threshold=0.1000001).compute(ref, cur).drifted

    def test_p_value_tests_drift_below_the_threshold_and_ks_at_it(self) -> None:
        class Fixed(ChiSquareDetector):
            def _measure(self, ref: object, cur: object) -> tuple[float, float, float]:
                return 0.05, 1.0, 0.05

        class FixedKS(KSDetector):
            def _measure(self, ref: object, cur: object) -> tuple[float, float, float]:
                return 0.05, 1.0, 0.05

        assert not Fixed().compute(["a"], ["a"]).drifted
        assert FixedKS().compute([1.0], [1.0]).drifted

    def test_ks_reports_the_statistic_and_p_value(self) -> None:
        ref, cur = RNG.normal(size=300), RNG.normal(0.5, size=200)
        result = KSDetector().compute(ref, cur)
        expected = scipy.stats.ks_2samp(ref, cur)
        assert (result.statistic, result.p_value, result.score) == pytest.approx(
            (expected.statistic, expected.pvalue, expected.pvalue)
        )
        assert result.drifted

    def test_chi_square_new_category_drifts(self) -> None:
        result = ChiSquareDetector().compute(["a", "b"] * 50, ["a", "b", "c"] * 10)
        assert (result.statistic, result.p_value, result.drifted) == (math.inf, 0.0, True)

    def test_jensen_shannon_on_categories(self) -> None:
        ref = pd.Series(["a"] * 60 + ["b"] * 40, name="city")
        cur = pd.Series(["a"] * 30 + ["b"] * 50 + ["c"] * 20)
        result = JensenShannonDetector().compute(ref, cur)
        from scipy.spatial.distance import jensenshannon

        assert result.column == "city"
        assert result.score == pytest.approx(jensenshannon([60, 40, 0], [30, 50, 20]))
        assert result.drifted

    def test_jensen_shannon_on_a_numeric_column_bins_like_evidently(self) -> None:
        ref, cur = RNG.normal(size=2000), RNG.normal(0.2, size=1500)
        edges = np.histogram_bin_edges(np.concatenate([ref, cur]), bins="sturges")
        from scipy.spatial.distance import jensenshannon

        expected = jensenshannon(
            np.histogram(ref, edges)[0] / ref.size, np.histogram(cur, edges)[0] / cur.size
        )
        assert JensenShannonDetector().compute(ref, cur).score == pytest.approx(expected)

    def test_psi_on_numbers_and_categories(self) -> None:
        ref, cur = RNG.normal(size=2000), RNG.normal(1.0, size=2000)
        assert PSIDetector().compute(ref, cur).drifted
        assert not PSIDetector().compute(ref, ref.copy()).drifted
        assert PSIDetector(threshold=0.5).compute(["a", "b"] * 10, ["a"] * 20).drifted

    def test_z_test_on_a_binary_column(self) -> None:
        ref = np.array([True] * 300 + [False] * 700)
        result = ZTestDetector().compute(ref, np.array([True] * 500 + [False] * 500))
        assert result.kind == "categorical"
        assert result.drifted
        assert result.p_value is not None and result.p_value < 1e-10

    def test_threshold_is_configurable(self) -> None:
        ref, cur = RNG.normal(size=3000), RNG.normal(0.15, size=3000)
        assert WassersteinDetector().compute(ref, cur).drifted
        assert not get_detector("wasserstein", threshold=0.5).compute(ref, cur).drifted
        assert get_detector("wasserstein", threshold=0.5).threshold == 0.5

    def test_detectors_satisfy_the_protocol(self) -> None:
        for cls in DETECTORS.values():
            assert isinstance(cls(), DriftDetector)


class TestEdgeCases:
    def test_constant_columns_do_not_drift_unless_the_constant_moves(self) -> None:
        same = WassersteinDetector().compute(np.full(2000, 7.0), np.full(500, 7.0))
        assert (same.score, same.drifted) == (0.0, False)
        moved = column_sample(np.full(2000, 7.0)), column_sample(np.full(500, 8.0))
        detector = default_detector(*moved)
        assert detector.name == "jensenshannon"
        result = detector.compute(*moved)
        assert result.score == pytest.approx(math.sqrt(math.log(2)))
        assert result.drifted

    def test_single_category_on_both_sides_is_no_drift(self) -> None:
        for name in ("chisquare", "jensenshannon", "psi", "z"):
            result = get_detector(name).compute(["x"] * 10, ["x"] * 3)
            assert not result.drifted, name
        assert ZTestDetector().compute(["x"] * 10, ["x"] * 3).p_value == 1.0

    def test_missing_values_are_dropped_and_their_share_reported(self) -> None:
        ref = pd.Series([1.0, 2.0, np.nan, np.inf, 3.0, 4.0, 5.0, 6.0], name="age")
        cur = pd.Series([1.5, None, 2.5, 3.5], dtype="Float64")
        result = KSDetector().compute(ref, cur)
        assert (result.n_reference, result.n_current) == (6, 3)
        assert (result.missing_reference, result.missing_current) == (0.25, 0.25)
        labels = ChiSquareDetector().compute(["a", None, "b", "a"], ["a", "b", None, None])
        assert (labels.missing_reference, labels.missing_current) == (0.25, 0.5)

    def test_empty_after_dropping_missing_values_raises(self) -> None:
        with pytest.raises(
            InvalidArgumentError,
            match="Column 'age' has no values in the current data after dropping 3 missing",
        ):
            WassersteinDetector().compute(pd.Series([1.0, 2.0], name="age"), [np.nan] * 3)
        with pytest.raises(InvalidArgumentError, match=r"has no values in the reference data\.\n"):
            JensenShannonDetector().compute(pd.Series([], dtype="str"), ["a"])

    def test_a_test_on_the_wrong_kind_raises_with_the_usable_ones(self) -> None:
        with pytest.raises(
            InvalidArgumentError,
            match="Test 'wasserstein' does not apply to categorical column 'city'",
        ) as info:
            WassersteinDetector().compute(pd.Series(["a", "b"], name="city"), ["a"])
        assert info.value.hint is not None and "chisquare, jensenshannon, psi, z" in info.value.hint

    def test_unknown_test_name_suggests_the_closest(self) -> None:
        with pytest.raises(InvalidArgumentError, match=r"Unknown drift test 'wasserstien'\. Did"):
            get_detector("wasserstien")

    def test_z_test_on_a_column_with_more_values_raises(self) -> None:
        with pytest.raises(InvalidArgumentError, match="the column has 3 values"):
            ZTestDetector().compute(["a", "b", "c"], ["a"])
