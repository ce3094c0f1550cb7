"""The audit trail of the platform server: every mutating call with its actor, action,
resource, workspace and status; registry changes with their before/after; logins and
keys from the security library; verify and export over the API."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterator
from typing import Any

import pytest
import sqlalchemy as sa
from test_security_support import (
    PASSWORD,
    add_user,
    bearer,
    client_for,
    login,
    secure_app,
    secure_settings,
    security_of,
)

from shipyard.security.audit import AuditRecord


@pytest.fixture(scope="module")
def app(tmp_path_factory: pytest.TempPathFactory) -> Any:
    return secure_app(secure_settings(tmp_path_factory.mktemp("audit")))


@pytest.fixture(scope="module")
def client(app: Any) -> Iterator[Any]:
    with client_for(app) as tc:
        yield tc


@pytest.fixture(scope="module")
def admin(client: Any) -> dict[str, str]:
    return bearer(login(client, "admin")["access_token"])


def _records(app: Any, **match: Any) -> list[AuditRecord]:
    return [
        r
        for r in security_of(app).audit.records()
        if all(getattr(r, k) == v for k, v in match.items())
    ]


def _model(client: Any, admin: dict[str, str], name: str) -> None:
    assert client.post("/api/v1/models", json={"name": name}, headers=admin).status_code == 201
    for version in (1, 2):
        response = client.post(
            f"/api/v1/models/{name}/versions",
            json={"source": f"file:///m/{version}"},
            headers=admin,
        )
        assert response.status_code == 201


def test_mutating_calls_are_audited_with_actor_resource_and_status(
    client: Any, app: Any, admin: dict[str, str]
) -> None:
    created = client.post("/api/v1/experiments", json={"name": "audited"}, headers=admin)
    experiment_id = created.json()["experiment_id"]
    (record,) = _records(app, action="api.create_experiment", resource_id=experiment_id)
    assert record.actor == "user:admin"
    assert record.resource_type == "experiments"
    assert record.workspace == "default"
    assert record.details == {
        "method": "POST",
        "path": "/api/v1/experiments",
        "status": 201,
        "permission": "experiments:write",
    }
    client.put(
        f"/api/v1/experiments/{experiment_id}/tags/team", json={"value": "ml"}, headers=admin
    )
    (tag,) = _records(app, action="api.set_experiment_tag")
    assert tag.resource_id == f"{experiment_id}/team"


def test_failed_mutations_are_audited_with_their_status(
    client: Any, app: Any, admin: dict[str, str]
) -> None:
    viewer = bearer(add_user(app, "audit-viewer", workspace_role="viewer"))
    assert client.post("/api/v1/models", json={"name": "nope"}, headers=viewer).status_code == 403
    assert client.delete("/api/v1/runs/ghost-run", headers=admin).status_code == 404
    assert client.post("/api/v1/models", json={"name": "anon"}).status_code == 401
    denied = _records(app, action="api.create_registered_model", actor="user:audit-viewer")
    assert [r.details["status"] for r in denied] == [403]
    missing = _records(app, action="api.delete_run", resource_id="ghost-run")
    assert [r.details["status"] for r in missing] == [404]
    anonymous = _records(app, action="api.create_registered_model", actor="anonymous")
    assert [r.details["status"] for r in anonymous] == [401]


def test_reads_are_not_audited(client: Any, app: Any, admin: dict[str, str]) -> None:
    before = len(list(security_of(app).audit.records()))
    for _ in range(3):
        assert client.get("/api/v1/experiments", headers=admin).status_code == 200
    assert len(list(security_of(app).audit.records())) == before


def test_alias_moves_record_before_and_after_and_the_real_actor(
    client: Any, app: Any, admin: dict[str, str]
) -> None:
    _model(client, admin, "fraud")
    for version in (1, 2):
        response = client.put(
            "/api/v1/models/fraud/aliases/champion",
            json={"version": version, "actor": "someone-else"},
            headers=admin,
        )
        assert response.status_code == 200
    moves = _records(app, action="model.alias.set", resource_id="fraud")
    assert [(m.details["before"], m.details["after"]) for m in moves] == [
        ({"alias": "champion", "version": None}, {"alias": "champion", "version": 1}),
        ({"alias": "champion", "version": 1}, {"alias": "champion", "version": 2}),
    ]
    assert {m.actor for m in moves} == {"user:admin"}
    # The registry's own history names the caller too, not what the body claimed.
    history = client.get("/api/v1/models/fraud/aliases/champion/history", headers=admin).json()
    assert {c["actor"] for c in history["changes"]} == {"user:admin"}
    assert client.delete("/api/v1/models/fraud/aliases/champion", headers=admin).status_code == 204
    (removed,) = _records(app, action="model.alias.delete", resource_id="fraud")
    assert removed.details == {"before": {"alias": "champion", "version": 2}, "after": None}


def test_promotions_and_refused_promotions_are_audited(
    client: Any, app: Any, admin: dict[str, str]
) -> None:
    _model(client, admin, "churn")
    gate = client.put(
        "/api/v1/models/churn/gates/prod", json={"expression": "accuracy >= 0.9"}, headers=admin
    )
    assert gate.status_code == 204
    (gate_set,) = _records(app, action="model.gate.set", resource_id="churn")
    assert gate_set.details["after"] == {"alias": "prod", "gate": "accuracy >= 0.9"}
    refused = client.put("/api/v1/models/churn/aliases/prod", json={"version": 1}, headers=admin)
    assert refused.status_code == 409
    (record,) = _records(app, action="model.promotion_refused", resource_id="churn")
    assert record.details["before"] == {"alias": "prod", "version": None}
    assert record.details["after"] == {"alias": "prod", "version": 1}
    assert "accuracy" in record.details["reason"]
    (call,) = _records(app, action="api.set_alias", resource_id="churn/prod")
    assert call.details["status"] == 409
    forced = client.put(
        "/api/v1/models/churn/aliases/prod", json={"version": 1, "force": True}, headers=admin
    )
    assert forced.status_code == 200
    (promotion,) = _records(app, action="model.promotion", resource_id="churn")
    assert promotion.details["reason"] == "forced past the gate"


def test_gated_aliases_need_promotion_rights(client: Any, app: Any, admin: dict[str, str]) -> None:
    _model(client, admin, "gated")
    client.put("/api/v1/models/gated/gates/prod", json={"expression": "acc > 0"}, headers=admin)
    scientist = bearer(add_user(app, "audit-ds", workspace_role="data-scientist"))
    staging = client.put(
        "/api/v1/models/gated/aliases/staging", json={"version": 1}, headers=scientist
    )
    assert staging.status_code == 200
    prod = client.put("/api/v1/models/gated/aliases/prod", json={"version": 1}, headers=scientist)
    assert prod.status_code == 403
    assert "promotions:write" in prod.json()["error"]["message"]
    forced = client.put(
        "/api/v1/models/gated/aliases/staging",
        json={"version": 2, "force": True},
        headers=scientist,
    )
    assert forced.status_code == 403


def test_deletions_record_what_was_deleted(client: Any, app: Any, admin: dict[str, str]) -> None:
    _model(client, admin, "doomed")
    client.put("/api/v1/models/doomed/aliases/live", json={"version": 2}, headers=admin)
    assert client.delete("/api/v1/models/doomed/versions/1", headers=admin).status_code == 204
    (version,) = _records(app, action="model.version.delete", resource_id="doomed")
    assert version.details["before"]["source"] == "file:///m/1"
    assert client.delete("/api/v1/models/doomed", headers=admin).status_code == 204
    (model,) = _records(app, action="model.delete", resource_id="doomed")
    assert model.details["before"] == {"latest_version": 2, "aliases": {"live": 2}}
    assert model.details["after"] is None


def test_logins_and_key_lifecycle_are_audited(client: Any, app: Any) -> None:
    security_of(app).create_user("audit-login", PASSWORD)
    bad = {"grant_type": "password", "username": "audit-login", "password": "not it at all"}
    assert client.post("/api/v1/auth/token", data=bad).status_code == 401
    tokens = login(client, "audit-login")
    refreshed = client.post(
        "/api/v1/auth/token",
        data={"grant_type": "refresh_token", "refresh_token": tokens["refresh_token"]},
    )
    headers = bearer(refreshed.json()["access_token"])
    key = client.post("/api/v1/api-keys", json={"name": "k"}, headers=headers).json()
    assert client.delete(f"/api/v1/api-keys/{key['key_id']}", headers=headers).status_code == 204
    logout = client.post(
        "/api/v1/auth/logout", json={"refresh_token": refreshed.json()["refresh_token"]}
    )
    assert logout.status_code == 204
    actions = [r.action for r in _records(app, actor="user:audit-login")]
    assert actions == [
        "login.failure",
        "login.success",
        "token.refresh",
        "api_key.create",
        "api.create_api_key",
        "api_key.revoke",
        "api.revoke_api_key",
        "token.revoke",
    ]


def test_verify_and_export_over_the_api(client: Any, app: Any, admin: dict[str, str]) -> None:
    client.post("/api/v1/experiments", json={"name": "for-export"}, headers=admin)
    verified = client.get("/api/v1/audit/verify", headers=admin).json()
    assert verified["ok"] is True and verified["issues"] == []
    assert verified["checked"] == len(list(security_of(app).audit.records()))
    records = client.get("/api/v1/audit", params={"limit": 3}, headers=admin).json()["records"]
    assert [r["seq"] for r in records] == [1, 2, 3]
    since = records[-1]["at"] + 1
    later = client.get("/api/v1/audit", params={"since": since}, headers=admin).json()["records"]
    assert all(r["at"] >= since for r in later)
    jsonl = client.get("/api/v1/audit/export", params={"format": "jsonl"}, headers=admin)
    assert jsonl.headers["content-type"].startswith("application/x-ndjson")
    lines = [json.loads(line) for line in jsonl.text.splitlines()]
    assert lines[-1]["hash"] == verified["head_hash"]  # reads add no records
    exported = client.get("/api/v1/audit/export", params={"format": "csv"}, headers=admin)
    rows = list(csv.DictReader(io.StringIO(exported.text)))
    assert rows[0]["seq"] == "1" and json.loads(rows[0]["details"])["bootstrap"] is True
    bad = client.get("/api/v1/audit", params={"since": "yesterday"}, headers=admin)
    assert bad.status_code == 400
    assert "ISO 8601" in bad.json()["error"]["message"]


def test_verify_over_the_api_names_a_tampered_record(tmp_path_factory: Any) -> None:
    app = secure_app(secure_settings(tmp_path_factory.mktemp("tamper")))
    with client_for(app) as client:
        admin = bearer(login(client, "admin")["access_token"])
        for name in ("a", "b", "c"):
            client.post("/api/v1/experiments", json={"name": name}, headers=admin)
        engine = security_of(app).engine
        with engine.begin() as conn:
            conn.execute(sa.text("UPDATE audit_log SET actor = 'user:nobody' WHERE seq = 3"))
        report = client.get("/api/v1/audit/verify", headers=admin).json()
        assert report["ok"] is False
        assert [(i["seq"], i["kind"]) for i in report["issues"]] == [(3, "modified")]


def test_audit_routes_need_a_site_wide_audit_role(client: Any, app: Any) -> None:
    member = bearer(add_user(app, "ws-maint", workspace_role="maintainer"))
    assert client.get("/api/v1/audit", headers=member).status_code == 403
    site = bearer(add_user(app, "site-maint", role="maintainer"))
    assert client.get("/api/v1/audit/verify", headers=site).status_code == 200
