"""The fluent tracking API: module-level functions that log to the active run.

Semantics follow MLflow's ``mlflow.*`` functions so existing training code ports by
renaming the module: ``set_experiment`` creates the experiment when missing,
``start_run`` returns an :class:`ActiveRun` usable as a context manager, a logging call
with no active run starts one, and a run still open when the interpreter exits is ended
FINISHED, or FAILED when the exit is an unhandled exception.

The stack of active runs is per thread (a ``contextvars.ContextVar``); each thread starts
with none. Metric points go through a :class:`~shipyard.tracking.buffer.MetricBuffer`
and reach the store in batches; params, tags, artifacts and datasets are written at the
call, so errors such as changing a logged param surface where the mistake is.
"""

from __future__ import annotations

import atexit
import contextvars
import logging
import os
import re
import sys
import threading
import time
import weakref
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal

from shipyard.errors import ConflictError, InvalidArgumentError
from shipyard.tracking.buffer import MetricBuffer
from shipyard.tracking.entities import DatasetInput, Param, Run, RunStatus

if TYPE_CHECKING:
    import pandas as pd

    from shipyard.client import Client
    from shipyard.config import Settings
    from shipyard.tracking.entities import Dataset, Experiment, RunData, RunInfo
    from shipyard.types import ArtifactInfo

logger = logging.getLogger(__name__)

DEFAULT_EXPERIMENT = "Default"
# The names SqlTrackingStore accepts; checked here so a bad name fails at the call, not
# later when a buffered batch is written.
_KEY = re.compile(r"^[A-Za-z0-9_\-. /]{1,250}$")
_MAX_CACHED_KEYS = 100_000


class ActiveRun:
    """A run started by :func:`start_run`; ends the run when its ``with`` block exits.

    ``info`` is the run's info as it started (``run.info.run_id``, as in MLflow);
    ``data`` and ``inputs`` are read fresh from the store, after writing buffered points.
    Leaving the block normally ends the run FINISHED, with an exception FAILED, with
    ``KeyboardInterrupt`` KILLED.

    Example::

        with shipyard.start_run(run_name="training_run") as run:
            shipyard.log_metric("loss", 0.3)
        print(run.info.run_id)
    """

    __slots__ = ("__weakref__", "buffer", "client", "info", "run_id")

    def __init__(self, client: Client, run: Run, buffer: MetricBuffer) -> None:
        self.client = client
        self.info: RunInfo = run.info
        self.run_id: str = run.info.run_id
        self.buffer = buffer

    def __repr__(self) -> str:
        return f"<ActiveRun run_id={self.run_id!r} name={self.info.run_name!r}>"

    def __enter__(self) -> ActiveRun:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        status = _status_for(exc_type)
        stack = _stack.get()
        if self in stack:  # children left open inside the block end with their parent
            for child in reversed(stack[stack.index(self) + 1 :]):
                _finish(child, status)
        _finish(self, status)

    def _fetch(self) -> Run:
        self.buffer.flush(self.run_id)
        return self.client.get_run(self.run_id)

    @property
    def data(self) -> RunData:
        return self._fetch().data

    @property
    def inputs(self) -> list[DatasetInput]:
        return self._fetch().inputs


@dataclass
class _ProcessState:
    """What the fluent API remembers for the whole process (not per thread)."""

    client: Client | None = None
    client_key: tuple[Any, ...] = ()
    override: Client | None = None
    experiment_id: str | None = None
    last_run: tuple[Client, str] | None = None
    exit_status: RunStatus | None = None
    hooks_installed: bool = False


_stack: contextvars.ContextVar[tuple[ActiveRun, ...]] = contextvars.ContextVar(
    "shipyard_active_runs", default=()
)
_state = _ProcessState()
_lock = threading.RLock()
_live: dict[str, ActiveRun] = {}  # every active run of every thread, for atexit
_buffers: weakref.WeakKeyDictionary[Client, MetricBuffer] = weakref.WeakKeyDictionary()
_valid_keys: set[str] = set()


def _now_ms() -> int:
    return time.time_ns() // 1_000_000


def _status_for(exc_type: type[BaseException] | None) -> RunStatus:
    if exc_type is None:
        return RunStatus.FINISHED
    if issubclass(exc_type, KeyboardInterrupt):
        return RunStatus.KILLED
    return RunStatus.FAILED


# -- which client and experiment ---------------------------------------------------------


