"""Secure by default: when auth is on, what refuses to start, the first admin, declared
permissions checked at start, and secrets kept out of logs, errors and worker environments.
"""

from __future__ import annotations

import logging
import os
from pathlib import Path
from typing import Any

import pytest
from fastapi import APIRouter, Depends
from test_security_support import (
    JWT_SECRET,
    PASSWORD,
    bearer,
    client_for,
    login,
    secure_app,
    secure_settings,
)

from shipyard.config import load_settings
from shipyard.errors import ConfigError
from shipyard.server import runner
from shipyard.server.app import check_route_permissions
from shipyard.server.auth import auth_required, is_loopback
from shipyard.server.deps import requires


@pytest.mark.parametrize(
    ("host", "loopback"),
    [
        ("127.0.0.1", True),
        ("127.8.9.10", True),
        ("::1", True),
        ("[::1]", True),
        ("localhost", True),
        ("LOCALHOST", True),
        ("0.0.0.0", False),
        ("::", False),
        ("10.1.2.3", False),
        ("192.168.0.10", False),
        ("example.com", False),
        ("", False),
    ],
)
def test_loopback_addresses(host: str, loopback: bool) -> None:
    assert is_loopback(host) is loopback


@pytest.mark.parametrize(
    ("auth", "host", "required"),
    [
        ("auto", "127.0.0.1", False),
        ("auto", "0.0.0.0", True),
        ("auto", "::", True),
        ("on", "127.0.0.1", True),
        ("off", "127.0.0.1", False),
    ],
)
def test_auth_auto_is_on_off_loopback(auth: str, host: str, required: bool) -> None:
    assert auth_required(load_settings(auth=auth, host=host)) is required


def test_auth_auto_on_all_interfaces_requires_a_token(tmp_path: Path) -> None:
    settings = secure_settings(tmp_path, auth="auto", host="0.0.0.0")
    with client_for(secure_app(settings)) as client:
        assert client.get("/api/v1/experiments").status_code == 401
        token = login(client, "admin")["access_token"]
        assert client.get("/api/v1/experiments", headers=bearer(token)).status_code == 200
        assert client.get("/health").status_code == 200


def test_auth_auto_on_loopback_needs_no_token(tmp_path: Path) -> None:
    settings = secure_settings(tmp_path, auth="auto", admin_password=None)
    with client_for(secure_app(settings)) as client:
        assert client.get("/api/v1/experiments").status_code == 200
        assert client.get("/api/v1/auth/me").json()["kind"] == "anonymous"


def test_auth_off_on_a_network_address_refuses_to_start(tmp_path: Path) -> None:
    settings = secure_settings(tmp_path, auth="off", host="0.0.0.0")
    with pytest.raises(ConfigError, match=r"Refusing to serve without authentication on '0\.0"):
        secure_app(settings)


