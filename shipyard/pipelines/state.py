"""Pipeline run and step run state in the metadata store, and the entities read back from it.

The executor writes every transition (pending, running, retrying, succeeded, cached,
skipped, failed, ...) before it acts on it, so a run killed at any moment can be resumed
from what the database says, and ``shipyard pipelines show`` reads the same rows.
"""

from __future__ import annotations

import json
import os
import socket
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Connection, Engine

from shipyard.errors import NotFoundError, StepFailedError
from shipyard.pipelines.schema import pipeline_runs, pipeline_step_runs
from shipyard.store.db import now_ms
from shipyard.tracking.entities import ms_to_datetime

__all__ = [
    "DONE_STATES",
    "RUN_STATUSES",
    "STEP_STATES",
    "PipelineRun",
    "PipelineRunNotFoundError",
    "RunStateStore",
    "StepRun",
]

RUN_STATUSES = ("pending", "running", "succeeded", "failed", "cancelled")
STEP_STATES = (
    "pending",
    "running",
    "retrying",
    "succeeded",
    "cached",
    "skipped",
    "failed",
    "upstream_failed",
    "cancelled",
)
#: States a resumed run keeps: the step finished and is not run again.
DONE_STATES = frozenset({"succeeded", "cached", "skipped"})
TERMINAL_STATES = DONE_STATES | {"failed", "upstream_failed", "cancelled"}


class PipelineRunNotFoundError(NotFoundError):
    code = "pipeline_run_not_found"

    def __init__(self, run_id: str, workspace: str) -> None:
        super().__init__(
            f"Pipeline run '{run_id}' does not exist in workspace '{workspace}'.",
            hint="List runs with `shipyard pipelines list`.",
        )


@dataclass(frozen=True)
class StepRun:
    """One run of one task (one loop iteration of it inside a ParallelFor)."""

    key: str
    task: str
    iteration: tuple[int, ...]
    state: str
    attempts: int = 0
    cache_key: str = ""
    cached_from: str = ""
    tracking_run_id: str = ""
    inputs: dict[str, Any] = field(default_factory=dict)
    outputs: dict[str, Any] = field(default_factory=dict)
    details: dict[str, Any] = field(default_factory=dict)
    error: str = ""
    log_key: str = ""
    started_at: datetime | None = None
    ended_at: datetime | None = None

    @property
    def cached(self) -> bool:
        return self.state == "cached"

    @property
    def duration_ms(self) -> int | None:
        if self.started_at is None or self.ended_at is None:
            return None
        return int((self.ended_at - self.started_at).total_seconds() * 1000)


@dataclass(frozen=True)
class PipelineRun:
    """A pipeline run as stored; ``steps`` in the order they were planned."""

    run_id: str
    workspace: str
    pipeline: str
    status: str
    params: dict[str, Any]
    run_name: str = ""
    pipeline_ref: str = ""
    error: str = ""
    created_at: datetime | None = None
    started_at: datetime | None = None
    ended_at: datetime | None = None
    scheduled_time: datetime | None = None
    executor_pid: int | None = None
    executor_host: str = ""
    cancel_requested: bool = False
    steps: list[StepRun] = field(default_factory=list)

    @property
    def succeeded(self) -> bool:
        return self.status == "succeeded"

    def raise_for_status(self) -> PipelineRun:
        """Return the run when it succeeded, else raise StepFailedError saying how to resume.

        Raises:
            StepFailedError: the run failed or was cancelled.
        """
        if self.status == "succeeded":
            return self
        raise StepFailedError(
            f"Pipeline run '{self.run_id}' of '{self.pipeline}' {self.status}: "
            f"{self.error or 'see `shipyard pipelines show ' + self.run_id + '`'}",
            hint=f"Fix the cause, then `shipyard pipelines resume {self.run_id}` runs only the "
            "steps that did not finish.",
        )

    def step(self, key: str) -> StepRun:
        """The step run called ``key`` (``train`` or ``train[2]``)."""
        for step in self.steps:
            if step.key == key:
                return step
        raise KeyError(key)

    def outputs(self, key: str) -> dict[str, Any]:
        """The parameter outputs of a step run."""
        return dict(self.step(key).outputs.get("params", {}))


