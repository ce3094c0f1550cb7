"""The TrackingStore protocol: what every tracking backend (SQL, HTTP) provides.

A store is bound to one workspace at construction; ``for_workspace`` returns a view of the
same backend bound to another. Ids are UUID4 hex strings.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Protocol

from shipyard.tracking.entities import (
    DatasetInput,
    Experiment,
    Metric,
    Param,
    Run,
    RunStatus,
)
from shipyard.types import ArtifactInfo, Page


class TrackingStore(Protocol):
    workspace: str

    def for_workspace(self, workspace: str) -> TrackingStore: ...

    # experiments
    def create_experiment(
        self,
        name: str,
        *,
        artifact_location: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> Experiment: ...
    def get_experiment(self, experiment_id: str) -> Experiment: ...
    def get_experiment_by_name(self, name: str) -> Experiment | None: ...
    def list_experiments(
        self, *, max_results: int = 1000, page_token: str | None = None
    ) -> Page[Experiment]: ...
    def delete_experiment(self, experiment_id: str) -> None: ...
    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None: ...

    # runs
    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        user: str = "",
        start_time: int | None = None,
    ) -> Run: ...
    def get_run(self, run_id: str) -> Run: ...
    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> Run: ...
    def delete_run(self, run_id: str) -> None: ...
    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Mapping[str, str] | None = None,
    ) -> None: ...
    def get_metric_history(self, run_id: str, key: str) -> list[Metric]: ...
    def search_runs(
        self,
        experiment_ids: Sequence[str],
        *,
        filter_string: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 100,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[Run]: ...
    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None: ...

    # artifacts recorded for a run (bytes live in the artifact store)
    def record_artifacts(self, run_id: str, artifacts: Sequence[ArtifactInfo]) -> None: ...
    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]: ...
