"""Flavor registry: detection by type, lazy imports, and messages for missing libraries."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from shipyard.errors import ConfigError, InvalidArgumentError
from shipyard.models import detect_flavor, get_flavor, load_model, save_model
from shipyard.models.flavors import FLAVORS


def _fake(module: str, name: str = "Model") -> Any:
    """An instance of a class that claims to live in ``module`` (no library imported)."""
    cls = type(name, (), {"__module__": module, "predict": lambda self, X: X})
    return cls()


@pytest.mark.parametrize(
    ("model", "flavor"),
    [
        (_fake("xgboost.sklearn", "XGBClassifier"), "xgboost"),
        (_fake("lightgbm.sklearn", "LGBMClassifier"), "lightgbm"),
        (_fake("torch.nn.modules.linear", "Linear"), "torch"),
        (_fake("onnx.onnx_ml_pb2", "ModelProto"), "onnx"),
        (b"\x08\x07onnx-bytes", "onnx"),
        (_fake("my_project.models"), "pyfunc"),
    ],
)
def test_detect_flavor_by_module_name(model: Any, flavor: str) -> None:
    assert detect_flavor(model) == flavor


def test_detect_sklearn_and_a_library_subclass(logreg: Any) -> None:
    assert detect_flavor(logreg) == "sklearn"
    # XGBClassifier is also a scikit-learn BaseEstimator; the specific library wins.
    from sklearn.base import BaseEstimator

    hybrid = type("XGBClassifier", (BaseEstimator,), {"__module__": "xgboost.sklearn"})()
    assert detect_flavor(hybrid) == "xgboost"


def test_unknown_flavor_suggests_the_close_one(logreg: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match=r"Unknown model flavor 'sklern'.*'sklearn'"):
        save_model(logreg, tmp_path / "m", flavor="sklern")


def test_every_registered_flavor_resolves() -> None:
    for name in FLAVORS:
        flavor = get_flavor(name)
        assert flavor.name == name
        assert callable(flavor.save) and callable(flavor.load) and callable(flavor.wrap)


@pytest.mark.parametrize(
    ("module", "flavor", "extra"),
    [
        ("xgboost", "xgboost", "xgboost"),
        ("lightgbm", "lightgbm", "lightgbm"),
        ("torch", "torch", "torch"),
    ],
)
def test_missing_optional_library_names_the_extra(
    module: str, flavor: str, extra: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setitem(sys.modules, module, None)  # import now fails, installed or not
    with pytest.raises(ConfigError) as err:
        save_model(_fake(f"{module}.core"), tmp_path / "m")
    assert f"The {flavor} flavor needs the '{module}' package" in err.value.message
    assert err.value.hint == f'Run `pip install "shipyard[{extra}]"`.'
    assert not (tmp_path / "m").exists()


def test_missing_library_at_load_time(
    logreg: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    save_model(logreg, tmp_path / "m")
    monkeypatch.setitem(sys.modules, "sklearn", None)
    with pytest.raises(
        ConfigError, match=r"(?s)needs the 'sklearn' package.*pip install \"shipyard\[sklearn\]\""
    ):
        load_model(tmp_path / "m")


def test_importing_shipyard_models_imports_no_ml_library() -> None:
    code = (
        "import sys, json, shipyard.models\n"
        "heavy = ['numpy', 'pandas', 'sklearn', 'onnx', 'onnxruntime', 'skl2onnx', 'torch',"
        " 'xgboost', 'lightgbm', 'fsspec', 'pyarrow']\n"
        "print(json.dumps([m for m in heavy if m in sys.modules]))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert json.loads(out.stdout) == []


# -- real libraries, when installed -------------------------------------------------------


def test_xgboost_round_trip(xy: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    xgb = pytest.importorskip("xgboost")
    X, y = xy
    model = xgb.XGBClassifier(n_estimators=5, max_depth=2).fit(X, y)
    manifest = save_model(model, tmp_path / "m", input_example=X[:3])
    assert manifest.flavor == "xgboost" and "model.ubj" in manifest.files
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_lightgbm_round_trip(xy: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    lgb = pytest.importorskip("lightgbm")
    X, y = xy
    model = lgb.LGBMClassifier(n_estimators=5, verbose=-1).fit(X, y)
    manifest = save_model(model, tmp_path / "m", input_example=X[:3])
    assert manifest.flavor == "lightgbm" and "model.txt" in manifest.files
    loaded = load_model(tmp_path / "m")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))


def test_torch_round_trip(tmp_path: Path) -> None:
    torch = pytest.importorskip("torch")
    torch.manual_seed(0)
    model = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    X = np.random.default_rng(0).normal(size=(8, 4)).astype(np.float32)
    expected = model(torch.from_numpy(X)).detach().numpy()
    save_model(model, tmp_path / "eager", input_example=X[:2])
    np.testing.assert_allclose(load_model(tmp_path / "eager").predict(X), expected, rtol=1e-6)
    save_model(torch.jit.script(model), tmp_path / "script")
    np.testing.assert_allclose(load_model(tmp_path / "script").predict(X), expected, rtol=1e-6)
