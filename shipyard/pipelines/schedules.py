"""Cron schedules of pipelines: when they fire (pure functions over croniter) and where they
are kept (``pipeline_schedules``, with every fire recorded in ``pipeline_schedule_fires``).

Times are UTC. A schedule fires at each cron time at or after ``start_at`` (and not after
``end_at``); the run gets that time as ``SCHEDULED_TIME``. The next fire time is stored, so
a restarted scheduler picks up exactly where the last one stopped, and the fire table's
primary key (schedule, scheduled time) makes every fire happen once.
"""

from __future__ import annotations

import json
import re
import uuid
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any, ClassVar

import sqlalchemy as sa
from croniter import croniter
from sqlalchemy.engine import Engine

from shipyard.errors import ConflictError, InvalidArgumentError, NotFoundError
from shipyard.pipelines.schema import pipeline_schedule_fires, pipeline_schedules
from shipyard.store.db import now_ms

if TYPE_CHECKING:
    from shipyard.config import Settings

__all__ = [
    "MAX_BACKFILL_RUNS",
    "PRESETS",
    "RunStarter",
    "Schedule",
    "ScheduleNotFoundError",
    "ScheduleStore",
    "active_runs",
    "as_utc",
    "cron_expression",
    "due_times",
    "executor_starter",
    "fire_times",
    "from_ms",
    "latest_fire",
    "next_fire",
    "schedule_from_row",
    "start_run",
    "to_ms",
]

PRESETS = {
    "@yearly": "0 0 1 1 *",
    "@annually": "0 0 1 1 *",
    "@monthly": "0 0 1 * *",
    "@weekly": "0 0 * * 0",
    "@daily": "0 0 * * *",
    "@midnight": "0 0 * * *",
    "@hourly": "0 * * * *",
}
_SINGLE_RANGE = re.compile(r"^(\d+)-0*\1(?:/\d+)?$")
#: Most runs one backfill (or one catch-up) may start.
MAX_BACKFILL_RUNS = 10_000


def to_ms(when: datetime) -> int:
    """Epoch milliseconds of an aware time (naive means UTC)."""
    if when.tzinfo is None:
        when = when.replace(tzinfo=UTC)
    return int(when.timestamp() * 1000)


def from_ms(ms: int) -> datetime:
    return datetime.fromtimestamp(ms / 1000, tz=UTC)


_EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
_LATEST = datetime(9000, 1, 1, tzinfo=UTC)


def as_utc(when: datetime) -> datetime:
    """``when`` in UTC (naive means UTC), within 1970-9000.

    Raises:
        InvalidArgumentError: outside that range.
    """
    try:
        when = when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)
    except OverflowError:
        when = _LATEST.replace(year=9999) if when.year > 1970 else _EARLIEST.replace(year=1)
    if not _EARLIEST <= when <= _LATEST:
        raise InvalidArgumentError(
            f"{when.isoformat()} is outside the times schedules support (1970 to 9000, UTC)."
        )
    return when


def cron_expression(expression: str) -> str:
    """The five-field cron expression for ``expression`` (presets expanded).

    Raises:
        InvalidArgumentError: not a valid cron expression or preset.
    """
    text = " ".join((expression or "").split())
    text = PRESETS.get(text.lower(), text)
    # croniter 7 reads a one-value range such as ``1-1`` as ``*``; write it as ``1``
    text = " ".join(
        ",".join(_SINGLE_RANGE.sub(r"\1", part) for part in fld.split(","))
        for fld in text.split(" ")
    )
    if len(text.split()) != 5 or not croniter.is_valid(text):
        raise InvalidArgumentError(
            f"{expression!r} is not a cron schedule.",
            hint="Use five fields (minute hour day-of-month month day-of-week), e.g. "
            f"'30 2 * * 1-5', or a preset: {', '.join(PRESETS)}.",
        )
    return text


