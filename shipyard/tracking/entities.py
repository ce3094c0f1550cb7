"""Tracking entities: frozen values that every TrackingStore returns, never ORM rows.

Times of experiments and runs are timezone-aware UTC datetimes; a metric's ``timestamp``
is epoch milliseconds (UTC), as in MLflow, because series hold millions of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import UTC, datetime
from enum import StrEnum
from typing import Any


def ms_to_datetime(ms: int | None) -> datetime | None:
    """Epoch milliseconds to an aware UTC datetime (None stays None)."""
    return None if ms is None else datetime.fromtimestamp(ms / 1000, tz=UTC)


class RunStatus(StrEnum):
    RUNNING = "RUNNING"
    FINISHED = "FINISHED"
    FAILED = "FAILED"
    KILLED = "KILLED"

    @property
    def is_terminal(self) -> bool:
        return self is not RunStatus.RUNNING


@dataclass(frozen=True)
class Experiment:
    experiment_id: str
    name: str
    workspace: str
    artifact_location: str
    lifecycle_stage: str
    created_at: datetime
    updated_at: datetime
    description: str = ""
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Metric:
    key: str
    value: float
    step: int = 0
    timestamp: int = 0  # epoch ms, UTC


@dataclass(frozen=True)
class Param:
    key: str
    value: str


@dataclass(frozen=True)
class Dataset:
    """A dataset a run consumed: identified by name and content digest."""

    name: str
    digest: str
    source: str = ""
    source_type: str = ""
    schema: dict[str, Any] = field(default_factory=dict)
    profile: dict[str, Any] = field(default_factory=dict)
    num_rows: int | None = None


@dataclass(frozen=True)
class DatasetInput:
    dataset: Dataset
    context: str = ""  # "training", "validation", "evaluation", ...


@dataclass(frozen=True)
class RunInfo:
    run_id: str
    experiment_id: str
    workspace: str
    run_name: str
    status: RunStatus
    start_time: datetime
    end_time: datetime | None
    artifact_uri: str
    user: str = ""
    parent_run_id: str | None = None
    lifecycle_stage: str = "active"


@dataclass(frozen=True)
class RunData:
    params: dict[str, str] = field(default_factory=dict)
    metrics: dict[str, float] = field(default_factory=dict)  # latest value per key
    tags: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Run:
    """A run as MLflow users know it: ``run.info.run_id``, ``run.data.metrics``."""

    info: RunInfo
    data: RunData = field(default_factory=RunData)
    inputs: list[DatasetInput] = field(default_factory=list)

    @property
    def run_id(self) -> str:
        return self.info.run_id