def _settings_key(settings: Settings) -> tuple[Any, ...]:
    token = settings.token.get_secret_value() if settings.token else None
    return (
        settings.url,
        settings.db,
        settings.artifacts,
        settings.workspace,
        token,
        settings.metric_flush_size,
        settings.metric_flush_interval,
        settings.http_timeout,
    )


def _client() -> Client:
    """The client fluent calls use: the one given to :func:`use_client`, else one built
    from the current settings (rebuilt when the environment changes)."""
    if _state.override is not None:
        return _state.override
    from shipyard.client import Client
    from shipyard.config import load_settings

    settings = load_settings()
    key = _settings_key(settings)
    with _lock:
        if _state.client is None or _state.client_key != key:
            _state.client = Client(settings)
            _state.client_key = key
            _state.experiment_id = None
        return _state.client


def use_client(client: Client | None) -> None:
    """Send fluent calls through ``client`` (e.g. one bound to a test server);
    ``None`` goes back to a client built from settings.

    Runs already active keep the client they started with.
    """
    with _lock:
        _state.override = client
        _state.experiment_id = None


def _buffer_for(client: Client) -> MetricBuffer:
    with _lock:
        buffer = _buffers.get(client)
        if buffer is None:
            buffer = MetricBuffer(
                client.tracking,
                flush_size=client.settings.metric_flush_size,
                flush_interval=client.settings.metric_flush_interval,
            )
            _buffers[client] = buffer
        return buffer


def _get_or_create_experiment(client: Client, name: str) -> Experiment:
    experiment = client.get_experiment_by_name(name)
    if experiment is None:
        try:
            experiment = client.tracking.create_experiment(name)
        except ConflictError:  # created by another process between the two calls
            experiment = client.get_experiment_by_name(name)
            if experiment is None:
                raise
    if experiment.lifecycle_stage == "deleted":
        raise InvalidArgumentError(
            f"Experiment '{name}' is deleted.",
            hint="Use another name, or restore the experiment first.",
        )
    return experiment


def set_experiment(
    experiment_name: str | None = None, experiment_id: str | None = None
) -> Experiment:
    """Make an experiment the active one, creating it when no experiment has that name.

    Runs started afterwards without an explicit experiment go there.

    Args:
        experiment_name: Name of the experiment (created if missing).
        experiment_id: Id of an existing experiment, instead of a name.

    Returns:
        The experiment.

    Raises:
        ExperimentNotFoundError: ``experiment_id`` does not exist.
    """
    if (experiment_name is None) == (experiment_id is None):
        raise ValueError("Pass exactly one of experiment_name or experiment_id.")
    client = _client()
    if experiment_id is not None:
        experiment = client.get_experiment(experiment_id)
    else:
        experiment = _get_or_create_experiment(client, str(experiment_name))
    with _lock:
        _state.experiment_id = experiment.experiment_id
    return experiment


def _resolve_experiment_id(client: Client, name: str | None, experiment_id: str | None) -> str:
    if experiment_id is not None:
        return experiment_id
    if name is not None:
        return _get_or_create_experiment(client, name).experiment_id
    if _state.experiment_id is not None and client is (_state.override or _state.client):
        return _state.experiment_id
    return _get_or_create_experiment(client, DEFAULT_EXPERIMENT).experiment_id


# -- starting and ending runs ------------------------------------------------------------


def _user() -> str:
    import getpass

    try:
        return getpass.getuser()
    except Exception:  # no login name in some containers
        return ""


def _system_tags() -> dict[str, str]:
    source = sys.argv[0] if sys.argv and sys.argv[0] else "<interactive>"
    return {"shipyard.source.name": source}


