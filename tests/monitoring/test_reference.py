"""A prepared reference: kinds, lookups, reuse across windows, and its errors."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import scipy.stats

from shipyard.errors import InvalidArgumentError
from shipyard.monitoring import CategoricalSample, NumericSample, Reference, detect_drift


def table(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "age": rng.normal(40, 10, size=n),
            "city": rng.choice(["a", "b", "c"], size=n),
            "visits": rng.integers(0, 5, size=n),
        }
    )


def test_columns_are_prepared_once_with_their_kinds() -> None:
    reference = Reference.from_data(table(500), numeric=["visits"])
    assert reference.columns == ("age", "city", "visits")
    assert isinstance(reference["age"], NumericSample)
    assert isinstance(reference["city"], CategoricalSample)
    assert reference.kind("visits") == "numeric"
    assert "age" in reference and "nope" not in reference
    assert list(reference) == ["age", "city", "visits"] and len(reference) == 3
    assert repr(reference) == "Reference(age: numeric, city: categorical, visits: numeric)"
    assert np.all(np.diff(reference["age"].values) >= 0)  # type: ignore[union-attr]


def test_a_subset_of_columns() -> None:
    assert Reference.from_data(table(50), columns=["city"]).columns == ("city",)


def test_windows_against_a_reference_match_scipy() -> None:
    ref = table(50_000)
    reference = Reference.from_data(ref)
    for seed in (1, 2, 3):
        window = table(1_000, seed=seed)
        window["age"] += 3.0
        result = detect_drift(reference, window, columns=["age"])["age"]
        expected = scipy.stats.wasserstein_distance(ref["age"], window["age"]) / np.std(ref["age"])
        assert result.score == pytest.approx(expected, rel=1e-12)
        assert result.drifted


def test_unknown_columns_raise_with_a_suggestion() -> None:
    reference = Reference.from_data(table(10))
    with pytest.raises(InvalidArgumentError, match=r"Column 'aeg' is not in the reference\. Did"):
        reference["aeg"]
    with pytest.raises(InvalidArgumentError, match="Column 'citi' is not in the reference data"):
        Reference.from_data(table(10), columns=["citi"])
    with pytest.raises(InvalidArgumentError, match="Column 'x' is not in the reference data"):
        Reference.from_data(table(10), categorical=["x"])
    with pytest.raises(InvalidArgumentError, match=r"Columns \['age'\] are declared both"):
        Reference.from_data(table(10), categorical=["age"], numeric=["age"])
