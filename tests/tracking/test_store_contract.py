"""The TrackingStore contract: every backend, on every database, behaves like this."""

from __future__ import annotations

import math
import re
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest

from shipyard.errors import (
    ConflictError,
    ExperimentNotFoundError,
    FilterSyntaxError,
    InvalidArgumentError,
    NotFoundError,
    RunNotFoundError,
)
from shipyard.tracking.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    Metric,
    Param,
    Run,
    RunStatus,
)
from shipyard.tracking.store import TrackingStore
from shipyard.types import ArtifactInfo


@pytest.fixture
def experiment(tracking_store: TrackingStore) -> Experiment:
    return tracking_store.create_experiment("contract")


@pytest.fixture
def run(tracking_store: TrackingStore, experiment: Experiment) -> Run:
    return tracking_store.create_run(experiment.experiment_id, run_name="base")


def names(runs: list[Run]) -> list[str]:
    return [r.info.run_name for r in runs]


# --- experiments ------------------------------------------------------------------------------


class TestExperiments:
    def test_create_experiment_returns_the_stored_experiment(
        self, tracking_store: TrackingStore, workspace: str, artifacts_url: str
    ) -> None:
        created = tracking_store.create_experiment(
            "churn", description="weekly churn model", tags={"team": "growth"}
        )
        assert re.fullmatch(r"[0-9a-f]{32}", created.experiment_id)
        assert created.name == "churn"
        assert created.workspace == workspace
        assert created.description == "weekly churn model"
        assert created.tags == {"team": "growth"}
        assert created.lifecycle_stage == "active"
        assert created.artifact_location == (f"{artifacts_url}/{workspace}/{created.experiment_id}")
        assert created.created_at.tzinfo is not None
        assert abs((datetime.now(UTC) - created.created_at).total_seconds()) < 60
        assert tracking_store.get_experiment(created.experiment_id) == created

    def test_explicit_artifact_location_is_kept(self, tracking_store: TrackingStore) -> None:
        created = tracking_store.create_experiment("x", artifact_location="s3://bucket/x")
        assert tracking_store.get_experiment(created.experiment_id).artifact_location == (
            "s3://bucket/x"
        )

    def test_experiment_names_are_unique_in_a_workspace(
        self, tracking_store: TrackingStore, workspace: str
    ) -> None:
        tracking_store.create_experiment("dup")
        with pytest.raises(
            ConflictError,
            match=rf"Experiment 'dup' already exists in workspace '{workspace}'.*"
            r"\nHint: Reuse it with get_experiment_by_name",
        ):
            tracking_store.create_experiment("dup")

    def test_name_of_a_deleted_experiment_stays_taken(self, tracking_store: TrackingStore) -> None:
        created = tracking_store.create_experiment("old")
        tracking_store.delete_experiment(created.experiment_id)
        with pytest.raises(ConflictError, match=r"Experiment 'old' already exists \(deleted\)"):
            tracking_store.create_experiment("old")

    def test_same_name_in_two_workspaces_is_allowed(
        self, tracking_store: TrackingStore, other_workspace: str
    ) -> None:
        mine = tracking_store.create_experiment("shared-name")
        theirs = tracking_store.for_workspace(other_workspace).create_experiment("shared-name")
        assert mine.experiment_id != theirs.experiment_id
        assert theirs.workspace == other_workspace

    def test_get_unknown_experiment_raises_not_found(
        self, tracking_store: TrackingStore, workspace: str
    ) -> None:
        with pytest.raises(
            ExperimentNotFoundError,
            match=f"Experiment 'nope' does not exist in workspace '{workspace}'",
        ):
            tracking_store.get_experiment("nope")

    def test_get_experiment_by_name(self, tracking_store: TrackingStore) -> None:
        created = tracking_store.create_experiment("by-name")
        assert tracking_store.get_experiment_by_name("by-name") == created
        assert tracking_store.get_experiment_by_name("absent") is None

    def test_experiments_of_another_workspace_are_invisible(
        self, tracking_store: TrackingStore, other_workspace: str
    ) -> None:
        theirs = tracking_store.for_workspace(other_workspace).create_experiment("secret")
        with pytest.raises(ExperimentNotFoundError):
            tracking_store.get_experiment(theirs.experiment_id)
        with pytest.raises(ExperimentNotFoundError):
            tracking_store.create_run(theirs.experiment_id)
        with pytest.raises(ExperimentNotFoundError):
            tracking_store.delete_experiment(theirs.experiment_id)
        with pytest.raises(ExperimentNotFoundError):
            tracking_store.set_experiment_tag(theirs.experiment_id, "k", "v")
        assert tracking_store.get_experiment_by_name("secret") is None
        assert tracking_store.list_experiments().items == []

    def test_list_experiments_pages_through_all_active(self, tracking_store: TrackingStore) -> None:
        created = [tracking_store.create_experiment(f"e{i}") for i in range(5)]
        tracking_store.delete_experiment(created[0].experiment_id)
        seen: list[str] = []
        token = None
        pages = 0
        while True:
            page = tracking_store.list_experiments(max_results=2, page_token=token)
            seen += [e.name for e in page]
            pages += 1
            token = page.next_page_token
            if token is None:
                break
        assert pages == 2
        assert sorted(seen) == ["e1", "e2", "e3", "e4"]

    @pytest.mark.parametrize("max_results", [0, -1, 50_001])
    def test_list_experiments_rejects_bad_max_results(
        self, tracking_store: TrackingStore, max_results: int
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="max_results must be between 1 and"):
            tracking_store.list_experiments(max_results=max_results)

    def test_list_experiments_rejects_a_forged_page_token(
        self, tracking_store: TrackingStore
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="Invalid page_token 'garbage!'"):
            tracking_store.list_experiments(page_token="garbage!")

    def test_delete_experiment_is_soft(self, tracking_store: TrackingStore) -> None:
        created = tracking_store.create_experiment("doomed")
        child = tracking_store.create_run(created.experiment_id)
        tracking_store.delete_experiment(created.experiment_id)
        assert tracking_store.get_experiment(created.experiment_id).lifecycle_stage == "deleted"
        assert tracking_store.get_run(child.run_id).info.lifecycle_stage == "deleted"
        assert tracking_store.search_runs([created.experiment_id]).items == []
        with pytest.raises(ConflictError, match="Experiment 'doomed' is deleted"):
            tracking_store.create_run(created.experiment_id)

    def test_set_experiment_tag_adds_and_overwrites(self, tracking_store: TrackingStore) -> None:
        created = tracking_store.create_experiment("tagged", tags={"a": "1"})
        tracking_store.set_experiment_tag(created.experiment_id, "a", "2")
        tracking_store.set_experiment_tag(created.experiment_id, "b", "3")
        assert tracking_store.get_experiment(created.experiment_id).tags == {"a": "2", "b": "3"}

    @pytest.mark.parametrize("name", ["", "   ", "x" * 257])
    def test_create_experiment_rejects_bad_names(
        self, tracking_store: TrackingStore, name: str
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="Invalid experiment name"):
            tracking_store.create_experiment(name)

    def test_unknown_workspace_raises_not_found_with_hint(
        self, tracking_store: TrackingStore
    ) -> None:
        ghost = tracking_store.for_workspace("no-such-workspace")
        with pytest.raises(
            NotFoundError,
            match=r"Workspace 'no-such-workspace' does not exist.\nHint: Create it with",
        ):
            ghost.list_experiments()