def start_run(
    run_id: str | None = None,
    experiment_id: str | None = None,
    run_name: str | None = None,
    nested: bool = False,
    parent_run_id: str | None = None,
    tags: Mapping[str, Any] | None = None,
    description: str | None = None,
    *,
    experiment_name: str | None = None,
) -> ActiveRun:
    """Start a run (or resume one) and make it the active run of this thread.

    Args:
        run_id: Resume this existing run instead of creating one; a finished run is
            set back to RUNNING.
        experiment_id: Experiment of the new run; default the one chosen by
            :func:`set_experiment`, else ``"Default"``.
        run_name: Display name; generated when omitted.
        nested: Start a child of the active run. Without it, starting a run while
            another is active is an error.
        parent_run_id: Explicit parent, instead of the active run.
        tags: Tags to set on the new run (values are stringified).
        description: Free text, stored as the ``shipyard.note`` tag.
        experiment_name: Experiment by name (created if missing), instead of an id.

    Returns:
        An :class:`ActiveRun`; use it in a ``with`` block to end it automatically.

    Raises:
        InvalidArgumentError: a run is already active and ``nested`` is False.
        RunNotFoundError: ``run_id`` does not exist.
    """
    stack = _stack.get()
    if stack and not nested:
        raise InvalidArgumentError(
            f"Run '{stack[-1].run_id}' is already active in this thread.",
            hint="End it with shipyard.end_run() first, or pass nested=True to start a child run.",
        )
    client = _client()
    if run_id is not None:
        run = client.get_run(run_id)
        if run.info.status is not RunStatus.RUNNING:
            run = client.tracking.update_run(run_id, status=RunStatus.RUNNING)
        if tags:
            client.tracking.log_batch(run_id, tags={k: str(v) for k, v in tags.items()})
    else:
        exp_id = _resolve_experiment_id(client, experiment_name, experiment_id)
        parent = parent_run_id or (stack[-1].run_id if stack else None)
        all_tags = _system_tags()
        all_tags.update({k: str(v) for k, v in (tags or {}).items()})
        if description:
            all_tags["shipyard.note"] = description
        run = client.tracking.create_run(
            exp_id, run_name=run_name, parent_run_id=parent, tags=all_tags, user=_user()
        )
    active = ActiveRun(client, run, _buffer_for(client))
    _stack.set((*stack, active))
    with _lock:
        _live[active.run_id] = active
        if not _state.hooks_installed:
            _install_hooks()
    return active


def _active_or_start() -> ActiveRun:
    """The active run of this thread, or a new one (as MLflow does on a first log call)."""
    stack = _stack.get()
    return stack[-1] if stack else start_run()


def active_run() -> ActiveRun | None:
    """The innermost active run of this thread, or None."""
    stack = _stack.get()
    return stack[-1] if stack else None


def last_active_run() -> Run | None:
    """The active run, else the run most recently ended in this process, read fresh."""
    current = active_run()
    if current is not None:
        return current._fetch()
    last = _state.last_run
    if last is None:
        return None
    client, run_id = last
    return client.get_run(run_id)


def end_run(status: str | RunStatus = "FINISHED") -> None:
    """End the innermost active run of this thread: write its buffered metric points,
    then set its status and end time. Does nothing when no run is active.

    Raises:
        ShipyardError: buffered points could not be written (the run is still ended,
            and the error says how many points were lost).
    """
    stack = _stack.get()
    if stack:
        _finish(stack[-1], RunStatus(status))


def _finish(active: ActiveRun, status: RunStatus) -> None:
    with _lock:
        if _live.pop(active.run_id, None) is None:
            return  # already ended
        _state.last_run = (active.client, active.run_id)
    stack = _stack.get()
    if active in stack:
        _stack.set(tuple(run for run in stack if run is not active))
    error: BaseException | None = None
    try:
        active.buffer.flush(active.run_id)
    except Exception as exc:
        lost = active.buffer.discard(active.run_id)
        exc.add_note(f"{lost} buffered metric points of run {active.run_id} were not stored.")
        error = exc
    active.client.tracking.update_run(active.run_id, status=status, end_time=_now_ms())
    if error is not None:
        raise error


def flush() -> None:
    """Write every buffered metric point now (they are also written in the background)."""
    for buffer in list(_buffers.values()):
        buffer.flush()


# -- process exit ------------------------------------------------------------------------


def _install_hooks() -> None:
    """Register, once, what ends open runs when the process or a thread dies."""
    _state.hooks_installed = True
    atexit.register(_end_all_at_exit)

    previous = sys.excepthook

    def excepthook(
        exc_type: type[BaseException], exc: BaseException, tb: TracebackType | None
    ) -> None:
        _state.exit_status = _status_for(exc_type)
        previous(exc_type, exc, tb)

    sys.excepthook = excepthook

    threading.excepthook = _chain_thread_excepthook(threading.excepthook)


