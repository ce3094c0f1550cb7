"""Small fitted models and data shared by the model packaging tests."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest


@pytest.fixture(scope="session")
def xy() -> tuple[np.ndarray, np.ndarray]:
    """A 20-feature binary classification problem, 200 rows."""
    from sklearn.datasets import make_classification

    X, y = make_classification(n_samples=200, n_features=20, n_informative=6, random_state=0)
    return X, y


@pytest.fixture(scope="session")
def frame() -> tuple[pd.DataFrame, np.ndarray]:
    """Mixed columns: age (float), income (int), city (str); label depends on all three."""
    rng = np.random.default_rng(0)
    n = 200
    data = pd.DataFrame(
        {
            "age": rng.uniform(18, 80, n),
            "income": rng.integers(10_000, 200_000, n),
            "city": rng.choice(["paris", "lyon", "nice"], n),
        }
    )
    y = ((data["age"] > 40) ^ (data["city"] == "nice")).astype(int).to_numpy()
    return data, y


@pytest.fixture(scope="session")
def logreg(xy: tuple[np.ndarray, np.ndarray]) -> Any:
    from sklearn.linear_model import LogisticRegression

    X, y = xy
    return LogisticRegression(max_iter=1000).fit(X, y)