def next_fire(expression: str, after: datetime) -> datetime:
    """The first fire time strictly after ``after`` (UTC, whole minutes)."""
    cron = croniter(cron_expression(expression), as_utc(after))
    return as_utc(cron.get_next(datetime))


def fire_times(
    expression: str, start: datetime, end: datetime, limit: int = MAX_BACKFILL_RUNS
) -> list[datetime]:
    """Every fire time ``t`` with ``start <= t <= end``, oldest first.

    Raises:
        InvalidArgumentError: more than ``limit`` times (a typo'd range or schedule).
    """
    start, end = as_utc(start), as_utc(end)
    expression = cron_expression(expression)
    times: list[datetime] = []
    # croniter counts strictly after ``start``; a fire exactly at ``start`` counts too
    if start <= end and _is_fire(expression, start):
        times.append(start)
    cron = croniter(expression, start)
    while True:
        t = as_utc(cron.get_next(datetime))
        if t > end:
            return times
        times.append(t)
        if len(times) > limit:
            raise InvalidArgumentError(
                f"{expression!r} fires more than {limit} times between {start.isoformat()} "
                f"and {end.isoformat()}.",
                hint="Narrow the date range.",
            )


def _is_fire(expression: str, when: datetime) -> bool:
    return when.second == 0 and when.microsecond == 0 and croniter.match(expression, when)


def _at_or_after(expression: str, start: datetime) -> datetime:
    start = as_utc(start)
    if _is_fire(cron_expression(expression), start):
        return start
    return next_fire(expression, start)


def latest_fire(expression: str, at: datetime) -> datetime:
    """The last fire time at or before ``at``."""
    expression, at = cron_expression(expression), as_utc(at)
    if _is_fire(expression, at):
        return at
    return as_utc(croniter(expression, at).get_prev(datetime))


def due_times(
    expression: str,
    next_fire_at: datetime,
    now: datetime,
    *,
    catchup: bool,
    end_at: datetime | None = None,
    limit: int = 100,
) -> list[datetime]:
    """The fire times a scheduler should start at ``now``, given the stored next fire time:
    those missed when ``catchup`` (the oldest ``limit`` of them; later ticks take the
    rest), else only the latest, however long the scheduler was down."""
    now = as_utc(now)
    stop = min(now, as_utc(end_at)) if end_at else now
    first = as_utc(next_fire_at)
    if first > stop:
        return []
    if not catchup:
        latest = latest_fire(expression, stop)
        return [latest] if latest >= first else []
    times = [first] if _is_fire(cron_expression(expression), first) else []
    cron = croniter(cron_expression(expression), first)
    while len(times) < limit:
        t = as_utc(cron.get_next(datetime))
        if t > stop:
            break
        times.append(t)
    return times


@dataclass(frozen=True)
class Schedule:
    """A stored schedule."""

    schedule_id: str
    workspace: str
    name: str
    pipeline_ref: str
    cron: str
    params: dict[str, Any] = field(default_factory=dict)
    start_at: datetime | None = None
    end_at: datetime | None = None
    catchup: bool = False
    max_active_runs: int = 1
    paused: bool = False
    next_fire_at: datetime | None = None
    created_at: datetime | None = None

    def to_dict(self) -> dict[str, Any]:
        def iso(value: datetime | None) -> str | None:
            return value.isoformat() if value else None

        return {
            "schedule_id": self.schedule_id,
            "workspace": self.workspace,
            "name": self.name,
            "pipeline": self.pipeline_ref,
            "cron": self.cron,
            "params": self.params,
            "start_at": iso(self.start_at),
            "end_at": iso(self.end_at),
            "catchup": self.catchup,
            "max_active_runs": self.max_active_runs,
            "paused": self.paused,
            "next_fire_at": iso(self.next_fire_at),
        }