def _chain_thread_excepthook(
    previous: Callable[[threading.ExceptHookArgs], Any],
) -> Callable[[threading.ExceptHookArgs], None]:
    """A ``threading.excepthook`` that fails the dying thread's runs, then calls
    ``previous``."""

    def thread_excepthook(args: threading.ExceptHookArgs) -> None:
        # Runs in the dying thread, so _stack holds that thread's runs.
        if args.exc_type is not SystemExit:
            for active in reversed(_stack.get()):
                try:
                    _finish(active, _status_for(args.exc_type))
                except Exception:
                    logger.exception("Could not end run %s", active.run_id)
        previous(args)

    return thread_excepthook


def _forget_runs_in_child() -> None:
    # A forked child may log to the runs it inherited, but they belong to the parent:
    # the child's exit must not end them.
    _live.clear()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_runs_in_child)


def _end_all_at_exit() -> None:
    status = _state.exit_status or RunStatus.FINISHED
    with _lock:
        open_runs = list(reversed(_live.values()))  # children before their parents
    for active in open_runs:
        try:
            _finish(active, status)
        except Exception:
            logger.exception("Could not end run %s at exit", active.run_id)
    for buffer in list(_buffers.values()):
        try:
            buffer.flush()
        except Exception:
            logger.exception("Could not write buffered metric points at exit")
        buffer.close()


# -- logging -----------------------------------------------------------------------------


def _check_key(key: str, kind: str = "metric") -> None:
    if not isinstance(key, str) or not _KEY.fullmatch(key):
        raise InvalidArgumentError(
            f"Invalid {kind} name {key!r}.",
            hint="Use 1-250 ASCII letters, digits, '_', '-', '.', ' ' or '/'.",
        )
    if len(_valid_keys) < _MAX_CACHED_KEYS:
        _valid_keys.add(key)


def _to_float(key: str, value: Any) -> float:
    if not isinstance(value, str | bytes):
        try:
            return float(value)
        except (TypeError, ValueError):
            pass
    raise InvalidArgumentError(
        f"Metric {key!r} got {value!r} ({type(value).__name__}); metric values are numbers.",
        hint="Log text with shipyard.log_param or shipyard.set_tag instead.",
    )


def _to_step(step: Any) -> int:
    if step.__class__ is int:
        return step  # type: ignore[no-any-return]
    import numbers

    if isinstance(step, numbers.Integral) and not isinstance(step, bool):
        return int(step)
    raise InvalidArgumentError(f"Metric step must be an integer, got {step!r}.")


def log_metric(
    key: str, value: float, step: int | None = None, timestamp: int | None = None
) -> None:
    """Log one metric point to the active run (buffered; see ``shipyard.flush``).

    Args:
        key: Metric name, e.g. ``"val_loss"``.
        value: A number (Python or numpy).
        step: Training step; defaults to 0, as in MLflow.
        timestamp: Epoch milliseconds; defaults to now.

    Raises:
        InvalidArgumentError: bad name, a non-numeric value or a non-integer step.
    """
    stack = _stack.get()
    active = stack[-1] if stack else _active_or_start()
    if key not in _valid_keys:
        _check_key(key)
    if value.__class__ is not float:
        value = _to_float(key, value)
    active.buffer.add(
        active.run_id,
        key,
        value,
        0 if step is None else _to_step(step),
        timestamp if timestamp is not None else time.time_ns() // 1_000_000,
    )


def log_metrics(
    metrics: Mapping[str, float], step: int | None = None, timestamp: int | None = None
) -> None:
    """Log several metrics at the same step and time (buffered)."""
    active = _active_or_start()
    step_value = 0 if step is None else _to_step(step)
    ts = timestamp if timestamp is not None else _now_ms()
    points = []
    for key, value in metrics.items():
        if key not in _valid_keys:
            _check_key(key)
        number = value if value.__class__ is float else _to_float(key, value)
        points.append((key, number, step_value, ts))
    active.buffer.add_many(active.run_id, points)


def log_param(key: str, value: Any) -> str:
    """Record a param of the active run, stored as ``str(value)``; returns that string.

    Raises:
        ConflictError: the param was already logged with a different value.
    """
    _check_key(key, "param")
    active = _active_or_start()
    text = str(value)
    active.client.tracking.log_batch(active.run_id, params=[Param(key, text)])
    return text


def log_params(params: Mapping[str, Any]) -> None:
    """Record several params of the active run in one write (values stringified)."""
    for key in params:
        _check_key(key, "param")
    active = _active_or_start()
    batch = [Param(key, str(value)) for key, value in params.items()]
    active.client.tracking.log_batch(active.run_id, params=batch)


