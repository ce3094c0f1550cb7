"""Triggers: a file or partition arrival fires once, a monitoring alert starts a retraining
run, and a new model version starts an evaluation pipeline."""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa

from shipyard.config import Settings
from shipyard.errors import ConflictError, InvalidArgumentError
from shipyard.pipelines import pipeline, step
from shipyard.pipelines.executor import get_run
from shipyard.pipelines.scheduler import Scheduler
from shipyard.pipelines.schema import pipeline_runs
from shipyard.pipelines.triggers import TriggerStore, fill_params, fire_alert, poll_data_triggers
from shipyard.registry.events import EventBus
from shipyard.registry.sql import SqlRegistryStore
from shipyard.store.db import engine_for


@pytest.fixture(autouse=True)
def _close_step_workers() -> Iterator[None]:
    """Stop the executor's warm step workers after each test, so none outlives its test."""
    yield
    from shipyard.pipelines.worker import shutdown_pools

    shutdown_pools()


class Starts:
    """A run starter that records what it was asked to start."""

    def __init__(self) -> None:
        self.calls: list[dict[str, Any]] = []

    def __call__(self, ref: str, params: dict[str, Any], workspace: str, at: Any, name: str) -> str:
        self.calls.append({"ref": ref, "params": params, "workspace": workspace, "name": name})
        return f"run{len(self.calls)}"


@step
def retrain(model: str, reason: str) -> str:
    return f"{model}:{reason}"


@pipeline
def retraining(model: str, reason: str = "manual"):
    retrain(model=model, reason=reason)


@pytest.fixture
def settings(tmp_path: Path, fresh_sqlite_url: str, artifacts_url: str) -> Settings:
    return Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts_url)


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    return engine_for(db_url)


def test_fill_params_quotes_event_fields() -> None:
    fields = {"path": "/in/a.csv", "version": 3}
    template = {"p": "{path}", "v": "{version}", "tag": "v{version}-{nope}", "n": 1}
    assert fill_params(template, fields) == {
        "p": "/in/a.csv",
        "v": 3,
        "tag": "v3-{nope}",
        "n": 1,
    }


def test_each_file_arrival_fires_once(engine: sa.Engine, workspace: str, tmp_path: Path) -> None:
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    (incoming / "old.csv").write_text("a\n1\n")
    store = TriggerStore(engine, workspace)
    store.create(
        "new-data",
        "flows:train",
        "data",
        {"path": str(incoming / "*.csv")},
        params={"data_path": "{path}"},
    )
    starts = Starts()
    assert poll_data_triggers(engine, starts, workspace=workspace) == []  # old.csv is baseline
    (incoming / "day1.csv").write_text("a\n2\n")
    (incoming / "_SUCCESS").write_text("")
    (incoming / "notes.txt").write_text("not matched")
    assert poll_data_triggers(engine, starts, workspace=workspace) == ["run1"]
    assert poll_data_triggers(engine, starts, workspace=workspace) == []
    assert starts.calls[0]["params"] == {"data_path": str(incoming / "day1.csv")}
    # a rewritten file is a new arrival; a second new file fires on its own
    os.utime(incoming / "day1.csv", ns=(1, 1))
    (incoming / "day2.csv").write_text("a\n3\n")
    assert sorted(poll_data_triggers(engine, starts, workspace=workspace)) == ["run2", "run3"]
    assert [f["run_id"] for f in store.fires("new-data")] == ["run1", "run2", "run3"]


def test_partition_folders_fire_once_each_and_paused_triggers_wait(
    engine: sa.Engine, workspace: str, tmp_path: Path
) -> None:
    table = tmp_path / "events"
    table.mkdir()
    store = TriggerStore(engine, workspace)
    store.create("partitions", "flows:train", "data", {"path": str(table)}, paused=True)
    (table / "date=2024-01-01").mkdir()
    (table / "date=2024-01-01" / "part-0.parquet").write_bytes(b"x")
    starts = Starts()
    assert poll_data_triggers(engine, starts, workspace=workspace) == []
    store.set_paused("partitions", False)
    assert poll_data_triggers(engine, starts, workspace=workspace) == ["run1"]
    (table / "date=2024-01-01" / "part-1.parquet").write_bytes(b"y")
    assert poll_data_triggers(engine, starts, workspace=workspace) == []
    with pytest.raises(ConflictError):
        store.create("partitions", "flows:train", "data", {"path": str(table)})
    with pytest.raises(InvalidArgumentError, match=r"needs spec\.path"):
        store.create("bad", "flows:train", "data", {})
    with pytest.raises(InvalidArgumentError, match="Unknown trigger kind 'cron'"):
        store.create("bad", "flows:train", "cron", {})


