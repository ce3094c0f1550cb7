"""The workspace of a request: X-Shipyard-Workspace header, else ?workspace=, else default."""

from __future__ import annotations

from typing import Any

from shipyard.config import Settings
from shipyard.store.db import engine_for
from shipyard.store.workspaces import ensure_workspace


def _names(response: Any) -> list[str]:
    assert response.status_code == 200, response.text
    return [e["name"] for e in response.json()["experiments"]]


def test_header_and_query_select_the_workspace(client: Any, server_settings: Settings) -> None:
    ensure_workspace(engine_for(server_settings.db), "team-a")
    created = client.post(
        "/api/v1/experiments", json={"name": "a-only"}, headers={"X-Shipyard-Workspace": "team-a"}
    )
    assert created.status_code == 201
    assert created.json()["workspace"] == "team-a"
    client.post("/api/v1/experiments", json={"name": "default-only"})

    assert _names(client.get("/api/v1/experiments")) == ["default-only"]
    assert _names(client.get("/api/v1/experiments", params={"workspace": "team-a"})) == ["a-only"]
    header = {"X-Shipyard-Workspace": "team-a"}
    assert _names(client.get("/api/v1/experiments", headers=header)) == ["a-only"]
    same = client.get("/api/v1/experiments", params={"workspace": "team-a"}, headers=header)
    assert _names(same) == ["a-only"]


def test_runs_of_another_workspace_are_not_found(client: Any, server_settings: Settings) -> None:
    ensure_workspace(engine_for(server_settings.db), "team-b")
    experiment = client.post("/api/v1/experiments", json={"name": "e"}).json()
    run = client.post("/api/v1/runs", json={"experiment_id": experiment["experiment_id"]}).json()
    response = client.get(
        f"/api/v1/runs/{run['info']['run_id']}", headers={"X-Shipyard-Workspace": "team-b"}
    )
    assert response.status_code == 404
    assert "workspace 'team-b'" in response.json()["error"]["message"]


def test_unknown_workspace_is_404_with_a_hint(client: Any) -> None:
    response = client.get("/api/v1/experiments", headers={"X-Shipyard-Workspace": "ghost"})
    assert response.status_code == 404
    message = response.json()["error"]["message"]
    assert message == (
        "Workspace 'ghost' does not exist.\n"
        "Hint: Create it with `shipyard workspaces create ghost`."
    )


def test_invalid_workspace_name_is_400(client: Any) -> None:
    response = client.get("/api/v1/experiments", params={"workspace": "Bad Name!"})
    assert response.status_code == 400
    assert "Invalid workspace name 'Bad Name!'" in response.json()["error"]["message"]


def test_header_and_query_disagreeing_is_400(client: Any) -> None:
    response = client.get(
        "/api/v1/experiments",
        params={"workspace": "default"},
        headers={"X-Shipyard-Workspace": "other"},
    )
    assert response.status_code == 400
    assert "Name the workspace once" in response.json()["error"]["message"]
