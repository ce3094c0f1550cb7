"""Model shapes beyond a numeric classifier: DataFrame-trained pipelines with a string
column, and regressors (no classes, no confidence)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import pytest

from shipyard.testing import test_client


@pytest.fixture(scope="module")
def frame() -> tuple[pd.DataFrame, np.ndarray]:
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


@pytest.fixture(scope="module")
def pipeline(frame: Any) -> Any:
    from sklearn.compose import ColumnTransformer
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import OneHotEncoder

    data, y = frame
    encode = ColumnTransformer([("city", OneHotEncoder(), ["city"])], remainder="passthrough")
    model = Pipeline(
        [("encode", encode), ("forest", RandomForestClassifier(n_estimators=5, random_state=0))]
    )
    return model.fit(data, y)


def test_columnar_model_takes_named_features(
    register: Any, pipeline: Any, frame: Any, make_app: Any
) -> None:
    data, _ = frame
    register(pipeline, input_example=data.head())
    rows = data.head(4).astype(object)  # plain Python values for JSON
    rows["income"] = rows["income"].map(int)
    expected = pipeline.predict(rows).tolist()
    with test_client(make_app()) as client:
        meta = client.get("/v2/models/fraud").json()
        assert meta["inputs"] == [
            {"name": "age", "datatype": "FP64", "shape": [-1]},
            {"name": "income", "datatype": "INT64", "shape": [-1]},
            {"name": "city", "datatype": "BYTES", "shape": [-1]},
        ]
        first = {k: (int(v) if k == "income" else v) for k, v in rows.iloc[0].items()}
        one = client.post("/predict", json={"features": first}).json()
        assert one["prediction"] == expected[0]
        second = [rows.iloc[1]["age"], int(rows.iloc[1]["income"]), rows.iloc[1]["city"]]
        as_list = client.post("/predict", json={"features": second}).json()
        assert as_list["prediction"] == expected[1]
        records = [{"age": a, "income": int(i), "city": c} for a, i, c in rows.to_numpy()]
        many = client.post("/predict", json={"instances": records}).json()
        assert many["predictions"] == expected
        body = {
            "inputs": [
                {"name": "age", "datatype": "FP64", "shape": [4], "data": rows["age"].tolist()},
                {
                    "name": "income",
                    "datatype": "INT64",
                    "shape": [4, 1],
                    "data": [int(i) for i in rows["income"]],
                },
                {"name": "city", "datatype": "BYTES", "shape": [4], "data": rows["city"].tolist()},
            ]
        }
        doc = client.post("/v2/models/fraud/infer", json=body).json()
        assert doc["outputs"][0]["data"] == expected
        missing = client.post("/predict", json={"features": {"age": 30, "income": 1}})
        assert missing.status_code == 400
        assert "missing feature 'city'" in missing.json()["error"]["message"]
        wrong = client.post(
            "/predict", json={"features": {"age": "old", "income": 1, "city": "nice"}}
        )
        assert wrong.status_code == 422
        assert "column 'age' expected float64" in wrong.json()["error"]["message"]
        bad_infer = dict(body, inputs=body["inputs"][:2])
        response = client.post("/v2/models/fraud/infer", json=bad_infer)
        assert response.status_code == 400 and "missing input 'city'" in response.json()["error"]


def test_regressor_answers_values_without_confidence(register: Any, xy: Any, make_app: Any) -> None:
    from sklearn.linear_model import Ridge

    X, y = xy
    model = Ridge().fit(X, y.astype(float))
    register(model)
    with test_client(make_app()) as client:
        doc = client.post("/predict", json={"features": X[0].tolist()}).json()
        assert doc["prediction"] == pytest.approx(model.predict(X[:1])[0])
        assert doc["confidence"] is None
        meta = client.get("/v2/models/fraud").json()
        assert [o["name"] for o in meta["outputs"]] == ["predict"]
        text = client.get("/metrics").text
        assert 'prediction_class="none"' in text


def test_float_columns_model_gets_its_matrix_directly(
    register: Any, xy: Any, make_app: Any
) -> None:
    """A model fitted on a float DataFrame is called with the checked float matrix (no
    DataFrame per request): same answers, no feature-name warning (warnings are errors)."""
    from sklearn.linear_model import LogisticRegression

    X, y = xy
    columns = [f"f{i}" for i in range(20)]
    frame = pd.DataFrame(X, columns=columns)
    model = LogisticRegression(max_iter=1000).fit(frame, y)
    register(model, input_example=frame.head())
    expected = model.predict(frame.head(6)).tolist()
    app = make_app()
    served = app.state.model_server.deployments["fraud"].champion.served
    assert served.direct and served.columnar
    with test_client(app) as client:
        doc = client.post("/predict", json={"instances": X[:6].tolist()}).json()
        assert doc["predictions"] == expected
        named = client.post("/predict", json={"features": frame.iloc[0].to_dict()}).json()
        assert named["prediction"] == expected[0]
        body = {
            "inputs": [
                {"name": c, "datatype": "FP32", "shape": [6], "data": X[:6, i].tolist()}
                for i, c in enumerate(columns)
            ]
        }
        infer = client.post("/v2/models/fraud/infer", json=body).json()
        assert infer["outputs"][0]["data"] == expected
        matrix = {
            "inputs": [
                {"name": "input-0", "datatype": "FP64", "shape": [6, 20], "data": X[:6].tolist()}
            ]
        }
        assert (
            client.post("/v2/models/fraud/infer", json=matrix).json()["outputs"][0]["data"]
            == expected
        )
    assert served.predict(X[:6]).tolist() == expected
