"""Every route of the model server, in-process: OIP V2, /predict, /metrics, health."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest


def test_health_routes_answer(served: Any) -> None:
    assert served.get("/v2/health/live").status_code == 200
    ready = served.get("/v2/health/ready")
    assert ready.status_code == 200 and ready.json() == {"ready": True}
    assert served.get("/health").json()["models"] == ["fraud"]


def test_server_metadata_names_the_binary_extension(served: Any) -> None:
    doc = served.get("/v2").json()
    assert doc["name"] == "shipyard"
    assert "binary_tensor_data" in doc["extensions"]
    assert doc["version"]


def test_model_metadata_lists_tensors_and_classes(served: Any) -> None:
    doc = served.get("/v2/models/fraud").json()
    assert doc["name"] == "fraud"
    assert doc["versions"] == ["1"]
    assert doc["inputs"] == [{"name": "input-0", "datatype": "FP64", "shape": [-1, 20]}]
    assert [o["name"] for o in doc["outputs"]] == ["predict", "predict_proba"]
    assert doc["outputs"][1] == {"name": "predict_proba", "datatype": "FP64", "shape": [-1, 2]}
    assert doc["parameters"]["classes"] == [0, 1]
    assert served.get("/v2/models/fraud/versions/1").json()["versions"] == ["1"]


def test_model_ready_and_unknown_models(served: Any) -> None:
    assert served.get("/v2/models/fraud/ready").json() == {"name": "fraud", "ready": True}
    assert served.get("/v2/models/fraud/versions/1/ready").status_code == 200
    missing = served.get("/v2/models/fruad/ready")
    assert missing.status_code == 404
    assert "Did you mean 'fraud'" in missing.json()["error"]
    assert served.get("/v2/models/fraud/versions/9/ready").status_code == 404
    assert served.get("/v2/nothing").json() == {"error": "Not Found"}


def test_infer_matches_in_process_predictions(served: Any, logreg: Any, xy: Any) -> None:
    X = xy[0][:7]
    body = {
        "id": "req-1",
        "inputs": [{"name": "input-0", "shape": [7, 20], "datatype": "FP64", "data": X.tolist()}],
    }
    doc = served.post("/v2/models/fraud/infer", json=body).json()
    assert doc["model_name"] == "fraud" and doc["model_version"] == "1" and doc["id"] == "req-1"
    outputs = {o["name"]: o for o in doc["outputs"]}
    assert outputs["predict"]["data"] == logreg.predict(X).tolist()
    assert outputs["predict"]["shape"] == [7] and outputs["predict"]["datatype"] == "INT64"
    proba = np.asarray(outputs["predict_proba"]["data"]).reshape(outputs["predict_proba"]["shape"])
    np.testing.assert_allclose(proba, logreg.predict_proba(X))


def test_infer_fp32_flat_data_and_requested_outputs(served: Any, logreg: Any, xy: Any) -> None:
    X = xy[0][:3].astype(np.float32)
    body = {
        "inputs": [
            {"name": "input-0", "shape": [3, 20], "datatype": "FP32", "data": X.ravel().tolist()}
        ],
        "outputs": [{"name": "predict_proba"}],
    }
    doc = served.post("/v2/models/fraud/versions/1/infer", json=body).json()
    assert [o["name"] for o in doc["outputs"]] == ["predict_proba"]
    np.testing.assert_allclose(
        np.asarray(doc["outputs"][0]["data"]).reshape(3, 2),
        logreg.predict_proba(X.astype(np.float64)),
        rtol=1e-5,
    )


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"inputs": []}, "'inputs' must be a non-empty list"),
        (
            {
                "inputs": [
                    {"name": "input-0", "shape": [1, 19], "datatype": "FP64", "data": [0.0] * 19}
                ]
            },
            "expected 20 features, got 19",
        ),
        (
            {
                "inputs": [
                    {"name": "input-0", "shape": [1, 20], "datatype": "FP64", "data": [0.0] * 19}
                ]
            },
            "holds 20 values but data has 19",
        ),
        (
            {
                "inputs": [
                    {"name": "input-0", "shape": [1, 20], "datatype": "FP99", "data": [0.0] * 20}
                ]
            },
            "datatype 'FP99' is not one of",
        ),
        (
            {
                "inputs": [
                    {"name": "input-0", "shape": [1, 20], "datatype": "FP64", "data": ["a"] * 20}
                ]
            },
            "data is not all FP64 values",
        ),
        (
            {
                "inputs": [
                    {"name": "input-0", "shape": [1, 20], "datatype": "FP64", "data": [0.0] * 20}
                ],
                "outputs": [{"name": "logits"}],
            },
            "Unknown output 'logits'",
        ),
        (
            {"inputs": [{"name": "x", "shape": [1, 20], "datatype": "FP64", "data": [0.0] * 20}]},
            "Unknown input 'x'",
        ),
    ],
)
def test_infer_errors_are_protocol_errors(served: Any, body: Any, message: str) -> None:
    response = served.post("/v2/models/fraud/infer", json=body)
    assert response.status_code == 400, response.text
    assert set(response.json()) == {"error"}
    assert message in response.json()["error"]


def test_infer_rejects_invalid_json(served: Any) -> None:
    response = served.post("/v2/models/fraud/infer", content=b"{not json")
    assert response.status_code == 400
    assert "not valid JSON" in response.json()["error"]


def test_predict_one_row(served: Any, logreg: Any, xy: Any) -> None:
    row = xy[0][0]
    doc = served.post("/predict", json={"features": row.tolist()}).json()
    assert doc["prediction"] == int(logreg.predict(row[None])[0])
    assert doc["confidence"] == pytest.approx(logreg.predict_proba(row[None]).max())
    assert doc["model"] == "fraud" and doc["model_version"] == "1"
    assert doc["variant"] == "champion"
    assert doc["processing_time_ms"] >= 0
    assert len(doc["request_id"]) == 32


def test_predict_instances_and_secure_alias(served: Any, logreg: Any, xy: Any) -> None:
    X = xy[0][:5]
    for path in ("/predict", "/secure-predict"):
        doc = served.post(path, json={"instances": X.tolist()}).json()
        assert doc["predictions"] == logreg.predict(X).tolist()
        np.testing.assert_allclose(doc["confidences"], logreg.predict_proba(X).max(axis=1))


def test_predict_keeps_the_callers_request_id(served: Any, xy: Any) -> None:
    response = served.post(
        "/predict", json={"features": xy[0][0].tolist()}, headers={"X-Request-Id": "abc-1"}
    )
    assert response.json()["request_id"] == "abc-1"
    assert response.headers["x-request-id"] == "abc-1"


@pytest.mark.parametrize(
    ("body", "status", "message"),
    [
        ({"features": [0.0] * 19}, 400, "expected 20 features, got 19"),
        ({"instances": [[0.0] * 20, [0.0] * 21]}, 400, "expected 20 features, got 21"),
        ({"features": [0.0] * 19 + ["high"]}, 422, "feature 19 is 'high'; expected a number"),
        ({"features": [0.0] * 19 + [None]}, 400, "feature 19 is missing"),
        ({"features": [[0.0] * 20]}, 422, "flat list of numbers"),
        ({"features": []}, 400, "expected 20 features, got 0"),
        ({"instances": []}, 400, "at least one row"),
        ({"rows": [1]}, 400, "no 'features', 'instances' or 'entities'"),
        ({"features": [0.0] * 20, "model": "nope"}, 404, "not served here"),
        ({"entities": {"driver_id": 1}}, 400, "reads no feature service"),
        ([1, 2], 400, "must be a JSON object"),
    ],
)
def test_predict_input_errors_say_what_to_fix(
    served: Any, body: Any, status: int, message: str
) -> None:
    response = served.post("/predict", json=body)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert message in error["message"]
    assert error["code"]


def test_metrics_expose_seed_names(served: Any, xy: Any) -> None:
    for row in xy[0][:4]:
        served.post("/predict", json={"features": row.tolist()})
    served.post("/predict", json={"features": [1.0]})
    text = served.get("/metrics").text
    assert 'model_predictions_total{model="fraud",model_version="1",prediction_class=' in text
    assert 'model_prediction_latency_seconds_bucket{le="0.1",model="fraud"' in text
    assert 'model_prediction_latency_seconds_bucket{le="5.0",model="fraud"' in text
    assert 'model_server_requests_total{method="POST",route="/predict",status="200"} 4.0' in text
    assert 'model_server_requests_total{method="POST",route="/predict",status="400"} 1.0' in text
    assert 'inference_queue_length{model="fraud"} 0.0' in text
    assert 'model_batch_size_count{model="fraud",model_version="1"}' in text
    assert 'model_load_seconds{model="fraud",model_version="1"}' in text
    assert "model_feature_drift" not in text


def test_openapi_documents_every_route(served: Any) -> None:
    paths = served.get("/openapi.json").json()["paths"]
    for path in ("/predict", "/v2/models/{name}/infer", "/v2/health/live", "/metrics"):
        assert path in paths


def test_models_loaded_later_are_served_too(
    register: Any, logreg: Any, forest: Any, make_app: Any, xy: Any
) -> None:
    from shipyard.testing import test_client

    register(logreg)
    register(forest, name="other")
    app = make_app()
    with test_client(app) as client:
        assert client.get("/v2/models/other/ready").status_code == 404
        app.state.model_server.repository.load("models:/other@champion")
        assert client.get("/v2/models/other/ready").status_code == 200
        doc = client.post("/predict", json={"features": xy[0][0].tolist(), "model": "other"})
        assert doc.json()["prediction"] == forest.predict(xy[0][:1])[0]


def test_bodies_over_the_limit_are_refused_with_413(
    register: Any, logreg: Any, settings: Any
) -> None:
    from shipyard.config import Settings
    from shipyard.serving.runner import ServeConfig, build_app
    from shipyard.testing import test_client

    register(logreg)
    small = Settings(**{**settings.model_dump(), "max_request_bytes": 2048})
    app = build_app(
        ServeConfig(models=["models:/fraud@champion"], options={"poll_seconds": 0}), small
    )
    big = {"instances": [[0.123456789] * 20] * 20}
    with test_client(app) as client:
        response = client.post("/predict", json=big)
        assert response.status_code == 413
        assert response.json()["error"]["code"] == "request_too_large"
        response = client.post("/v2/models/fraud/infer", json=big)
        assert response.status_code == 413
        assert "larger than this server's limit" in response.json()["error"]
