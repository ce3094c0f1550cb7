"""Builders shared by the server's security tests: a platform server with auth on (SQLite,
a cheap password hasher), users with roles, and their tokens.

It holds no tests; the other security test modules import it by name.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import argon2

from shipyard.config import Settings, load_settings
from shipyard.security import SecurityService
from shipyard.security.entities import USER
from shipyard.server.auth import security_service
from shipyard.store.workspaces import ensure_workspace
from shipyard.testing import test_client

# 32+ bytes, so PyJWT never warns about a short HMAC key.
JWT_SECRET = "server-test-secret-0123456789-abcdefghijklmnop"
PASSWORD = "violet tractor moonlight"
ADMIN = "admin"

#: argon2id at minimum cost: these tests check behaviour, not hashing strength.
CHEAP_HASHER = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


def secure_settings(home: Path, **overrides: Any) -> Settings:
    """Settings of a server with auth on, a fresh SQLite DB and artifact folder."""
    artifacts = home / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    values: dict[str, Any] = {
        "home": home,
        "db": f"sqlite:///{home / 'server.db'}",
        "artifacts": artifacts.as_uri(),
        "auth": "on",
        "admin_password": PASSWORD,
        "jwt_secret": JWT_SECRET,
    }
    values.update(overrides)
    return load_settings(**values)


def secure_app(settings: Settings, **options: Any) -> Any:
    """The platform server for ``settings`` with a cheap password hasher."""
    from shipyard.server.app import create_app

    options.setdefault("deliver_webhooks", False)
    options.setdefault("security", security_service(settings, hasher=CHEAP_HASHER))
    return create_app(settings, **options)


def security_of(app: Any) -> SecurityService:
    return app.state.platform.security  # type: ignore[no-any-return]


def client_for(app: Any) -> Any:
    return test_client(app)


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def add_user(
    app: Any,
    name: str,
    *,
    role: str | None = None,
    workspace_role: str | None = None,
    workspace: str = "default",
) -> str:
    """Create a user (site-wide ``role`` and/or a role in ``workspace``); its access token."""
    security = security_of(app)
    security.create_user(name, PASSWORD, role=role)
    if workspace_role is not None:
        ensure_workspace(security.engine, workspace)
        security.set_workspace_role(workspace, USER, name, workspace_role)
    return security.login(name, PASSWORD).access_token


def login(client: Any, name: str, password: str = PASSWORD) -> dict[str, Any]:
    """The token response of the OAuth2 password flow."""
    response = client.post(
        "/api/v1/auth/token",
        data={"grant_type": "password", "username": name, "password": password},
    )
    assert response.status_code == 200, response.text
    return response.json()  # type: ignore[no-any-return]
