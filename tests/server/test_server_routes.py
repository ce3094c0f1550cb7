"""The route table: every API route declares a permission; OpenAPI and health are served."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter

from shipyard.server.deps import PERMISSION_KEY, DeclaredRoute, declared_routes


def _api_routes(app: Any) -> list[DeclaredRoute]:
    return [r for r in declared_routes(app) if r.path.startswith("/api")]


def test_every_api_route_declares_a_permission(app: Any) -> None:
    routes = _api_routes(app)
    assert len(routes) > 30
    missing = [f"{sorted(r.methods)} {r.path}" for r in routes if r.permission is None]
    assert not missing, f"routes without requires(...): {missing}"


def test_permission_walk_catches_a_route_without_one(app: Any) -> None:
    router = APIRouter()

    @router.get("/unguarded")
    def unguarded() -> dict[str, str]:
        return {}

    app.include_router(router, prefix="/api/v1")
    route = next(r for r in _api_routes(app) if r.path == "/api/v1/unguarded")
    assert route.permission is None


def test_write_routes_declare_write_permissions(app: Any) -> None:
    # Reads never need a mutating permission; changes never pass with a read permission
    # (searching and online feature reads are reads, the token endpoint and logout are
    # public).
    reads_by_post = {
        "/api/v1/runs/search",
        "/api/v1/auth/token",
        "/api/v1/auth/logout",
        "/api/v1/features/online",
    }
    for route in _api_routes(app):
        permission = route.permission
        assert permission is not None
        if route.methods & {"POST", "PUT", "PATCH", "DELETE"} and route.path not in (reads_by_post):
            assert permission.action != "read", route.path
        if route.methods == {"GET"}:
            assert permission.action not in ("write", "delete"), route.path


def test_openapi_lists_routes_with_their_permission(client: Any) -> None:
    spec = client.get("/openapi.json").json()
    assert spec["info"]["title"] == "Shipyard"
    batch = spec["paths"]["/api/v1/runs/{run_id}/batch"]["post"]
    assert batch[PERMISSION_KEY] == "runs:write"
    assert "422" in batch["responses"]
    schema = batch["responses"]["422"]["content"]["application/json"]["schema"]
    assert schema["$ref"].endswith("/ErrorBody")
    upload = spec["paths"]["/api/v1/runs/{run_id}/artifacts/{path}"]["put"]
    assert "application/octet-stream" in upload["requestBody"]["content"]
    assert spec["paths"]["/api/v1/models/{name}/aliases/{alias}"]["put"][PERMISSION_KEY] == (
        "aliases:write"
    )


def test_docs_are_served(client: Any) -> None:
    assert client.get("/docs").status_code == 200


def test_health_is_cheap_and_public(client: Any) -> None:
    for path in ("/health", "/api/v1/health"):
        response = client.get(path)
        assert response.status_code == 200
        assert response.json()["status"] == "ok"


def test_authorizer_sees_each_routes_permission(server_settings: Any) -> None:
    from shipyard.errors import PermissionDeniedError
    from shipyard.server.app import create_app
    from shipyard.testing import test_client

    seen: list[tuple[str, str]] = []

    def authorizer(request: Any, resource: str, action: str) -> None:
        seen.append((resource, action))
        if action == "write":
            raise PermissionDeniedError(f"May not {action} {resource}.")

    client = test_client(create_app(server_settings, authorizer=authorizer))
    assert client.get("/api/v1/experiments").status_code == 200
    denied = client.post("/api/v1/experiments", json={"name": "x"})
    assert denied.status_code == 403
    assert denied.json()["error"] == {
        "code": "permission_denied",
        "message": "May not write experiments.",
    }
    assert seen == [("experiments", "read"), ("experiments", "write")]