def schedule_from_row(row: Mapping[str, Any]) -> Schedule:
    """A Schedule from its table row."""
    return Schedule(
        schedule_id=row["schedule_id"],
        workspace=row["workspace"],
        name=row["name"],
        pipeline_ref=row["pipeline_ref"],
        cron=row["cron"],
        params=json.loads(row["params"] or "{}"),
        start_at=from_ms(row["start_at"]),
        end_at=from_ms(row["end_at"]) if row["end_at"] is not None else None,
        catchup=bool(row["catchup"]),
        max_active_runs=int(row["max_active_runs"]),
        paused=bool(row["paused"]),
        next_fire_at=from_ms(row["next_fire_at"]) if row["next_fire_at"] is not None else None,
        created_at=from_ms(row["created_at"]),
    )


class ScheduleNotFoundError(NotFoundError):
    code = "schedule_not_found"


class NamedRowStore(ABC):
    """What the schedule and trigger stores share: rows named per workspace in ``table``,
    each with the fires recorded in ``fires_table`` under ``fires_key`` (a column there and
    an attribute of the stored object)."""

    table: ClassVar[sa.Table]
    fires_table: ClassVar[sa.Table]
    fires_key: ClassVar[str]

    def __init__(self, engine: Engine, workspace: str = "default") -> None:
        self.engine = engine
        self.workspace = workspace

    def _where(self, name: str) -> Any:
        return sa.and_(self.table.c.workspace == self.workspace, self.table.c.name == name)

    def _row(self, name: str) -> Mapping[str, Any] | None:
        with self.engine.connect() as conn:
            return conn.execute(sa.select(self.table).where(self._where(name))).mappings().first()

    @abstractmethod
    def get(self, name: str) -> Any:
        """The named object; each store raises its own not-found error."""

    def delete(self, name: str) -> None:
        """Delete the named row and its fire history."""
        key = getattr(self.get(name), self.fires_key)
        with self.engine.begin() as conn:
            conn.execute(self.fires_table.delete().where(self.fires_table.c[self.fires_key] == key))
            conn.execute(self.table.delete().where(self._where(name)))

    def run_ids(self, item: Any) -> list[str]:
        """The runs ``item`` (a schedule or trigger) has started."""
        column = self.fires_table.c[self.fires_key]
        query = sa.select(self.fires_table.c.run_id).where(
            column == getattr(item, self.fires_key), self.fires_table.c.run_id != ""
        )
        with self.engine.connect() as conn:
            return [r[0] for r in conn.execute(query)]


