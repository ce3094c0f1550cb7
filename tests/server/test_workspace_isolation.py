"""Workspaces are isolation boundaries: members see and touch only their workspaces (a
site-wide admin sees all), and one workspace's artifacts cannot be read through another's
API, even by someone who belongs to both."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pytest
from test_security_support import (
    add_user,
    bearer,
    client_for,
    login,
    secure_app,
    secure_settings,
    security_of,
)

from shipyard.security.entities import USER
from shipyard.store.workspaces import ensure_workspace


@dataclass
class Setup:
    app: Any
    client: Any
    admin: dict[str, str]
    run_a: str  # a run of workspace team-a with artifact secret.txt
    experiment_a: str


def _in(workspace: str, headers: dict[str, str]) -> dict[str, str]:
    return {**headers, "X-Shipyard-Workspace": workspace}


@pytest.fixture(scope="module")
def setup(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Setup]:
    app = secure_app(secure_settings(tmp_path_factory.mktemp("isolation")))
    engine = security_of(app).engine
    for name in ("team-a", "team-b"):
        ensure_workspace(engine, name)
    with client_for(app) as client:
        admin = bearer(login(client, "admin")["access_token"])
        a = _in("team-a", admin)
        experiment = client.post("/api/v1/experiments", json={"name": "secret"}, headers=a).json()
        run = client.post(
            "/api/v1/runs", json={"experiment_id": experiment["experiment_id"]}, headers=a
        ).json()["info"]["run_id"]
        upload = client.put(
            f"/api/v1/runs/{run}/artifacts/secret.txt", content=b"team a only", headers=a
        )
        assert upload.status_code == 201
        client.post("/api/v1/models", json={"name": "a-model"}, headers=a)
        client.post("/api/v1/models", json={"name": "b-model"}, headers=_in("team-b", admin))
        yield Setup(app, client, admin, run, experiment["experiment_id"])


def test_members_only_see_and_touch_their_workspaces(setup: Setup) -> None:
    token = bearer(add_user(setup.app, "bea", workspace_role="data-scientist", workspace="team-b"))
    client = setup.client
    assert client.get("/api/v1/experiments", headers=_in("team-b", token)).status_code == 200
    for method, path in (
        ("GET", "/api/v1/experiments"),
        ("GET", f"/api/v1/experiments/{setup.experiment_a}"),
        ("GET", f"/api/v1/runs/{setup.run_a}"),
        ("GET", f"/api/v1/runs/{setup.run_a}/artifacts"),
        ("GET", f"/api/v1/runs/{setup.run_a}/artifacts/secret.txt"),
        ("GET", "/api/v1/models/a-model"),
        ("POST", "/api/v1/experiments"),
    ):
        response = client.request(method, path, headers=_in("team-a", token), json={"name": "x"})
        assert response.status_code == 403, (method, path)
        assert "not a member of workspace 'team-a'" in response.json()["error"]["message"]
    # The query parameter is the same boundary as the header.
    query = client.get("/api/v1/experiments", params={"workspace": "team-a"}, headers=token)
    assert query.status_code == 403
    listed = client.get("/api/v1/workspaces", headers=token).json()["workspaces"]
    assert listed == [{"name": "team-b", "roles": ["data-scientist"]}]


def test_site_admins_see_every_workspace(setup: Setup) -> None:
    names = {
        w["name"]
        for w in setup.client.get("/api/v1/workspaces", headers=setup.admin).json()["workspaces"]
    }
    assert {"default", "team-a", "team-b"} <= names
    response = setup.client.get(f"/api/v1/runs/{setup.run_a}", headers=_in("team-a", setup.admin))
    assert response.status_code == 200


def test_artifacts_cannot_be_read_through_another_workspace(setup: Setup) -> None:
    # Even an admin, or a member of both, reaches team-a's run only through team-a.
    token = bearer(add_user(setup.app, "both", workspace_role="viewer", workspace="team-a"))
    security_of(setup.app).set_workspace_role("team-b", USER, "both", "viewer")
    for headers in (setup.admin, token):
        via_b = _in("team-b", headers)
        download = setup.client.get(
            f"/api/v1/runs/{setup.run_a}/artifacts/secret.txt", headers=via_b
        )
        assert download.status_code == 404
        assert "team a only" not in download.text
        listing = setup.client.get(f"/api/v1/runs/{setup.run_a}/artifacts", headers=via_b)
        assert listing.status_code == 404
        upload = setup.client.put(
            f"/api/v1/runs/{setup.run_a}/artifacts/planted.txt", content=b"x", headers=via_b
        )
        assert upload.status_code in (403, 404)
    own = setup.client.get(
        f"/api/v1/runs/{setup.run_a}/artifacts/secret.txt", headers=_in("team-a", token)
    )
    assert own.status_code == 200 and own.content == b"team a only"


def test_an_artifact_location_cannot_point_into_another_workspace(setup: Setup) -> None:
    root = setup.app.state.platform.settings.artifacts.rstrip("/")
    b = _in("team-b", setup.admin)
    for location in (f"{root}/team-a/{setup.experiment_a}", f"{root}/team-b/../team-a", root):
        response = setup.client.post(
            "/api/v1/experiments", json={"name": "sneaky", "artifact_location": location}, headers=b
        )
        assert response.status_code == 400, location
        assert "outside workspace 'team-b'" in response.json()["error"]["message"]
    own = setup.client.post(
        "/api/v1/experiments",
        json={"name": "own-folder", "artifact_location": f"{root}/team-b/custom"},
        headers=b,
    )
    assert own.status_code == 201


def test_a_grant_opens_one_resource_of_a_workspace_to_a_non_member(setup: Setup) -> None:
    token = bearer(add_user(setup.app, "guest"))
    b = _in("team-b", token)
    assert setup.client.get("/api/v1/models/b-model", headers=b).status_code == 403
    granted = setup.client.post(
        "/api/v1/grants",
        json={
            "resource_type": "models",
            "resource_name": "b-model",
            "principal": "user:guest",
            "role": "viewer",
        },
        headers=_in("team-b", setup.admin),
    )
    assert granted.status_code == 201
    assert setup.client.get("/api/v1/models/b-model", headers=b).status_code == 200
    assert setup.client.get("/api/v1/models", headers=b).status_code == 403
    assert (
        setup.client.get("/api/v1/models/a-model", headers=_in("team-a", token)).status_code == 403
    )
    listed = setup.client.get("/api/v1/grants", headers=_in("team-b", setup.admin)).json()
    assert [(g["resource_name"], g["principal"]) for g in listed["grants"]] == [
        ("b-model", "user:guest")
    ]
    revoked = setup.client.request(
        "DELETE",
        "/api/v1/grants",
        json={"resource_type": "models", "resource_name": "b-model", "principal": "user:guest"},
        headers=_in("team-b", setup.admin),
    )
    assert revoked.status_code == 204
    assert setup.client.get("/api/v1/models/b-model", headers=b).status_code == 403


def test_a_grant_on_an_experiment_covers_its_runs(setup: Setup) -> None:
    token = bearer(add_user(setup.app, "auditor"))
    a = _in("team-a", token)
    assert setup.client.get(f"/api/v1/runs/{setup.run_a}", headers=a).status_code == 403
    security_of(setup.app).grant("team-a", "experiments", "secret", USER, "auditor", "viewer")
    assert setup.client.get(f"/api/v1/runs/{setup.run_a}", headers=a).status_code == 200
    assert (
        setup.client.get(f"/api/v1/experiments/{setup.experiment_a}", headers=a).status_code == 200
    )
    artifact = setup.client.get(f"/api/v1/runs/{setup.run_a}/artifacts/secret.txt", headers=a)
    assert artifact.status_code == 200
    assert setup.client.get("/api/v1/experiments", headers=a).status_code == 403


def test_workspace_admins_manage_members_of_their_workspace_only(setup: Setup) -> None:
    token = bearer(add_user(setup.app, "lead-a", workspace_role="admin", workspace="team-a"))
    added = setup.client.put(
        "/api/v1/workspaces/team-a/members/user:newbie", json={"role": "viewer"}, headers=token
    )
    assert added.status_code == 200
    assert added.json() == {"workspace": "team-a", "principal": "user:newbie", "role": "viewer"}
    members = setup.client.get("/api/v1/workspaces/team-a/members", headers=token).json()
    assert {"workspace": "team-a", "principal": "user:newbie", "role": "viewer"} in members[
        "members"
    ]
    # The path names the workspace acted on; a header naming another changes nothing.
    other = setup.client.put(
        "/api/v1/workspaces/team-b/members/user:newbie",
        json={"role": "admin"},
        headers=_in("team-a", token),
    )
    assert other.status_code == 403
    assert setup.client.get("/api/v1/users", headers=token).status_code == 403
    created = setup.client.post("/api/v1/workspaces", json={"name": "team-c"}, headers=token)
    assert created.status_code == 403
