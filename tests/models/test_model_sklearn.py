"""save_model / load_model with scikit-learn: round trips, the manifest, integrity checks."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from sklearn.compose import ColumnTransformer
from sklearn.ensemble import RandomForestClassifier
from sklearn.linear_model import LinearRegression, LogisticRegression
from sklearn.pipeline import Pipeline
from sklearn.preprocessing import OneHotEncoder, StandardScaler

from shipyard.errors import ConflictError, IntegrityError, InvalidArgumentError, ModelNotFoundError
from shipyard.models import (
    MANIFEST_FILE,
    FlavorVersionWarning,
    ModelManifest,
    ModelSignature,
    PyFuncModel,
    load_model,
    manifest_sha256,
    save_model,
)


def _models(X: np.ndarray, y: np.ndarray) -> dict[str, Any]:
    return {
        "logreg": LogisticRegression(max_iter=1000).fit(X, y),
        "forest": RandomForestClassifier(n_estimators=15, random_state=0).fit(X, y),
        "pipeline": Pipeline(
            [("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]
        ).fit(X, y),
    }


@pytest.mark.parametrize("kind", ["logreg", "forest", "pipeline"])
def test_round_trip_predicts_the_same(
    kind: str, xy: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, y = xy
    model = _models(X, y)[kind]
    manifest = save_model(model, tmp_path / kind, input_example=X[:5])
    loaded = load_model(tmp_path / kind)

    assert isinstance(loaded, PyFuncModel)
    assert loaded.flavor == manifest.flavor == "sklearn"
    assert type(loaded.raw) is type(model)
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))
    np.testing.assert_allclose(loaded.predict_proba(X), model.predict_proba(X))
    np.testing.assert_array_equal(loaded.predict(X[:3].tolist()), model.predict(X[:3]))
    np.testing.assert_array_equal(loaded.input_example, X[:5])


def test_folder_layout_and_manifest(
    logreg: Any, xy: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, _ = xy
    save_model(logreg, tmp_path / "m", input_example=X[:5], metadata={"team": "risk"})
    folder = tmp_path / "m"
    assert sorted(p.name for p in folder.iterdir()) == [
        "input_example.json",
        "model.pkl",
        "requirements.txt",
        MANIFEST_FILE,
    ]
    raw = json.loads((folder / MANIFEST_FILE).read_text())
    assert raw["format_version"] == 1
    assert raw["flavor"] == "sklearn"
    import sklearn

    assert raw["flavor_version"] == sklearn.__version__
    assert raw["flavor_config"] == {"file": "model.pkl", "pickle_protocol": 5}
    assert raw["python_version"] == sys.version.split()[0]
    assert raw["input_example"] == "input_example.json"
    assert raw["metadata"] == {"team": "risk"}
    assert raw["created_at"].endswith("Z")
    assert set(raw["files"]) == {"input_example.json", "model.pkl", "requirements.txt"}
    pkl = raw["files"]["model.pkl"]
    assert pkl["size"] == (folder / "model.pkl").stat().st_size and len(pkl["sha256"]) == 64
    assert raw["signature"] == {
        "inputs": [{"name": None, "dtype": "float64", "shape": [-1, 20]}],
        "outputs": [{"name": None, "dtype": "int64", "shape": [-1]}],
    }
    assert (folder / "requirements.txt").read_text().splitlines() == raw["requirements"]
    assert ModelManifest.read(folder).to_dict() == raw
    assert (folder / "model.pkl").read_bytes()[:2] == b"\x80\x05"  # pickle protocol 5


def test_dataframe_model_keeps_column_names(
    frame: tuple[pd.DataFrame, np.ndarray], tmp_path: Path
) -> None:
    data, y = frame
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
    manifest = save_model(model, tmp_path / "m", input_example=data.head(10))
    assert manifest.input_example == "input_example.parquet"
    assert manifest.signature is not None and manifest.signature.is_columnar
    assert [(s.name, s.dtype) for s in manifest.signature.inputs] == [
        ("age", "float64"),
        ("income", "int64"),
        ("city", str(data["city"].dtype)),
    ]
    loaded = load_model(tmp_path / "m")
    pd.testing.assert_frame_equal(loaded.input_example, data.head(10))
    np.testing.assert_array_equal(loaded.predict(data), model.predict(data))
    # Columns in another order, plus an extra one, still line up by name.
    shuffled = data[["city", "income", "age"]].assign(extra=1)
    np.testing.assert_array_equal(loaded.predict(shuffled), model.predict(data))
    with pytest.raises(InvalidArgumentError, match="missing column 'income'"):
        loaded.predict(data.drop(columns=["income"]))


def test_regressor_has_no_predict_proba(xy: tuple[np.ndarray, np.ndarray], tmp_path: Path) -> None:
    X, _ = xy
    save_model(LinearRegression().fit(X, X[:, 0]), tmp_path / "reg")
    loaded = load_model(tmp_path / "reg")
    assert not hasattr(loaded, "predict_proba")
    with pytest.raises(AttributeError, match=r"LinearRegression\) has no predict_proba"):
        loaded.predict_proba(X)
    assert loaded.signature is None  # no example, no signature: input passes through
    np.testing.assert_allclose(loaded.predict(X[:4]), X[:4, 0], atol=1e-8)


# -- integrity ----------------------------------------------------------------------------


def test_a_tampered_file_is_refused_naming_file_and_hashes(logreg: Any, tmp_path: Path) -> None:
    save_model(logreg, tmp_path / "m")
    manifest = ModelManifest.read(tmp_path / "m")
    recorded = manifest.files["model.pkl"].sha256
    pkl = tmp_path / "m" / "model.pkl"
    data = bytearray(pkl.read_bytes())
    data[-10] ^= 0x01
    pkl.write_bytes(bytes(data))  # same size, different bytes

    with pytest.raises(IntegrityError) as err:
        load_model(tmp_path / "m")
    import hashlib

    actual = hashlib.sha256(bytes(data)).hexdigest()
    assert "Model file 'model.pkl' does not match its manifest" in str(err.value)
    assert recorded in str(err.value) and actual in str(err.value)


def test_a_truncated_or_missing_file_is_refused(logreg: Any, tmp_path: Path) -> None:
    save_model(logreg, tmp_path / "m", input_example=[[0.0] * 20])
    (tmp_path / "m" / "requirements.txt").write_text("evil==1\n")
    with pytest.raises(IntegrityError, match=r"'requirements.txt' does not match.*bytes\)"):
        load_model(tmp_path / "m")
    save_model(logreg, tmp_path / "m2")
    (tmp_path / "m2" / "model.pkl").unlink()
    with pytest.raises(
        IntegrityError, match=r"'model\.pkl' listed in shipyard-model\.json is missing"
    ):
        load_model(tmp_path / "m2")


def test_expected_manifest_hash_pins_the_whole_model(logreg: Any, tmp_path: Path) -> None:
    save_model(logreg, tmp_path / "m", metadata={"v": 1})
    sha = manifest_sha256(tmp_path / "m")
    assert load_model(tmp_path / "m", expected_manifest_sha256=sha).flavor == "sklearn"
    path = tmp_path / "m" / MANIFEST_FILE
    path.write_text(path.read_text().replace('"v": 1', '"v": 2'))
    with pytest.raises(IntegrityError, match=f"expected {sha}"):
        load_model(tmp_path / "m", expected_manifest_sha256=sha)


def test_a_manifest_pointing_at_an_unhashed_file_is_refused(logreg: Any, tmp_path: Path) -> None:
    save_model(logreg, tmp_path / "m")
    path = tmp_path / "m" / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw["flavor_config"]["file"] = "../../elsewhere.pkl"
    path.write_text(json.dumps(raw))
    with pytest.raises(IntegrityError, match="is not among its hashed files"):
        load_model(tmp_path / "m")


def test_a_damaged_or_absent_manifest(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"shipyard-model\.json is missing"):
        load_model(tmp_path)
    (tmp_path / MANIFEST_FILE).write_text("{not json")
    with pytest.raises(IntegrityError, match="is damaged"):
        load_model(tmp_path)


def test_a_newer_manifest_format_asks_for_an_upgrade(logreg: Any, tmp_path: Path) -> None:
    save_model(logreg, tmp_path / "m")
    path = tmp_path / "m" / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw["format_version"] = 99
    path.write_text(json.dumps(raw))
    with pytest.raises(
        InvalidArgumentError, match=r"(?s)format version 99.*pip install -U shipyard"
    ):
        load_model(tmp_path / "m")


def test_another_sklearn_version_warns_once_with_both_versions(logreg: Any, tmp_path: Path) -> None:
    save_model(logreg, tmp_path / "m")
    path = tmp_path / "m" / MANIFEST_FILE
    raw = json.loads(path.read_text())
    raw["flavor_version"] = "0.24.2"
    path.write_text(json.dumps(raw))
    import sklearn

    with pytest.warns(
        FlavorVersionWarning, match=f"scikit-learn 0.24.2 but {sklearn.__version__}"
    ) as record:
        load_model(tmp_path / "m")
    assert len(record) == 1


# -- saving -------------------------------------------------------------------------------


def test_saving_over_an_existing_model_is_a_conflict(logreg: Any, tmp_path: Path) -> None:
    save_model(logreg, tmp_path / "m")
    with pytest.raises(ConflictError, match="already exists and is not empty"):
        save_model(logreg, tmp_path / "m")
    (tmp_path / "empty").mkdir()
    save_model(logreg, tmp_path / "empty")  # an empty folder is fine
    assert (tmp_path / "empty" / MANIFEST_FILE).is_file()


def test_a_failed_save_leaves_nothing_behind(tmp_path: Path) -> None:
    class Unpicklable:
        def __init__(self) -> None:
            self.lock = __import__("threading").Lock()

        def predict(self, X: Any) -> Any:
            return X

    with pytest.raises(InvalidArgumentError, match="Cannot pickle the model"):
        save_model(Unpicklable(), tmp_path / "m")
    assert list(tmp_path.iterdir()) == []


def test_metadata_must_be_json(logreg: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="metadata must be JSON-serializable"):
        save_model(logreg, tmp_path / "m", metadata={"when": object()})
    assert not (tmp_path / "m").exists()


def test_explicit_signature_and_requirements_win(
    logreg: Any, xy: tuple[np.ndarray, np.ndarray], tmp_path: Path
) -> None:
    X, _ = xy
    sig = {"inputs": [{"name": None, "dtype": "float32", "shape": [-1, 20]}], "outputs": []}
    manifest = save_model(
        logreg, tmp_path / "m", signature=sig, input_example=X[:2], requirements=["my-lib>=2"]
    )
    assert manifest.signature == ModelSignature.from_dict(sig)
    assert manifest.requirements == ["my-lib>=2"]
    assert (tmp_path / "m" / "requirements.txt").read_text() == "my-lib>=2\n"


def test_a_malformed_signature_is_refused(logreg: Any, tmp_path: Path) -> None:
    with pytest.raises(InvalidArgumentError, match="Invalid model signature"):
        save_model(logreg, tmp_path / "m", signature={"inputs": [{"name": "age"}]})
    assert list(tmp_path.iterdir()) == []
