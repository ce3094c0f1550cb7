"""Security of the model server: auth off loopback, role ``predictor``, prediction audit."""

from __future__ import annotations

from typing import Any

import argon2
import pytest

from shipyard.config import Settings
from shipyard.errors import ConfigError
from shipyard.testing import test_client

JWT_SECRET = "serving-test-secret-0123456789-abcdefghijklmnop"
PASSWORD = "violet tractor moonlight"
CHEAP_HASHER = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture
def network_settings(settings: Settings) -> Settings:
    """The test store, bound to every interface (so auth is on by default)."""
    return Settings(**{**settings.model_dump(), "host": "0.0.0.0", "jwt_secret": JWT_SECRET})


@pytest.fixture
def secured(register: Any, logreg: Any, network_settings: Settings) -> Any:
    from shipyard.server.auth import security_service
    from shipyard.serving.runner import ServeConfig, build_app

    register(logreg)
    security = security_service(network_settings, hasher=CHEAP_HASHER)
    security.create_user("scorer", PASSWORD, role="predictor")
    security.create_user("reader", PASSWORD, role="viewer")
    config = ServeConfig(
        models=["models:/fraud@champion"],
        options={"poll_seconds": 0, "audit_predictions": True, "log_sample": 0},
    )
    app = build_app(config, network_settings, security=security)
    tokens = {n: security.login(n, PASSWORD).access_token for n in ("scorer", "reader")}
    with test_client(app) as tc:
        yield tc, tokens, security


def _bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def test_auth_is_on_off_loopback_and_health_stays_public(secured: Any, xy: Any) -> None:
    client, _, _ = secured
    assert client.app.state.auth is True
    for path in ("/v2/health/live", "/v2/health/ready", "/health", "/metrics"):
        assert client.get(path).status_code == 200, path
    response = client.post("/predict", json={"features": xy[0][0].tolist()})
    assert response.status_code == 401
    assert response.headers["www-authenticate"].startswith("Bearer")
    infer = client.post("/v2/models/fraud/infer", json={"inputs": []})
    assert infer.status_code == 401 and set(infer.json()) == {"error"}
    assert client.get("/v2/models/fraud").status_code == 401
    bad = client.post("/predict", json={"features": [0]}, headers=_bearer("not-a-token"))
    assert bad.status_code == 401


def test_predictor_may_predict_and_viewer_may_not(secured: Any, xy: Any) -> None:
    client, tokens, _ = secured
    row = {"features": xy[0][0].tolist()}
    ok = client.post("/predict", json=row, headers=_bearer(tokens["scorer"]))
    assert ok.status_code == 200, ok.text
    assert client.get("/v2/models/fraud", headers=_bearer(tokens["scorer"])).status_code == 200
    denied = client.post("/predict", json=row, headers=_bearer(tokens["reader"]))
    assert denied.status_code == 403
    assert "predictions" in denied.json()["error"]["message"]


def test_predictions_are_audited_with_a_feature_hash(secured: Any, xy: Any) -> None:
    from shipyard.security.audit import payload_sha256

    client, tokens, security = secured
    row = xy[0][0]
    client.post("/predict", json={"features": row.tolist()}, headers=_bearer(tokens["scorer"]))
    client.app.state.model_server._log_executor.submit(lambda: None).result()  # flush
    records = [r for r in security.audit.records() if r.action == "prediction"]
    assert len(records) == 1
    record = records[0]
    assert record.actor == "user:scorer" and record.resource_id == "fraud/1"
    features = {f"x{i}": float(v) for i, v in enumerate(row)}
    assert record.details["features_sha256"] == payload_sha256(features)
    assert security.audit.verify().ok


def test_unauthenticated_network_server_refuses_to_start(
    register: Any, logreg: Any, network_settings: Settings, make_app: Any
) -> None:
    from shipyard.serving.runner import ServeConfig, build_app

    register(logreg)
    settings = Settings(**{**network_settings.model_dump(), "auth": "off"})
    with pytest.raises(ConfigError, match="Refusing to serve without authentication"):
        build_app(ServeConfig(models=["models:/fraud@champion"]), settings)


def test_a_model_tagged_for_audit_is_audited_with_auth_off(
    register: Any, logreg: Any, make_app: Any, xy: Any
) -> None:
    register(logreg, tags={"shipyard.audit_predictions": "true"})
    app = make_app(log_sample=0)
    assert app.state.auth is False
    with test_client(app) as client:
        assert client.post("/predict", json={"instances": xy[0][:2].tolist()}).status_code == 200
    server = app.state.model_server
    records = [r for r in server.security.audit.records() if r.action == "prediction"]
    assert [(r.actor, r.resource_id) for r in records] == [("anonymous", "fraud/1")]
    assert len(records[0].details["prediction"]) == 2
