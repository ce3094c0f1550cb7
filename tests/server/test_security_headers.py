"""Security headers on every response, a CSP that still lets /docs work, no caching of
API answers, and CORS only when origins are configured."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from test_security_support import bearer, client_for, login, secure_app, secure_settings

from shipyard.server.headers import API_CSP, DOCS_CSP

ORIGIN = "https://ui.example.com"


@pytest.fixture
def client(tmp_path: Path) -> Any:
    with client_for(secure_app(secure_settings(tmp_path))) as tc:
        yield tc


def _assert_hardened(response: Any) -> None:
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "no-referrer"
    assert "frame-ancestors 'none'" in response.headers["Content-Security-Policy"]


def test_every_kind_of_response_has_security_headers(client: Any) -> None:
    token = login(client, "admin")["access_token"]
    responses = [
        client.get("/health"),
        client.get("/api/v1/experiments", headers=bearer(token)),
        client.get("/api/v1/experiments"),  # 401
        client.get("/api/v1/nowhere", headers=bearer(token)),  # 404
        client.put("/api/v1/experiments", headers=bearer(token)),  # 405
        client.get("/openapi.json"),
    ]
    for response in responses:
        _assert_hardened(response)
        assert response.headers["Content-Security-Policy"] == API_CSP


def test_api_answers_are_never_cached(client: Any) -> None:
    token_response = client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": "admin", "password": "wrong password 1"},
    )
    assert token_response.headers["Cache-Control"] == "no-store"
    ok = login(client, "admin")
    assert ok["access_token"]
    response = client.get("/api/v1/auth/me", headers=bearer(ok["access_token"]))
    assert response.headers["Cache-Control"] == "no-store"


def test_docs_work_under_their_own_policy(client: Any) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    _assert_hardened(response)
    csp = response.headers["Content-Security-Policy"]
    assert csp == DOCS_CSP
    # Swagger UI loads from its CDN and boots with an inline script.
    assert "https://cdn.jsdelivr.net" in response.text
    assert "https://cdn.jsdelivr.net" in csp and "'unsafe-inline'" in csp
    spec = client.get("/openapi.json").json()
    flows = spec["components"]["securitySchemes"]["OAuth2"]["flows"]
    assert flows["password"]["tokenUrl"] == "/api/v1/auth/token"
    assert "security" in spec["paths"]["/api/v1/experiments"]["get"]
    assert "security" not in spec["paths"]["/api/v1/auth/token"]["post"]


def test_cors_is_off_by_default(client: Any) -> None:
    preflight = client.options(
        "/api/v1/experiments",
        headers={"Origin": ORIGIN, "Access-Control-Request-Method": "GET"},
    )
    assert "access-control-allow-origin" not in preflight.headers
    simple = client.get("/health", headers={"Origin": ORIGIN})
    assert "access-control-allow-origin" not in simple.headers


def test_cors_allows_exactly_the_configured_origins(tmp_path: Path) -> None:
    app = secure_app(secure_settings(tmp_path, cors_origins=[ORIGIN]))
    with client_for(app) as client:
        preflight = client.options(
            "/api/v1/experiments",
            headers={
                "Origin": ORIGIN,
                "Access-Control-Request-Method": "POST",
                "Access-Control-Request-Headers": "authorization,content-type",
            },
        )
        assert preflight.status_code == 200
        assert preflight.headers["access-control-allow-origin"] == ORIGIN
        assert "authorization" in preflight.headers["access-control-allow-headers"].lower()
        _assert_hardened(preflight)
        simple = client.get("/health", headers={"Origin": ORIGIN})
        assert simple.headers["access-control-allow-origin"] == ORIGIN
        other = client.get("/health", headers={"Origin": "https://evil.example"})
        assert "access-control-allow-origin" not in other.headers
        assert "access-control-allow-credentials" not in simple.headers
