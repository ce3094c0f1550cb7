"""HttpTrackingStore and HttpRegistryStore end to end through the app (TestClient, no
network), on SQLite and PostgreSQL: same entities and same errors as the local stores."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from shipyard.errors import (
    ConflictError,
    ExperimentNotFoundError,
    FilterSyntaxError,
    InvalidArgumentError,
    ModelNotFoundError,
    NotFoundError,
    PromotionRefusedError,
    RunNotFoundError,
)
from shipyard.registry.http import HttpRegistryStore
from shipyard.tracking.entities import Dataset, DatasetInput, Metric, Param, RunStatus
from shipyard.tracking.http import HttpTrackingStore


@pytest.fixture
def tracking(
    http_tracking_store: Any, db_url: str, workspace: str, artifacts_url: str
) -> HttpTrackingStore:
    store: HttpTrackingStore = http_tracking_store(db_url, workspace, artifacts_url)
    return store


@pytest.fixture
def registry(
    http_registry_store: Any, db_url: str, workspace: str, artifacts_url: str
) -> HttpRegistryStore:
    store: HttpRegistryStore = http_registry_store(db_url, workspace, artifacts_url)
    return store


def test_experiment_round_trip(tracking: HttpTrackingStore, workspace: str) -> None:
    created = tracking.create_experiment("churn", description="d", tags={"team": "growth"})
    assert created.workspace == workspace
    assert created.created_at.tzinfo is not None
    assert created.artifact_location.endswith(f"/{workspace}/{created.experiment_id}")
    assert tracking.get_experiment(created.experiment_id) == created
    assert tracking.get_experiment_by_name("churn") == created
    assert tracking.get_experiment_by_name("nope") is None
    tracking.set_experiment_tag(created.experiment_id, "stage", "dev")
    assert tracking.get_experiment(created.experiment_id).tags == {"team": "growth", "stage": "dev"}
    assert [e.name for e in tracking.list_experiments()] == ["churn"]
    with pytest.raises(ConflictError):
        tracking.create_experiment("churn")
    with pytest.raises(ExperimentNotFoundError, match="Experiment 'ghost' does not exist"):
        tracking.get_experiment("ghost")


def test_run_logging_round_trip(tracking: HttpTrackingStore) -> None:
    experiment = tracking.create_experiment("runs")
    run = tracking.create_run(experiment.experiment_id, run_name="r1", tags={"k": "v"})
    assert run.info.status is RunStatus.RUNNING
    tracking.log_batch(
        run.run_id,
        metrics=[Metric("loss", 0.5, step=0, timestamp=1_000), Metric("loss", 0.25, step=1)],
        params=[Param("lr", "0.1")],
        tags={"note": "first"},
    )
    tracking.log_batch(run.run_id, metrics=[Metric("odd", math.nan), Metric("big", math.inf)])
    fetched = tracking.get_run(run.run_id)
    assert fetched.data.params == {"lr": "0.1"}
    assert fetched.data.metrics["loss"] == 0.25
    assert math.isnan(fetched.data.metrics["odd"])
    assert fetched.data.metrics["big"] == math.inf
    assert fetched.data.tags["note"] == "first"
    history = tracking.get_metric_history(run.run_id, "loss")
    assert [(m.step, m.value) for m in history] == [(0, 0.5), (1, 0.25)]
    assert history[0].timestamp == 1_000
    assert history[1].timestamp > 1_000  # the server stamped it

    with pytest.raises(ConflictError, match="lr"):
        tracking.log_batch(run.run_id, params=[Param("lr", "0.2")])
    finished = tracking.update_run(run.run_id, status=RunStatus.FINISHED, end_time=2_000)
    assert finished.info.status is RunStatus.FINISHED
    assert finished.info.end_time == datetime.fromtimestamp(2, tz=UTC)
    with pytest.raises(ConflictError, match="RUNNING"):
        tracking.log_batch(run.run_id, metrics=[Metric("loss", 0.1)])
    with pytest.raises(RunNotFoundError, match="Run 'ghost' does not exist"):
        tracking.get_run("ghost")


def test_metric_keys_with_slashes(tracking: HttpTrackingStore) -> None:
    run = tracking.create_run(tracking.create_experiment("slash").experiment_id)
    tracking.log_batch(run.run_id, metrics=[Metric("train/loss", 1.0)])
    assert [m.value for m in tracking.get_metric_history(run.run_id, "train/loss")] == [1.0]


def test_search_and_inputs(tracking: HttpTrackingStore) -> None:
    experiment = tracking.create_experiment("search")
    for i, acc in enumerate([0.7, 0.95, 0.9]):
        run = tracking.create_run(experiment.experiment_id, run_name=f"r{i}")
        tracking.log_batch(run.run_id, metrics=[Metric("acc", acc)])
    page = tracking.search_runs(
        [experiment.experiment_id],
        filter_string="metrics.acc > 0.8",
        order_by=["metrics.acc DESC"],
        max_results=1,
    )
    assert [r.info.run_name for r in page] == ["r1"]
    assert page.next_page_token
    rest = tracking.search_runs(
        [experiment.experiment_id],
        filter_string="metrics.acc > 0.8",
        order_by=["metrics.acc DESC"],
        page_token=page.next_page_token,
    )
    assert [r.info.run_name for r in rest] == ["r2"]
    with pytest.raises(FilterSyntaxError):
        tracking.search_runs([experiment.experiment_id], filter_string="metrics.acc >>> 1")

    dataset = Dataset(name="train", digest="abc123", schema={"x": "float"}, num_rows=10)
    tracking.log_inputs(page.items[0].run_id, [DatasetInput(dataset, context="training")])
    inputs = tracking.get_run(page.items[0].run_id).inputs
    assert [(i.dataset.name, i.dataset.schema, i.context) for i in inputs] == [
        ("train", {"x": "float"}, "training")
    ]


def test_delete_run_and_experiment(tracking: HttpTrackingStore) -> None:
    experiment = tracking.create_experiment("gone")
    run = tracking.create_run(experiment.experiment_id)
    tracking.delete_run(run.run_id)
    assert tracking.get_run(run.run_id).info.lifecycle_stage == "deleted"
    tracking.delete_experiment(experiment.experiment_id)
    assert tracking.get_experiment(experiment.experiment_id).lifecycle_stage == "deleted"


def test_for_workspace_switches_workspace(tracking: HttpTrackingStore) -> None:
    other = tracking.for_workspace("no-such-ws")
    with pytest.raises(NotFoundError, match="Workspace 'no-such-ws' does not exist"):
        other.list_experiments()


def test_registry_round_trip(registry: HttpRegistryStore, workspace: str) -> None:
    model = registry.create_registered_model("churn", description="d", tags={"team": "x"})
    assert (model.name, model.workspace, model.tags) == ("churn", workspace, {"team": "x"})
    v1 = registry.create_model_version("churn", "file:///m/1", flavor="sklearn")
    v2 = registry.create_model_version("churn", "file:///m/2")
    assert (v1.version, v2.version) == (1, 2)
    change = registry.set_alias("churn", "champion", 1, actor="alice")
    assert (change.from_version, change.to_version, change.actor) == (None, 1, "alice")
    assert registry.get_version_by_alias("churn", "champion").version == 1
    registry.set_alias("churn", "champion", 2)
    history = registry.alias_history("churn", "champion")
    assert [(c.from_version, c.to_version) for c in history] == [(None, 1), (1, 2)]
    assert registry.alias_history("churn") == history
    assert registry.version_at("churn", "champion", datetime.now(UTC) + timedelta(hours=1)) == 2
    assert registry.version_at("churn", "champion", datetime(2000, 1, 1)) is None
    fetched = registry.get_registered_model("churn")
    assert (fetched.latest_version, fetched.aliases) == (2, {"champion": 2})
    registry.update_model_version("churn", 1, description="first")
    registry.set_model_version_tag("churn", 1, "ok", "yes")
    assert registry.get_model_version("churn", 1).tags == {"ok": "yes"}
    assert [v.version for v in registry.list_model_versions("churn")] == [1, 2]
    registry.delete_alias("churn", "champion")
    with pytest.raises(ModelNotFoundError, match="no alias 'champion'"):
        registry.get_version_by_alias("churn", "champion")
    assert [m.name for m in registry.list_registered_models()] == ["churn"]
    registry.delete_registered_model("churn")
    with pytest.raises(ModelNotFoundError):
        registry.get_registered_model("churn")


def test_refused_promotion_names_the_failing_terms(
    tracking: HttpTrackingStore, registry: HttpRegistryStore
) -> None:
    run = tracking.create_run(tracking.create_experiment("gated").experiment_id)
    tracking.log_batch(run.run_id, metrics=[Metric("accuracy", 0.8)])
    registry.create_registered_model("gated")
    registry.create_model_version("gated", "file:///m/1", run_id=run.run_id)
    registry.set_gate("gated", "prod", "accuracy >= 0.85")
    assert registry.get_registered_model("gated").gates == {"prod": "accuracy >= 0.85"}
    with pytest.raises(PromotionRefusedError, match="may not become @prod") as refused:
        registry.set_alias("gated", "prod", 1)
    assert refused.value.failing and "accuracy" in refused.value.failing[0]
    assert registry.set_alias("gated", "prod", 1, force=True).to_version == 1
    registry.delete_gate("gated", "prod")
    assert registry.get_registered_model("gated").gates == {}


def test_webhooks(registry: HttpRegistryStore) -> None:
    hook = registry.create_webhook("https://ci.example.com/hook", events=["alias_set"])
    assert hook.events == ["alias_set"]
    assert [w.webhook_id for w in registry.list_webhooks()] == [hook.webhook_id]
    registry.delete_webhook(hook.webhook_id)
    assert registry.list_webhooks() == []
    signed = registry.create_webhook("https://ci.example.com/signed", secret="s3cret")
    assert signed.events == ["*"]
    with pytest.raises(InvalidArgumentError, match="Invalid webhook URL"):
        registry.create_webhook("ftp://nope")
