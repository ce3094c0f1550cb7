"""ONNX flavor and scikit-learn -> ONNX export."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shipyard.errors import ConfigError, InvalidArgumentError
from shipyard.models import FieldSpec, load_model, save_model
from shipyard.models.flavors.onnx import to_onnx

pytest.importorskip("onnxruntime")
pytest.importorskip("skl2onnx")


def test_to_onnx_matches_sklearn_probabilities(
    logreg: Any, xy: tuple[np.ndarray, np.ndarray]
) -> None:
    import onnxruntime as ort

    X, _ = xy
    data = to_onnx(logreg, input_example=X[:5])
    session = ort.InferenceSession(data, providers=["CPUExecutionProvider"])
    assert [o.name for o in session.get_outputs()] == ["label", "probabilities"]
    labels, proba = session.run(None, {"input": X.astype(np.float32)})
    np.testing.assert_allclose(proba, logreg.predict_proba(X), atol=1e-5)
    np.testing.assert_array_equal(labels, logreg.predict(X))


def test_onnx_round_trip_through_save_and_load(
    logreg: Any, xy: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    import onnx

    X, _ = xy
    proto = onnx.load_from_string(to_onnx(logreg, input_example=X[:5]))
    manifest = save_model(proto, tmp_path / "m")
    assert manifest.flavor == "onnx"
    assert manifest.flavor_config["file"] == "model.onnx"
    assert manifest.flavor_config["opset"]["ai.onnx"] > 0
    assert manifest.requirements[0].startswith("numpy==")
    assert any(r.startswith("onnxruntime==") for r in manifest.requirements)
    # With no input example, the signature comes from the graph itself.
    assert manifest.signature is not None
    assert manifest.signature.inputs == (FieldSpec(name="input", dtype="float32", shape=(-1, 20)),)
    assert [o.name for o in manifest.signature.outputs] == ["label", "probabilities"]

    loaded = load_model(tmp_path / "m")
    assert type(loaded.raw).__name__ == "InferenceSession"
    np.testing.assert_array_equal(loaded.predict(X), logreg.predict(X))  # float64 is cast
    np.testing.assert_allclose(loaded.predict_proba(X.tolist()), logreg.predict_proba(X), atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="expected 20 features, got 3"):
        loaded.predict(X[:, :3])


def test_onnx_bytes_are_detected_and_an_example_gives_the_signature(
    logreg: Any, xy: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, _ = xy
    data = to_onnx(logreg, input_example=X[:5])
    manifest = save_model(data, tmp_path / "m", input_example=X[:3].astype(np.float32))
    assert manifest.flavor == "onnx"
    assert manifest.signature is not None
    assert manifest.signature.inputs == (FieldSpec(dtype="float32", shape=(-1, 20)),)
    assert manifest.signature.outputs == (FieldSpec(dtype="int64", shape=(-1,)),)
    np.testing.assert_array_equal(load_model(tmp_path / "m").predict(X), logreg.predict(X))


def test_mixed_columns_become_named_inputs_fed_from_a_dataframe(
    frame: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    data, y = frame
    data = data.astype({"city": object})
    model = Pipeline(
        [
            (
                "prep",
                ColumnTransformer(
                    [
                        ("num", StandardScaler(), ["age", "income"]),
                        ("cat", OneHotEncoder(), ["city"]),
                    ]
                ),
            ),
            ("clf", LogisticRegression(max_iter=1000)),
        ]
    ).fit(data, y)
    onnx_bytes = to_onnx(model, input_example=data.head())
    save_model(onnx_bytes, tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    assert loaded.signature is not None
    assert [s.name for s in loaded.signature.inputs] == ["age", "income", "city"]
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))
    np.testing.assert_allclose(loaded.predict_proba(data), model.predict_proba(data), atol=1e-5)
    with pytest.raises(InvalidArgumentError, match="missing input 'city'"):
        loaded.predict(data.drop(columns=["city"]))


def test_regressor_exports_without_probabilities(
    xy: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, _ = xy
    reg = LinearRegression().fit(X, X @ np.arange(20))
    save_model(to_onnx(reg, input_example=X[:2]), tmp_path / "m")
    loaded = load_model(tmp_path / "m")
    np.testing.assert_allclose(loaded.predict(X).ravel(), reg.predict(X), rtol=1e-4)
    assert not hasattr(loaded, "predict_proba")


def test_to_onnx_needs_a_signature_or_an_example(logreg: Any) -> None:
    with pytest.raises(InvalidArgumentError, match="needs a signature or an input_example"):
        to_onnx(logreg)


def test_missing_onnxruntime_says_which_extra(
    logreg: Any, xy: tuple[np.ndarray, np.ndarray], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    X, _ = xy
    save_model(to_onnx(logreg, input_example=X[:2]), tmp_path / "m")
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(ConfigError, match=r"(?s)needs the 'onnxruntime' package.*shipyard\[onnx\]"):
        load_model(tmp_path / "m")


def test_missing_skl2onnx_says_which_extra(logreg: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "skl2onnx", None)
    with pytest.raises(ConfigError, match=r'pip install "shipyard\[onnx\]"'):
        to_onnx(logreg, input_example=np.zeros((1, 20)))


def test_not_an_onnx_model(tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="Cannot save a dict with the onnx flavor"):
        save_model({"a": 1}, tmp_path / "m", flavor="onnx")
