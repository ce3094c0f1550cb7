"""SqlRegistryStore: the model registry on the metadata database (SQLite or PostgreSQL).

Every write to a model locks its ``registered_models`` row first (``SELECT ... FOR UPDATE``
on PostgreSQL; SQLite writers are serialized by ``BEGIN IMMEDIATE``), so version numbers and
alias moves stay consistent when several processes write at once. Deleted versions are kept
as tombstones (status ``DELETED``) so their numbers are never handed out again and the alias
history keeps meaning what it said.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any
from uuid import uuid4

import sqlalchemy as sa

from shipyard.errors import (
    BackendError,
    ConflictError,
    InvalidArgumentError,
    ModelNotFoundError,
    NotFoundError,
    PromotionRefusedError,
    ShipyardError,
    did_you_mean,
)
from shipyard.registry._rows import (
    DELETED,
    READY,
    alias_change_of,
    decode_page_token,
    dt_to_ms,
    encode_page_token,
    model_versions_of,
    ms_to_dt,
    registered_models_of,
    upsert,
    webhook_of,
)
from shipyard.registry.entities import (
    AliasChange,
    ModelVersion,
    RegisteredModel,
    RegistryEvent,
    Webhook,
)
from shipyard.registry.events import (
    EventBus,
    EventType,
    check_event_types,
    check_webhook_url,
    enqueue_deliveries,
)
from shipyard.registry.gates import GateResult, evaluate_gate, parse_gate
from shipyard.registry.names import (
    LATEST,
    check_alias,
    check_model_name,
    check_tag_key,
    check_version,
)
from shipyard.registry.schema import (
    alias_history,
    model_aliases,
    model_gates,
    model_tags,
    model_version_tags,
    model_versions,
    registered_models,
    webhooks,
)
from shipyard.store.db import mask_url, now_ms
from shipyard.store.schema import DEFAULT_WORKSPACE, workspaces
from shipyard.types import Page

if TYPE_CHECKING:
    from sqlalchemy.engine import Connection, Engine, Row

__all__ = ["SqlRegistryStore"]

VersionMetrics = Callable[[str], Mapping[str, float]]


@dataclass
class _Tx:
    """An open write transaction and the events it will publish once committed."""

    conn: Connection
    workspace: str
    events: list[RegistryEvent] = field(default_factory=list)

    def emit(self, kind: EventType, model: str, at_ms: int, **payload: Any) -> None:
        event = RegistryEvent(str(kind), self.workspace, model, payload, ms_to_dt(at_ms))
        enqueue_deliveries(self.conn, event)
        self.events.append(event)


class SqlRegistryStore:
    """The model registry on SQLAlchemy Core, bound to one workspace.

    Example::

        from shipyard.store.db import engine_for
        store = SqlRegistryStore(engine_for("sqlite:///shipyard.db"))
        store.create_registered_model("churn")
        v = store.create_model_version("churn", "runs:/<run_id>/model", run_id="<run_id>")
        store.set_gate("churn", "champion", "accuracy >= 0.85")
        store.set_alias("churn", "champion", v.version, actor="ana")

    Args:
        engine: from :func:`shipyard.store.db.engine_for` (migrated).
        workspace: every model read or written belongs to this workspace.
        version_metrics: ``run_id -> {metric: latest value}``, what gates are evaluated over;
            by default the run's latest metrics from the tracking store on the same engine.
        events: an :class:`EventBus` whose subscribers hear about each committed change.
    """

    def __init__(
        self,
        engine: Engine,
        workspace: str = DEFAULT_WORKSPACE,
        *,
        version_metrics: VersionMetrics | None = None,
        events: EventBus | None = None,
    ) -> None:
        self.engine = engine
        self.workspace = workspace
        self.events = events
        self._custom_metrics = version_metrics
        self.version_metrics: VersionMetrics = version_metrics or self._tracked_metrics

    def __repr__(self) -> str:
        return f"SqlRegistryStore({mask_url(str(self.engine.url))}, workspace='{self.workspace}')"

    def for_workspace(self, workspace: str) -> SqlRegistryStore:
        """The same registry, bound to another workspace."""
        return SqlRegistryStore(
            self.engine, workspace, version_metrics=self._custom_metrics, events=self.events
        )

    def _tracked_metrics(self, run_id: str) -> Mapping[str, float]:
        # Imported here: the tracking store is optional for registry-only users and tests.
        from shipyard.tracking.sql import SqlTrackingStore

        return SqlTrackingStore(self.engine, self.workspace).get_run(run_id).data.metrics

    # --- transactions ---------------------------------------------------------------------

    def _backend_error(self, exc: sa.exc.DBAPIError) -> BackendError:
        return BackendError(
            f"Model registry database {mask_url(str(self.engine.url))} failed: {exc.orig}"
        )

    @contextmanager
    def _read(self) -> Iterator[Connection]:
        try:
            with self.engine.connect() as conn:
                yield conn
        except sa.exc.IntegrityError:
            raise
        except sa.exc.DBAPIError as exc:
            raise self._backend_error(exc) from exc

    @contextmanager
    def _write(self) -> Iterator[_Tx]:
        """A transaction; its events go to the bus only after it commits."""
        try:
            with self.engine.begin() as conn:
                tx = _Tx(conn, self.workspace)
                yield tx
        except sa.exc.IntegrityError:
            raise
        except sa.exc.DBAPIError as exc:
            raise self._backend_error(exc) from exc
        if self.events is not None:
            for event in tx.events:
                self.events.publish(event)

    # --- lookups that raise helpful errors ------------------------------------------------

    def _where_model(self, table: sa.Table, name: str) -> sa.ColumnElement[bool]:
        return sa.and_(table.c.workspace == self.workspace, table.c.name == name)

    def _model_missing(self, conn: Connection, name: str) -> ModelNotFoundError:
        names = conn.execute(
            sa.select(registered_models.c.name)
            .where(registered_models.c.workspace == self.workspace)
            .limit(1000)
        ).scalars()
        return ModelNotFoundError(
            f"Model '{name}' does not exist in workspace '{self.workspace}'."
            f"{did_you_mean(name, names)}",
            hint=f"List models with `shipyard models list`, or register it with "
            f"create_registered_model('{name}').",
        )

    def _model_row(self, conn: Connection, name: str, *, lock: bool = False) -> Row[Any]:
        query = sa.select(registered_models).where(self._where_model(registered_models, name))
        row = conn.execute(query.with_for_update() if lock else query).first()
        if row is None:
            raise self._model_missing(conn, name)
        return row

    def _version_row(self, conn: Connection, name: str, version: int) -> Row[Any]:
        row = conn.execute(
            sa.select(model_versions).where(
                self._where_model(model_versions, name),
                model_versions.c.version == version,
                model_versions.c.status != DELETED,
            )
        ).first()
        if row is None:
            self._model_row(conn, name)
            live = self._live_versions(conn, name)
            known = ", ".join(map(str, live[-10:])) if live else "none yet"
            known = f"..., {known}" if len(live) > 10 else known
            raise ModelNotFoundError(
                f"Model '{name}' has no version {version}. Versions: {known}.",
                hint=f"List them with `shipyard models versions {name}`.",
            )
        return row

    def _version_entity(self, conn: Connection, name: str, version: int) -> ModelVersion:
        rows = [self._version_row(conn, name, version)]
        return model_versions_of(conn, self.workspace, name, rows)[0]

    def _live_versions(self, conn: Connection, name: str) -> list[int]:
        return list(
            conn.execute(
                sa.select(model_versions.c.version)
                .where(self._where_model(model_versions, name), model_versions.c.status != DELETED)
                .order_by(model_versions.c.version)
            ).scalars()
        )

    def _aliases(self, conn: Connection, name: str) -> dict[str, int]:
        rows = conn.execute(
            sa.select(model_aliases.c.alias, model_aliases.c.version)
            .where(self._where_model(model_aliases, name))
            .order_by(model_aliases.c.alias)
        )
        return {r.alias: r.version for r in rows}

    def _no_alias(self, conn: Connection, name: str, alias: str) -> ModelNotFoundError:
        aliases = sorted(self._aliases(conn, name))
        return ModelNotFoundError(
            f"Model '{name}' has no alias '{alias}'. "
            f"Aliases: {', '.join(aliases) if aliases else 'none'}.{did_you_mean(alias, aliases)}",
            hint=f"Set it with `shipyard models alias {name} {alias} <version>`.",
        )

    def _gate(self, conn: Connection, name: str, alias: str) -> str | None:
        return conn.execute(
            sa.select(model_gates.c.expression).where(
                self._where_model(model_gates, name), model_gates.c.alias == alias
            )
        ).scalar()

    def _insert_owned(
        self, insert: Callable[[], None], conflict: Callable[[], ShipyardError]
    ) -> None:
        """Run an insert of a workspace-owned row, explaining an IntegrityError.

        The ``default`` workspace is created on first use; any other must exist already.
        """
        for attempt in range(2):
            try:
                insert()
                return
            except sa.exc.IntegrityError as exc:
                with self._read() as conn:
                    exists = conn.execute(
                        sa.select(workspaces.c.name).where(workspaces.c.name == self.workspace)
                    ).first()
                if exists is not None:
                    raise conflict() from exc
                if self.workspace != DEFAULT_WORKSPACE or attempt:
                    raise NotFoundError(
                        f"Workspace '{self.workspace}' does not exist.",
                        hint=f"Create it with `shipyard workspaces create {self.workspace}`.",
                    ) from exc
                from shipyard.store.workspaces import ensure_workspace

                ensure_workspace(self.engine, DEFAULT_WORKSPACE)

    # --- registered models ----------------------------------------------------------------

    def create_registered_model(
        self, name: str, *, description: str = "", tags: Mapping[str, str] | None = None
    ) -> RegisteredModel:
        """Register a new model name.

        Raises:
            InvalidArgumentError: the name or a tag key is invalid.
            ConflictError: a model with this name exists in the workspace.
        """
        check_model_name(name)
        tags = dict(tags or {})
        for key in tags:
            check_tag_key(key)

        def insert() -> None:
            with self._write() as tx:
                at = now_ms()
                tx.conn.execute(
                    registered_models.insert().values(
                        workspace=self.workspace,
                        name=name,
                        description=description,
                        created_at=at,
                        updated_at=at,
                    )
                )
                if tags:
                    tx.conn.execute(
                        model_tags.insert(),
                        [
                            {"workspace": self.workspace, "name": name, "key": k, "value": v}
                            for k, v in tags.items()
                        ],
                    )
                tx.emit(
                    EventType.REGISTERED_MODEL_CREATED, name, at, description=description, tags=tags
                )

        self._insert_owned(
            insert,
            lambda: ConflictError(
                f"Model '{name}' already exists in workspace '{self.workspace}'.",
                hint="Add a version with create_model_version, or pick another name.",
            ),
        )
        return self.get_registered_model(name)

    def get_registered_model(self, name: str) -> RegisteredModel:
        """The model with its tags, aliases, gates and latest version."""
        with self._read() as conn:
            return registered_models_of(conn, self.workspace, [self._model_row(conn, name)])[0]

    def list_registered_models(
        self, *, max_results: int = 100, page_token: str | None = None
    ) -> Page[RegisteredModel]:
        """Models of the workspace ordered by name, one page at a time."""
        if not 1 <= max_results <= 10_000:
            raise InvalidArgumentError(f"max_results must be 1-10000, got {max_results}.")
        after = decode_page_token(page_token)
        query = sa.select(registered_models).where(registered_models.c.workspace == self.workspace)
        if after is not None:
            query = query.where(registered_models.c.name > after)
        with self._read() as conn:
            rows = conn.execute(
                query.order_by(registered_models.c.name).limit(max_results + 1)
            ).all()
            items = registered_models_of(conn, self.workspace, rows[:max_results])
        token = encode_page_token(items[-1].name) if len(rows) > max_results else None
        return Page(items, token)

    def update_registered_model(self, name: str, *, description: str) -> RegisteredModel:
        """Replace the model's description."""
        with self._write() as tx:
            self._model_row(tx.conn, name, lock=True)
            tx.conn.execute(
                registered_models.update()
                .where(self._where_model(registered_models, name))
                .values(description=description, updated_at=now_ms())
            )
        return self.get_registered_model(name)

    def delete_registered_model(self, name: str) -> None:
        """Delete the model with all its versions, tags, aliases, gates and alias history."""
        with self._write() as tx:
            self._model_row(tx.conn, name, lock=True)
            tx.conn.execute(
                registered_models.delete().where(self._where_model(registered_models, name))
            )
            tx.emit(EventType.MODEL_DELETED, name, now_ms())

    def set_registered_model_tag(self, name: str, key: str, value: str) -> None:
        """Set (or overwrite) one tag of the model."""
        check_tag_key(key)
        with self._write() as tx:
            self._model_row(tx.conn, name, lock=True)
            upsert(
                tx.conn,
                model_tags,
                ["workspace", "name", "key"],
                {"workspace": self.workspace, "name": name, "key": key, "value": value},
            )

    # --- versions -------------------------------------------------------------------------

    def create_model_version(
        self,
        name: str,
        source: str,
        *,
        run_id: str | None = None,
        description: str = "",
        flavor: str = "",
        manifest_sha256: str = "",
        tags: Mapping[str, str] | None = None,
    ) -> ModelVersion:
        """Add the next version (1, 2, 3, ...) of a model; numbers are never reused.

        Raises:
            ModelNotFoundError: the model is not registered.
        """
        tags = dict(tags or {})
        for key in tags:
            check_tag_key(key)
        with self._write() as tx:
            conn = tx.conn
            # The row lock serializes version creation per model on PostgreSQL.
            self._model_row(conn, name, lock=True)
            highest = conn.execute(
                sa.select(sa.func.max(model_versions.c.version)).where(
                    self._where_model(model_versions, name)
                )
            ).scalar()
            version = (highest or 0) + 1
            at = now_ms()
            key = {"workspace": self.workspace, "name": name, "version": version}
            conn.execute(
                model_versions.insert().values(
                    **key,
                    source=source,
                    run_id=run_id,
                    status=READY,
                    description=description,
                    flavor=flavor,
                    manifest_sha256=manifest_sha256,
                    created_at=at,
                    updated_at=at,
                )
            )
            if tags:
                conn.execute(
                    model_version_tags.insert(),
                    [{**key, "key": k, "value": v} for k, v in tags.items()],
                )
            self._touch(conn, name, at)
            tx.emit(
                EventType.MODEL_VERSION_CREATED,
                name,
                at,
                version=version,
                source=source,
                run_id=run_id,
            )
        return self.get_model_version(name, version)

    def _touch(self, conn: Connection, name: str, at: int) -> None:
        conn.execute(
            registered_models.update()
            .where(self._where_model(registered_models, name))
            .values(updated_at=at)
        )

    def get_model_version(self, name: str, version: int) -> ModelVersion:
        """One live version, with its tags and aliases."""
        check_version(version)
        with self._read() as conn:
            return self._version_entity(conn, name, version)

    def list_model_versions(self, name: str) -> list[ModelVersion]:
        """Every live version of the model, oldest first."""
        with self._read() as conn:
            self._model_row(conn, name)
            rows = conn.execute(
                sa.select(model_versions)
                .where(self._where_model(model_versions, name), model_versions.c.status != DELETED)
                .order_by(model_versions.c.version)
            ).all()
            return model_versions_of(conn, self.workspace, name, rows)

    def update_model_version(self, name: str, version: int, *, description: str) -> ModelVersion:
        """Replace the version's description."""
        check_version(version)
        with self._write() as tx:
            self._model_row(tx.conn, name, lock=True)
            self._version_row(tx.conn, name, version)
            tx.conn.execute(
                model_versions.update()
                .where(self._where_model(model_versions, name), model_versions.c.version == version)
                .values(description=description, updated_at=now_ms())
            )
        return self.get_model_version(name, version)

    def set_model_version_tag(self, name: str, version: int, key: str, value: str) -> None:
        """Set (or overwrite) one tag of a version."""
        check_version(version)
        check_tag_key(key)
        with self._write() as tx:
            self._model_row(tx.conn, name, lock=True)
            self._version_row(tx.conn, name, version)
            upsert(
                tx.conn,
                model_version_tags,
                ["workspace", "name", "version", "key"],
                {
                    "workspace": self.workspace,
                    "name": name,
                    "version": version,
                    "key": key,
                    "value": value,
                },
            )

    def delete_model_version(self, name: str, version: int) -> None:
        """Delete a version; aliases pointing at it are removed, and that is recorded.

        The row stays as a tombstone so the number is never reused.
        """
        check_version(version)
        with self._write() as tx:
            conn = tx.conn
            self._model_row(conn, name, lock=True)
            self._version_row(conn, name, version)
            at = now_ms()
            pointing = [a for a, v in self._aliases(conn, name).items() if v == version]
            for alias in pointing:
                reason = f"version {version} deleted"
                self._move(conn, name, alias, version, None, "", at, reason)
                tx.emit(
                    EventType.ALIAS_DELETED,
                    name,
                    at,
                    alias=alias,
                    from_version=version,
                    actor="",
                    reason=reason,
                )
            where = sa.and_(
                self._where_model(model_versions, name), model_versions.c.version == version
            )
            conn.execute(
                model_version_tags.delete().where(
                    self._where_model(model_version_tags, name),
                    model_version_tags.c.version == version,
                )
            )
            conn.execute(model_versions.update().where(where).values(status=DELETED, updated_at=at))
            self._touch(conn, name, at)
            tx.emit(EventType.MODEL_VERSION_DELETED, name, at, version=version)

    # --- gates ----------------------------------------------------------------------------

    def set_gate(self, name: str, alias: str, expression: str) -> None:
        """Require ``expression`` to hold over a version's metrics before it becomes @alias.

        Raises:
            InvalidArgumentError: the alias is invalid or the expression does not parse
                (the message gives the position).
        """
        check_alias(alias)
        parse_gate(expression)
        with self._write() as tx:
            self._model_row(tx.conn, name, lock=True)
            upsert(
                tx.conn,
                model_gates,
                ["workspace", "name", "alias"],
                {
                    "workspace": self.workspace,
                    "name": name,
                    "alias": alias,
                    "expression": expression.strip(),
                    "updated_at": now_ms(),
                },
            )

    def delete_gate(self, name: str, alias: str) -> None:
        """Remove the gate of @alias; the alias can then move freely."""
        with self._write() as tx:
            self._model_row(tx.conn, name, lock=True)
            deleted = tx.conn.execute(
                model_gates.delete().where(
                    self._where_model(model_gates, name), model_gates.c.alias == alias
                )
            ).rowcount
            if not deleted:
                gated = tx.conn.execute(
                    sa.select(model_gates.c.alias).where(self._where_model(model_gates, name))
                ).scalars()
                names = sorted(gated)
                raise ModelNotFoundError(
                    f"Model '{name}' has no gate on alias '{alias}'. "
                    f"Gates: {', '.join(names) if names else 'none'}."
                )

    # --- aliases --------------------------------------------------------------------------

    def _move(
        self,
        conn: Connection,
        name: str,
        alias: str,
        from_version: int | None,
        to_version: int | None,
        actor: str,
        at: int,
        reason: str,
    ) -> None:
        where = sa.and_(self._where_model(model_aliases, name), model_aliases.c.alias == alias)
        if to_version is None:
            conn.execute(model_aliases.delete().where(where))
        elif from_version is None:
            conn.execute(
                model_aliases.insert().values(
                    workspace=self.workspace,
                    name=name,
                    alias=alias,
                    version=to_version,
                    updated_at=at,
                )
            )
        else:
            conn.execute(
                model_aliases.update().where(where).values(version=to_version, updated_at=at)
            )
        conn.execute(
            alias_history.insert().values(
                workspace=self.workspace,
                name=name,
                alias=alias,
                from_version=from_version,
                to_version=to_version,
                actor=actor,
                at=at,
                reason=reason,
            )
        )

    def _check_gate(self, gate: str, run_id: str | None, force: bool) -> GateResult:
        try:
            metrics = {} if run_id is None else self.version_metrics(run_id)
        except ShipyardError as exc:
            if not force:
                raise
            return GateResult(False, [f"metrics unavailable ({exc.message})"])
        return evaluate_gate(gate, metrics)

    def set_alias(
        self, name: str, alias: str, version: int, *, actor: str = "", force: bool = False
    ) -> AliasChange:
        """Point ``alias`` at ``version``, if the alias's gate (if any) lets it.

        Setting an alias to the version it already points at changes nothing and is not
        recorded. Every other move is one alias_history row, written with the move.

        Args:
            force: move even when the gate fails; the failing terms go into the history.

        Raises:
            PromotionRefusedError: the gate failed (a ``promotion_refused`` event is recorded).
            ModelNotFoundError: the model or version does not exist.
        """
        check_alias(alias)
        check_version(version)
        # The gate is evaluated outside the write transaction (reading metrics may use other
        # connections), then re-checked inside it in case someone changed the gate meanwhile.
        for _ in range(5):
            with self._read() as conn:
                run_id = self._version_row(conn, name, version).run_id
                gate = self._gate(conn, name, alias)
            reason = ""
            if gate is not None:
                result = self._check_gate(gate, run_id, force)
                if result.passed:
                    reason = f"gate passed: {gate}"
                elif force:
                    reason = "forced past gate: " + "; ".join(result.failing)
                else:
                    self._refuse(name, alias, version, gate, actor, result.failing)
            with self._write() as tx:
                conn = tx.conn
                self._model_row(conn, name, lock=True)
                if self._gate(conn, name, alias) != gate:
                    continue
                self._version_row(conn, name, version)
                current = self._aliases(conn, name).get(alias)
                at = now_ms()
                if current == version:
                    return AliasChange(
                        name, alias, version, version, actor, ms_to_dt(at), "unchanged"
                    )
                self._move(conn, name, alias, current, version, actor, at, reason)
                tx.emit(
                    EventType.ALIAS_SET,
                    name,
                    at,
                    alias=alias,
                    from_version=current,
                    to_version=version,
                    actor=actor,
                    reason=reason,
                )
            return AliasChange(name, alias, current, version, actor, ms_to_dt(at), reason)
        raise ConflictError(
            f"The gate on @{alias} of model '{name}' kept changing while moving the alias.",
            hint="Try again.",
        )

    def _refuse(
        self, name: str, alias: str, version: int, gate: str, actor: str, failing: list[str]
    ) -> None:
        # The refusal is committed on its own: the alias does not move, but the attempt is
        # an event that webhooks and subscribers hear about.
        with self._write() as tx:
            self._model_row(tx.conn, name, lock=True)
            tx.emit(
                EventType.PROMOTION_REFUSED,
                name,
                now_ms(),
                alias=alias,
                version=version,
                gate=gate,
                failing=failing,
                actor=actor,
            )
        raise PromotionRefusedError(name, alias, version, failing)

    def delete_alias(self, name: str, alias: str, *, actor: str = "") -> None:
        """Remove @alias; recorded in the alias history like any move."""
        check_alias(alias)
        with self._write() as tx:
            self._model_row(tx.conn, name, lock=True)
            current = self._aliases(tx.conn, name).get(alias)
            if current is None:
                raise self._no_alias(tx.conn, name, alias)
            at = now_ms()
            self._move(tx.conn, name, alias, current, None, actor, at, "")
            tx.emit(
                EventType.ALIAS_DELETED,
                name,
                at,
                alias=alias,
                from_version=current,
                actor=actor,
                reason="",
            )

    def get_version_by_alias(self, name: str, alias: str) -> ModelVersion:
        """The version @alias points at; ``latest`` is the highest live version."""
        with self._read() as conn:
            if alias == LATEST:
                self._model_row(conn, name)
                live = self._live_versions(conn, name)
                if not live:
                    raise ModelNotFoundError(
                        f"Model '{name}' has no versions yet, so @latest resolves to nothing.",
                        hint=f"Register one with create_model_version('{name}', source).",
                    )
                version = live[-1]
            else:
                version = conn.execute(
                    sa.select(model_aliases.c.version).where(
                        self._where_model(model_aliases, name), model_aliases.c.alias == alias
                    )
                ).scalar()
                if version is None:
                    self._model_row(conn, name)
                    raise self._no_alias(conn, name, alias)
            return self._version_entity(conn, name, version)

    def alias_history(self, name: str, alias: str | None = None) -> list[AliasChange]:
        """Every move of the model's aliases (or of one alias), oldest first."""
        query = sa.select(alias_history).where(self._where_model(alias_history, name))
        if alias is not None:
            query = query.where(alias_history.c.alias == alias)
        with self._read() as conn:
            self._model_row(conn, name)
            rows = conn.execute(query.order_by(alias_history.c.at, alias_history.c.id)).all()
        return [alias_change_of(r) for r in rows]

    def version_at(self, name: str, alias: str, at: datetime) -> int | None:
        """The version @alias pointed at, at time ``at`` (None before it was set, or while
        deleted). A naive ``at`` is taken as UTC."""
        h = alias_history.c
        with self._read() as conn:
            row = conn.execute(
                sa.select(h.to_version)
                .where(
                    self._where_model(alias_history, name), h.alias == alias, h.at <= dt_to_ms(at)
                )
                .order_by(h.at.desc(), h.id.desc())
                .limit(1)
            ).first()
            if row is None:
                self._model_row(conn, name)
                return None
            return row.to_version

    # --- webhooks -------------------------------------------------------------------------

    def create_webhook(
        self, url: str, *, events: list[str] | None = None, secret: str | None = None
    ) -> Webhook:
        """POST registry events of this workspace to ``url``.

        Args:
            events: event types to send (see :class:`~shipyard.registry.events.EventType`);
                all when None.
            secret: when given, each body is signed: ``X-Shipyard-Signature: sha256=<hmac>``.

        Raises:
            InvalidArgumentError: the URL is not http(s) or an event type is unknown.
        """
        check_webhook_url(url)
        types = check_event_types(events)
        webhook_id = uuid4().hex
        at = now_ms()

        def insert() -> None:
            with self._write() as tx:
                tx.conn.execute(
                    webhooks.insert().values(
                        webhook_id=webhook_id,
                        workspace=self.workspace,
                        url=url,
                        events=",".join(types),
                        secret=secret or "",
                        created_at=at,
                    )
                )

        self._insert_owned(insert, lambda: ConflictError(f"Webhook '{webhook_id}' exists."))
        return Webhook(webhook_id, self.workspace, url, types, ms_to_dt(at))

    def list_webhooks(self) -> list[Webhook]:
        """Webhooks of this workspace, oldest first (secrets are never returned)."""
        with self._read() as conn:
            rows = conn.execute(
                sa.select(webhooks)
                .where(webhooks.c.workspace == self.workspace)
                .order_by(webhooks.c.created_at, webhooks.c.webhook_id)
            ).all()
        return [webhook_of(r) for r in rows]

    def delete_webhook(self, webhook_id: str) -> None:
        """Delete a webhook and its undelivered outbox rows."""
        with self._write() as tx:
            deleted = tx.conn.execute(
                webhooks.delete().where(
                    webhooks.c.workspace == self.workspace, webhooks.c.webhook_id == webhook_id
                )
            ).rowcount
            if not deleted:
                raise NotFoundError(
                    f"Webhook '{webhook_id}' does not exist in workspace '{self.workspace}'.",
                    hint="List webhooks with list_webhooks().",
                )