def set_tag(key: str, value: Any) -> None:
    """Set a tag of the active run (tags, unlike params, may change)."""
    _check_key(key, "tag")
    active = _active_or_start()
    active.client.tracking.log_batch(active.run_id, tags={key: str(value)})


def set_tags(tags: Mapping[str, Any]) -> None:
    """Set several tags of the active run in one write."""
    for key in tags:
        _check_key(key, "tag")
    active = _active_or_start()
    active.client.tracking.log_batch(
        active.run_id, tags={key: str(value) for key, value in tags.items()}
    )


# -- artifacts ---------------------------------------------------------------------------


def log_artifact(local_path: str | Path, artifact_path: str | None = None) -> ArtifactInfo:
    """Upload a file into the active run's artifacts, under folder ``artifact_path``."""
    active = _active_or_start()
    return active.client.artifacts.log_artifact(active.run_id, local_path, artifact_path)


def log_artifacts(local_dir: str | Path, artifact_path: str | None = None) -> list[ArtifactInfo]:
    """Upload every file below ``local_dir`` into the active run's artifacts."""
    active = _active_or_start()
    return active.client.artifacts.log_artifacts(active.run_id, local_dir, artifact_path)


def _log_bytes(data: bytes, artifact_file: str) -> ArtifactInfo:
    active = _active_or_start()
    return active.client.artifacts.log_bytes(active.run_id, data, artifact_file)


def log_text(text: str, artifact_file: str) -> ArtifactInfo:
    """Save ``text`` as the artifact ``artifact_file`` (UTF-8), e.g. ``"notes/run.txt"``."""
    return _log_bytes(text.encode("utf-8"), artifact_file)


def log_dict(dictionary: Mapping[str, Any] | Sequence[Any], artifact_file: str) -> ArtifactInfo:
    """Save a dict (or list) as YAML when ``artifact_file`` ends in .yaml/.yml, else JSON."""
    from shipyard.tracking._artifact_bytes import dict_bytes

    return _log_bytes(dict_bytes(dictionary, artifact_file), artifact_file)


def log_figure(
    figure: Any, artifact_file: str, *, save_kwargs: Mapping[str, Any] | None = None
) -> ArtifactInfo:
    """Save a matplotlib or plotly figure as an artifact; the extension picks the format.

    matplotlib: any format its canvas supports (.png, .svg, .pdf, .jpg, ...).
    plotly: .html (self-contained, works offline), .json, and image formats when the
    ``kaleido`` package is installed.

    Raises:
        InvalidArgumentError: an extension the figure cannot be saved as.
        ConfigError: a plotly image format without kaleido installed.
        TypeError: ``figure`` is neither a matplotlib nor a plotly figure.
    """
    from shipyard.tracking._artifact_bytes import figure_bytes

    return _log_bytes(figure_bytes(figure, artifact_file, save_kwargs), artifact_file)


def log_table(data: pd.DataFrame | Mapping[str, Sequence[Any]], artifact_file: str) -> ArtifactInfo:
    """Save a table (a DataFrame or a dict of columns) as .json or .parquet.

    JSON uses MLflow's layout, ``{"columns": [...], "data": [[...], ...]}``.

    Raises:
        InvalidArgumentError: another extension.
    """
    from shipyard.tracking._artifact_bytes import table_bytes

    return _log_bytes(table_bytes(data, artifact_file), artifact_file)


def log_dataset(
    data: Any, name: str | None = None, context: str = "training", source: str | None = None
) -> Dataset:
    """Record that the active run used a dataset: digest, schema, row count, profile.

    Args:
        data: A DataFrame, numpy array, pyarrow Table, dict of columns, or a file /
            folder path or URL (digested from its bytes, streamed).
        name: Display name; default the file name or ``"dataset"``.
        context: What the run used it for: ``"training"``, ``"validation"``, ...
        source: Where in-memory data came from (URI), for lineage.

    Returns:
        The :class:`~shipyard.tracking.entities.Dataset` recorded.
    """
    from shipyard.tracking.datasets import dataset_from

    dataset = dataset_from(data, name=name, source=source)
    active = _active_or_start()
    active.client.tracking.log_inputs(active.run_id, [DatasetInput(dataset, context)])
    return dataset


# -- reading back ------------------------------------------------------------------------


