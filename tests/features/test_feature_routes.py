"""The feature server routes of the platform server: push then read online over HTTP,
Feast-shaped bodies, 4xx answers naming the problem, and permissions (a viewer reads but
cannot push)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import argon2
import pytest
from test_online_support import driver, push_view

from shipyard.config import Settings, load_settings
from shipyard.testing import test_client

PASSWORD = "violet tractor moonlight"
ROW = {
    "driver_id": 1,
    "event_timestamp": "2099-01-01T00:00:00Z",
    "conv_rate": 0.5,
    "trips": 3,
    "city": "Lyon",
    "active": True,
    "score": 2.5,
    "last_seen": "2024-01-01T00:00:00Z",
}


def _apply(settings: Settings) -> None:
    from shipyard.features.store import FeatureStore

    FeatureStore(settings).apply([driver, push_view()])


@pytest.fixture
def settings(tmp_path: Path, fresh_sqlite_url: str, artifacts_url: str) -> Settings:
    return load_settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts_url)


@pytest.fixture
def client(settings: Settings) -> Iterator[Any]:
    from shipyard.server.app import create_app

    _apply(settings)
    with test_client(create_app(settings, deliver_webhooks=False)) as tc:
        yield tc


def _push(client: Any, df: Any, **extra: Any) -> Any:
    body = {"push_source_name": "driver_push", "df": df, **extra}
    return client.post("/api/v1/features/push", json=body)


def test_push_then_read_online_over_http(client: Any) -> None:
    pushed = _push(client, [ROW, {**ROW, "driver_id": 2, "trips": 4}])
    assert pushed.status_code == 200, pushed.text
    assert pushed.json() == {"push_source": "driver_push", "rows": 2, "views": {"driver_live": 2}}
    read = client.post(
        "/api/v1/features/online",
        json={
            "features": ["driver_live:trips", "driver_live:city"],
            "entities": {"driver_id": [2, 1, 9]},
        },
    )
    assert read.status_code == 200, read.text
    body = read.json()
    assert body["metadata"]["feature_names"] == ["driver_id", "trips", "city"]
    ids, trips, city = body["results"]
    assert ids["values"] == [2, 1, 9]
    assert trips == {
        "values": [4, 3, None],
        "statuses": ["PRESENT", "PRESENT", "NOT_FOUND"],
        "event_timestamps": ["2099-01-01T00:00:00Z", "2099-01-01T00:00:00Z", None],
    }
    assert city["values"] == ["Lyon", "Lyon", None]


def test_columns_and_entity_rows_are_both_accepted(client: Any) -> None:
    columns = {k: [v] for k, v in ROW.items()}
    assert _push(client, columns, to="online").status_code == 200
    read = client.post(
        "/api/v1/features/online",
        json={"features": ["driver_live:score"], "entity_rows": [{"driver_id": 1}]},
    )
    assert read.json()["results"][1]["values"] == [2.5]


@pytest.mark.parametrize(
    ("df", "status", "message"),
    [
        ([{**ROW, "trips": "many"}], 400, "Column 'trips' has type string"),
        ([{k: v for k, v in ROW.items() if k != "city"}], 400, r"lack the column\(s\) \['city'\]"),
        ([{**ROW, "event_timestamp": "soon"}], 400, "not an ISO 8601 time"),
        ({"driver_id": [1, 2], "trips": [1]}, 400, "different lengths"),
    ],
)
def test_bad_pushes_are_4xx_naming_the_column(
    client: Any, df: Any, status: int, message: str
) -> None:
    import re

    response = _push(client, df)
    assert response.status_code == status, response.text
    error = response.json()["error"]
    assert error["code"] == "invalid_argument"
    assert re.search(message, error["message"])


def test_unknown_push_sources_and_bad_bodies(client: Any) -> None:
    missing = client.post("/api/v1/features/push", json={"push_source_name": "nope", "df": [ROW]})
    assert missing.status_code == 404
    assert "No feature view reads push source 'nope'" in missing.json()["error"]["message"]
    bad_target = _push(client, [ROW], to="everywhere")
    assert bad_target.status_code == 422
    neither = client.post("/api/v1/features/online", json={"entities": {"driver_id": [1]}})
    assert neither.status_code == 400
    assert "either 'features' or 'feature_service'" in neither.json()["error"]["message"]
    no_key = client.post(
        "/api/v1/features/online",
        json={"features": ["driver_live:trips"], "entity_rows": [{"driver": 1}]},
    )
    assert no_key.status_code == 400
    assert "lacks join key(s) ['driver_id']" in no_key.json()["error"]["message"]


# -- permissions ------------------------------------------------------------------------------


@pytest.fixture
def secure(tmp_path: Path, fresh_sqlite_url: str, artifacts_url: str) -> Iterator[Any]:
    """A server with auth on; yields (client, token_of(role))."""
    from shipyard.security.entities import USER
    from shipyard.server.app import create_app
    from shipyard.server.auth import security_service

    settings = load_settings(
        home=tmp_path / "secure-home",
        db=fresh_sqlite_url,
        artifacts=artifacts_url,
        auth="on",
        admin_password=PASSWORD,
        jwt_secret="feature-routes-secret-0123456789-abcdefghijkl",
    )
    _apply(settings)
    hasher = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    app = create_app(
        settings, deliver_webhooks=False, security=security_service(settings, hasher=hasher)
    )
    security = app.state.platform.security

    def token_of(role: str) -> dict[str, str]:
        name = f"user-{role}"
        security.create_user(name, PASSWORD)
        security.set_workspace_role("default", USER, name, role)
        return {"Authorization": f"Bearer {security.login(name, PASSWORD).access_token}"}

    with test_client(app) as tc:
        yield tc, token_of


def test_a_viewer_reads_but_cannot_push(secure: Any) -> None:
    client, token_of = secure
    viewer, scientist = token_of("viewer"), token_of("data-scientist")
    body = {"push_source_name": "driver_push", "df": [ROW]}
    denied = client.post("/api/v1/features/push", json=body, headers=viewer)
    assert denied.status_code == 403
    assert denied.json()["error"]["code"] == "permission_denied"
    assert client.post("/api/v1/features/push", json=body).status_code == 401
    assert client.post("/api/v1/features/push", json=body, headers=scientist).status_code == 200
    read = client.post(
        "/api/v1/features/online",
        json={"features": ["driver_live:trips"], "entities": {"driver_id": [1]}},
        headers=viewer,
    )
    assert read.status_code == 200, read.text
    assert read.json()["results"][1]["values"] == [3]