# --- runs -------------------------------------------------------------------------------------


class TestRuns:
    def test_create_run_fills_defaults(
        self, tracking_store: TrackingStore, experiment: Experiment, workspace: str
    ) -> None:
        created = tracking_store.create_run(experiment.experiment_id, tags={"git": "abc"})
        info = created.info
        assert re.fullmatch(r"[0-9a-f]{32}", info.run_id)
        assert re.fullmatch(r"[a-z]+-[a-z]+-\d{3}", info.run_name)
        assert info.status is RunStatus.RUNNING
        assert info.end_time is None
        assert info.workspace == workspace
        assert info.experiment_id == experiment.experiment_id
        assert info.lifecycle_stage == "active"
        assert info.parent_run_id is None
        assert info.artifact_uri == f"{experiment.artifact_location}/{info.run_id}/artifacts"
        assert abs((datetime.now(UTC) - info.start_time).total_seconds()) < 60
        assert created.data.tags == {"git": "abc"}
        assert tracking_store.get_run(info.run_id) == created

    def test_create_run_keeps_given_name_user_and_start_time(
        self, tracking_store: TrackingStore, experiment: Experiment
    ) -> None:
        created = tracking_store.create_run(
            experiment.experiment_id, run_name="my run", user="ada", start_time=1_700_000_000_000
        )
        assert created.info.run_name == "my run"
        assert created.info.user == "ada"
        assert created.info.start_time == datetime.fromtimestamp(1_700_000_000, tz=UTC)

    def test_create_run_in_unknown_experiment_raises(
        self, tracking_store: TrackingStore, workspace: str
    ) -> None:
        with pytest.raises(
            ExperimentNotFoundError, match=f"'missing' does not exist in workspace '{workspace}'"
        ):
            tracking_store.create_run("missing")

    def test_nested_runs_record_their_parent(
        self, tracking_store: TrackingStore, experiment: Experiment, run: Run
    ) -> None:
        child = tracking_store.create_run(
            experiment.experiment_id, run_name="child", parent_run_id=run.run_id
        )
        assert child.info.parent_run_id == run.run_id
        found = tracking_store.search_runs(
            [experiment.experiment_id], filter_string=f"parent_run_id = '{run.run_id}'"
        )
        assert names(found.items) == ["child"]

    def test_parent_run_must_exist_in_the_same_workspace(
        self, tracking_store: TrackingStore, experiment: Experiment, other_workspace: str
    ) -> None:
        other = tracking_store.for_workspace(other_workspace)
        foreign = other.create_run(other.create_experiment("theirs").experiment_id)
        with pytest.raises(RunNotFoundError, match=f"Run '{foreign.run_id}' does not exist"):
            tracking_store.create_run(experiment.experiment_id, parent_run_id=foreign.run_id)

    def test_get_unknown_run_raises_not_found(
        self, tracking_store: TrackingStore, workspace: str
    ) -> None:
        with pytest.raises(
            RunNotFoundError,
            match=f"Run 'nope' does not exist in workspace '{workspace}'.\nHint: List runs",
        ):
            tracking_store.get_run("nope")

    def test_runs_of_another_workspace_are_invisible(
        self, tracking_store: TrackingStore, other_workspace: str
    ) -> None:
        other = tracking_store.for_workspace(other_workspace)
        theirs = other.create_experiment("e")
        foreign = other.create_run(theirs.experiment_id)
        calls: list[Callable[[], object]] = [
            lambda: tracking_store.get_run(foreign.run_id),
            lambda: tracking_store.update_run(foreign.run_id, status=RunStatus.FINISHED),
            lambda: tracking_store.delete_run(foreign.run_id),
            lambda: tracking_store.log_batch(foreign.run_id, metrics=[Metric("m", 1.0)]),
            lambda: tracking_store.get_metric_history(foreign.run_id, "m"),
            lambda: tracking_store.log_inputs(foreign.run_id, [DatasetInput(Dataset("d", "1"))]),
            lambda: tracking_store.record_artifacts(foreign.run_id, [ArtifactInfo("a", 1, "")]),
            lambda: tracking_store.list_artifacts(foreign.run_id),
        ]
        for call in calls:
            with pytest.raises(RunNotFoundError):
                call()
        assert tracking_store.search_runs([theirs.experiment_id]).items == []
        assert other.get_run(foreign.run_id).info.status is RunStatus.RUNNING

    def test_terminating_a_run_sets_its_end_time(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        ended = tracking_store.update_run(run.run_id, status=RunStatus.FINISHED)
        assert ended.info.status is RunStatus.FINISHED
        assert ended.info.end_time is not None
        assert ended.info.end_time >= run.info.start_time.replace(microsecond=0)
        explicit = tracking_store.update_run(
            run.run_id, status=RunStatus.FAILED, end_time=1_800_000_000_000
        )
        assert explicit.info.end_time == datetime.fromtimestamp(1_800_000_000, tz=UTC)

    def test_reopening_a_run_clears_its_end_time(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        tracking_store.update_run(run.run_id, status="KILLED")  # type: ignore[arg-type]
        reopened = tracking_store.update_run(run.run_id, status=RunStatus.RUNNING)
        assert reopened.info.end_time is None
        tracking_store.log_batch(run.run_id, metrics=[Metric("after", 1.0)])

    def test_update_run_renames(self, tracking_store: TrackingStore, run: Run) -> None:
        assert tracking_store.update_run(run.run_id, run_name="renamed").info.run_name == (
            "renamed"
        )
        assert tracking_store.get_run(run.run_id).info.status is RunStatus.RUNNING

    def test_update_run_rejects_an_unknown_status(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="Invalid run status 'DONE'; use one of"):
            tracking_store.update_run(run.run_id, status="DONE")  # type: ignore[arg-type]

    def test_delete_run_is_soft(
        self, tracking_store: TrackingStore, experiment: Experiment, run: Run
    ) -> None:
        tracking_store.delete_run(run.run_id)
        assert tracking_store.get_run(run.run_id).info.lifecycle_stage == "deleted"
        assert tracking_store.search_runs([experiment.experiment_id]).items == []
        found = tracking_store.search_runs([experiment.experiment_id], include_deleted=True)
        assert names(found.items) == ["base"]
        with pytest.raises(ConflictError, match=f"Run {run.run_id} is deleted"):
            tracking_store.log_batch(run.run_id, metrics=[Metric("m", 1.0)])


# --- logging ----------------------------------------------------------------------------------


class TestLogBatch:
    def test_log_batch_records_params_tags_and_metrics(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        tracking_store.log_batch(
            run.run_id,
            metrics=[Metric("acc", 0.5, step=0, timestamp=1), Metric("acc", 0.7, 1, 2)],
            params=[Param("lr", "0.1"), Param("depth", "4")],
            tags={"team": "growth", "val/split": "a b"},
        )
        data = tracking_store.get_run(run.run_id).data
        assert data.params == {"lr": "0.1", "depth": "4"}
        assert data.tags == {"team": "growth", "val/split": "a b"}
        assert data.metrics == {"acc": 0.7}

    def test_relogging_a_param_with_the_same_value_is_fine(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        tracking_store.log_batch(run.run_id, params=[Param("lr", "0.1")])
        tracking_store.log_batch(run.run_id, params=[Param("lr", "0.1"), Param("lr", "0.1")])
        assert tracking_store.get_run(run.run_id).data.params == {"lr": "0.1"}

    def test_changing_a_param_raises_conflict_naming_both_values(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        tracking_store.log_batch(run.run_id, params=[Param("lr", "0.1")])
        with pytest.raises(
            ConflictError,
            match=f"Param 'lr' of run {run.run_id} is already '0.1'; it cannot change to "
            r"'0.2'.\nHint: Params are immutable",
        ):
            tracking_store.log_batch(run.run_id, params=[Param("lr", "0.2")])

    def test_a_failed_batch_writes_nothing(self, tracking_store: TrackingStore, run: Run) -> None:
        tracking_store.log_batch(run.run_id, params=[Param("lr", "0.1")])
        with pytest.raises(ConflictError):
            tracking_store.log_batch(
                run.run_id,
                metrics=[Metric("loss", 1.0)],
                params=[Param("new", "x"), Param("lr", "0.3")],
                tags={"t": "v"},
            )
        data = tracking_store.get_run(run.run_id).data
        assert data.params == {"lr": "0.1"}
        assert data.metrics == {}
        assert data.tags == {}
        assert tracking_store.get_metric_history(run.run_id, "loss") == []

    def test_one_batch_may_not_give_a_param_two_values(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="Param 'lr' appears twice in one batch"):
            tracking_store.log_batch(run.run_id, params=[Param("lr", "1"), Param("lr", "2")])

    def test_tags_are_overwritten(self, tracking_store: TrackingStore, run: Run) -> None:
        tracking_store.log_batch(run.run_id, tags={"stage": "a"})
        tracking_store.log_batch(run.run_id, tags={"stage": "b"})
        assert tracking_store.get_run(run.run_id).data.tags == {"stage": "b"}

    def test_metric_history_is_ordered_by_step_then_timestamp(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        points = [
            Metric("loss", 0.3, step=2, timestamp=10),
            Metric("loss", 0.9, step=0, timestamp=30),
            Metric("loss", 0.5, step=1, timestamp=20),
            Metric("loss", 0.4, step=1, timestamp=5),
        ]
        tracking_store.log_batch(run.run_id, metrics=points[:2])
        tracking_store.log_batch(run.run_id, metrics=points[2:])
        tracking_store.log_batch(run.run_id, metrics=[Metric("other", 1.0, 0, 1)])
        history = tracking_store.get_metric_history(run.run_id, "loss")
        assert [(m.step, m.timestamp, m.value) for m in history] == [
            (0, 30, 0.9),
            (1, 5, 0.4),
            (1, 20, 0.5),
            (2, 10, 0.3),
        ]
        assert all(m.key == "loss" for m in history)
        assert tracking_store.get_metric_history(run.run_id, "never") == []

    def test_latest_metric_is_highest_step_then_newest_timestamp(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        log = tracking_store.log_batch
        log(run.run_id, metrics=[Metric("acc", 0.5, step=5, timestamp=100)])
        log(run.run_id, metrics=[Metric("acc", 0.1, step=3, timestamp=999)])  # older step
        assert tracking_store.get_run(run.run_id).data.metrics == {"acc": 0.5}
        log(run.run_id, metrics=[Metric("acc", 0.6, step=5, timestamp=50)])  # older timestamp
        assert tracking_store.get_run(run.run_id).data.metrics == {"acc": 0.5}
        log(run.run_id, metrics=[Metric("acc", 0.7, step=5, timestamp=100)])  # tie: last wins
        assert tracking_store.get_run(run.run_id).data.metrics == {"acc": 0.7}
        log(run.run_id, metrics=[Metric("acc", 0.8, step=6, timestamp=1)])
        assert tracking_store.get_run(run.run_id).data.metrics == {"acc": 0.8}

    def test_latest_metric_within_one_out_of_order_batch(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        tracking_store.log_batch(
            run.run_id,
            metrics=[
                Metric("a", 3.0, step=9, timestamp=1),
                Metric("a", 1.0, step=2, timestamp=5),
                Metric("b", 1.0, step=1, timestamp=7),
                Metric("b", 2.0, step=1, timestamp=8),
                Metric("b", 0.5, step=1, timestamp=6),
            ],
        )
        assert tracking_store.get_run(run.run_id).data.metrics == {"a": 3.0, "b": 2.0}

    def test_missing_timestamp_means_now(self, tracking_store: TrackingStore, run: Run) -> None:
        before = int(time.time() * 1000)
        tracking_store.log_batch(run.run_id, metrics=[Metric("m", 1.0)])
        [point] = tracking_store.get_metric_history(run.run_id, "m")
        assert before - 1000 <= point.timestamp <= int(time.time() * 1000) + 1000

    def test_nan_and_infinities_are_stored(self, tracking_store: TrackingStore, run: Run) -> None:
        tracking_store.log_batch(
            run.run_id,
            metrics=[
                Metric("nan", math.nan, 0, 1),
                Metric("inf", math.inf, 0, 1),
                Metric("ninf", -math.inf, 0, 1),
                Metric("int", 3, 0, 1),
            ],
        )
        latest = tracking_store.get_run(run.run_id).data.metrics
        assert math.isnan(latest["nan"])
        assert latest["inf"] == math.inf
        assert latest["ninf"] == -math.inf
        assert latest["int"] == 3.0
        assert math.isnan(tracking_store.get_metric_history(run.run_id, "nan")[0].value)

    @pytest.mark.parametrize("value", ["0.5", None, True, [1.0]])
    def test_metric_values_must_be_numbers(
        self, tracking_store: TrackingStore, run: Run, value: object
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="metric values must be numbers"):
            tracking_store.log_batch(run.run_id, metrics=[Metric("m", value)])  # type: ignore[arg-type]

    def test_metric_steps_must_be_integers(self, tracking_store: TrackingStore, run: Run) -> None:
        with pytest.raises(InvalidArgumentError, match=r"has step 1\.5; it must be an integer"):
            tracking_store.log_batch(run.run_id, metrics=[Metric("m", 1.0, step=1.5)])  # type: ignore[arg-type]

    @pytest.mark.parametrize("key", ["", "x" * 251, "semi;colon", "new\nline", "quote'"])
    def test_invalid_keys_are_rejected(
        self, tracking_store: TrackingStore, run: Run, key: str
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="Invalid metric key"):
            tracking_store.log_batch(run.run_id, metrics=[Metric(key, 1.0)])
        with pytest.raises(InvalidArgumentError, match="Invalid param key"):
            tracking_store.log_batch(run.run_id, params=[Param(key, "v")])
        with pytest.raises(InvalidArgumentError, match="Invalid tag key"):
            tracking_store.log_batch(run.run_id, tags={key: "v"})

    def test_keys_may_hold_letters_digits_spaces_and_separators(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        key = "val/loss-top_5.mean x" + "y" * 229
        tracking_store.log_batch(run.run_id, metrics=[Metric(key, 1.0)], params=[Param(key, "")])
        assert tracking_store.get_run(run.run_id).data.metrics == {key: 1.0}

    def test_param_values_are_limited_to_6000_characters(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        tracking_store.log_batch(run.run_id, params=[Param("ok", "x" * 6000)])
        with pytest.raises(
            InvalidArgumentError, match="Value of param 'big' has 6001 characters; the limit"
        ):
            tracking_store.log_batch(run.run_id, params=[Param("big", "x" * 6001)])

    @pytest.mark.parametrize("status", [RunStatus.FINISHED, RunStatus.FAILED, RunStatus.KILLED])
    def test_logging_to_a_terminated_run_raises_conflict(
        self, tracking_store: TrackingStore, run: Run, status: RunStatus
    ) -> None:
        tracking_store.update_run(run.run_id, status=status)
        message = (
            f"Run {run.run_id} is {status.value}; metrics and params can only be logged to a "
            r"RUNNING run.\nHint: Start a new run, or reopen"
        )
        with pytest.raises(ConflictError, match=message):
            tracking_store.log_batch(run.run_id, metrics=[Metric("m", 1.0)])
        with pytest.raises(ConflictError, match=message):
            tracking_store.log_batch(run.run_id, params=[Param("p", "1")])

    def test_tags_may_be_set_on_a_finished_run(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        tracking_store.update_run(run.run_id, status=RunStatus.FINISHED)
        tracking_store.log_batch(run.run_id, tags={"reviewed": "yes"})
        assert tracking_store.get_run(run.run_id).data.tags == {"reviewed": "yes"}

    def test_logging_to_an_unknown_run_raises_not_found(
        self, tracking_store: TrackingStore
    ) -> None:
        with pytest.raises(RunNotFoundError, match="Run 'ghost' does not exist"):
            tracking_store.log_batch("ghost", metrics=[Metric("m", 1.0)])
        with pytest.raises(RunNotFoundError, match="Run 'ghost' does not exist"):
            tracking_store.log_batch("ghost")
        with pytest.raises(RunNotFoundError, match="Run 'ghost' does not exist"):
            tracking_store.get_metric_history("ghost", "m")

    def test_thousands_of_points_in_one_batch(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        points = [Metric(f"m{i % 7}", float(i), step=i // 7, timestamp=1) for i in range(5000)]
        tracking_store.log_batch(run.run_id, metrics=points)
        history = tracking_store.get_metric_history(run.run_id, "m3")
        assert [m.value for m in history] == [float(i) for i in range(3, 5000, 7)]
        assert tracking_store.get_run(run.run_id).data.metrics["m3"] == 4994.0


# --- datasets and artifacts -------------------------------------------------------------------


class TestInputsAndArtifacts:
    def test_log_inputs_links_datasets_with_their_context(
        self, tracking_store: TrackingStore, experiment: Experiment, run: Run
    ) -> None:
        train = Dataset(
            "iris",
            "d1" * 8,
            source="s3://data/iris.csv",
            source_type="s3",
            schema={"cols": ["a", "b"]},
            profile={"rows": 150},
            num_rows=150,
        )
        test = Dataset("iris-test", "d2" * 8)
        tracking_store.log_inputs(
            run.run_id, [DatasetInput(train, "training"), DatasetInput(test, "evaluation")]
        )
        other = tracking_store.create_run(experiment.experiment_id)
        tracking_store.log_inputs(other.run_id, [DatasetInput(train, "validation")])
        assert tracking_store.get_run(run.run_id).inputs == [
            DatasetInput(train, "training"),
            DatasetInput(test, "evaluation"),
        ]
        assert tracking_store.get_run(other.run_id).inputs == [DatasetInput(train, "validation")]

    def test_relogging_an_input_updates_its_context(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        data = Dataset("d", "abc")
        tracking_store.log_inputs(run.run_id, [DatasetInput(data, "training")])
        tracking_store.log_inputs(run.run_id, [DatasetInput(data, "evaluation")])
        assert tracking_store.get_run(run.run_id).inputs == [DatasetInput(data, "evaluation")]

    def test_log_inputs_rejects_a_dataset_without_digest(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="Dataset 'd' has an invalid digest ''"):
            tracking_store.log_inputs(run.run_id, [DatasetInput(Dataset("d", ""))])

    def test_list_artifacts_lists_direct_children(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        tracking_store.record_artifacts(
            run.run_id,
            [
                ArtifactInfo("model/model.pkl", 10, "a" * 64),
                ArtifactInfo("model/env/requirements.txt", 5, "b" * 64),
                ArtifactInfo("plot.png", 7, "c" * 64),
                ArtifactInfo("Model/other.txt", 1, "d" * 64),
            ],
        )
        assert tracking_store.list_artifacts(run.run_id) == [
            ArtifactInfo("Model", 0, "", is_dir=True),
            ArtifactInfo("model", 0, "", is_dir=True),
            ArtifactInfo("plot.png", 7, "c" * 64),
        ]
        assert tracking_store.list_artifacts(run.run_id, "model") == [
            ArtifactInfo("model/env", 0, "", is_dir=True),
            ArtifactInfo("model/model.pkl", 10, "a" * 64),
        ]
        assert tracking_store.list_artifacts(run.run_id, "model/env/") == [
            ArtifactInfo("model/env/requirements.txt", 5, "b" * 64),
        ]
        assert tracking_store.list_artifacts(run.run_id, "absent") == []
        assert tracking_store.list_artifacts(run.run_id, "plot.png") == []

    def test_record_artifacts_overwrites_by_path(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        tracking_store.record_artifacts(run.run_id, [ArtifactInfo("a.txt", 1, "1" * 64)])
        tracking_store.update_run(run.run_id, status=RunStatus.FINISHED)
        tracking_store.record_artifacts(run.run_id, [ArtifactInfo("a.txt", 2, "2" * 64)])
        assert tracking_store.list_artifacts(run.run_id) == [ArtifactInfo("a.txt", 2, "2" * 64)]

    def test_artifact_paths_with_like_wildcards_are_literal(
        self, tracking_store: TrackingStore, run: Run
    ) -> None:
        tracking_store.record_artifacts(
            run.run_id, [ArtifactInfo("a_b/x", 1, ""), ArtifactInfo("axb/y", 1, "")]
        )
        assert tracking_store.list_artifacts(run.run_id, "a_b") == [ArtifactInfo("a_b/x", 1, "")]

    @pytest.mark.parametrize("path", ["../escape", "a/../../b", "a\\b", "a//b"])
    def test_record_artifacts_rejects_unsafe_paths(
        self, tracking_store: TrackingStore, run: Run, path: str
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="Invalid artifact path"):
            tracking_store.record_artifacts(run.run_id, [ArtifactInfo(path, 1, "")])


# --- search -----------------------------------------------------------------------------------


@pytest.fixture
def searchable(tracking_store: TrackingStore, experiment: Experiment) -> str:
    """Five runs with known values; returns their experiment id."""
    rows = [
        # name, start, acc, loss, lr, model, team, status
        ("r1", 1000, 0.91, 0.3, "0.1", "Forest", "growth", RunStatus.FINISHED),
        ("r2", 2000, 0.85, 0.5, "0.01", "forest", "growth", RunStatus.FAILED),
        ("r3", 3000, 0.97, None, "0.1", "linear", "core", RunStatus.RUNNING),
        ("r4", 4000, None, 0.2, "1", "boost_v2", "core", RunStatus.FINISHED),
        ("r5", 5000, 0.85, 0.1, None, "boostXv2", None, RunStatus.RUNNING),
    ]
    for name, start, acc, loss, lr, model, team, status in rows:
        created = tracking_store.create_run(
            experiment.experiment_id, run_name=name, start_time=start, user=f"user-{name}"
        )
        points = [Metric(k, v, 0, 1) for k, v in (("acc", acc), ("loss", loss)) if v is not None]
        tracking_store.log_batch(
            created.run_id,
            metrics=points,
            params=[Param("model", model)] + ([Param("lr", lr)] if lr else []),
            tags={"team": team} if team else {},
        )
        if status is not RunStatus.RUNNING:
            tracking_store.update_run(created.run_id, status=status, end_time=start + 500)
    return experiment.experiment_id


#: filter -> names of the matching runs of `searchable`, sorted
FILTER_CASES: list[tuple[str, list[str]]] = [
    ("metrics.acc = 0.85", ["r2", "r5"]),
    ("metrics.acc != 0.85", ["r1", "r3"]),
    ("metrics.acc > 0.91", ["r3"]),
    ("metrics.acc >= 0.91", ["r1", "r3"]),
    ("metrics.acc < 0.9", ["r2", "r5"]),
    ("metrics.acc <= 0.91", ["r1", "r2", "r5"]),
    ("metrics.loss IN (0.1, 0.2)", ["r4", "r5"]),
    ("metrics.loss NOT IN (0.1, 0.2)", ["r1", "r2"]),
    ("params.lr = '0.1'", ["r1", "r3"]),
    ("params.lr = 0.1", ["r1", "r3"]),
    ('params.lr != "0.1"', ["r2", "r4"]),
    ("params.model LIKE 'forest'", ["r2"]),
    ("params.model LIKE '%orest'", ["r1", "r2"]),
    ("params.model ILIKE 'FOREST'", ["r1", "r2"]),
    ("params.model LIKE 'boost_v2'", ["r4", "r5"]),
    ("params.model LIKE 'boost\\_v2'", ["r4"]),
    ("params.model IN ('linear', 'forest')", ["r2", "r3"]),
    ("params.model NOT IN ('linear', 'forest')", ["r1", "r4", "r5"]),
    ("tags.team = 'core'", ["r3", "r4"]),
    ("tags.team LIKE 'g%'", ["r1", "r2"]),
    ("attributes.status = 'FINISHED'", ["r1", "r4"]),
    ("status IN ('FAILED', 'RUNNING')", ["r2", "r3", "r5"]),
    ("run_name = 'r4'", ["r4"]),
    ("attributes.run_name LIKE 'r%'", ["r1", "r2", "r3", "r4", "r5"]),
    ("start_time >= 3000", ["r3", "r4", "r5"]),
    ("end_time < 3000", ["r1", "r2"]),
    ("not end_time < 3000", ["r3", "r4", "r5"]),
    ("user = 'user-r2'", ["r2"]),
    ("parent_run_id = ''", ["r1", "r2", "r3", "r4", "r5"]),
    ("metrics.acc > 0.9 and params.lr = '0.1'", ["r1", "r3"]),
    ("metrics.acc > 0.95 or metrics.loss < 0.15", ["r3", "r5"]),
    ("not metrics.acc > 0.9", ["r2", "r4", "r5"]),
    ("(tags.team = 'core' or tags.team = 'growth') and not status = 'RUNNING'",
     ["r1", "r2", "r4"]),
    ("METRICS.acc > 0.9 AND Params.lr = '0.1'", ["r1", "r3"]),
    ("metrics.`acc` > 0.9 and metric.acc > 0.9", ["r1", "r3"]),
    ("metrics.missing > 0 or metrics.missing <= 0", []),
]  # fmt: skip

#: order_by -> names of the runs of `searchable` in that order
ORDER_CASES: list[tuple[list[str], list[str]]] = [
    ([], ["r5", "r4", "r3", "r2", "r1"]),
    (["start_time ASC"], ["r1", "r2", "r3", "r4", "r5"]),
    (["attributes.start_time DESC"], ["r5", "r4", "r3", "r2", "r1"]),
    (["metrics.acc DESC"], ["r3", "r1", "r5", "r2", "r4"]),
    (["metrics.acc"], ["r5", "r2", "r1", "r3", "r4"]),
    (["metrics.acc DESC", "start_time DESC"], ["r3", "r1", "r5", "r2", "r4"]),
    (["metrics.loss asc"], ["r5", "r4", "r1", "r2", "r3"]),
    (["params.lr"], ["r2", "r3", "r1", "r4", "r5"]),
    (["params.lr DESC", "start_time"], ["r4", "r1", "r3", "r2", "r5"]),
    (["tags.team DESC", "start_time DESC"], ["r2", "r1", "r4", "r3", "r5"]),
    (["end_time DESC"], ["r4", "r2", "r1", "r5", "r3"]),
    (["run_name DESC"], ["r5", "r4", "r3", "r2", "r1"]),
]


class TestSearch:
    def test_each_filter_operator_selects_the_matching_runs(
        self, tracking_store: TrackingStore, searchable: str
    ) -> None:
        found = {
            text: sorted(names(tracking_store.search_runs([searchable], filter_string=text).items))
            for text, _ in FILTER_CASES
        }
        assert found == dict(FILTER_CASES)

    def test_order_by_sorts_missing_values_last_and_breaks_ties_by_start_time(
        self, tracking_store: TrackingStore, searchable: str
    ) -> None:
        found = {
            ", ".join(order): names(tracking_store.search_runs([searchable], order_by=order).items)
            for order, _ in ORDER_CASES
        }
        assert found == {", ".join(order): expected for order, expected in ORDER_CASES}

    def test_nan_metrics_sort_after_numbers_and_before_missing(
        self, tracking_store: TrackingStore, experiment: Experiment
    ) -> None:
        for name, value in [("nan", math.nan), ("low", -math.inf), ("high", 2.0), ("none", None)]:
            created = tracking_store.create_run(experiment.experiment_id, run_name=name)
            if value is not None:
                tracking_store.log_batch(created.run_id, metrics=[Metric("m", value)])
        for direction, expected in [("ASC", ["low", "high"]), ("DESC", ["high", "low"])]:
            found = tracking_store.search_runs(
                [experiment.experiment_id], order_by=[f"metrics.m {direction}"]
            )
            assert names(found.items) == [*expected, "nan", "none"]
        matching = tracking_store.search_runs(
            [experiment.experiment_id], filter_string="metrics.m > -1 or metrics.m < 1"
        )
        assert sorted(names(matching.items)) == ["high", "low"]
        unequal = tracking_store.search_runs(
            [experiment.experiment_id], filter_string="metrics.m != 2"
        )
        assert sorted(names(unequal.items)) == ["low", "nan"]

    def test_search_returns_full_runs(self, tracking_store: TrackingStore, searchable: str) -> None:
        [found] = tracking_store.search_runs([searchable], filter_string="run_name = 'r1'")
        assert found.data.metrics == {"acc": 0.91, "loss": 0.3}
        assert found.data.params == {"lr": "0.1", "model": "Forest"}
        assert found.data.tags == {"team": "growth"}
        assert found == tracking_store.get_run(found.run_id)

    def test_pagination_walks_every_run_once(
        self, tracking_store: TrackingStore, searchable: str
    ) -> None:
        seen: list[str] = []
        token = None
        for _ in range(10):
            page = tracking_store.search_runs(
                [searchable], order_by=["metrics.acc DESC"], max_results=2, page_token=token
            )
            seen += names(page.items)
            token = page.next_page_token
            if token is None:
                break
        assert seen == ["r3", "r1", "r5", "r2", "r4"]
        exact = tracking_store.search_runs([searchable], max_results=5)
        assert exact.next_page_token is None

    @pytest.mark.parametrize("max_results", [0, 50_001])
    def test_search_rejects_bad_max_results(
        self, tracking_store: TrackingStore, searchable: str, max_results: int
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="max_results must be between 1 and 50000"):
            tracking_store.search_runs([searchable], max_results=max_results)

    @pytest.mark.parametrize("token", ["not-a-token", "eyJvZmZzZXQiOiAtMX0=", "e30="])
    def test_search_rejects_forged_page_tokens(
        self, tracking_store: TrackingStore, searchable: str, token: str
    ) -> None:
        with pytest.raises(InvalidArgumentError, match="Invalid page_token"):
            tracking_store.search_runs([searchable], page_token=token)

    def test_search_reports_filter_syntax_errors(
        self, tracking_store: TrackingStore, searchable: str
    ) -> None:
        with pytest.raises(
            FilterSyntaxError, match=r"Expected an operator after 'metrics.acc' at position 12"
        ):
            tracking_store.search_runs([searchable], filter_string="metrics.acc 0.9")
        with pytest.raises(FilterSyntaxError, match="Expected ASC, DESC or the end"):
            tracking_store.search_runs([searchable], order_by=["metrics.acc DOWN"])

    def test_search_spans_experiments(self, tracking_store: TrackingStore, searchable: str) -> None:
        second = tracking_store.create_experiment("second")
        tracking_store.create_run(second.experiment_id, run_name="s1", start_time=9000)
        both = tracking_store.search_runs([searchable, second.experiment_id], max_results=3)
        assert names(both.items) == ["s1", "r5", "r4"]
        assert names(tracking_store.search_runs([second.experiment_id]).items) == ["s1"]
        everything = tracking_store.search_runs([], filter_string="start_time > 4500")
        assert names(everything.items) == ["s1", "r5"]
