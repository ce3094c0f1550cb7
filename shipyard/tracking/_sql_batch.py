"""The hot path of ``SqlTrackingStore.log_batch``: its statements compiled to SQL once and
run through the driver, so a call costs a few round trips and no per-row Python work in
SQLAlchemy.
"""

from __future__ import annotations

from typing import Any

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.engine import Connection

from shipyard.tracking.schema import latest_metrics, metrics, runs

# Built once: log_batch runs it on every call.
_RUN_STATE = sa.select(runs.c.status, runs.c.lifecycle_stage).where(
    runs.c.run_id == sa.bindparam("run_id"), runs.c.workspace == sa.bindparam("workspace")
)

Point = tuple[str, str, int, int, float | str]  # run_id, key, step, timestamp, value


class BatchWriter:
    """log_batch's hot statements, compiled to SQL once and run with the driver directly
    (no per-call SQLAlchemy compilation or per-row parameter processing).

    SQLite gets an ``executemany`` of tuples; NaN is bound as the text 'NaN' there, since
    SQLite stores a REAL NaN as NULL. PostgreSQL gets the batch as arrays through
    ``unnest``, both tables in one statement (a data-modifying CTE): one round trip.
    """

    def __init__(self, dialect: sa.Dialect) -> None:
        self._sqlite = dialect.name == "sqlite"
        self._state_sql, self._state_order = self._compile(_RUN_STATE, dialect)
        columns = ["run_id", "key", "step", "timestamp", "value"]
        if self._sqlite:
            binds: dict[str, Any] = {name: sa.bindparam(f"p_{name}") for name in columns}
            upsert: Any = sqlite.insert(latest_metrics).values(**binds)
            self._insert_sql, _ = self._compile(metrics.insert().values(**binds), dialect)
        else:
            upsert = postgresql.insert(latest_metrics).from_select(columns, _unnest("latest_"))
            inserted = metrics.insert().from_select(columns, _unnest("")).cte("inserted")
            upsert = upsert.add_cte(inserted)
        excluded = upsert.excluded
        newer = sa.or_(
            excluded.step > latest_metrics.c.step,
            sa.and_(
                excluded.step == latest_metrics.c.step,
                excluded.timestamp >= latest_metrics.c.timestamp,
            ),
        )
        upsert = upsert.on_conflict_do_update(
            index_elements=["run_id", "key"],
            set_={name: excluded[name] for name in ("step", "timestamp", "value")},
            where=newer,
        )
        self._upsert_sql, _ = self._compile(upsert, dialect)

    @staticmethod
    def _compile(statement: Any, dialect: sa.Dialect) -> tuple[str, list[str] | None]:
        compiled = statement.compile(dialect=dialect)
        order = compiled.positiontup
        return str(compiled), (list(order) if order is not None else None)

    def run_state(self, conn: Connection, run_id: str, workspace: str) -> Any:
        """The run's (status, lifecycle_stage) row, or None."""
        values = {"run_id": run_id, "workspace": workspace}
        order = self._state_order
        args = tuple(values[name] for name in order) if order is not None else values
        return conn.exec_driver_sql(self._state_sql, args).first()

    def write(self, conn: Connection, points: list[Point], newest: list[Point]) -> None:
        if self._sqlite:
            conn.exec_driver_sql(self._insert_sql, points)
            conn.exec_driver_sql(self._upsert_sql, newest)
            return
        columns = {"keys": 1, "steps": 2, "timestamps": 3, "values": 4}
        args: dict[str, Any] = {"run_id": points[0][0]}
        for name, index in columns.items():
            args[name] = [point[index] for point in points]
            args[f"latest_{name}"] = [point[index] for point in newest]
        conn.exec_driver_sql(self._upsert_sql, args)


def _unnest(prefix: str) -> sa.Select[Any]:
    """``SELECT :run_id, * FROM unnest(:keys, :steps, :timestamps, :values)`` (PostgreSQL)."""
    array = postgresql.ARRAY
    points = (
        sa.func.unnest(
            sa.cast(sa.bindparam(f"{prefix}keys"), array(sa.String)),
            sa.cast(sa.bindparam(f"{prefix}steps"), array(sa.BigInteger)),
            sa.cast(sa.bindparam(f"{prefix}timestamps"), array(sa.BigInteger)),
            sa.cast(sa.bindparam(f"{prefix}values"), array(sa.Float)),
        )
        .table_valued("key", "step", "timestamp", "value")
        .render_derived(name=f"{prefix}points")
    )
    run_id = sa.bindparam("run_id", type_=sa.String)
    return sa.select(run_id, points.c.key, points.c.step, points.c.timestamp, points.c.value)