class ScheduleStore(NamedRowStore):
    """Schedules of one workspace in the metadata store."""

    table = pipeline_schedules
    fires_table = pipeline_schedule_fires
    fires_key = "schedule_id"

    def create(
        self,
        name: str,
        pipeline_ref: str,
        cron: str,
        *,
        params: Mapping[str, Any] | None = None,
        start_at: datetime | None = None,
        end_at: datetime | None = None,
        catchup: bool = False,
        max_active_runs: int = 1,
        paused: bool = False,
        now: datetime | None = None,
    ) -> Schedule:
        """Store a schedule; its first fire is the first cron time at or after ``start_at``
        (default now), or after now when ``catchup`` is off.

        Raises:
            InvalidArgumentError: bad cron, name, range or max_active_runs.
            ConflictError: a schedule of that name exists in the workspace.
        """
        expression = cron_expression(cron)
        if not name or len(name) > 128:
            raise InvalidArgumentError("A schedule needs a name of 1 to 128 characters.")
        if max_active_runs < 1:
            raise InvalidArgumentError("max_active_runs must be at least 1.")
        now = as_utc(now or datetime.now(UTC))
        start = as_utc(start_at) if start_at else now
        if end_at is not None and as_utc(end_at) < start:
            raise InvalidArgumentError("end_at is before start_at.")
        first = _at_or_after(expression, start if catchup else max(start, now))
        stamp = now_ms()
        row = {
            "schedule_id": uuid.uuid4().hex,
            "workspace": self.workspace,
            "name": name,
            "pipeline_ref": pipeline_ref,
            "cron": cron.strip(),
            "params": json.dumps(dict(params or {})),
            "start_at": to_ms(start),
            "end_at": to_ms(end_at) if end_at else None,
            "catchup": catchup,
            "max_active_runs": max_active_runs,
            "paused": paused,
            "next_fire_at": to_ms(first),
            "created_at": stamp,
            "updated_at": stamp,
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(pipeline_schedules.insert().values(**row))
        except sa.exc.IntegrityError:
            raise ConflictError(
                f"A schedule named '{name}' exists in workspace '{self.workspace}'.",
                hint="Pick another name, or delete the old schedule first.",
            ) from None
        return schedule_from_row(row)

    def get(self, name: str) -> Schedule:
        """Raises ScheduleNotFoundError when there is no such schedule."""
        found = self._row(name)
        if found is None:
            raise ScheduleNotFoundError(
                f"No schedule '{name}' in workspace '{self.workspace}'.",
                hint="List schedules with `shipyard pipelines schedule list`.",
            )
        return schedule_from_row(found)

    def list(self) -> list[Schedule]:
        query = (
            sa.select(pipeline_schedules)
            .where(pipeline_schedules.c.workspace == self.workspace)
            .order_by(pipeline_schedules.c.name)
        )
        with self.engine.connect() as conn:
            return [schedule_from_row(r) for r in conn.execute(query).mappings()]

    def set_paused(self, name: str, paused: bool, *, now: datetime | None = None) -> Schedule:
        """Pause or resume. Resuming a schedule without catch-up moves its next fire past
        now, so the pause's missed times are not run."""
        schedule = self.get(name)
        values: dict[str, Any] = {"paused": paused, "updated_at": now_ms()}
        if not paused and schedule.paused and not schedule.catchup:
            current = as_utc(now or datetime.now(UTC))
            if schedule.next_fire_at is not None and schedule.next_fire_at < current:
                values["next_fire_at"] = to_ms(next_fire(schedule.cron, current))
        with self.engine.begin() as conn:
            conn.execute(pipeline_schedules.update().where(self._where(name)).values(**values))
        return self.get(name)

    # --- fires ---------------------------------------------------------------------------

    def claim(
        self,
        schedule: Schedule,
        at: datetime,
        *,
        source: str = "schedule",
        advance: bool = True,
    ) -> bool:
        """Record the fire at ``at``; False when it was already claimed (by this or another
        scheduler, or a backfill). With ``advance`` the stored next fire time moves past
        ``at`` in the same transaction."""
        values = {
            "schedule_id": schedule.schedule_id,
            "scheduled_at": to_ms(at),
            "source": source,
            "created_at": now_ms(),
        }
        try:
            with self.engine.begin() as conn:
                conn.execute(pipeline_schedule_fires.insert().values(**values))
                if advance:
                    following = next_fire(schedule.cron, at)
                    end = schedule.end_at
                    conn.execute(
                        pipeline_schedules.update()
                        .where(pipeline_schedules.c.schedule_id == schedule.schedule_id)
                        .values(
                            next_fire_at=None if end and following > end else to_ms(following),
                            updated_at=now_ms(),
                        )
                    )
        except sa.exc.IntegrityError:
            return False
        return True

    def advance(self, schedule: Schedule, to: datetime | None) -> None:
        """Set the next fire time (None: the schedule is over)."""
        with self.engine.begin() as conn:
            conn.execute(
                pipeline_schedules.update()
                .where(pipeline_schedules.c.schedule_id == schedule.schedule_id)
                .values(next_fire_at=to_ms(to) if to else None, updated_at=now_ms())
            )

    def record_run(self, schedule: Schedule, at: datetime, run_id: str) -> None:
        with self.engine.begin() as conn:
            conn.execute(
                pipeline_schedule_fires.update()
                .where(
                    pipeline_schedule_fires.c.schedule_id == schedule.schedule_id,
                    pipeline_schedule_fires.c.scheduled_at == to_ms(at),
                )
                .values(run_id=run_id)
            )

    def stale_claims(self, schedule: Schedule, before_ms: int) -> list[tuple[datetime, int]]:
        """Fires claimed before ``before_ms`` (epoch ms) that never got a run (the
        scheduler died between claiming and starting): ``(time, claimed_at)`` pairs."""
        query = sa.select(
            pipeline_schedule_fires.c.scheduled_at, pipeline_schedule_fires.c.created_at
        ).where(
            pipeline_schedule_fires.c.schedule_id == schedule.schedule_id,
            pipeline_schedule_fires.c.run_id == "",
            pipeline_schedule_fires.c.created_at < before_ms,
        )
        with self.engine.connect() as conn:
            return [(from_ms(r[0]), int(r[1])) for r in conn.execute(query)]

    def reclaim(self, schedule: Schedule, at: datetime, claimed_at: int) -> bool:
        """Take over a stale claim; False when another scheduler took it first."""
        with self.engine.begin() as conn:
            result = conn.execute(
                pipeline_schedule_fires.update()
                .where(
                    pipeline_schedule_fires.c.schedule_id == schedule.schedule_id,
                    pipeline_schedule_fires.c.scheduled_at == to_ms(at),
                    pipeline_schedule_fires.c.run_id == "",
                    pipeline_schedule_fires.c.created_at == claimed_at,
                )
                .values(created_at=now_ms())
            )
        return result.rowcount == 1

    def fires(self, name: str) -> list[dict[str, Any]]:
        """Every recorded fire of a schedule, oldest first."""
        schedule = self.get(name)
        query = (
            sa.select(pipeline_schedule_fires)
            .where(pipeline_schedule_fires.c.schedule_id == schedule.schedule_id)
            .order_by(pipeline_schedule_fires.c.scheduled_at)
        )
        with self.engine.connect() as conn:
            return [
                {
                    "scheduled_at": from_ms(r["scheduled_at"]).isoformat(),
                    "run_id": r["run_id"],
                    "source": r["source"],
                }
                for r in conn.execute(query).mappings()
            ]


#: ``starter(pipeline_ref, params, workspace, scheduled_time, run_name) -> run_id``
RunStarter = Callable[[str, dict[str, Any], str, "datetime | None", str], str]


def start_run(
    settings: Settings,
    pipeline_ref: str,
    params: Mapping[str, Any],
    workspace: str,
    scheduled_time: datetime | None = None,
    run_name: str = "",
) -> str:
    """Start a run through the local executor without waiting for it (it goes on in a
    background thread); returns its id."""
    from shipyard.pipelines.compile.reference import load_pipeline
    from shipyard.pipelines.executor import run_pipeline

    run = run_pipeline(
        load_pipeline(pipeline_ref),
        dict(params),
        settings=settings,
        workspace=workspace,
        scheduled_time=scheduled_time,
        run_name=run_name or None,
        wait=False,
    )
    return run.run_id


def executor_starter(settings: Settings) -> RunStarter:
    """A :data:`RunStarter` running pipelines with the local executor on ``settings``."""

    def starter(
        ref: str,
        params: dict[str, Any],
        workspace: str,
        scheduled_time: datetime | None,
        run_name: str,
    ) -> str:
        return start_run(settings, ref, params, workspace, scheduled_time, run_name)

    return starter


ACTIVE_STATUSES = ("pending", "running")


def active_runs(engine: Engine, run_ids: Iterable[str]) -> int:
    """How many of ``run_ids`` are still pending or running."""
    from shipyard.pipelines.schema import pipeline_runs

    ids = [r for r in run_ids if r]
    if not ids:
        return 0
    count = 0
    with engine.connect() as conn:
        for chunk in range(0, len(ids), 500):
            query = sa.select(sa.func.count()).where(
                pipeline_runs.c.run_id.in_(ids[chunk : chunk + 500]),
                pipeline_runs.c.status.in_(ACTIVE_STATUSES),
            )
            count += int(conn.execute(query).scalar_one())
    return count
