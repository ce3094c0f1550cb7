"""Dataset drift: per-column tests and thresholds, the drifted share, references, predictions."""

from __future__ import annotations

import subprocess
import sys

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring import (
    ChiSquareDetector,
    DatasetDrift,
    DriftResult,
    Reference,
    WassersteinDetector,
    column_drift,
    detect_drift,
    prediction_drift,
)


def frames(n: int, shift: float = 0.0, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "a": rng.normal(shift, size=n),
            "b": rng.normal(size=n),
            "city": rng.choice(["x", "y", "z"], size=n, p=[0.5, 0.3, 0.2]),
            "flag": rng.integers(0, 2, size=n),
        }
    )


def result(column: str, drifted: bool) -> DriftResult:
    return DriftResult(column, "ks", "numeric", 0.0, 0.05, drifted, 0.0, 0.0, 1, 1, 0.0, 0.0)


class TestDatasetDrift:
    @settings(max_examples=60, deadline=None)
    @given(st.lists(st.booleans(), max_size=30), st.floats(0.01, 1.0))
    def test_drifts_when_the_share_of_drifted_columns_reaches_the_threshold(
        self, verdicts: list[bool], share: float
    ) -> None:
        report = DatasetDrift(
            tuple(result(f"c{i}", v) for i, v in enumerate(verdicts)), drift_share=share
        )
        assert report.n_drifted == sum(verdicts)
        expected_share = sum(verdicts) / len(verdicts) if verdicts else 0.0
        assert report.share_drifted == expected_share
        assert report.drifted == (bool(verdicts) and expected_share >= share)

    def test_half_the_columns_drifted_is_dataset_drift_by_default(self) -> None:
        report = DatasetDrift((result("a", True), result("b", False)))
        assert report.drift_share == 0.5
        assert report.drifted
        assert report.drifted_columns == ("a",)
        assert report["b"] is report.columns[1]

    def test_unknown_column_lookup_suggests(self) -> None:
        with pytest.raises(KeyError, match="Did you mean 'alpha'"):
            DatasetDrift((result("alpha", True),))["alpah"]


class TestDetectDrift:
    def test_uses_evidentlys_default_test_per_column(self) -> None:
        report = detect_drift(frames(5000), frames(4000, shift=0.5, seed=1))
        tests = {r.column: r.test for r in report.columns}
        assert tests == {
            "a": "wasserstein",
            "b": "wasserstein",
            "city": "jensenshannon",
            "flag": "jensenshannon",
        }
        assert report.drifted_columns == ("a",)
        assert not report.drifted
        small = detect_drift(frames(800), frames(500, seed=1))
        assert [r.test for r in small.columns] == ["ks", "ks", "chisquare", "z"]

    def test_thresholds_and_tests_per_column(self) -> None:
        report = detect_drift(
            frames(5000),
            frames(4000, shift=0.5, seed=1),
            tests={"b": "psi", "city": ChiSquareDetector(threshold=0.01)},
            thresholds={"a": 0.9, "flag": 0.0},
            drift_share=0.5,
        )
        assert (report["a"].threshold, report["a"].drifted) == (0.9, False)
        assert (report["b"].test, report["city"].test) == ("psi", "chisquare")
        assert report["city"].threshold == 0.01
        assert (report["flag"].threshold, report["flag"].drifted) == (0.0, True)

    def test_threshold_overrides_a_detector_instance(self) -> None:
        report = detect_drift(
            frames(3000),
            frames(3000, shift=0.2, seed=1),
            columns=["a"],
            tests={"a": WassersteinDetector(threshold=0.01)},
            thresholds={"a": 0.7},
        )
        assert report["a"].threshold == 0.7

    def test_declared_kinds_override_the_dtype(self) -> None:
        report = detect_drift(frames(3000), frames(3000, seed=1), numeric=["flag"])
        assert report["flag"].kind == "numeric"
        assert report["flag"].test == "jensenshannon"  # two values: numeric but few
        report = detect_drift(frames(3000), frames(3000, seed=1), categorical=["a"])
        assert (report["a"].kind, report["a"].test) == ("categorical", "jensenshannon")

    def test_a_prepared_reference_gives_the_same_results(self) -> None:
        ref, cur = frames(20_000), frames(800, shift=0.3, seed=2)
        reference = Reference.from_data(ref)
        prepared = detect_drift(reference, cur)
        direct = detect_drift(ref, cur)
        for a, b in zip(prepared.columns, direct.columns, strict=True):
            assert (a.column, a.test, a.drifted) == (b.column, b.test, b.drifted)
            assert a.score == pytest.approx(b.score, rel=1e-9, abs=1e-12)
        assert detect_drift(reference, frames(900, seed=3)).columns[0].column == "a"

    def test_accepts_mappings_and_2d_arrays(self) -> None:
        rng = np.random.default_rng(0)
        ref, cur = rng.normal(size=(2000, 3)), rng.normal(size=(2000, 3))
        cur[:, 1] += 1
        report = detect_drift(ref, cur)
        assert [r.column for r in report.columns] == ["0", "1", "2"]
        assert report.drifted_columns == ("1",)
        as_dict = detect_drift({"x": ref[:, 1]}, {"x": cur[:, 1]})
        assert as_dict["x"].score == report["1"].score

    @pytest.mark.parametrize(
        ("kwargs", "message"),
        [
            ({"columns": ["a", "nope"]}, "Column 'nope' is not in the reference data"),
            ({"thresholds": {"ab": 0.1}}, "`thresholds` names column 'ab'.*Did you mean"),
            ({"tests": {"a": "kss"}}, "Unknown drift test 'kss'. Did you mean 'ks'"),
            ({"drift_share": 0.0}, r"drift_share must be in \(0, 1\], got 0.0"),
            ({"categorical": ["a"], "numeric": ["a"]}, "declared both categorical and numeric"),
        ],
    )
    def test_bad_arguments_raise(self, kwargs: dict[str, object], message: str) -> None:
        with pytest.raises(InvalidArgumentError, match=message):
            detect_drift(frames(100), frames(100), **kwargs)  # type: ignore[arg-type]

    def test_a_column_missing_from_the_current_data_raises(self) -> None:
        with pytest.raises(InvalidArgumentError, match=r"Columns \['city'\] are missing"):
            detect_drift(frames(100), frames(100).drop(columns="city"))

    def test_a_column_empty_after_dropping_missing_values_raises(self) -> None:
        cur = frames(100)
        cur["b"] = np.nan
        with pytest.raises(InvalidArgumentError, match="Column 'b' has no values in the current"):
            detect_drift(frames(100), cur)

    def test_kinds_cannot_be_declared_on_a_prepared_reference(self) -> None:
        with pytest.raises(InvalidArgumentError, match="apply to a table, not to a prepared"):
            detect_drift(Reference.from_data(frames(10)), frames(10), categorical=["a"])


