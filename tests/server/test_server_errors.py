"""Every failure answers {"error": {"code", "message"}} with the right status; never a
traceback, and an unexpected exception is a generic 500 with the traceback in the log."""

from __future__ import annotations

import logging
from typing import Any

import pytest


def _error(response: Any, status: int, code: str) -> str:
    assert response.status_code == status, response.text
    body = response.json()
    assert set(body) == {"error"}
    assert body["error"]["code"] == code
    assert "Traceback" not in response.text
    return str(body["error"]["message"])


@pytest.fixture
def run_id(client: Any) -> str:
    experiment = client.post("/api/v1/experiments", json={"name": "errors"}).json()
    run = client.post("/api/v1/runs", json={"experiment_id": experiment["experiment_id"]})
    return str(run.json()["info"]["run_id"])


def test_unknown_run_is_404_naming_it(client: Any) -> None:
    message = _error(client.get("/api/v1/runs/abc123"), 404, "run_not_found")
    assert message.startswith("Run 'abc123' does not exist in workspace 'default'.")
    assert "\nHint: " in message


def test_unknown_route_is_404_and_wrong_method_405(client: Any) -> None:
    message = _error(client.get("/api/v1/nowhere"), 404, "not_found")
    assert "No route GET /api/v1/nowhere" in message
    response = client.put("/api/v1/experiments")
    message = _error(response, 405, "method_not_allowed")
    assert "PUT is not allowed on /api/v1/experiments; it accepts GET, POST." in message
    assert response.headers["Allow"] == "GET, POST"
    # GET /runs/search is the run with id "search" (so 404), not a wrong method.
    assert client.get("/api/v1/runs/search").status_code == 404
    assert client.delete("/api/v1/runs/search").status_code == 404


def test_batch_over_the_limit_is_400_saying_to_split(client: Any, run_id: str) -> None:
    metrics = [{"key": "m", "value": 1.0, "step": i} for i in range(10_001)]
    message = _error(
        client.post(f"/api/v1/runs/{run_id}/batch", json={"metrics": metrics}),
        400,
        "invalid_argument",
    )
    assert "10,001 metrics; the limit is 10,000 per call" in message
    assert "Split the batch" in message
    params = [{"key": f"p{i}", "value": "v"} for i in range(1001)]
    message = _error(
        client.post(f"/api/v1/runs/{run_id}/batch", json={"params": params}),
        400,
        "invalid_argument",
    )
    assert "the limit is 1,000 per call" in message


def test_duplicate_experiment_is_409(client: Any) -> None:
    assert client.post("/api/v1/experiments", json={"name": "twice"}).status_code == 201
    message = _error(client.post("/api/v1/experiments", json={"name": "twice"}), 409, "conflict")
    assert "twice" in message


def test_changing_a_param_is_409(client: Any, run_id: str) -> None:
    url = f"/api/v1/runs/{run_id}/batch"
    assert client.post(url, json={"params": [{"key": "lr", "value": "0.1"}]}).status_code == 204
    _error(client.post(url, json={"params": [{"key": "lr", "value": "0.2"}]}), 409, "conflict")


def test_schema_mismatch_is_422_naming_the_field(client: Any, run_id: str) -> None:
    body = {"metrics": [{"key": "acc", "value": "high"}]}
    message = _error(client.post(f"/api/v1/runs/{run_id}/batch", json=body), 422, "invalid_request")
    assert "metrics[0].value" in message
    assert "'high'" in message
    message = _error(client.post("/api/v1/experiments", json={}), 422, "invalid_request")
    assert "name: Field required" in message


def test_unknown_field_is_422(client: Any) -> None:
    message = _error(
        client.post("/api/v1/experiments", json={"name": "x", "nmae": "y"}),
        422,
        "invalid_request",
    )
    assert "nmae" in message


def test_invalid_json_is_422(client: Any) -> None:
    response = client.post(
        "/api/v1/experiments", content=b"{not json", headers={"Content-Type": "application/json"}
    )
    assert "not valid JSON" in _error(response, 422, "invalid_request")


def test_nul_characters_are_refused(client: Any) -> None:
    response = client.post("/api/v1/experiments", json={"name": "a\x00b"})
    assert "NUL" in _error(response, 422, "invalid_request")


def test_body_over_max_request_bytes_is_413(server_settings: Any) -> None:
    from shipyard.server.app import create_app
    from shipyard.testing import test_client

    settings = server_settings.model_copy(update={"max_request_bytes": 4096})
    client = test_client(create_app(settings, max_artifact_bytes=10_000))
    big = {"name": "x" * 8000}
    message = _error(client.post("/api/v1/experiments", json=big), 413, "request_too_large")
    assert "limit of 4.0 KiB" in message
    assert "\nHint: Split the batch" in message

    # Without Content-Length (chunked), the bytes are counted as they arrive.
    def chunks() -> Any:
        for _ in range(10):
            yield b"x" * 1024

    response = client.post(
        "/api/v1/experiments", content=chunks(), headers={"Content-Type": "application/json"}
    )
    _error(response, 413, "request_too_large")

    # Artifact uploads have their own limit.
    run = _new_run(client)
    url = f"/api/v1/runs/{run}/artifacts/blob.bin"
    assert client.put(url, content=b"x" * 8000).status_code == 201
    message = _error(client.put(url, content=b"x" * 10_001), 413, "request_too_large")
    assert "artifact upload limit" in message
    _error(client.put(url, content=iter([b"x" * 6000, b"x" * 6000])), 413, "request_too_large")


def _new_run(client: Any) -> str:
    experiment = client.post("/api/v1/experiments", json={"name": "limits"}).json()
    run = client.post("/api/v1/runs", json={"experiment_id": experiment["experiment_id"]})
    return str(run.json()["info"]["run_id"])


def test_unexpected_error_is_a_generic_500_logged_with_traceback(
    app: Any, caplog: pytest.LogCaptureFixture
) -> None:
    from fastapi import APIRouter

    from shipyard.testing import test_client

    router = APIRouter()

    @router.get("/boom")
    def boom() -> None:
        raise RuntimeError("secret internals")

    app.include_router(router)
    with caplog.at_level(logging.ERROR, logger="shipyard.server"):
        response = test_client(app).get("/boom")
    message = _error(response, 500, "internal_error")
    assert "secret internals" not in response.text
    assert "the error is in its log" in message
    assert any("secret internals" in (r.exc_text or "") for r in caplog.records)
