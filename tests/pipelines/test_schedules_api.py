"""The pipelines routes of the platform server (runs, schedules, triggers, alerts) with auth
on: each needs its declared pipelines permission, and bad input is a 4xx JSON error."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import argon2
import pytest

from shipyard.config import load_settings
from shipyard.pipelines import pipeline, step
from shipyard.security.entities import USER
from shipyard.server.auth import security_service
from shipyard.testing import test_client


@pytest.fixture(autouse=True)
def _close_step_workers() -> Iterator[None]:
    """Stop the executor's warm step workers after each test, so none outlives its test."""
    yield
    from shipyard.pipelines.worker import shutdown_pools

    shutdown_pools()


PASSWORD = "violet tractor moonlight"
FLOW = f"{__name__}:greeting"


@step
def greet(who: str) -> str:
    return f"hello {who}"


@pipeline
def greeting(who: str = "world"):
    greet(who=who)


@pytest.fixture
def secured(tmp_path: Path) -> Iterator[dict[str, Any]]:
    """A server with auth on and a token per workspace role."""
    from shipyard.server.app import create_app

    artifacts = tmp_path / "artifacts"
    artifacts.mkdir()
    settings = load_settings(
        home=tmp_path,
        db=f"sqlite:///{tmp_path / 'server.db'}",
        artifacts=artifacts.as_uri(),
        auth="on",
        admin_password=PASSWORD,
        jwt_secret="pipelines-test-secret-0123456789-abcdefghijkl",
    )
    hasher = argon2.PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)
    app = create_app(
        settings, deliver_webhooks=False, security=security_service(settings, hasher=hasher)
    )
    security = app.state.platform.security
    headers = {}
    for role in ("viewer", "data-scientist", "admin"):
        security.create_user(f"u-{role}", PASSWORD)
        security.set_workspace_role("default", USER, f"u-{role}", role)
        token = security.login(f"u-{role}", PASSWORD).access_token
        headers[role] = {"Authorization": f"Bearer {token}"}
    with test_client(app) as client:
        yield {"client": client, "headers": headers, "settings": settings}


def test_schedule_routes_need_pipeline_permissions(secured: dict[str, Any]) -> None:
    client, headers = secured["client"], secured["headers"]
    body = {"name": "nightly", "pipeline": FLOW, "cron": "@daily", "params": {"who": "ops"}}
    assert client.post("/api/v1/pipelines/schedules", json=body).status_code == 401
    denied = client.post("/api/v1/pipelines/schedules", json=body, headers=headers["viewer"])
    assert denied.status_code == 403
    made = client.post("/api/v1/pipelines/schedules", json=body, headers=headers["data-scientist"])
    assert made.status_code == 201, made.text
    assert made.json()["next_fire_at"].endswith("T00:00:00+00:00")
    listed = client.get("/api/v1/pipelines/schedules", headers=headers["viewer"])
    assert [s["name"] for s in listed.json()["schedules"]] == ["nightly"]
    paused = client.post(
        "/api/v1/pipelines/schedules/nightly/pause", headers=headers["data-scientist"]
    )
    assert paused.json()["paused"] is True
    again = client.post("/api/v1/pipelines/schedules", json=body, headers=headers["data-scientist"])
    assert again.status_code == 409
    assert again.json()["error"]["code"] == "conflict"
    bad = {**body, "name": "bad", "cron": "every day"}
    refused = client.post(
        "/api/v1/pipelines/schedules", json=bad, headers=headers["data-scientist"]
    )
    assert refused.status_code == 400
    assert "not a cron schedule" in refused.json()["error"]["message"]
    missing = {**body, "name": "ghost", "pipeline": "no_such_module_abc:flow"}
    refused = client.post(
        "/api/v1/pipelines/schedules", json=missing, headers=headers["data-scientist"]
    )
    assert refused.status_code == 400
    path = {**body, "name": "file", "pipeline": "/etc/evil.py:flow"}
    assert (
        client.post(
            "/api/v1/pipelines/schedules", json=path, headers=headers["data-scientist"]
        ).status_code
        == 422
    )
    gone = client.delete("/api/v1/pipelines/schedules/nightly", headers=headers["data-scientist"])
    assert gone.status_code == 403  # deleting needs pipelines:delete
    gone = client.delete("/api/v1/pipelines/schedules/nightly", headers=headers["admin"])
    assert gone.status_code == 204
    lookup = client.get("/api/v1/pipelines/schedules/nightly", headers=headers["viewer"])
    assert lookup.status_code == 404


def test_run_and_backfill_routes_start_runs(secured: dict[str, Any]) -> None:
    from shipyard.pipelines.executor import get_run

    client, headers, settings = secured["client"], secured["headers"], secured["settings"]
    body = {"pipeline": FLOW, "params": {"who": "api"}}
    assert (
        client.post("/api/v1/pipelines/runs", json=body, headers=headers["viewer"]).status_code
        == 403
    )
    started = client.post("/api/v1/pipelines/runs", json=body, headers=headers["data-scientist"])
    assert started.status_code == 201, started.text
    run = _wait(lambda: get_run(started.json()["run_id"], settings=settings))
    assert run.outputs("greet") == {"output": "hello api"}
    schedule = {"name": "daily", "pipeline": FLOW, "cron": "@daily", "max_active_runs": 2}
    assert client.post(
        "/api/v1/pipelines/schedules", json=schedule, headers=headers["data-scientist"]
    ).is_success
    window = {"start": "2024-01-01T00:00:00Z", "end": "2024-01-03T00:00:00Z"}
    backfill = client.post(
        "/api/v1/pipelines/schedules/daily/backfill", json=window, headers=headers["data-scientist"]
    )
    assert backfill.status_code == 202, backfill.text
    assert backfill.json() == {"schedule": "daily", "intervals": 3}
    deadline = time.monotonic() + 60
    fires: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        fires = client.get(
            "/api/v1/pipelines/schedules/daily/fires", headers=headers["viewer"]
        ).json()["fires"]
        if len(fires) == 3 and all(f["run_id"] for f in fires):
            break
        time.sleep(0.1)
    assert [f["scheduled_at"][:10] for f in fires] == ["2024-01-01", "2024-01-02", "2024-01-03"]
    for fire in fires:
        assert _wait(lambda f=fire: get_run(f["run_id"], settings=settings)).status == "succeeded"