def _step(row: Mapping[str, Any]) -> StepRun:
    return StepRun(
        key=row["step_key"],
        task=row["task"],
        iteration=tuple(json.loads(row["iteration"])),
        state=row["state"],
        attempts=row["attempts"],
        cache_key=row["cache_key"],
        cached_from=row["cached_from"],
        tracking_run_id=row["tracking_run_id"],
        inputs=json.loads(row["inputs"]),
        outputs=json.loads(row["outputs"]),
        details=json.loads(row["details"]),
        error=row["error"],
        log_key=row["log_key"],
        started_at=ms_to_datetime(row["started_at"]),
        ended_at=ms_to_datetime(row["ended_at"]),
    )


def _run(row: Mapping[str, Any], steps: list[StepRun]) -> PipelineRun:
    return PipelineRun(
        run_id=row["run_id"],
        workspace=row["workspace"],
        pipeline=row["pipeline"],
        status=row["status"],
        params=json.loads(row["params"]),
        run_name=row["run_name"],
        pipeline_ref=row["pipeline_ref"],
        error=row["error"],
        created_at=ms_to_datetime(row["created_at"]),
        started_at=ms_to_datetime(row["started_at"]),
        ended_at=ms_to_datetime(row["ended_at"]),
        scheduled_time=ms_to_datetime(row["scheduled_time"]),
        executor_pid=row["executor_pid"],
        executor_host=row["executor_host"],
        cancel_requested=bool(row["cancel_requested"]),
        steps=steps,
    )


_JSON_COLUMNS = ("inputs", "outputs", "details", "iteration", "params", "graph")


def _encode(values: Mapping[str, Any]) -> dict[str, Any]:
    return {
        k: json.dumps(v, sort_keys=True, default=str)
        if k in _JSON_COLUMNS and not isinstance(v, str)
        else v
        for k, v in values.items()
    }


