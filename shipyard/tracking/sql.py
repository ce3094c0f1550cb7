"""SqlTrackingStore: experiments, runs, metrics and run search on SQLite or PostgreSQL.

Built on SQLAlchemy Core over the tables in :mod:`shipyard.tracking.schema`. ``log_batch``
is the hot path: one transaction, one status check, bulk inserts and one upsert of the
latest value per metric key.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection, Engine

from shipyard.errors import (
    BackendError,
    ConflictError,
    ExperimentNotFoundError,
    InvalidArgumentError,
    RunNotFoundError,
    ShipyardError,
)
from shipyard.store.db import mask_url, now_ms
from shipyard.tracking import search
from shipyard.tracking._sql_batch import BatchWriter, Point
from shipyard.tracking._validation import (
    MAX_BATCH_METRICS,
    MAX_BATCH_PARAMS,
    MAX_BATCH_TAGS,
    MAX_PARAM_VALUE_LENGTH,
    MAX_TAG_VALUE_LENGTH,
    check_dataset_input,
    check_key,
    check_max_results,
    check_name,
    check_value,
    clean_artifact_path,
    decode_page_token,
    encode_page_token,
    metric_int,
    metric_value,
    run_status,
)
from shipyard.tracking.entities import (
    Dataset,
    DatasetInput,
    Experiment,
    Metric,
    Param,
    Run,
    RunData,
    RunInfo,
    RunStatus,
    ms_to_datetime,
)
from shipyard.tracking.schema import (
    datasets,
    experiment_tags,
    experiments,
    latest_metrics,
    params,
    run_artifacts,
    run_inputs,
    run_tags,
    runs,
)
from shipyard.types import ArtifactInfo, Page

_Row = sa.Row[*tuple[Any, ...]]  # a result row of any shape

_IN_CHUNK = 500  # ids per IN (...) list, well under SQLite's bound-variable limit
_ACTIVE = "active"
_DELETED = "deleted"

_ADJECTIVES = (
    "amber", "bold", "brave", "bright", "calm", "clever", "crisp", "daring",
    "eager", "fast", "gentle", "glad", "golden", "happy", "keen", "lively",
    "lucky", "merry", "mighty", "nimble", "quiet", "rapid", "silent", "sleek",
    "steady", "sunny", "swift", "tidy", "vivid", "witty", "zesty", "wise",
)  # fmt: skip
_NOUNS = (
    "albatross", "anchor", "beacon", "breeze", "buoy", "canoe", "captain", "compass",
    "coral", "cove", "dolphin", "ferry", "galleon", "harbor", "island", "keel",
    "lagoon", "lighthouse", "mast", "narwhal", "orca", "otter", "pelican", "reef",
    "sail", "schooner", "seal", "skiff", "tide", "voyage", "wave", "whale",
)  # fmt: skip


def generate_run_name(run_id: str) -> str:
    """A readable default run name derived from the id, e.g. ``swift-otter-417``."""
    number = int(run_id[:12], 16)
    adjective = _ADJECTIVES[number % len(_ADJECTIVES)]
    noun = _NOUNS[(number // len(_ADJECTIVES)) % len(_NOUNS)]
    return f"{adjective}-{noun}-{number % 1000:03d}"


def _chunks(items: Sequence[str]) -> Iterator[Sequence[str]]:
    for start in range(0, len(items), _IN_CHUNK):
        yield items[start : start + _IN_CHUNK]


class SqlTrackingStore:
    """A TrackingStore on SQLite or PostgreSQL, bound to one workspace.

    Example::

        from shipyard.store.db import engine_for
        store = SqlTrackingStore(engine_for("sqlite:///shipyard.db"), "default",
                                 artifact_root="file:///srv/artifacts")
        run = store.create_run(store.create_experiment("churn").experiment_id)

    Args:
        engine: An engine from :func:`shipyard.store.db.engine_for` (migrated).
        workspace: The workspace every call reads and writes; it must exist.
        artifact_root: Root URL under which experiments get their artifact locations;
            defaults to the configured ``SHIPYARD_ARTIFACTS``.
    """

    def __init__(
        self, engine: Engine, workspace: str = "default", artifact_root: str | None = None
    ) -> None:
        if artifact_root is None:
            from shipyard.config import load_settings

            artifact_root = load_settings().artifacts
        self.workspace = workspace
        self.artifact_root = artifact_root.rstrip("/")
        self._engine = engine
        self._dialect = engine.dialect.name
        self._workspace_checked = False
        self._batch_writer = BatchWriter(engine.dialect)

    def __repr__(self) -> str:
        return (
            f"SqlTrackingStore({mask_url(str(self._engine.url))!r}, workspace={self.workspace!r})"
        )

    def for_workspace(self, workspace: str) -> SqlTrackingStore:
        return SqlTrackingStore(self._engine, workspace, self.artifact_root)

    # --- plumbing ---------------------------------------------------------------------------

    def _check_workspace(self) -> None:
        if not self._workspace_checked:
            from shipyard.store.workspaces import require_workspace

            with self._wrap():
                require_workspace(self._engine, self.workspace)
            self._workspace_checked = True

    @contextmanager
    def _wrap(self) -> Iterator[None]:
        try:
            yield
        except ShipyardError:
            raise
        except sa.exc.IntegrityError as exc:
            raise ConflictError(
                f"{self!r}: the write conflicts with existing data: {exc.orig}",
                hint="Retry; another client may have changed the same run concurrently.",
            ) from exc
        except sa.exc.SQLAlchemyError as exc:
            detail = getattr(exc, "orig", None) or exc
            raise BackendError(f"{self!r} failed: {detail}") from exc

    @contextmanager
    def _begin(self) -> Iterator[Connection]:
        """One transaction; driver errors leave as BackendError naming the store."""
        self._check_workspace()
        with self._wrap(), self._engine.begin() as conn:
            yield conn

    def _in(self, column: sa.ColumnElement[Any], values: Sequence[str]) -> sa.ColumnElement[bool]:
        """``column IN values``; one array parameter on PostgreSQL, which plans faster than
        hundreds of scalar ones."""
        if self._dialect == "postgresql":
            array = sa.bindparam(None, list(values), type_=postgresql.ARRAY(sa.String()))
            return column == sa.any_(array)
        return column.in_(values)

    def _fetch_run_row(self, conn: Connection, run_id: str) -> _Row:
        row = conn.execute(
            sa.select(runs).where(runs.c.run_id == run_id, runs.c.workspace == self.workspace)
        ).first()
        if row is None:
            raise RunNotFoundError(str(run_id), self.workspace)
        return row

    def _fetch_experiment_row(self, conn: Connection, experiment_id: str) -> _Row:
        row = conn.execute(
            sa.select(experiments).where(
                experiments.c.experiment_id == experiment_id,
                experiments.c.workspace == self.workspace,
            )
        ).first()
        if row is None:
            raise ExperimentNotFoundError(str(experiment_id), self.workspace)
        return row

    def _require_writable(self, conn: Connection, run_id: str, *, allow_terminal: bool) -> None:
        """One indexed lookup: the run exists here, is not deleted and (maybe) is RUNNING."""
        row = self._batch_writer.run_state(conn, run_id, self.workspace)
        if row is None:
            raise RunNotFoundError(str(run_id), self.workspace)
        if row.lifecycle_stage != _ACTIVE:
            raise ConflictError(
                f"Run {run_id} is deleted; nothing more can be logged to it.",
                hint="Start a new run.",
            )
        if not allow_terminal and row.status != RunStatus.RUNNING:
            raise ConflictError(
                f"Run {run_id} is {row.status}; metrics and params can only be logged to a "
                "RUNNING run.",
                hint="Start a new run, or reopen this one with "
                "update_run(run_id, status=RunStatus.RUNNING).",
            )

    # --- experiments ------------------------------------------------------------------------

    def create_experiment(
        self,
        name: str,
        *,
        artifact_location: str | None = None,
        description: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> Experiment:
        check_name(name, "experiment")
        tag_rows = self._tag_rows(tags)
        experiment_id = uuid.uuid4().hex
        location = artifact_location or f"{self.artifact_root}/{self.workspace}/{experiment_id}"
        now = now_ms()
        with self._begin() as conn:
            existing = conn.execute(
                sa.select(experiments.c.lifecycle_stage).where(
                    experiments.c.workspace == self.workspace, experiments.c.name == name
                )
            ).first()
            if existing is not None:
                raise self._name_taken(name, existing.lifecycle_stage)
            try:
                conn.execute(
                    experiments.insert().values(
                        experiment_id=experiment_id,
                        workspace=self.workspace,
                        name=name,
                        description=description or "",
                        artifact_location=location,
                        lifecycle_stage=_ACTIVE,
                        created_at=now,
                        updated_at=now,
                    )
                )
            except sa.exc.IntegrityError:  # a concurrent create of the same name won
                raise self._name_taken(name, _ACTIVE) from None
            if tag_rows:
                conn.execute(
                    experiment_tags.insert(),
                    [{"experiment_id": experiment_id, **row} for row in tag_rows],
                )
            return self._experiments(conn, [self._fetch_experiment_row(conn, experiment_id)])[0]

    def _name_taken(self, name: str, lifecycle_stage: str) -> ConflictError:
        state = " (deleted)" if lifecycle_stage == _DELETED else ""
        return ConflictError(
            f"Experiment '{name}' already exists{state} in workspace '{self.workspace}'.",
            hint=f"Reuse it with get_experiment_by_name({name!r}), or choose another name.",
        )

    def get_experiment(self, experiment_id: str) -> Experiment:
        with self._begin() as conn:
            return self._experiments(conn, [self._fetch_experiment_row(conn, experiment_id)])[0]

    def get_experiment_by_name(self, name: str) -> Experiment | None:
        with self._begin() as conn:
            row = conn.execute(
                sa.select(experiments).where(
                    experiments.c.workspace == self.workspace, experiments.c.name == name
                )
            ).first()
            return None if row is None else self._experiments(conn, [row])[0]

    def list_experiments(
        self, *, max_results: int = 1000, page_token: str | None = None
    ) -> Page[Experiment]:
        """Active experiments, newest first."""
        check_max_results(max_results)
        offset = decode_page_token(page_token)
        with self._begin() as conn:
            rows = conn.execute(
                sa.select(experiments)
                .where(
                    experiments.c.workspace == self.workspace,
                    experiments.c.lifecycle_stage == _ACTIVE,
                )
                .order_by(experiments.c.created_at.desc(), experiments.c.experiment_id)
                .limit(max_results + 1)
                .offset(offset)
            ).all()
            items = self._experiments(conn, rows[:max_results])
        more = len(rows) > max_results
        return Page(items, encode_page_token(offset + max_results) if more else None)

    def delete_experiment(self, experiment_id: str) -> None:
        """Soft delete: the experiment and its runs get lifecycle_stage 'deleted'."""
        with self._begin() as conn:
            self._fetch_experiment_row(conn, experiment_id)
            conn.execute(
                experiments.update()
                .where(experiments.c.experiment_id == experiment_id)
                .values(lifecycle_stage=_DELETED, updated_at=now_ms())
            )
            conn.execute(
                runs.update()
                .where(runs.c.experiment_id == experiment_id)
                .values(lifecycle_stage=_DELETED)
            )

    def set_experiment_tag(self, experiment_id: str, key: str, value: str) -> None:
        [row] = self._tag_rows({key: value})
        with self._begin() as conn:
            self._fetch_experiment_row(conn, experiment_id)
            self._upsert(conn, experiment_tags, [{"experiment_id": experiment_id, **row}])
            conn.execute(
                experiments.update()
                .where(experiments.c.experiment_id == experiment_id)
                .values(updated_at=now_ms())
            )

    def _experiments(self, conn: Connection, rows: Sequence[_Row]) -> list[Experiment]:
        ids = [row.experiment_id for row in rows]
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        for chunk in _chunks(ids):
            for tag in conn.execute(
                sa.select(experiment_tags).where(self._in(experiment_tags.c.experiment_id, chunk))
            ):
                tags[tag.experiment_id][tag.key] = tag.value
        return [
            Experiment(
                experiment_id=row.experiment_id,
                name=row.name,
                workspace=row.workspace,
                artifact_location=row.artifact_location,
                lifecycle_stage=row.lifecycle_stage,
                created_at=ms_to_datetime(row.created_at),  # type: ignore[arg-type]
                updated_at=ms_to_datetime(row.updated_at),  # type: ignore[arg-type]
                description=row.description,
                tags=tags[row.experiment_id],
            )
            for row in rows
        ]

    # --- runs -------------------------------------------------------------------------------

    def create_run(
        self,
        experiment_id: str,
        *,
        run_name: str | None = None,
        parent_run_id: str | None = None,
        tags: Mapping[str, str] | None = None,
        user: str = "",
        start_time: int | None = None,
    ) -> Run:
        run_id = uuid.uuid4().hex
        name = check_name(run_name, "run") if run_name is not None else generate_run_name(run_id)
        tag_rows = self._tag_rows(tags)
        with self._begin() as conn:
            experiment = self._fetch_experiment_row(conn, experiment_id)
            if experiment.lifecycle_stage != _ACTIVE:
                raise ConflictError(
                    f"Experiment '{experiment.name}' is deleted; runs cannot be created in it.",
                    hint="Create a new experiment.",
                )
            if parent_run_id is not None:
                self._fetch_run_row(conn, parent_run_id)
            row = {
                "run_id": run_id,
                "workspace": self.workspace,
                "experiment_id": experiment_id,
                "name": name,
                "status": RunStatus.RUNNING.value,
                "start_time": now_ms() if start_time is None else int(start_time),
                "end_time": None,
                "parent_run_id": parent_run_id,
                "user": user or "",
                "artifact_uri": f"{experiment.artifact_location}/{run_id}/artifacts",
                "lifecycle_stage": _ACTIVE,
            }
            conn.execute(runs.insert(), row)
            if tag_rows:
                conn.execute(run_tags.insert(), [{"run_id": run_id, **tag} for tag in tag_rows])
        # A new run has nothing but its tags, so no need to read it back.
        return Run(_run_info(row), RunData(tags={t["key"]: t["value"] for t in tag_rows}))

    def get_run(self, run_id: str) -> Run:
        """The run with its params, tags, latest metrics and inputs (deleted runs too)."""
        with self._begin() as conn:
            return self._runs(conn, [self._fetch_run_row(conn, run_id)])[0]

    def update_run(
        self,
        run_id: str,
        *,
        status: RunStatus | None = None,
        end_time: int | None = None,
        run_name: str | None = None,
    ) -> Run:
        """Change status, end time or name; a terminal status without end_time ends now.

        Moving a run back to RUNNING clears its end time, so it can be logged to again.
        """
        values: dict[str, Any] = {}
        if run_name is not None:
            values["name"] = check_name(run_name, "run")
        if status is not None:
            new_status = run_status(status)
            values["status"] = new_status.value
            if new_status.is_terminal:
                values["end_time"] = now_ms() if end_time is None else int(end_time)
            else:
                values["end_time"] = None
        if end_time is not None:
            values["end_time"] = int(end_time)
        with self._begin() as conn:
            self._fetch_run_row(conn, run_id)
            if values:
                conn.execute(runs.update().where(runs.c.run_id == run_id).values(**values))
            return self._runs(conn, [self._fetch_run_row(conn, run_id)])[0]

    def delete_run(self, run_id: str) -> None:
        """Soft delete: search_runs skips the run unless include_deleted=True."""
        with self._begin() as conn:
            self._fetch_run_row(conn, run_id)
            conn.execute(
                runs.update().where(runs.c.run_id == run_id).values(lifecycle_stage=_DELETED)
            )

    def _runs(self, conn: Connection, rows: Sequence[_Row]) -> list[Run]:
        """Entities for ``rows``, with one query per child table for all of them."""
        ids = [row.run_id for row in rows]
        run_params: dict[str, dict[str, str]] = {i: {} for i in ids}
        tags: dict[str, dict[str, str]] = {i: {} for i in ids}
        latest: dict[str, dict[str, float]] = {i: {} for i in ids}
        inputs: dict[str, list[DatasetInput]] = {i: [] for i in ids}
        for chunk in _chunks(ids):
            for r in conn.execute(
                sa.select(params.c.run_id, params.c.key, params.c.value).where(
                    self._in(params.c.run_id, chunk)
                )
            ):
                run_params[r.run_id][r.key] = r.value
            for r in conn.execute(
                sa.select(run_tags.c.run_id, run_tags.c.key, run_tags.c.value).where(
                    self._in(run_tags.c.run_id, chunk)
                )
            ):
                tags[r.run_id][r.key] = r.value
            for r in conn.execute(
                sa.select(latest_metrics.c.run_id, latest_metrics.c.key, latest_metrics.c.value)
                .where(self._in(latest_metrics.c.run_id, chunk))
                .order_by(latest_metrics.c.key)
            ):
                latest[r.run_id][r.key] = float(r.value)
            for r in conn.execute(
                sa.select(run_inputs.c.run_id, run_inputs.c.context, datasets)
                .join(datasets, datasets.c.dataset_id == run_inputs.c.dataset_id)
                .where(self._in(run_inputs.c.run_id, chunk))
                .order_by(datasets.c.name, datasets.c.digest)
            ):
                inputs[r.run_id].append(DatasetInput(_dataset(r), r.context))
        return [
            Run(
                info=_run_info(row._mapping),
                data=RunData(params=run_params[row.run_id], metrics=latest[row.run_id],
                             tags=tags[row.run_id]),
                inputs=inputs[row.run_id],
            )
            for row in rows
        ]  # fmt: skip

    # --- logging ----------------------------------------------------------------------------

    def log_batch(
        self,
        run_id: str,
        *,
        metrics: Sequence[Metric] = (),
        params: Sequence[Param] = (),
        tags: Mapping[str, str] | None = None,
    ) -> None:
        """Log metrics, params and tags in one transaction (all or nothing).

        Params are immutable: re-logging the same value is a no-op, a different value is a
        ConflictError. Metrics and params need a RUNNING run; tags are annotations and may
        be set on finished runs too, as in MLflow. Metric values may be NaN or infinite; a
        metric timestamp of 0 means "now". The latest value per key (highest step, then
        newest timestamp) is kept for search.

        Raises:
            RunNotFoundError: the run is not in this workspace.
            ConflictError: the run is finished or deleted, or a param would change.
            InvalidArgumentError: a bad key, value or batch size.
        """
        metric_rows, latest_rows = self._metric_rows(run_id, metrics)
        param_rows = self._param_rows(params)
        tag_rows = self._tag_rows(tags)
        with self._begin() as conn:
            self._require_writable(conn, run_id, allow_terminal=not (metric_rows or param_rows))
            if param_rows:
                self._insert_params(conn, run_id, param_rows)
            if tag_rows:
                self._upsert(conn, run_tags, [{"run_id": run_id, **row} for row in tag_rows])
            if metric_rows:
                self._batch_writer.write(conn, metric_rows, latest_rows)

    def _metric_rows(self, run_id: str, batch: Sequence[Metric]) -> tuple[list[Point], list[Point]]:
        """Validated points, and the newest point per key (by step, then timestamp)."""
        if len(batch) > MAX_BATCH_METRICS:
            raise InvalidArgumentError(
                f"A batch holds {len(batch)} metrics; the limit is {MAX_BATCH_METRICS}.",
                hint="Split it into several log_batch calls.",
            )
        rows: list[Point] = []
        newest: dict[str, Point] = {}
        now: int | None = None
        text_nan = self._dialect == "sqlite"
        checked: set[str] = set()
        for metric in batch:
            key = metric.key
            if key not in checked:
                check_key(key, "metric")
                checked.add(key)
            value: float | str = metric.value
            if type(value) is not float:
                value = metric_value(metric)
            if text_nan and value != value:  # NaN; SQLite would store NULL, see BatchWriter
                value = "NaN"
            step = metric.step
            if type(step) is not int:
                step = metric_int(metric, "step")
            timestamp = metric.timestamp
            if type(timestamp) is not int:
                timestamp = metric_int(metric, "timestamp")
            if not timestamp:
                now = now if now is not None else now_ms()
                timestamp = now
            row = (run_id, key, step, timestamp, value)
            rows.append(row)
            current = newest.get(key)
            if current is None or (step, timestamp) >= (current[2], current[3]):
                newest[key] = row
        # A stable key order keeps concurrent upserts from deadlocking on PostgreSQL.
        return rows, [newest[key] for key in sorted(newest)]

    def _param_rows(self, batch: Sequence[Param]) -> dict[str, str]:
        if len(batch) > MAX_BATCH_PARAMS:
            raise InvalidArgumentError(
                f"A batch holds {len(batch)} params; the limit is {MAX_BATCH_PARAMS}.",
                hint="Split it into several log_batch calls.",
            )
        values: dict[str, str] = {}
        for param in batch:
            key = check_key(param.key, "param")
            value = check_value(key, param.value, MAX_PARAM_VALUE_LENGTH, "param")
            if key in values and values[key] != value:
                raise InvalidArgumentError(
                    f"Param '{key}' appears twice in one batch with different values "
                    f"({values[key]!r} and {value!r}).",
                    hint="Log each param once.",
                )
            values[key] = value
        return values

    def _tag_rows(self, tags: Mapping[str, str] | None) -> list[dict[str, str]]:
        if not tags:
            return []
        if len(tags) > MAX_BATCH_TAGS:
            raise InvalidArgumentError(
                f"A batch holds {len(tags)} tags; the limit is {MAX_BATCH_TAGS}.",
                hint="Split it into several calls.",
            )
        return [
            {
                "key": check_key(key, "tag"),
                "value": check_value(key, value, MAX_TAG_VALUE_LENGTH, "tag"),
            }
            for key, value in tags.items()
        ]

    def _insert_params(self, conn: Connection, run_id: str, values: dict[str, str]) -> None:
        """Insert new params; an existing key must keep its value (checked after insert, so
        two concurrent writers of different values cannot both win)."""
        rows = [{"run_id": run_id, "key": k, "value": v} for k, v in sorted(values.items())]
        conn.execute(self._insert(params).on_conflict_do_nothing(), rows)
        keys = list(values)
        for chunk in _chunks(keys):
            stored = conn.execute(
                sa.select(params.c.key, params.c.value).where(
                    params.c.run_id == run_id, self._in(params.c.key, chunk)
                )
            )
            for key, value in stored:
                if value != values[key]:
                    raise ConflictError(
                        f"Param '{key}' of run {run_id} is already {value!r}; it cannot "
                        f"change to {values[key]!r}.",
                        hint="Params are immutable: log a new key, or start a new run.",
                    )

    def _insert(self, table: sa.Table) -> Any:
        module = sqlite if self._dialect == "sqlite" else postgresql
        return module.insert(table)

    def _upsert(self, conn: Connection, table: sa.Table, rows: list[dict[str, Any]]) -> None:
        statement = self._insert(table)
        keys = [column.name for column in table.primary_key.columns]
        update = {c: statement.excluded[c] for c in rows[0] if c not in keys}
        conn.execute(statement.on_conflict_do_update(index_elements=keys, set_=update), rows)

    def get_metric_history(self, run_id: str, key: str) -> list[Metric]:
        """Every point of ``key``, ordered by step, then timestamp, then logging order."""
        with self._begin() as conn:
            self._fetch_run_row(conn, run_id)
            # Long series are read through the driver's cursor in one fetchall: SQLAlchemy's
            # per-row processing costs more than the query itself at 10,000+ points.
            mark = "?" if conn.dialect.paramstyle == "qmark" else "%s"
            cursor = conn.connection.dbapi_connection.cursor()  # type: ignore[union-attr]
            try:
                cursor.execute(
                    "SELECT value, step, timestamp FROM metrics "
                    f"WHERE run_id = {mark} AND key = {mark} ORDER BY step, timestamp, id",
                    (run_id, key),
                )
                rows = cursor.fetchall()
            finally:
                cursor.close()
        return [Metric(key, float(value), step, ts) for value, step, ts in rows]

    def log_inputs(self, run_id: str, inputs: Sequence[DatasetInput]) -> None:
        """Record datasets (one row per name and digest per workspace) the run consumed."""
        checked = [check_dataset_input(item) for item in inputs]
        if not checked:
            return
        now = now_ms()
        with self._begin() as conn:
            self._require_writable(conn, run_id, allow_terminal=True)
            for item in checked:
                dataset = item.dataset
                conn.execute(
                    self._insert(datasets).on_conflict_do_nothing(
                        index_elements=["workspace", "name", "digest"]
                    ),
                    {
                        "dataset_id": uuid.uuid4().hex,
                        "workspace": self.workspace,
                        "name": dataset.name,
                        "digest": dataset.digest,
                        "source": dataset.source,
                        "source_type": dataset.source_type,
                        "schema": json.dumps(dataset.schema, sort_keys=True),
                        "profile": json.dumps(dataset.profile, sort_keys=True),
                        "num_rows": dataset.num_rows,
                        "created_at": now,
                    },
                )
                dataset_id = conn.execute(
                    sa.select(datasets.c.dataset_id).where(
                        datasets.c.workspace == self.workspace,
                        datasets.c.name == dataset.name,
                        datasets.c.digest == dataset.digest,
                    )
                ).scalar_one()
                self._upsert(
                    conn,
                    run_inputs,
                    [{"run_id": run_id, "dataset_id": dataset_id, "context": item.context}],
                )

    # --- artifacts --------------------------------------------------------------------------

    def record_artifacts(self, run_id: str, artifacts: Sequence[ArtifactInfo]) -> None:
        """Record files stored for the run (upsert by path); allowed on finished runs."""
        now = now_ms()
        rows = [
            {
                "run_id": run_id,
                "path": clean_artifact_path(info.path),
                "size": int(info.size),
                "sha256": info.sha256,
                "created_at": now,
            }
            for info in artifacts
            if not info.is_dir
        ]
        with self._begin() as conn:
            self._fetch_run_row(conn, run_id)
            if rows:
                self._upsert(conn, run_artifacts, rows)

    def list_artifacts(self, run_id: str, path: str = "") -> list[ArtifactInfo]:
        """Direct children of ``path``: files, and folders as ``is_dir=True`` entries."""
        prefix = clean_artifact_path(path) if path.strip("/") else ""
        prefix = f"{prefix}/" if prefix else ""
        with self._begin() as conn:
            self._fetch_run_row(conn, run_id)
            query = sa.select(run_artifacts.c.path, run_artifacts.c.size, run_artifacts.c.sha256)
            query = query.where(run_artifacts.c.run_id == run_id)
            if prefix:
                query = query.where(run_artifacts.c.path.startswith(prefix, autoescape=True))
            rows = conn.execute(query.order_by(run_artifacts.c.path)).all()
        return _children(prefix, rows)

    # --- search -----------------------------------------------------------------------------

    def search_runs(
        self,
        experiment_ids: Sequence[str],
        *,
        filter_string: str = "",
        order_by: Sequence[str] = (),
        max_results: int = 100,
        page_token: str | None = None,
        include_deleted: bool = False,
    ) -> Page[Run]:
        """Runs of ``experiment_ids`` (every experiment of the workspace when empty) that
        match ``filter_string``; see :mod:`shipyard.tracking.search` for the grammar."""
        check_max_results(max_results)
        if isinstance(order_by, str):
            order_by = [order_by]
        node = search.parse_filter(filter_string)
        keys = search.parse_order_by(order_by)
        offset = decode_page_token(page_token)
        source, ordering = search.compile_order_by(keys, self._dialect)
        # Sort only ids (narrow rows sort faster), then load the page's runs by id.
        query = sa.select(runs.c.run_id).select_from(source)
        query = query.where(runs.c.workspace == self.workspace)
        if experiment_ids:
            query = query.where(runs.c.experiment_id.in_(list(experiment_ids)))
        if not include_deleted:
            query = query.where(runs.c.lifecycle_stage == _ACTIVE)
        if node is not None:
            query = query.where(search.compile_filter(node, self._dialect))
        query = query.order_by(*ordering).limit(max_results + 1).offset(offset)
        with self._begin() as conn:
            ids = list(conn.execute(query).scalars())
            page_ids = ids[:max_results]
            by_id: dict[str, _Row] = {}
            for chunk in _chunks(page_ids):
                for row in conn.execute(sa.select(runs).where(self._in(runs.c.run_id, chunk))):
                    by_id[row.run_id] = row
            items = self._runs(conn, [by_id[run_id] for run_id in page_ids])
        more = len(ids) > max_results
        return Page(items, encode_page_token(offset + max_results) if more else None)


def _run_info(row: Mapping[Any, Any]) -> RunInfo:
    return RunInfo(
        run_id=row["run_id"],
        experiment_id=row["experiment_id"],
        workspace=row["workspace"],
        run_name=row["name"],
        status=RunStatus(row["status"]),
        start_time=ms_to_datetime(row["start_time"]),  # type: ignore[arg-type]
        end_time=ms_to_datetime(row["end_time"]),
        artifact_uri=row["artifact_uri"],
        user=row["user"],
        parent_run_id=row["parent_run_id"],
        lifecycle_stage=row["lifecycle_stage"],
    )


def _dataset(row: _Row) -> Dataset:
    return Dataset(
        name=row.name,
        digest=row.digest,
        source=row.source,
        source_type=row.source_type,
        schema=json.loads(row.schema or "{}"),
        profile=json.loads(row.profile or "{}"),
        num_rows=row.num_rows,
    )


def _children(prefix: str, rows: Iterable[_Row]) -> list[ArtifactInfo]:
    files: list[ArtifactInfo] = []
    folders: dict[str, ArtifactInfo] = {}
    for row in rows:
        if not row.path.startswith(prefix):  # LIKE ignores case on SQLite
            continue
        name, sep, _rest = row.path[len(prefix) :].partition("/")
        if sep:
            folders.setdefault(name, ArtifactInfo(prefix + name, 0, "", is_dir=True))
        else:
            files.append(ArtifactInfo(row.path, int(row.size), row.sha256))
    return sorted([*files, *folders.values()], key=lambda info: info.path)