def test_alert_route_fires_alert_triggers(secured: dict[str, Any]) -> None:
    from shipyard.pipelines.executor import get_run

    client, headers, settings = secured["client"], secured["headers"], secured["settings"]
    trigger = {
        "name": "drift",
        "pipeline": FLOW,
        "kind": "alert",
        "spec": {"alert": "feature_drift", "labels": {"model": "churn"}},
        "params": {"who": "{model}"},
    }
    made = client.post(
        "/api/v1/pipelines/triggers", json=trigger, headers=headers["data-scientist"]
    )
    assert made.status_code == 201, made.text
    bad = {**trigger, "name": "bad", "kind": "data", "spec": {}}
    refused = client.post("/api/v1/pipelines/triggers", json=bad, headers=headers["data-scientist"])
    assert refused.status_code == 400
    alert = {"alert": "feature_drift", "labels": {"model": "churn"}}
    denied = client.post("/api/v1/pipelines/alerts", json=alert, headers=headers["viewer"])
    assert denied.status_code == 403
    fired = client.post("/api/v1/pipelines/alerts", json=alert, headers=headers["data-scientist"])
    (run_id,) = fired.json()["run_ids"]
    assert _wait(lambda: get_run(run_id, settings=settings)).outputs("greet") == {
        "output": "hello churn"
    }
    names = client.get("/api/v1/pipelines/triggers", headers=headers["viewer"]).json()
    assert [t["name"] for t in names["triggers"]] == ["drift"]


def _wait(read: Any, timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value.status not in ("pending", "running") or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_server_runs_the_scheduler_only_when_enabled(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading
    from datetime import UTC, datetime, timedelta

    from shipyard.pipelines.executor import get_run
    from shipyard.pipelines.schedules import ScheduleStore
    from shipyard.server.app import create_app

    settings = load_settings(home=tmp_path, db=f"sqlite:///{tmp_path / 'meta.db'}")
    monkeypatch.delenv("SHIPYARD_SCHEDULER", raising=False)
    with test_client(create_app(settings, deliver_webhooks=False)):
        assert "shipyard-scheduler" not in {t.name for t in threading.enumerate()}
    app = create_app(settings, deliver_webhooks=False)
    store = ScheduleStore(app.state.platform.engine)
    hour = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = hour - timedelta(hours=2) + timedelta(minutes=1)  # fires: the last two hours
    store.create("hourly", FLOW, "@hourly", start_at=start, catchup=True, max_active_runs=5)
    monkeypatch.setenv("SHIPYARD_SCHEDULER", "1")
    with test_client(app):
        assert "shipyard-scheduler" in {t.name for t in threading.enumerate()}
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            fires = store.fires("hourly")
            if len(fires) == 2 and all(f["run_id"] for f in fires):
                break
            time.sleep(0.1)
        assert len(fires) == 2
        for fire in fires:
            run = _wait(lambda f=fire: get_run(f["run_id"], settings=settings))
            assert run.outputs("greet") == {"output": "hello world"}
    assert "shipyard-scheduler" not in {t.name for t in threading.enumerate()}


@step
def evaluate(model: str, version: int) -> str:
    return f"evaluated {model} v{version}"


@pipeline
def evaluation(model: str, version: int):
    evaluate(model=model, version=version)


def test_server_scheduler_evaluates_each_new_model_version(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from shipyard.pipelines.executor import get_run
    from shipyard.pipelines.triggers import TriggerStore
    from shipyard.server.app import create_app

    settings = load_settings(home=tmp_path, db=f"sqlite:///{tmp_path / 'meta.db'}")
    monkeypatch.setenv("SHIPYARD_SCHEDULER", "on")
    app = create_app(settings, deliver_webhooks=False)
    triggers = TriggerStore(app.state.platform.engine)
    triggers.create(
        "evaluate",
        f"{__name__}:evaluation",
        "registry",
        {"event": "model_version_created", "model": "churn"},
        params={"model": "{model}", "version": "{version}"},
    )
    with test_client(app) as client:
        assert client.post("/api/v1/models", json={"name": "churn"}).status_code == 201
        made = client.post("/api/v1/models/churn/versions", json={"source": "file:///m/1"})
        assert made.status_code == 201, made.text
        deadline = time.monotonic() + 30
        while not (fires := triggers.fires("evaluate")) or not fires[0]["run_id"]:
            assert time.monotonic() < deadline, "the new version started no evaluation"
            time.sleep(0.05)
        run = _wait(lambda: get_run(fires[0]["run_id"], settings=settings))
        assert run.outputs("evaluate") == {"output": "evaluated churn v1"}