class RunStateStore:
    """Reads and writes pipeline runs of one workspace."""

    def __init__(self, engine: Engine, workspace: str) -> None:
        self.engine = engine
        self.workspace = workspace

    # -- runs -----------------------------------------------------------------------------

    def create_run(self, conn: Connection, run_id: str, **values: Any) -> None:
        conn.execute(
            pipeline_runs.insert().values(
                run_id=run_id, workspace=self.workspace, created_at=now_ms(), **_encode(values)
            )
        )

    def update_run(self, conn: Connection, run_id: str, **values: Any) -> None:
        conn.execute(
            pipeline_runs.update()
            .where(pipeline_runs.c.run_id == run_id, pipeline_runs.c.workspace == self.workspace)
            .values(**_encode(values))
        )

    def claim(self, conn: Connection, run: PipelineRun) -> bool:
        """Record this process as the run's executor, unless another process changed the run
        since it was read (compare and set on status and executor); False when it did."""
        pid = pipeline_runs.c.executor_pid
        query = (
            pipeline_runs.update()
            .where(
                pipeline_runs.c.run_id == run.run_id,
                pipeline_runs.c.workspace == self.workspace,
                pipeline_runs.c.status == run.status,
                pid.is_(None) if run.executor_pid is None else pid == run.executor_pid,
            )
            .values(
                executor_pid=os.getpid(),
                executor_host=socket.gethostname(),
                status="running",
                started_at=now_ms(),
                ended_at=None,
                error="",
                cancel_requested=False,
            )
        )
        return bool(conn.execute(query).rowcount)

    def _run_row(self, conn: Connection, run_id: str) -> Mapping[str, Any]:
        row = (
            conn.execute(
                sa.select(pipeline_runs).where(
                    pipeline_runs.c.run_id == run_id, pipeline_runs.c.workspace == self.workspace
                )
            )
            .mappings()
            .first()
        )
        if row is None:
            raise PipelineRunNotFoundError(run_id, self.workspace)
        return row

    def get_run(self, run_id: str) -> PipelineRun:
        """The run with all its step runs.

        Raises:
            PipelineRunNotFoundError: no such run in this workspace.
        """
        with self.engine.connect() as conn:
            row = self._run_row(conn, run_id)
            steps = [_step(r) for r in self._step_rows(conn, run_id)]
        return _run(row, steps)

    def graph(self, run_id: str) -> dict[str, Any]:
        with self.engine.connect() as conn:
            return json.loads(self._run_row(conn, run_id)["graph"])

    def list_runs(
        self,
        *,
        pipeline: str | None = None,
        status: str | None = None,
        limit: int = 50,
    ) -> list[PipelineRun]:
        """Newest first, without step runs."""
        query = sa.select(pipeline_runs).where(pipeline_runs.c.workspace == self.workspace)
        if pipeline:
            query = query.where(pipeline_runs.c.pipeline == pipeline)
        if status:
            query = query.where(pipeline_runs.c.status == status)
        query = query.order_by(pipeline_runs.c.created_at.desc()).limit(limit)
        with self.engine.connect() as conn:
            return [_run(row, []) for row in conn.execute(query).mappings()]

    def cancel_requested(self, run_id: str) -> bool:
        with self.engine.connect() as conn:
            return bool(
                conn.execute(
                    sa.select(pipeline_runs.c.cancel_requested).where(
                        pipeline_runs.c.run_id == run_id
                    )
                ).scalar()
            )

    # -- steps ----------------------------------------------------------------------------

    def _step_rows(self, conn: Connection, run_id: str) -> Sequence[Mapping[str, Any]]:
        query = sa.select(pipeline_step_runs).where(pipeline_step_runs.c.run_id == run_id)
        return list(
            conn.execute(
                query.order_by(
                    pipeline_step_runs.c.started_at.is_(None),
                    pipeline_step_runs.c.started_at,
                    pipeline_step_runs.c.step_key,
                )
            ).mappings()
        )

    def insert_steps(
        self, conn: Connection, run_id: str, rows: Iterable[Mapping[str, Any]]
    ) -> None:
        rows = [{"run_id": run_id, **_encode(r)} for r in rows]
        if rows:
            conn.execute(pipeline_step_runs.insert(), rows)

    def update_step(self, conn: Connection, run_id: str, key: str, **values: Any) -> None:
        self.update_steps(conn, run_id, {key: values})

    def update_steps(
        self, conn: Connection, run_id: str, updates: Mapping[str, Mapping[str, Any]]
    ) -> None:
        """Apply per-step column updates: one executemany per set of columns changed."""
        groups: dict[tuple[str, ...], list[dict[str, Any]]] = {}
        for key, values in updates.items():
            columns = tuple(sorted(values))
            row = {f"v_{k}": v for k, v in _encode(values).items()}
            groups.setdefault(columns, []).append({"b_run": run_id, "b_key": key, **row})
        for columns, rows in groups.items():
            conn.execute(_update_statement(columns), rows)


_UPDATES: dict[tuple[str, ...], Any] = {}


def _update_statement(columns: tuple[str, ...]) -> Any:
    """A cached UPDATE of ``columns`` by (run_id, step_key), with bound parameters."""
    statement = _UPDATES.get(columns)
    if statement is None:
        statement = (
            pipeline_step_runs.update()
            .where(
                pipeline_step_runs.c.run_id == sa.bindparam("b_run"),
                pipeline_step_runs.c.step_key == sa.bindparam("b_key"),
            )
            .values({c: sa.bindparam(f"v_{c}") for c in columns})
        )
        _UPDATES[columns] = statement
    return statement