def test_alert_starts_a_retraining_run_once_at_a_time(settings: Settings) -> None:
    engine = engine_for(settings.db)
    store = TriggerStore(engine)
    store.create(
        "drift-retrain",
        f"{__name__}:retraining",
        "alert",
        {"alert": "feature_drift", "labels": {"model": "churn"}},
        params={"model": "{model}", "reason": "{alert}"},
    )
    assert fire_alert("feature_drift", {"model": "other"}, settings=settings) == []
    assert fire_alert("latency_high", {"model": "churn"}, settings=settings) == []
    (run_id,) = fire_alert("feature_drift", {"model": "churn", "feature": "age"}, settings=settings)
    run = _wait(lambda: get_run(run_id, settings=settings))
    assert run.status == "succeeded", run.error
    assert run.outputs("retrain") == {"output": "churn:feature_drift"}
    (second,) = fire_alert("feature_drift", {"model": "churn"}, settings=settings)
    assert second != run_id
    assert _wait(lambda: get_run(second, settings=settings)).status == "succeeded"


def test_alert_does_not_stack_runs_while_one_is_going(
    engine: sa.Engine, workspace: str, db_url: str, tmp_path: Path
) -> None:
    ids: list[str] = []

    def running(ref: str, params: dict[str, Any], ws: str, at: Any, name: str) -> str:
        ids.append(uuid.uuid4().hex)
        with engine.begin() as conn:
            conn.execute(
                pipeline_runs.insert().values(
                    run_id=ids[-1], workspace=ws, pipeline=ref, status="running", created_at=1
                )
            )
        return ids[-1]

    TriggerStore(engine, workspace).create(
        "any-alert", "flows:train", "alert", {"alert": "*", "labels": {}}
    )
    settings = Settings(home=tmp_path / "home", db=db_url)
    fire = lambda: fire_alert("drift", {}, settings=settings, workspace=workspace, starter=running)  # noqa: E731
    assert fire() == ids[:1]
    assert fire() == []
    with engine.begin() as conn:
        conn.execute(
            pipeline_runs.update().where(pipeline_runs.c.run_id == ids[0]).values(status="failed")
        )
    assert fire() == ids[1:2]


def test_new_model_version_starts_the_evaluation_pipeline_once(
    engine: sa.Engine, workspace: str
) -> None:
    TriggerStore(engine, workspace).create(
        "evaluate-new-versions",
        "flows:evaluate",
        "registry",
        {"event": "model_version_created", "model": "churn"},
        params={"model_uri": "models:/{model}/{version}", "version": "{version}"},
    )
    bus = EventBus()
    starts = Starts()
    scheduler = Scheduler(engine, starts, workspace=workspace)
    seen: list[Any] = []
    bus.subscribe(scheduler.notify)
    bus.subscribe(seen.append)
    registry = SqlRegistryStore(engine, workspace, events=bus)
    registry.create_registered_model("churn")
    registry.create_registered_model("other")
    registry.create_model_version("churn", "file:///models/churn/1")
    registry.create_model_version("other", "file:///models/other/1")
    assert scheduler.tick() == ["run1"]
    assert starts.calls[0]["params"]["model_uri"] == "models:/churn/1"
    # the same event delivered again (a retry) does not start a second evaluation
    for event in seen:
        scheduler.notify(event)
    assert scheduler.tick() == []
    registry.create_model_version("churn", "file:///models/churn/2")
    assert scheduler.tick() == ["run2"]
    assert starts.calls[1]["params"]["version"] == 2


def _wait(read: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value.status not in ("pending", "running") or time.monotonic() > deadline:
            return value
        time.sleep(0.1)
