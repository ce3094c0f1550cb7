"""Column samples: kind inference as Evidently does it, missing values, category alignment."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring import CategoricalSample, ColumnKind, NumericSample, column_sample
from shipyard.monitoring.columns import infer_kind, table_columns


@pytest.mark.parametrize(
    ("values", "kind"),
    [
        (np.array([1.5, 2.0]), ColumnKind.NUMERIC),
        (pd.Series([1.0, None], dtype="Float64"), ColumnKind.NUMERIC),
        (np.arange(11), ColumnKind.NUMERIC),
        (np.arange(10), ColumnKind.CATEGORICAL),
        (pd.Series([1, 2, None], dtype="Int64"), ColumnKind.CATEGORICAL),
        (np.array([True, False]), ColumnKind.CATEGORICAL),
        (pd.Series(["a", "b"]), ColumnKind.CATEGORICAL),
        (np.array(["a", "b"]), ColumnKind.CATEGORICAL),
        (np.array(["a", None], dtype=object), ColumnKind.CATEGORICAL),
        (pd.Series(pd.Categorical(["a"])), ColumnKind.CATEGORICAL),
        ([1.0, 2.0], ColumnKind.NUMERIC),
    ],
)
def test_kind_follows_evidentlys_inference(values: object, kind: ColumnKind) -> None:
    assert infer_kind(values) is kind


def test_datetime_columns_are_refused() -> None:
    with pytest.raises(InvalidArgumentError, match="Cannot compare a column of dtype datetime64"):
        infer_kind(pd.Series(pd.to_datetime(["2024-01-01"])))


def test_numeric_sample_is_sorted_finite_values() -> None:
    sample = column_sample(pd.Series([3.0, np.nan, -np.inf, 1.0, 2.0, 2.0], name="x"))
    assert isinstance(sample, NumericSample)
    assert sample.name == "x"
    assert sample.values.tolist() == [1.0, 2.0, 2.0, 3.0]
    assert (sample.n, sample.n_missing, sample.missing_share) == (4, 2, 2 / 6)
    assert sample.n_unique == 3
    assert [a.tolist() for a in sample.distinct] == [[1.0, 2.0, 3.0], [1, 2, 1]]


def test_sample_does_not_modify_the_input() -> None:
    values = np.array([3.0, 1.0, 2.0])
    column_sample(values)
    assert values.tolist() == [3.0, 1.0, 2.0]


def test_categorical_sample_counts_and_aligns_new_categories_last() -> None:
    ref = column_sample(pd.Series(pd.Categorical(["a", "b", "a", None], categories=list("abz"))))
    assert isinstance(ref, CategoricalSample)
    assert dict(zip(ref.categories.tolist(), ref.counts.tolist(), strict=True)) == {"a": 2, "b": 1}
    assert ref.n_missing == 1
    cur = column_sample(["c", "b", "b"], kind="categorical")
    labels, ref_counts, cur_counts = ref.align(cur)  # type: ignore[union-attr]
    assert dict(
        zip(
            labels.tolist(), zip(ref_counts.tolist(), cur_counts.tolist(), strict=True), strict=True
        )
    ) == {
        "a": (2, 0),
        "b": (1, 2),
        "c": (0, 1),
    }
    assert labels.tolist()[-1] == "c"


def test_numbers_forced_categorical_are_counted_by_value() -> None:
    sample = column_sample(np.array([0.5, 0.5, np.nan, 1.0]), kind="categorical")
    assert sorted(zip(sample.categories.tolist(), sample.counts.tolist(), strict=True)) == [
        (0.5, 2),
        (1.0, 1),
    ]
    assert sample.n_missing == 1


def test_text_in_a_numeric_column_raises() -> None:
    with pytest.raises(InvalidArgumentError, match="holds values that are not numbers"):
        column_sample(np.array(["a"], dtype=object), kind="numeric")


def test_unknown_kind_raises() -> None:
    with pytest.raises(InvalidArgumentError, match="Column 'x': unknown kind 'text'"):
        column_sample([1.0], name="x", kind="text")


def test_table_columns_refuses_a_single_column() -> None:
    with pytest.raises(InvalidArgumentError, match=r"Expected a table .* got list"):
        table_columns([1.0, 2.0])


def test_high_cardinality_alignment_matches_the_small_one() -> None:
    ref = column_sample([f"id{i}" for i in range(400)] * 2, kind="categorical")
    cur = column_sample([f"id{i}" for i in range(300, 700)], kind="categorical")
    labels, ref_counts, cur_counts = ref.align(cur)  # type: ignore[union-attr]
    assert labels.size == 700
    assert ref_counts.sum() == 800 and cur_counts.sum() == 400
    assert dict(zip(labels.tolist(), cur_counts.tolist(), strict=True))["id350"] == 1
    assert dict(zip(labels.tolist(), ref_counts.tolist(), strict=True))["id650"] == 0
