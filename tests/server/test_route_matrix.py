"""Every route declares a permission, and every role gets exactly what ROLE_PERMISSIONS says.

The matrix sends one real request per (route, role) with a token of a user holding that
role in the request's workspace (site-wide for the site-wide routes: users, keys, audit),
on resources created in setup: allowed -> not 401/403, denied -> exactly 403. Without a
token every non-public route is a 401.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from test_security_support import (
    PASSWORD,
    add_user,
    bearer,
    client_for,
    secure_app,
    secure_settings,
    security_of,
)

from shipyard.security.entities import USER
from shipyard.security.rbac import ROLE_PERMISSIONS, ROLES
from shipyard.server.deps import AUTHENTICATED, PUBLIC, Permission, declared_routes
from shipyard.store.workspaces import ensure_workspace

WS = "matrix"
_names = itertools.count()


@dataclass
class World:
    """The app, a client, and the ids of what setup created."""

    app: Any
    client: Any
    ids: dict[str, str]
    tokens: dict[str, str]  # "ws-<role>" / "site-<role>" -> access token
    keys: dict[str, str]  # user -> id of an API key it owns


def _unique(prefix: str) -> str:
    return f"{prefix}-{next(_names)}"


# (method, path template) -> (path, request kwargs) for the world and the acting user.
Build = Callable[[World, str], tuple[str, dict[str, Any]]]


def _get(path: str, **kwargs: Any) -> Build:
    return lambda w, _user: (path.format(**w.ids), kwargs)


def _json(path: str, body: Callable[[World], Any] | Any) -> Build:
    def build(w: World, _user: str) -> tuple[str, dict[str, Any]]:
        return path.format(**w.ids), {"json": body(w) if callable(body) else body}

    return build


REQUESTS: dict[tuple[str, str], Build] = {
    ("GET", "/health"): _get("/health"),
    ("GET", "/api/v1/health"): _get("/api/v1/health"),
    ("GET", "/.well-known/jwks.json"): _get("/.well-known/jwks.json"),
    ("POST", "/api/v1/auth/token"): lambda w, user: (
        "/api/v1/auth/token",
        {
            "data": {
                "grant_type": "password",
                "username": "target" if user == "anonymous" else user,
                "password": PASSWORD,
            }
        },
    ),
    ("POST", "/api/v1/auth/logout"): _json("/api/v1/auth/logout", {"refresh_token": "shyr_x"}),
    ("GET", "/api/v1/auth/jwks"): _get("/api/v1/auth/jwks"),
    ("GET", "/api/v1/auth/me"): _get("/api/v1/auth/me"),
    ("POST", "/api/v1/auth/keys/rotate"): _get("/api/v1/auth/keys/rotate"),
    # tracking
    ("POST", "/api/v1/experiments"): _json(
        "/api/v1/experiments", lambda w: {"name": _unique("exp")}
    ),
    ("GET", "/api/v1/experiments"): _get("/api/v1/experiments"),
    ("GET", "/api/v1/experiments/by-name/{name}"): _get("/api/v1/experiments/by-name/exp"),
    ("GET", "/api/v1/experiments/{experiment_id}"): _get("/api/v1/experiments/{exp_id}"),
    ("DELETE", "/api/v1/experiments/{experiment_id}"): _get("/api/v1/experiments/{doomed_exp}"),
    ("PUT", "/api/v1/experiments/{experiment_id}/tags/{key}"): _json(
        "/api/v1/experiments/{exp_id}/tags/team", {"value": "ml"}
    ),
    ("POST", "/api/v1/runs"): _json("/api/v1/runs", lambda w: {"experiment_id": w.ids["exp_id"]}),
    ("POST", "/api/v1/runs/search"): _json(
        "/api/v1/runs/search", {"filter": "metrics.acc > 0.5", "order_by": ["metrics.acc DESC"]}
    ),
    ("GET", "/api/v1/runs/{run_id}"): _get("/api/v1/runs/{run_id}"),
    ("PATCH", "/api/v1/runs/{run_id}"): _json("/api/v1/runs/{run_id}", {"run_name": "renamed"}),
    ("DELETE", "/api/v1/runs/{run_id}"): _get("/api/v1/runs/{doomed_run}"),
    ("POST", "/api/v1/runs/{run_id}/batch"): _json(
        "/api/v1/runs/{run_id}/batch", {"metrics": [{"key": "loss", "value": 0.1, "step": 1}]}
    ),
    ("GET", "/api/v1/runs/{run_id}/metrics/{key:path}"): _get("/api/v1/runs/{run_id}/metrics/acc"),
    ("POST", "/api/v1/runs/{run_id}/inputs"): _json(
        "/api/v1/runs/{run_id}/inputs",
        {"inputs": [{"dataset": {"name": "d", "digest": "abc"}, "context": "train"}]},
    ),
    # artifacts
    ("PUT", "/api/v1/runs/{run_id}/artifacts/{path:path}"): lambda w, _u: (
        f"/api/v1/runs/{w.ids['run_id']}/artifacts/up/b.txt",
        {"content": b"bytes"},
    ),
    ("GET", "/api/v1/runs/{run_id}/artifacts/{path:path}"): _get(
        "/api/v1/runs/{run_id}/artifacts/a.txt"
    ),
    ("GET", "/api/v1/runs/{run_id}/artifacts"): _get("/api/v1/runs/{run_id}/artifacts"),
    ("POST", "/api/v1/runs/{run_id}/artifacts"): _json(
        "/api/v1/runs/{run_id}/artifacts",
        {"artifacts": [{"path": "a.txt", "size": 1, "sha256": "0" * 64}]},
    ),
    # registry
    ("POST", "/api/v1/models"): _json("/api/v1/models", lambda w: {"name": _unique("model")}),
    ("GET", "/api/v1/models"): _get("/api/v1/models"),
    ("GET", "/api/v1/models/{name}"): _get("/api/v1/models/m"),
    ("PATCH", "/api/v1/models/{name}"): _json("/api/v1/models/m", {"description": "d"}),
    ("DELETE", "/api/v1/models/{name}"): _get("/api/v1/models/doomed"),
    ("PUT", "/api/v1/models/{name}/tags/{key}"): _json("/api/v1/models/m/tags/t", {"value": "v"}),
    ("POST", "/api/v1/models/{name}/versions"): _json(
        "/api/v1/models/m/versions", {"source": "file:///models/m/3"}
    ),
    ("GET", "/api/v1/models/{name}/versions"): _get("/api/v1/models/m/versions"),
    ("GET", "/api/v1/models/{name}/versions/{version}"): _get("/api/v1/models/m/versions/1"),
    ("PATCH", "/api/v1/models/{name}/versions/{version}"): _json(
        "/api/v1/models/m/versions/1", {"description": "d"}
    ),
    ("DELETE", "/api/v1/models/{name}/versions/{version}"): _get("/api/v1/models/m/versions/2"),
    ("PUT", "/api/v1/models/{name}/versions/{version}/tags/{key}"): _json(
        "/api/v1/models/m/versions/1/tags/t", {"value": "v"}
    ),
    ("PUT", "/api/v1/models/{name}/aliases/{alias}"): _json(
        "/api/v1/models/m/aliases/champion", {"version": 1}
    ),
    ("GET", "/api/v1/models/{name}/aliases/{alias}"): _get("/api/v1/models/m/aliases/champion"),
    ("DELETE", "/api/v1/models/{name}/aliases/{alias}"): _get("/api/v1/models/m/aliases/old"),
    ("GET", "/api/v1/models/{name}/aliases/{alias}/history"): _get(
        "/api/v1/models/m/aliases/champion/history"
    ),
    ("GET", "/api/v1/models/{name}/history"): _get("/api/v1/models/m/history"),
    ("GET", "/api/v1/models/{name}/aliases/{alias}/at"): _get(
        "/api/v1/models/m/aliases/champion/at", params={"time": "2030-01-01T00:00:00"}
    ),
    ("PUT", "/api/v1/models/{name}/gates/{alias}"): _json(
        "/api/v1/models/m/gates/guarded", {"expression": "acc >= 0.5"}
    ),
    ("DELETE", "/api/v1/models/{name}/gates/{alias}"): _get("/api/v1/models/m/gates/other"),
    ("POST", "/api/v1/webhooks"): _json("/api/v1/webhooks", {"url": "https://hooks.example/x"}),
    ("GET", "/api/v1/webhooks"): _get("/api/v1/webhooks"),
    ("DELETE", "/api/v1/webhooks/{webhook_id}"): _get("/api/v1/webhooks/{webhook_id}"),
    # identities (site-wide)
    ("POST", "/api/v1/users"): _json(
        "/api/v1/users", lambda w: {"name": _unique("user"), "password": PASSWORD}
    ),
    ("GET", "/api/v1/users"): _get("/api/v1/users"),
    ("GET", "/api/v1/users/{name}"): _get("/api/v1/users/target"),
    ("PATCH", "/api/v1/users/{name}"): _json("/api/v1/users/target", {"disabled": False}),
    ("POST", "/api/v1/service-accounts"): _json(
        "/api/v1/service-accounts", lambda w: {"name": _unique("sa")}
    ),
    ("GET", "/api/v1/service-accounts"): _get("/api/v1/service-accounts"),
    ("PATCH", "/api/v1/service-accounts/{name}"): _json(
        "/api/v1/service-accounts/bot", {"disabled": False}
    ),
    ("POST", "/api/v1/api-keys"): _json("/api/v1/api-keys", {"name": "matrix"}),
    ("GET", "/api/v1/api-keys"): _get("/api/v1/api-keys"),
    ("DELETE", "/api/v1/api-keys/{key_id}"): lambda w, user: (
        f"/api/v1/api-keys/{w.keys.get(user, 'nokey')}",
        {},
    ),
    ("GET", "/api/v1/workspaces"): _get("/api/v1/workspaces"),
    ("POST", "/api/v1/workspaces"): _json(
        "/api/v1/workspaces", lambda w: {"name": _unique("space")}
    ),
    # workspace members and grants
    ("GET", "/api/v1/workspaces/{ws}/members"): _get(f"/api/v1/workspaces/{WS}/members"),
    ("PUT", "/api/v1/workspaces/{ws}/members/{principal}"): _json(
        f"/api/v1/workspaces/{WS}/members/user:target", {"role": "viewer"}
    ),
    ("DELETE", "/api/v1/workspaces/{ws}/members/{principal}"): _get(
        f"/api/v1/workspaces/{WS}/members/user:bystander"
    ),
    ("POST", "/api/v1/grants"): _json(
        "/api/v1/grants",
        {"resource_type": "models", "resource_name": "m", "principal": "team:ml", "role": "viewer"},
    ),
    ("GET", "/api/v1/grants"): _get("/api/v1/grants"),
    ("DELETE", "/api/v1/grants"): _get(
        "/api/v1/grants",
        params={"resource_type": "models", "resource_name": "m", "principal": "user:target"},
    ),
    # features
    ("POST", "/api/v1/features/online"): _json(
        "/api/v1/features/online", {"features": ["nope:x"], "entities": {"driver_id": [1]}}
    ),
    ("POST", "/api/v1/features/push"): _json(
        "/api/v1/features/push", {"push_source_name": "nope", "df": [{"a": 1}]}
    ),
    # pipelines
    ("POST", "/api/v1/pipelines/runs"): _json(
        "/api/v1/pipelines/runs", {"pipeline": "no_such_module:flow"}
    ),
    ("POST", "/api/v1/pipelines/schedules"): _json(
        "/api/v1/pipelines/schedules",
        lambda w: {"name": _unique("sched"), "pipeline": "no_such_module:flow", "cron": "@daily"},
    ),
    ("GET", "/api/v1/pipelines/schedules"): _get("/api/v1/pipelines/schedules"),
    ("GET", "/api/v1/pipelines/schedules/{name}"): _get("/api/v1/pipelines/schedules/nightly"),
    ("GET", "/api/v1/pipelines/schedules/{name}/fires"): _get(
        "/api/v1/pipelines/schedules/nightly/fires"
    ),
    ("POST", "/api/v1/pipelines/schedules/{name}/pause"): _get(
        "/api/v1/pipelines/schedules/nightly/pause"
    ),
    ("POST", "/api/v1/pipelines/schedules/{name}/resume"): _get(
        "/api/v1/pipelines/schedules/nightly/resume"
    ),
    ("DELETE", "/api/v1/pipelines/schedules/{name}"): _get("/api/v1/pipelines/schedules/nightly"),
    ("POST", "/api/v1/pipelines/schedules/{name}/backfill"): _json(
        "/api/v1/pipelines/schedules/nightly/backfill",
        {"start": "2024-01-01T00:00:00Z", "end": "2024-01-02T00:00:00Z"},
    ),
    ("POST", "/api/v1/pipelines/triggers"): _json(
        "/api/v1/pipelines/triggers",
        lambda w: {
            "name": _unique("trig"),
            "pipeline": "no_such_module:flow",
            "kind": "alert",
            "spec": {"alert": "drift"},
        },
    ),
    ("GET", "/api/v1/pipelines/triggers"): _get("/api/v1/pipelines/triggers"),
    ("GET", "/api/v1/pipelines/triggers/{name}"): _get("/api/v1/pipelines/triggers/retrain"),
    ("POST", "/api/v1/pipelines/triggers/{name}/pause"): _get(
        "/api/v1/pipelines/triggers/retrain/pause"
    ),
    ("POST", "/api/v1/pipelines/triggers/{name}/resume"): _get(
        "/api/v1/pipelines/triggers/retrain/resume"
    ),
    ("DELETE", "/api/v1/pipelines/triggers/{name}"): _get("/api/v1/pipelines/triggers/retrain"),
    ("POST", "/api/v1/pipelines/alerts"): _json(
        "/api/v1/pipelines/alerts", {"alert": "drift", "labels": {"model": "m"}}
    ),
    # monitoring
    ("POST", "/api/v1/monitoring/labels"): _json(
        "/api/v1/monitoring/labels",
        {"model": "churn", "labels": [{"request_id": "r1", "label": 1}]},
    ),
    ("GET", "/api/v1/monitoring/labels/{model}/count"): _get(
        "/api/v1/monitoring/labels/churn/count"
    ),
    ("GET", "/api/v1/monitoring/metrics"): _get("/api/v1/monitoring/metrics"),
    # audit
    ("GET", "/api/v1/audit"): _get("/api/v1/audit", params={"limit": 5}),
    ("GET", "/api/v1/audit/verify"): _get("/api/v1/audit/verify"),
    ("GET", "/api/v1/audit/export"): _get("/api/v1/audit/export", params={"format": "csv"}),
}

#: FastAPI's own documentation routes, outside the permission model.
DOCS = {"/openapi.json", "/docs", "/docs/oauth2-redirect"}


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> Iterator[World]:
    settings = secure_settings(tmp_path_factory.mktemp("matrix"))
    app = secure_app(settings)
    security = security_of(app)
    ensure_workspace(security.engine, WS)
    tokens: dict[str, str] = {}
    for role in ROLES:
        tokens[f"ws-{role}"] = add_user(app, f"ws-{role}", workspace_role=role, workspace=WS)
        tokens[f"site-{role}"] = add_user(app, f"site-{role}", role=role)
    keys = {user: security.create_api_key(USER, user, name="doomed")[0].key_id for user in tokens}
    security.create_user("target", PASSWORD)
    security.set_workspace_role(WS, USER, "bystander", "viewer")
    security.create_service_account("bot")
    security.grant(WS, "models", "m", USER, "target", "viewer")
    with client_for(app) as client:
        admin = {**bearer(tokens["site-admin"]), "X-Shipyard-Workspace": WS}

        def post(path: str, body: Any) -> Any:
            response = client.post(path, json=body, headers=admin)
            assert response.status_code in (200, 201, 204), response.text
            return response.json() if response.content else None

        exp_id = post("/api/v1/experiments", {"name": "exp"})["experiment_id"]
        doomed_exp = post("/api/v1/experiments", {"name": "doomed"})["experiment_id"]
        run_id = post("/api/v1/runs", {"experiment_id": exp_id})["info"]["run_id"]
        doomed_run = post("/api/v1/runs", {"experiment_id": exp_id})["info"]["run_id"]
        post(f"/api/v1/runs/{run_id}/batch", {"metrics": [{"key": "acc", "value": 0.9}]})
        uploaded = client.put(
            f"/api/v1/runs/{run_id}/artifacts/a.txt", content=b"hello", headers=admin
        )
        assert uploaded.status_code == 201, uploaded.text
        for model in ("m", "doomed"):
            post("/api/v1/models", {"name": model})
        post("/api/v1/models/m/versions", {"source": "file:///models/m/1", "run_id": run_id})
        post("/api/v1/models/m/versions", {"source": "file:///models/m/2"})
        for alias in ("champion", "old"):
            assert client.put(
                f"/api/v1/models/m/aliases/{alias}", json={"version": 1}, headers=admin
            ).is_success
        assert client.put(
            "/api/v1/models/m/gates/other", json={"expression": "acc > 0"}, headers=admin
        ).is_success
        webhook_id = post("/api/v1/webhooks", {"url": "https://hooks.example/y"})["webhook_id"]
        ids = {
            "exp_id": exp_id,
            "doomed_exp": doomed_exp,
            "run_id": run_id,
            "doomed_run": doomed_run,
            "webhook_id": webhook_id,
        }
        yield World(app, client, ids, tokens, keys)


def _route_keys(app: Any) -> set[tuple[str, str]]:
    return {
        (method, route.path)
        for route in declared_routes(app)
        if route.path not in DOCS
        for method in route.methods
        if method != "HEAD"
    }


def _expected_allowed(permission: Permission, role: str) -> bool:
    if permission in (PUBLIC, AUTHENTICATED):
        return True
    return (permission.resource, permission.action) in ROLE_PERMISSIONS[role]


def test_every_route_declares_a_permission(world: World) -> None:
    missing = [
        f"{sorted(r.methods)} {r.path}"
        for r in declared_routes(world.app)
        if r.permission is None and r.path not in DOCS
    ]
    assert not missing, f"routes without a declared permission: {missing}"


def test_the_matrix_covers_every_route(world: World) -> None:
    served = _route_keys(world.app)
    assert served - set(REQUESTS) == set(), "add the new routes to REQUESTS"
    assert set(REQUESTS) - served == set(), "REQUESTS names routes the app does not serve"


def _permissions(app: Any) -> dict[tuple[str, str], Permission]:
    found = {}
    for route in declared_routes(app):
        for method in route.methods:
            if route.permission is not None:
                found[(method, route.path)] = route.permission
    return found


@pytest.mark.parametrize("route", sorted(REQUESTS), ids=lambda r: f"{r[0]} {r[1]}")
def test_every_role_gets_what_the_role_table_says(world: World, route: tuple[str, str]) -> None:
    method, _template = route
    permission = _permissions(world.app)[route]
    mismatches = []
    for role in ROLES:
        user = f"site-{role}" if permission.site else f"ws-{role}"
        path, kwargs = REQUESTS[route](world, user)
        headers = {**bearer(world.tokens[user]), "X-Shipyard-Workspace": WS}
        status = world.client.request(method, path, headers=headers, **kwargs).status_code
        allowed = _expected_allowed(permission, role)
        if (allowed and status in (401, 403)) or (not allowed and status != 403):
            verdict = "allowed" if allowed else "denied"
            mismatches.append(f"{role}: {permission} should be {verdict}, got {status}")
    assert not mismatches, "\n".join(mismatches)


@pytest.mark.parametrize("route", sorted(REQUESTS), ids=lambda r: f"{r[0]} {r[1]}")
def test_without_a_token_only_public_routes_answer(world: World, route: tuple[str, str]) -> None:
    method, _template = route
    permission = _permissions(world.app)[route]
    path, kwargs = REQUESTS[route](world, "anonymous")
    response = world.client.request(method, path, headers={"X-Shipyard-Workspace": WS}, **kwargs)
    if permission == PUBLIC:
        assert response.status_code not in (401, 403), response.text
    else:
        assert response.status_code == 401, response.text
        assert response.json()["error"]["code"] == "unauthenticated"
        assert response.headers["WWW-Authenticate"].startswith("Bearer")


def test_workspace_roles_grant_nothing_site_wide(world: World) -> None:
    headers = {**bearer(world.tokens["ws-admin"]), "X-Shipyard-Workspace": WS}
    response = world.client.get("/api/v1/users", headers=headers)
    assert response.status_code == 403
    assert "needs a site-wide role" in response.json()["error"]["message"]


def test_login_matrix_users_with_the_password_flow(world: World) -> None:
    # The tokens above came from SecurityService.login; the HTTP flow yields the same.
    for user in ("ws-viewer", "site-predictor"):
        response = world.client.post(
            "/api/v1/auth/token",
            data={"grant_type": "password", "username": user, "password": PASSWORD},
        )
        assert response.status_code == 200
        me = world.client.get("/api/v1/auth/me", headers=bearer(response.json()["access_token"]))
        assert me.json()["name"] == user