class TestPredictionDrift:
    def test_regression_outputs_from_tables_arrays_and_references(self) -> None:
        rng = np.random.default_rng(0)
        ref = pd.DataFrame({"prediction": rng.normal(size=3000)})
        cur = pd.DataFrame({"prediction": rng.normal(0.4, size=2000)})
        from_tables = prediction_drift(ref, cur)
        assert (from_tables.column, from_tables.test, from_tables.drifted) == (
            "prediction",
            "wasserstein",
            True,
        )
        from_arrays = prediction_drift(ref["prediction"].to_numpy(), cur["prediction"].to_numpy())
        assert from_arrays.score == from_tables.score
        prepared = prediction_drift(Reference.from_data(ref), cur)
        assert prepared.score == pytest.approx(from_tables.score)

    def test_class_labels_are_categorical(self) -> None:
        ref = {"label": np.array([0] * 700 + [1] * 300)}
        cur = {"label": np.array([0] * 400 + [1] * 600)}
        result = prediction_drift(ref, cur, column="label")
        assert (result.kind, result.test, result.drifted) == ("categorical", "z", True)
        numeric = prediction_drift(ref, cur, column="label", kind="numeric", test="ks")
        assert numeric.kind == "numeric"

    def test_missing_prediction_column_raises(self) -> None:
        with pytest.raises(InvalidArgumentError, match="no prediction column 'prediction'"):
            prediction_drift({"pred": [1.0]}, {"pred": [1.0]})


def test_column_drift_names_the_result() -> None:
    result = column_drift([1.0, 2.0, 3.0], [1.0, 2.0, 9.0], name="x", test="ks")
    assert (result.column, result.test) == ("x", "ks")


def test_import_loads_neither_numpy_nor_scipy() -> None:
    code = (
        "import sys, shipyard.monitoring as m; "
        "assert m.__all__ == sorted(m.__all__, key=lambda n: (not n.isupper(), "
        "not n[0].isupper(), n)), m.__all__; "
        "print(sorted(x for x in ('numpy', 'scipy', 'pandas') if x in sys.modules)); "
        "m.detect_drift; print('numpy' in sys.modules)"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.split() == ["[]", "True"]