def test_auth_off_on_a_network_address_with_the_flag_warns_loudly(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    settings = secure_settings(
        tmp_path, auth="off", host="0.0.0.0", allow_unauthenticated_network=True
    )
    with caplog.at_level(logging.WARNING, logger="shipyard.server"):
        app = secure_app(settings)
    warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert any("authentication is OFF on network address 0.0.0.0" in r.message for r in warnings)
    with client_for(app) as client:
        assert client.get("/api/v1/experiments").status_code == 200


def test_auth_on_without_an_admin_or_password_refuses_to_start(tmp_path: Path) -> None:
    settings = secure_settings(tmp_path, admin_password=None)
    with pytest.raises(ConfigError) as failure:
        secure_app(settings)
    message = str(failure.value)
    assert "SHIPYARD_ADMIN_PASSWORD" in message
    assert "shipyard users create admin --role admin" in message


def test_first_start_creates_the_admin_and_later_starts_need_no_password(tmp_path: Path) -> None:
    settings = secure_settings(tmp_path, admin_user="root")
    with client_for(secure_app(settings)) as client:
        assert login(client, "root")["access_token"]
    again = secure_settings(tmp_path, admin_user="root", admin_password=None)
    with client_for(secure_app(again)) as client:
        me = client.get("/api/v1/auth/me", headers=bearer(login(client, "root")["access_token"]))
        assert me.json()["role"] == "admin"


def test_a_weak_admin_password_is_refused(tmp_path: Path) -> None:
    from shipyard.errors import InvalidArgumentError

    with pytest.raises(InvalidArgumentError, match="Password is too short"):
        secure_app(secure_settings(tmp_path, admin_password="admin"))


def test_an_unknown_permission_fails_when_declared() -> None:
    with pytest.raises(ValueError, match="Unknown action 'promote' on models"):
        requires("models", "promote")
    with pytest.raises(ValueError, match="Unknown resource type 'webhooks'"):
        requires("webhooks", "read")


def test_a_route_without_a_permission_fails_the_start_check(tmp_path: Path) -> None:
    app = secure_app(secure_settings(tmp_path))
    check_route_permissions(app)
    router = APIRouter()

    @router.get("/unguarded")
    def unguarded() -> dict[str, str]:
        return {}

    @router.get("/guarded", dependencies=[Depends(requires("runs", "read"))])
    def guarded() -> dict[str, str]:
        return {}

    app.include_router(router, prefix="/api/v1")
    with pytest.raises(ValueError, match=r"GET /api/v1/unguarded\. Add"):
        check_route_permissions(app)


def test_the_runner_refuses_before_starting_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def never(*args: Any, **kwargs: Any) -> None:
        raise AssertionError("uvicorn must not start")

    monkeypatch.setattr("uvicorn.run", never)
    settings = secure_settings(tmp_path, auth="off", host="0.0.0.0")
    with pytest.raises(ConfigError, match="Refusing to serve"):
        runner.serve(settings)
    no_admin = secure_settings(tmp_path / "b", admin_password=None)
    with pytest.raises(ConfigError, match="SHIPYARD_ADMIN_PASSWORD"):
        runner.serve(no_admin)


def test_the_runner_keeps_the_admin_password_from_workers(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    started: dict[str, Any] = {}

    def fake_run(*args: Any, **kwargs: Any) -> None:
        started["env"] = dict(os.environ)

    monkeypatch.setattr("uvicorn.run", fake_run)
    monkeypatch.setenv("SHIPYARD_ADMIN_PASSWORD", PASSWORD)
    monkeypatch.setenv("SHIPYARD_TOKEN", "client-token-not-for-the-server")
    for name in ("SHIPYARD_AUTH", "SHIPYARD_JWT_SECRET", "SHIPYARD_HOST", "SHIPYARD_URL"):
        monkeypatch.delenv(name, raising=False)
    saved = dict(os.environ)
    try:
        runner.serve(secure_settings(tmp_path))
        worker_settings = load_settings()  # what a worker process builds
    finally:  # serve() exports every setting; keep them from later tests
        os.environ.clear()
        os.environ.update(saved)
    env = started["env"]
    assert "SHIPYARD_ADMIN_PASSWORD" not in env
    assert "SHIPYARD_TOKEN" not in env
    assert env["SHIPYARD_AUTH"] == "on"
    assert env["SHIPYARD_JWT_SECRET"] == JWT_SECRET  # every worker must sign alike
    # The first admin exists, so the workers start without the password.
    assert worker_settings.admin_password is None
    with client_for(secure_app(worker_settings)) as client:
        assert login(client, "admin")["access_token"]


def test_secrets_stay_out_of_logs_and_error_messages(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    app = secure_app(secure_settings(tmp_path))
    with client_for(app) as client:
        tokens = login(client, "admin")
        admin = bearer(tokens["access_token"])
        typo = client.post(
            "/api/v1/users", json={"name": "bob", "password": 123456789012345}, headers=admin
        )
        assert typo.status_code == 422
        assert "123456789012345" not in typo.text
        account = client.post("/api/v1/service-accounts", json={"name": "ci"}, headers=admin)
        secret = account.json()["client_secret"]
        key = client.post("/api/v1/api-keys", json={}, headers=admin).json()["key"]
        client.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": "admin", "password": "wrong pass 1"},
        )
        exported = client.get("/api/v1/audit/export", headers=admin).text
    logged = caplog.text
    for value in (PASSWORD, JWT_SECRET, "wrong pass 1", secret, key, tokens["refresh_token"]):
        assert value not in logged
        assert value not in exported
    assert "login.failure" in exported  # the audit lines were logged and exported


def test_the_default_test_server_runs_with_auth_off(app: Any) -> None:
    # The rest of tests/server runs on this fixture unchanged: loopback, auth "auto".
    assert app.state.authorizer is None
    assert app.state.platform.audit is None
