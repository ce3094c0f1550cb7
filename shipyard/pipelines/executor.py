"""The local executor: runs a pipeline on this machine, each step in its own process.

Steps start in topological order as soon as what they wait for has finished, up to
``max_workers`` at a time; ParallelFor loops expand when their items are known and
``Collected`` gathers the iterations. A step whose cache key matches an earlier success is
not run: its outputs are reused. Failed attempts are retried with exponential backoff,
attempts that outlive their timeout are killed, conditions skip their block, and exit
steps run whatever happened. Every transition is written to the metadata store before the
executor waits again, so ``resume(run_id)`` after a crash (even ``kill -9``) re-runs only
what had not finished.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

from shipyard.errors import ConflictError, InvalidArgumentError, PipelineError, did_you_mean
from shipyard.pipelines._runloop import RunLoop
from shipyard.pipelines.cache import StepCache
from shipyard.pipelines.hooks import TrackingHook
from shipyard.pipelines.logs import is_local, local_root
from shipyard.pipelines.mirror import ArtifactMirror
from shipyard.pipelines.state import (
    DONE_STATES,
    TERMINAL_STATES,
    PipelineRun,
    RunStateStore,
)
from shipyard.pipelines.steprun import coerce_parameter
from shipyard.pipelines.worker import PipelineRef, WorkerPool, get_pool, load_pipeline, pipeline_ref
from shipyard.store.db import engine_for, now_ms

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.pipelines.dsl import Pipeline

__all__ = [
    "LocalExecutor",
    "cancel",
    "get_run",
    "list_runs",
    "prepare_resume",
    "resolve_params",
    "resume",
    "run_pipeline",
]

log = logging.getLogger(__name__)


def resolve_params(pipeline: Pipeline, params: Mapping[str, Any] | None) -> dict[str, Any]:
    """The run's parameter values: given ones checked against their types, defaults filled.

    Raises:
        InvalidArgumentError: an unknown name, a missing required value or a wrong type.
    """
    params = dict(params or {})
    known = [p.name for p in pipeline.parameters]
    for name in params:
        if name not in known:
            raise InvalidArgumentError(
                f"Pipeline '{pipeline.name}' has no parameter '{name}'."
                + did_you_mean(name, known),
                hint=f"Its parameters are: {', '.join(known) or 'none'}.",
            )
    resolved = {}
    for port in pipeline.parameters:
        if port.name in params:
            resolved[port.name] = coerce_parameter(
                params[port.name], port.type, f"Parameter '{port.name}'"
            )
        elif port.required:
            raise InvalidArgumentError(
                f"Pipeline '{pipeline.name}' needs parameter '{port.name}' ({port.type}).",
                hint=f"Pass it, e.g. `-p {port.name}=...`.",
            )
        else:
            resolved[port.name] = port.default
    return resolved


# One tracking hook per store and workspace in a process: it remembers experiment ids.
_hooks: dict[tuple[str, str, str], TrackingHook] = {}
_hooks_lock = threading.Lock()


class LocalExecutor:
    """Runs one pipeline in a workspace; see :func:`run_pipeline` for the usual entry."""

    def __init__(
        self,
        pipeline: Pipeline,
        *,
        settings: Settings | None = None,
        workspace: str | None = None,
        max_workers: int | None = None,
        ref: PipelineRef | None = None,
    ) -> None:
        from shipyard.config import load_settings

        self.pipeline = pipeline
        self.ref = ref or pipeline_ref(pipeline)
        self._pool: WorkerPool | None = None
        self.warm_up()  # the worker imports the pipeline module while we open the stores
        self.settings = settings or load_settings()
        self.workspace = workspace or self.settings.workspace
        self.max_workers = max(1, max_workers or os.cpu_count() or 1)
        self.mirror: ArtifactMirror | None = None
        if is_local(self.settings.artifacts):
            self.root = local_root(self.settings.artifacts)
        else:  # steps work on local files; outputs and logs are mirrored to the remote root
            from shipyard.store.artifacts import ArtifactStore

            self.root = self.settings.home / "pipeline-files"
            self.mirror = ArtifactMirror(self.root, ArtifactStore(self.settings.artifacts))
        self.engine = engine_for(self.settings.db)
        self.state = RunStateStore(self.engine, self.workspace)
        self.cache = StepCache(self.engine, self.workspace, self.available)
        self.tracking: TrackingHook | None = None

    def pool(self) -> WorkerPool:
        """The warm worker, ready; a dead one is replaced.

        Raises:
            PipelineError: the worker cannot import the pipeline's module.
        """
        for _ in range(3):
            if self._pool is None or not self._pool.alive:
                self._pool = get_pool(self.ref)
            if self._pool.wait_ready():
                return self._pool
        raise PipelineError(f"The step worker for {self.ref} keeps exiting.")

    def warm_up(self) -> None:
        """Start the step worker now, so it imports while the run is set up."""
        if self._pool is None:
            self._pool = get_pool(self.ref)

    def available(self, key: str) -> bool:
        """Whether the file under ``key`` is on this machine (fetched from the remote root
        when there is one)."""
        if self.mirror is not None:
            return self.mirror.ensure_local(key)
        return (self.root / key).exists()

    def upload(self, key: str) -> None:
        if self.mirror is not None:
            self.mirror.upload(key)

    def use_cache(self, task: str) -> bool:
        return self.pipeline.graph.step(task).cache

    def _tracking(self) -> TrackingHook:
        if self.tracking is None:
            key = (self.settings.db, self.workspace, self.settings.artifacts)
            with _hooks_lock:
                hook = _hooks.get(key)
                if hook is None:
                    from shipyard.store.workspaces import ensure_workspace
                    from shipyard.tracking.sql import SqlTrackingStore

                    ensure_workspace(self.engine, self.workspace)
                    hook = TrackingHook(
                        SqlTrackingStore(self.engine, self.workspace, self.settings.artifacts)
                    )
                    _hooks[key] = hook
            self.tracking = hook
        return self.tracking

    def start(
        self,
        params: Mapping[str, Any] | None = None,
        *,
        run_name: str | None = None,
        scheduled_time: datetime | None = None,
    ) -> str:
        """Record a new run (pending) and return its id."""
        self.warm_up()
        resolved = resolve_params(self.pipeline, params)
        scheduled = scheduled_time or datetime.now(UTC)
        if scheduled.tzinfo is None:
            scheduled = scheduled.replace(tzinfo=UTC)
        run_id = self._tracking().before_pipeline_run(self.pipeline.name, run_name, resolved)
        with self.engine.begin() as conn:
            self.state.create_run(
                conn,
                run_id,
                pipeline=self.pipeline.name,
                pipeline_ref=json.dumps(self.ref.to_dict()),
                run_name=run_name or "",
                graph=self.pipeline.graph.to_dict(),
                params=resolved,
                status="pending",
                scheduled_time=int(scheduled.timestamp() * 1000),
                max_workers=self.max_workers,
            )
        return run_id

    def execute(self, run_id: str, *, resuming: bool = False) -> PipelineRun:
        """Run (or, ``resuming``, continue) ``run_id`` to the end in this thread."""
        run = self.state.get_run(run_id)
        if not resuming and run.status != "pending":
            return run  # cancelled before it started, or already taken by another executor
        placeholders = {
            "run_id": run_id,
            "scheduled_time": (run.scheduled_time or datetime.now(UTC)).isoformat(),
        }
        done = {
            s.key: {"state": s.state, "outputs": s.outputs, "attempts": s.attempts}
            for s in run.steps
        }
        loop = RunLoop(self, run_id, run.params, placeholders, done)
        if run.steps:
            self._rerun_exit_steps(loop, run)
        with self.engine.begin() as conn:
            claimed = self.state.claim(conn, run)
        if not claimed:
            raise ConflictError(
                f"Pipeline run '{run_id}' was taken over by another process.",
                hint=f"See `shipyard pipelines show {run_id}`.",
            )
        status, error = "failed", ""
        try:
            status = loop.run()
            error = loop.first_error()
        except BaseException as exc:
            error = f"{type(exc).__name__}: {exc}"
            if isinstance(exc, KeyboardInterrupt):
                status, error = "cancelled", "interrupted"
            for task_id in list(loop.running):
                if self._pool is not None:
                    self._pool.kill(task_id)
            raise
        finally:
            try:
                loop.flush()
            except Exception:
                log.exception("could not record the last step states of run %s", run_id)
            with self.engine.begin() as conn:
                self.state.update_run(conn, run_id, status=status, ended_at=now_ms(), error=error)
            if self.tracking is not None:
                try:
                    self.tracking.after_pipeline_run(run_id, status)
                except Exception:
                    log.exception("could not end tracking run %s", run_id)
        return self.state.get_run(run_id)

    def _rerun_exit_steps(self, loop: RunLoop, run: PipelineRun) -> None:
        """On resume, an exit step runs again when any step of its body runs again."""
        states = {s.key: s.state for s in run.steps}
        for exit_step, group in loop.exit_steps.items():
            body = set(self.pipeline.graph.body(group.id))
            if any(s.task in body and states.get(s.key) not in DONE_STATES for s in run.steps):
                loop.restored.pop(exit_step, None)


def _executor_for_run(
    run_id: str,
    settings: Settings | None,
    workspace: str | None,
    max_workers: int | None,
) -> tuple[LocalExecutor, PipelineRun]:
    from shipyard.config import load_settings

    settings = settings or load_settings()
    workspace = workspace or settings.workspace
    store = RunStateStore(engine_for(settings.db), workspace)
    run = store.get_run(run_id)
    ref = PipelineRef(**json.loads(run.pipeline_ref))
    pipeline = load_pipeline(ref)
    executor = LocalExecutor(
        pipeline, settings=settings, workspace=workspace, max_workers=max_workers, ref=ref
    )
    return executor, run


def _alive(run: PipelineRun) -> bool:
    if run.status not in ("running", "pending") or run.executor_pid is None:
        return False
    if run.executor_host != socket.gethostname():
        return True  # cannot tell; assume it is
    if run.executor_pid == os.getpid():
        return True
    try:
        os.kill(run.executor_pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def run_pipeline(
    pipeline: Pipeline,
    params: Mapping[str, Any] | None = None,
    *,
    settings: Settings | None = None,
    workspace: str | None = None,
    max_workers: int | None = None,
    run_name: str | None = None,
    scheduled_time: datetime | None = None,
    wait: bool = True,
) -> PipelineRun:
    """Run ``pipeline`` locally and return the finished run (or, with ``wait=False``, the
    run just started; it goes on in a background thread).

    Args:
        pipeline: A module-level ``@pipeline``; step processes import it by name.
        params: Values of the pipeline's parameters; defaults fill the rest.
        settings: Where the metadata store and artifact root are (default: environment).
        workspace: Defaults to ``settings.workspace``.
        max_workers: Steps running at once (default: the number of CPUs).
        run_name: Shown in tracking; generated when omitted.
        scheduled_time: The ``SCHEDULED_TIME`` placeholder (default: now).
        wait: Return only once the run has finished.

    Returns:
        The run with every step run; check ``run.status`` or call ``run.raise_for_status()``.

    Raises:
        InvalidArgumentError: a parameter is unknown, missing or of the wrong type.
    """
    executor = LocalExecutor(
        pipeline, settings=settings, workspace=workspace, max_workers=max_workers
    )
    run_id = executor.start(params, run_name=run_name, scheduled_time=scheduled_time)
    return _go(executor, run_id, wait)


def _go(executor: LocalExecutor, run_id: str, wait: bool, resuming: bool = False) -> PipelineRun:
    if wait:
        return executor.execute(run_id, resuming=resuming)
    thread = threading.Thread(
        target=executor.execute,
        args=(run_id,),
        kwargs={"resuming": resuming},
        name=f"pipeline-run-{run_id[:8]}",
    )
    thread.start()
    return executor.state.get_run(run_id)


def resume(
    run_id: str,
    *,
    settings: Settings | None = None,
    workspace: str | None = None,
    max_workers: int | None = None,
    wait: bool = True,
) -> PipelineRun:
    """Continue a run that failed, was cancelled or whose executor died: steps that
    succeeded, were cached or skipped keep their outputs; the rest run again.

    Raises:
        PipelineRunNotFoundError: no such run.
        ConflictError: the run is still being executed by a live process.
    """
    executor = prepare_resume(
        run_id, settings=settings, workspace=workspace, max_workers=max_workers
    )
    return _go(executor, run_id, wait, resuming=True)


def prepare_resume(
    run_id: str,
    *,
    settings: Settings | None = None,
    workspace: str | None = None,
    max_workers: int | None = None,
) -> LocalExecutor:
    """The executor that will continue ``run_id`` (see :func:`resume`), with its checks done:
    call ``execute(run_id, resuming=True)`` on it.

    Raises:
        PipelineRunNotFoundError: no such run.
        ConflictError: the run is still being executed by a live process.
    """
    executor, run = _executor_for_run(run_id, settings, workspace, max_workers)
    if _alive(run):
        raise ConflictError(
            f"Pipeline run '{run_id}' is still running (process {run.executor_pid} on "
            f"{run.executor_host}).",
            hint=f"Wait for it, or stop it with `shipyard pipelines cancel {run_id}`.",
        )
    executor._tracking().on_resume(run_id)
    return executor


def cancel(
    run_id: str, *, settings: Settings | None = None, workspace: str | None = None
) -> PipelineRun:
    """Ask the run's executor to stop: running steps are killed, exit steps still run. A run
    whose executor is gone is marked cancelled right away."""
    from shipyard.config import load_settings

    settings = settings or load_settings()
    store = RunStateStore(engine_for(settings.db), workspace or settings.workspace)
    run = store.get_run(run_id)
    if run.status in ("succeeded", "failed", "cancelled"):
        return run
    with store.engine.begin() as conn:
        store.update_run(conn, run_id, cancel_requested=True)
        if not _alive(run):
            store.update_run(conn, run_id, status="cancelled", ended_at=now_ms())
            for step in run.steps:
                if step.state not in TERMINAL_STATES:
                    store.update_step(conn, run_id, step.key, state="cancelled", ended_at=now_ms())
    return store.get_run(run_id)


def get_run(
    run_id: str, *, settings: Settings | None = None, workspace: str | None = None
) -> PipelineRun:
    """A run with its step runs.

    Raises:
        PipelineRunNotFoundError: no such run in the workspace.
    """
    from shipyard.config import load_settings

    settings = settings or load_settings()
    return RunStateStore(engine_for(settings.db), workspace or settings.workspace).get_run(run_id)


def list_runs(
    *,
    pipeline: str | None = None,
    status: str | None = None,
    limit: int = 50,
    settings: Settings | None = None,
    workspace: str | None = None,
) -> list[PipelineRun]:
    """Runs of the workspace, newest first (without their step runs)."""
    from shipyard.config import load_settings

    settings = settings or load_settings()
    store = RunStateStore(engine_for(settings.db), workspace or settings.workspace)
    return store.list_runs(pipeline=pipeline, status=status, limit=limit)
