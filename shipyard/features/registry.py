"""The feature registry: versioned definitions in the metadata database, per workspace.

Each object (entity, source, view, on-demand view, service) has a current row holding its
JSON spec and version, and a history row per applied change; the version grows by one on
every change and is never reused, not even after a removal.
"""

from __future__ import annotations

import getpass
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import ConflictError, NotFoundError
from shipyard.features.plan import Key, Plan, canonical_json, compute_plan, spec_digest
from shipyard.features.schema import feature_definition_versions, feature_definitions
from shipyard.store.db import mask_url, now_ms


@dataclass(frozen=True)
class StoredDefinition:
    kind: str
    name: str
    version: int
    spec: dict[str, Any]
    updated_at: int


class IncompatibleChangeError(ConflictError):
    code = "incompatible_feature_change"
    headline = "Incompatible change"

    def __init__(self, problems: list[str]) -> None:
        self.problems = problems
        super().__init__(
            "Refusing to apply: " + "; ".join(problems) + ".",
            hint="Pass --force (force=True) to apply anyway, or give the changed object a "
            "new name so old data keeps its meaning.",
        )


class SqlFeatureRegistry:
    """Feature definitions of one workspace in a SQLite or PostgreSQL metadata store.

    Example::

        registry = SqlFeatureRegistry(engine_for("sqlite:///shipyard.db"), "default")
        plan = registry.apply([driver.to_spec(), driver_stats.to_spec()])
    """

    def __init__(self, engine: Engine, workspace: str = "default") -> None:
        self.engine = engine
        self.workspace = workspace

    def __repr__(self) -> str:
        return f"SqlFeatureRegistry({mask_url(str(self.engine.url))}, {self.workspace!r})"

    def _stored(self, conn: sa.Connection) -> dict[Key, tuple[int, dict[str, Any]]]:
        t = feature_definitions
        rows = conn.execute(
            sa.select(t.c.kind, t.c.name, t.c.version, t.c.spec).where(
                t.c.workspace == self.workspace
            )
        )
        return {(r.kind, r.name): (r.version, json.loads(r.spec)) for r in rows}

    def plan(self, specs: Iterable[Mapping[str, Any]], *, prune: bool = False) -> Plan:
        """The diff applying ``specs`` would make; changes nothing."""
        with self.engine.connect() as conn:
            return compute_plan(self._stored(conn), list(specs), prune=prune)

    def apply(
        self, specs: Iterable[Mapping[str, Any]], *, prune: bool = False, force: bool = False
    ) -> Plan:
        """Store ``specs`` as new versions where they changed, in one transaction.

        Raises:
            IncompatibleChangeError: the plan has problems and ``force`` is False.
            InvalidArgumentError: a reference to an object that exists nowhere.
        """
        specs = list(specs)
        try:
            with self.engine.begin() as conn:
                plan = compute_plan(self._stored(conn), specs, prune=prune)
                if plan.problems and not force:
                    raise IncompatibleChangeError(plan.problems)
                self._write(conn, plan)
        except sa.exc.IntegrityError as exc:
            raise ConflictError(
                "Another apply changed the same definitions at the same time.",
                hint="Run the apply again; it will diff against the newer state.",
            ) from exc
        return plan

    def _write(self, conn: sa.Connection, plan: Plan) -> None:
        t, h = feature_definitions, feature_definition_versions
        now = now_ms()
        user = _user()
        where = [t.c.workspace == self.workspace]
        for item in plan.items:
            if item.action == "unchanged" or item.spec is None:
                continue
            text = canonical_json(item.spec)
            digest = spec_digest(item.spec)
            last = conn.execute(
                sa.select(sa.func.max(h.c.version)).where(
                    h.c.workspace == self.workspace, h.c.kind == item.kind, h.c.name == item.name
                )
            ).scalar()
            version = (last or 0) + 1
            match = (*where, t.c.kind == item.kind, t.c.name == item.name)
            if item.action == "removed":
                conn.execute(t.delete().where(*match))
            elif item.action == "changed":
                updated = conn.execute(
                    t.update()
                    .where(*match, t.c.version == item.version)
                    .values(version=version, spec=text, spec_sha256=digest, updated_at=now)
                )
                if updated.rowcount != 1:
                    raise sa.exc.IntegrityError("concurrent apply", None, Exception())
            else:
                conn.execute(
                    t.insert().values(
                        workspace=self.workspace,
                        kind=item.kind,
                        name=item.name,
                        version=version,
                        spec=text,
                        spec_sha256=digest,
                        created_at=now,
                        updated_at=now,
                    )
                )
            conn.execute(
                h.insert().values(
                    workspace=self.workspace,
                    kind=item.kind,
                    name=item.name,
                    version=version,
                    action=item.action,
                    spec=text,
                    spec_sha256=digest,
                    applied_by=user,
                    created_at=now,
                )
            )

    def get(self, kind: str, name: str, version: int | None = None) -> StoredDefinition:
        """The current (or a past) definition of an object.

        Raises:
            NotFoundError: no such object or version.
        """
        with self.engine.connect() as conn:
            if version is None:
                t = feature_definitions
                row = conn.execute(
                    sa.select(t.c.kind, t.c.name, t.c.version, t.c.spec, t.c.updated_at).where(
                        t.c.workspace == self.workspace, t.c.kind == kind, t.c.name == name
                    )
                ).first()
            else:
                h = feature_definition_versions
                row = conn.execute(
                    sa.select(
                        h.c.kind,
                        h.c.name,
                        h.c.version,
                        h.c.spec,
                        h.c.created_at.label("updated_at"),
                    ).where(
                        h.c.workspace == self.workspace,
                        h.c.kind == kind,
                        h.c.name == name,
                        h.c.version == version,
                    )
                ).first()
        if row is None:
            label = kind.replace("_", " ")
            at = f" version {version}" if version is not None else ""
            raise NotFoundError(
                f"No {label} '{name}'{at} in workspace '{self.workspace}'.",
                hint="List definitions with `shipyard features list`; apply them with "
                "`shipyard features apply`.",
            )
        return StoredDefinition(
            row.kind, row.name, row.version, json.loads(row.spec), row.updated_at
        )

    def list(self, kind: str | None = None) -> list[StoredDefinition]:
        """Current definitions, of one kind or all, by kind and name."""
        t = feature_definitions
        query = sa.select(t.c.kind, t.c.name, t.c.version, t.c.spec, t.c.updated_at).where(
            t.c.workspace == self.workspace
        )
        if kind is not None:
            query = query.where(t.c.kind == kind)
        with self.engine.connect() as conn:
            rows = conn.execute(query.order_by(t.c.kind, t.c.name)).all()
        return [
            StoredDefinition(r.kind, r.name, r.version, json.loads(r.spec), r.updated_at)
            for r in rows
        ]

    def history(self, kind: str, name: str) -> list[dict[str, Any]]:
        """Every applied version of an object, oldest first."""
        h = feature_definition_versions
        with self.engine.connect() as conn:
            rows = conn.execute(
                sa.select(h.c.version, h.c.action, h.c.spec_sha256, h.c.applied_by, h.c.created_at)
                .where(h.c.workspace == self.workspace, h.c.kind == kind, h.c.name == name)
                .order_by(h.c.version)
            ).all()
        return [dict(r._mapping) for r in rows]

    def state_token(self) -> tuple[int, int, int]:
        """(newest change time, object count, sum of versions): changes whenever any
        definition is applied or removed; a cheap freshness check for caches."""
        t = feature_definitions
        with self.engine.connect() as conn:
            row = conn.execute(
                sa.select(
                    sa.func.max(t.c.updated_at), sa.func.count(), sa.func.sum(t.c.version)
                ).where(t.c.workspace == self.workspace)
            ).first()
        return (int(row[0] or 0), int(row[1] or 0), int(row[2] or 0)) if row else (0, 0, 0)


def _user() -> str:
    try:
        return getpass.getuser()
    except Exception:
        return ""


__all__ = ["IncompatibleChangeError", "SqlFeatureRegistry", "StoredDefinition"]
