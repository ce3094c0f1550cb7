"""HttpSession: headers, retries where safe, and server errors mapped back to classes."""

from __future__ import annotations

import math
from typing import Any

import httpx
import pytest

from shipyard._http import HttpSession
from shipyard.errors import (
    BackendError,
    ConflictError,
    InvalidArgumentError,
    NotFoundError,
    PromotionRefusedError,
    RunNotFoundError,
)
from shipyard.testing import free_port


def _session(handler: Any, **kwargs: Any) -> HttpSession:
    return HttpSession(
        "http://shipyard.test", transport=httpx.MockTransport(handler), backoff=0.001, **kwargs
    )


def _error(status: int, code: str, message: str, **extra: Any) -> httpx.Response:
    return httpx.Response(status, json={"error": {"code": code, "message": message, **extra}})


def test_sends_token_workspace_and_api_prefix() -> None:
    seen: list[httpx.Request] = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        return httpx.Response(200, json={"ok": True})

    http = _session(handler, token="s3cret", workspace="team-a")
    assert http.get("/experiments") == {"ok": True}
    http.get("/experiments", workspace="team-b")
    assert seen[0].url == "http://shipyard.test/api/v1/experiments"
    assert seen[0].headers["Authorization"] == "Bearer s3cret"
    assert seen[0].headers["X-Shipyard-Workspace"] == "team-a"
    assert seen[1].headers["X-Shipyard-Workspace"] == "team-b"
    assert "s3cret" not in repr(http)


def test_nan_metric_values_are_sent() -> None:
    bodies: list[bytes] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(request.content)
        return httpx.Response(204)

    assert _session(handler).post("/runs/r/batch", json={"value": math.nan}) is None
    assert bodies == [b'{"value":NaN}']


def test_error_bodies_become_the_same_error_classes() -> None:
    answers = {
        "/runs/x": _error(
            404,
            "run_not_found",
            "Run 'x' does not exist in workspace 'default'.\nHint: List runs.",
        ),
        "/conflict": _error(409, "conflict", "Taken."),
        "/refused": _error(
            409, "promotion_refused", "Refused.", details={"failing": ["acc 0.8 >= 0.9"]}
        ),
        "/future": _error(404, "some_new_code", "Gone."),
        "/limits": _error(413, "request_too_large", "Too big."),
    }
    http = _session(lambda request: answers[request.url.path.removeprefix("/api/v1")])

    with pytest.raises(RunNotFoundError) as caught:
        http.get("/runs/x")
    assert caught.value.message == "Run 'x' does not exist in workspace 'default'."
    assert caught.value.hint == "List runs."
    assert str(caught.value) == "Run 'x' does not exist in workspace 'default'.\nHint: List runs."
    with pytest.raises(ConflictError, match="Taken"):
        http.get("/conflict")
    with pytest.raises(PromotionRefusedError) as refused:
        http.get("/refused")
    assert refused.value.failing == ["acc 0.8 >= 0.9"]
    with pytest.raises(NotFoundError) as unknown:
        http.get("/future")
    assert unknown.value.code == "some_new_code"
    with pytest.raises(InvalidArgumentError) as big:
        http.get("/limits")
    assert (big.value.code, big.value.http_status) == ("request_too_large", 413)


def test_non_json_error_from_a_proxy_maps_by_status() -> None:
    http = _session(lambda request: httpx.Response(502, text="<html>Bad Gateway</html>"))
    http.retries = 0
    with pytest.raises(BackendError, match="answered 502 to GET /api/v1/runs/x: <html>Bad"):
        http.get("/runs/x")


def test_idempotent_requests_retry_on_503_but_posts_do_not() -> None:
    calls: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(request.method)
        if len(calls) < 3:
            return _error(503, "backend_error", "Database is restarting.")
        return httpx.Response(200, json={"ok": True})

    http = _session(handler)
    assert http.get("/runs/x") == {"ok": True}
    assert calls == ["GET", "GET", "GET"]

    calls.clear()
    with pytest.raises(BackendError, match="restarting"):
        http.post("/runs/x/batch", json={})
    assert calls == ["POST"]


def test_connect_errors_are_retried_for_any_method() -> None:
    attempts: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        attempts.append(request.method)
        if len(attempts) < 2:
            raise httpx.ConnectError("refused", request=request)
        return httpx.Response(204)

    assert _session(handler).post("/runs/x/batch", json={}) is None
    assert attempts == ["POST", "POST"]


def test_unreachable_server_is_a_backend_error_with_a_hint() -> None:
    url = f"http://127.0.0.1:{free_port()}"
    with (
        HttpSession(url, retries=1, backoff=0.001, timeout=2) as http,
        pytest.raises(BackendError, match="Cannot reach the Shipyard server at") as caught,
    ):
        http.get("/experiments")
    assert "SHIPYARD_URL" in str(caught.value)


def test_streamed_bodies_are_not_resent() -> None:
    attempts = 0

    def handler(request: httpx.Request) -> httpx.Response:
        nonlocal attempts
        attempts += 1
        request.read()
        return _error(503, "backend_error", "busy")

    with pytest.raises(BackendError):
        _session(handler).request("PUT", "/runs/r/artifacts/a", content=iter([b"x"]))
    assert attempts == 1