def search_runs(
    experiment_ids: Sequence[str] | None = None,
    filter_string: str = "",
    *,
    max_results: int = 100_000,
    order_by: Sequence[str] | None = None,
    output_format: Literal["pandas", "list"] = "pandas",
    search_all_experiments: bool = False,
    experiment_names: Sequence[str] | None = None,
) -> pd.DataFrame | list[Run]:
    """Search runs, by default in the active experiment, as a DataFrame or a list.

    The DataFrame has MLflow's columns: ``run_id``, ``experiment_id``, ``status``,
    ``artifact_uri``, ``start_time``, ``end_time``, ``run_name``, then ``metrics.<key>``,
    ``params.<key>`` and ``tags.<key>``.

    Args:
        experiment_ids: Experiments to search.
        filter_string: e.g. ``"metrics.acc > 0.9 and params.lr = '0.1'"``.
        max_results: Most runs returned.
        order_by: e.g. ``["metrics.acc DESC", "start_time"]``.
        output_format: ``"pandas"`` or ``"list"`` (of :class:`Run`).
        search_all_experiments: Search every experiment of the workspace.
        experiment_names: Experiments by name (names that do not exist are skipped).
    """
    if output_format not in ("pandas", "list"):
        raise ValueError(f"output_format must be 'pandas' or 'list', not {output_format!r}")
    if isinstance(experiment_ids, str):
        if " " in experiment_ids.strip():
            raise InvalidArgumentError(
                f"search_runs got {experiment_ids!r} as experiment_ids.",
                hint="Pass the filter by name: search_runs(filter_string=...).",
            )
        experiment_ids = [experiment_ids]
    flush()
    client = _client()
    ids = list(experiment_ids or ())
    for exp_name in experiment_names or ():
        experiment = client.get_experiment_by_name(exp_name)
        if experiment is not None:
            ids.append(experiment.experiment_id)
    if not ids and not experiment_names:
        if search_all_experiments:
            ids = [e.experiment_id for e in _all_experiments(client)]
        elif _state.experiment_id is not None and client is (_state.override or _state.client):
            ids = [_state.experiment_id]
        else:
            default = client.get_experiment_by_name(DEFAULT_EXPERIMENT)
            ids = [default.experiment_id] if default else []
    runs: list[Run] = []
    token: str | None = None
    while ids and len(runs) < max_results:
        page = client.tracking.search_runs(
            ids,
            filter_string=filter_string,
            order_by=tuple(order_by or ()),
            max_results=min(1000, max_results - len(runs)),
            page_token=token,
        )
        runs.extend(page.items)
        token = page.next_page_token
        if not token:
            break
    if output_format == "list":
        return runs
    return runs_to_frame(runs)


def _all_experiments(client: Client) -> list[Experiment]:
    experiments: list[Experiment] = []
    token: str | None = None
    while True:
        page = client.tracking.list_experiments(max_results=1000, page_token=token)
        experiments.extend(page.items)
        token = page.next_page_token
        if not token:
            return experiments


_BASE_COLUMNS = (
    "run_id",
    "experiment_id",
    "status",
    "artifact_uri",
    "start_time",
    "end_time",
    "run_name",
)


def runs_to_frame(runs: Sequence[Run]) -> pd.DataFrame:
    """Runs as a DataFrame with MLflow's ``search_runs`` columns."""
    import pandas as pd

    metric_keys = sorted({k for run in runs for k in run.data.metrics})
    param_keys = sorted({k for run in runs for k in run.data.params})
    tag_keys = sorted({k for run in runs for k in run.data.tags})
    columns = [
        *_BASE_COLUMNS,
        *(f"metrics.{k}" for k in metric_keys),
        *(f"params.{k}" for k in param_keys),
        *(f"tags.{k}" for k in tag_keys),
    ]
    records = []
    for run in runs:
        info, data = run.info, run.data
        record: dict[str, Any] = {
            "run_id": info.run_id,
            "experiment_id": info.experiment_id,
            "status": str(info.status),
            "artifact_uri": info.artifact_uri,
            "start_time": info.start_time,
            "end_time": info.end_time,
            "run_name": info.run_name,
        }
        record.update({f"metrics.{k}": data.metrics.get(k) for k in metric_keys})
        record.update({f"params.{k}": data.params.get(k) for k in param_keys})
        record.update({f"tags.{k}": data.tags.get(k) for k in tag_keys})
        records.append(record)
    frame = pd.DataFrame.from_records(records, columns=columns)
    for column in ("start_time", "end_time"):
        frame[column] = pd.to_datetime(frame[column], utc=True)
    return frame
