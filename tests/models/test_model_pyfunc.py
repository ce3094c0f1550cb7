"""pyfunc flavor: plain Python objects with predict(), pickled by reference or by value."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.errors import ConfigError, InvalidArgumentError
from shipyard.models import load_model, save_model


class Doubler:
    """A model with predict only."""

    def __init__(self, factor: float = 2.0) -> None:
        self.factor = factor

    def predict(self, X: Any) -> Any:
        return np.asarray(X, dtype=float).sum(axis=1) * self.factor


class Thresholder:
    """A model with predict and predict_proba, fed DataFrames."""

    def predict_proba(self, X: pd.DataFrame) -> np.ndarray:
        p = 1 / (1 + np.exp(-(X["a"].to_numpy() - X["b"].to_numpy())))
        return np.column_stack([1 - p, p])

    def predict(self, X: pd.DataFrame) -> np.ndarray:
        return (self.predict_proba(X)[:, 1] > 0.5).astype(int)


def test_round_trip_with_predict_only(tmp_path: Path) -> None:
    manifest = save_model(Doubler(3.0), tmp_path / "m", input_example=[[1.0, 2.0]])
    assert manifest.flavor == "pyfunc"
    assert manifest.flavor_config["serializer"] == "pickle"
    assert manifest.flavor_config["python_class"].endswith("test_model_pyfunc.Doubler")
    assert manifest.signature is not None
    assert manifest.signature.outputs[0].dtype == "float64"

    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict([[1.0, 2.0], [0.5, 0.5]]), [9.0, 3.0])
    assert loaded.raw.factor == 3.0
    assert not hasattr(loaded, "predict_proba")
    with pytest.raises(AttributeError, match=r"This pyfunc model \(Doubler\) has no predict_proba"):
        loaded.predict_proba([[1.0, 2.0]])


def test_round_trip_with_predict_proba_and_columns(tmp_path: Path) -> None:
    example = pd.DataFrame({"a": [0.0, 2.0], "b": [1.0, 0.0]})
    save_model(Thresholder(), tmp_path / "m", input_example=example)
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(example), [0, 1])
    assert loaded.predict_proba([[3.0, 0.0]]).shape == (1, 2)  # rows get the column names


def test_object_without_predict_is_refused(tmp_path: Path) -> None:
    with pytest.raises(
        InvalidArgumentError, match=r"Cannot tell which flavor saves a builtins\.dict"
    ):
        save_model({"weights": [1, 2]}, tmp_path / "m")
    with pytest.raises(InvalidArgumentError, match="needs a predict"):
        save_model({"weights": [1, 2]}, tmp_path / "m", flavor="pyfunc")


def test_a_class_defined_in_a_function_cannot_be_pickled(tmp_path: Path) -> None:
    class Local:
        def predict(self, X: Any) -> Any:
            return X

    with pytest.raises(InvalidArgumentError, match=r"(?s)Cannot pickle.*module level"):
        save_model(Local(), tmp_path / "m")


def _python(code: str, cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True,
        text=True,
        cwd=cwd,
        timeout=120,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout.strip()


def test_a_main_class_is_pickled_by_value_and_loads_elsewhere(tmp_path: Path) -> None:
    pytest.importorskip("cloudpickle")
    _python(
        f"""
        from shipyard.models import save_model

        class Plus1:
            def predict(self, X):
                return [x + 1 for x in X]

        m = save_model(Plus1(), {str(tmp_path / "m")!r})
        assert m.flavor_config["serializer"] == "cloudpickle", m.flavor_config
        assert any(r.startswith("cloudpickle==") for r in m.requirements), m.requirements
        """,
        tmp_path,
    )
    # A fresh interpreter, where no Plus1 class exists, still loads and runs it.
    out = _python(
        f"""
        from shipyard.models import load_model
        print(load_model({str(tmp_path / "m")!r}).predict([1, 2]))
        """,
        tmp_path,
    )
    assert out == "[2, 3]"


def test_a_class_that_is_no_longer_importable_gets_a_clear_error(tmp_path: Path) -> None:
    module = tmp_path / "src" / "mymodel_xyz.py"
    module.parent.mkdir()
    module.write_text("class M:\n    def predict(self, X):\n        return X\n")
    _python(
        f"""
        import sys
        sys.path.insert(0, {str(module.parent)!r})
        from mymodel_xyz import M
        from shipyard.models import save_model
        save_model(M(), {str(tmp_path / "m")!r})
        """,
        tmp_path,
    )
    with pytest.raises(
        ConfigError, match=r"(?s)class mymodel_xyz\.M cannot be imported.*PYTHONPATH"
    ):
        load_model(tmp_path / "m")
