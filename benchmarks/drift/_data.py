"""The drift workload's data, generated identically in both virtualenvs (numpy only).

BENCHMARKS.md's drift frames: 20 float64 numeric and 5 categorical columns (10 categories,
labels "c0".."c9"), numpy seed 0; the current frame shifts the mean of 5 numeric columns by
a quarter of their std and the category shares of 2 categorical columns. Each column has its
own stream (``default_rng([0, side, column])``), so a child can build the columns one by one
without holding a second copy, and both sides get the same numbers.
"""

from __future__ import annotations

from typing import Any

import numpy as np

SEED = 0
N_NUMERIC = 20
N_CATEGORICAL = 5
N_LEVELS = 10
SHIFTED_NUMERIC = (0, 1, 2, 3, 4)
SHIFTED_CATEGORICAL = (0, 1)
NUMERIC = tuple(f"num_{j}" for j in range(N_NUMERIC))
CATEGORICAL = tuple(f"cat_{j}" for j in range(N_CATEGORICAL))
LABELS = np.array([f"c{k}" for k in range(N_LEVELS)], dtype=object)
WINDOW = 10_000

_BASE_SHARES = 1.0 / np.arange(1, N_LEVELS + 1)
_BASE_SHARES /= _BASE_SHARES.sum()  # Zipf-like: c0 is the most common label
_SHIFTED_SHARES = _BASE_SHARES[::-1].copy()  # the current flips them: c9 most common


def numeric_column(side: int, j: int, n: int) -> np.ndarray:
    """Column ``num_j`` of the reference (side 0) or current (side 1) frame."""
    rng = np.random.default_rng([SEED, side, j])
    scale = 1.0 + 0.1 * j
    shift = 0.25 * scale if side == 1 and j in SHIFTED_NUMERIC else 0.0
    return rng.normal(float(j) + shift, scale, size=n)


def categorical_codes(side: int, j: int, n: int) -> np.ndarray:
    """Category codes 0..9 of column ``cat_j`` (labels are ``LABELS[codes]``)."""
    rng = np.random.default_rng([SEED, side, N_NUMERIC + j])
    shares = _SHIFTED_SHARES if side == 1 and j in SHIFTED_CATEGORICAL else _BASE_SHARES
    return rng.choice(N_LEVELS, size=n, p=shares).astype(np.int8)


def frame(side: int, n: int) -> Any:
    """The pandas DataFrame of one side: float64 columns, then string label columns."""
    import pandas as pd

    columns: dict[str, Any] = {}
    for j, name in enumerate(NUMERIC):
        columns[name] = numeric_column(side, j, n)
    for j, name in enumerate(CATEGORICAL):
        columns[name] = LABELS[categorical_codes(side, j, n)]
    return pd.DataFrame(columns, copy=False)


def fingerprint(df: Any) -> list[float]:
    """Per-column checksums, compared across the two sides by the runner."""
    out = [round(float(df[name].sum()), 6) for name in NUMERIC]
    out += [float((df[name] == "c0").sum()) for name in CATEGORICAL]
    return out
