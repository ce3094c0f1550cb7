"""How long saving and loading a small model takes (reported, not asserted).

The goal is log + register in <= 0.5 s; MLflow spends ~14 s inferring requirements alone.
Run with ``-s`` to see the numbers, or read them from the junit properties.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.models import load_model, save_model


def test_save_and_load_time_for_logistic_regression(
    logreg: Any,
    xy: tuple[np.ndarray, np.ndarray],
    tmp_path: Path,
    record_property: pytest.RecordProperty,
) -> None:
    X, _ = xy
    save_model(logreg, tmp_path / "warmup", input_example=X[:5])  # first-use imports
    saves, loads = [], []
    for i in range(5):
        start = time.perf_counter()
        save_model(logreg, tmp_path / f"m{i}", input_example=X[:5])
        saves.append(time.perf_counter() - start)
        start = time.perf_counter()
        load_model(tmp_path / f"m{i}").predict(X[:5])
        loads.append(time.perf_counter() - start)
    save_ms, load_ms = 1000 * min(saves), 1000 * min(loads)
    record_property("save_model_ms", round(save_ms, 2))
    record_property("load_model_ms", round(load_ms, 2))
    print(f"\nLogisticRegression: save_model {save_ms:.1f} ms, load_model+predict {load_ms:.1f} ms")
