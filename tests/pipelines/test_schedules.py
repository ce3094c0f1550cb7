"""Schedules: cron next-fire times against brute force, backfill counts, max active runs,
pause, and a scheduler that neither skips nor repeats a fire across restarts."""

from __future__ import annotations

import threading
import time
import uuid
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import sqlalchemy as sa
from hypothesis import given, settings
from hypothesis import strategies as st

from shipyard.config import Settings
from shipyard.errors import ConflictError, InvalidArgumentError
from shipyard.pipelines import SCHEDULED_TIME, pipeline, step
from shipyard.pipelines.executor import get_run
from shipyard.pipelines.scheduler import Scheduler, backfill, scheduler_enabled
from shipyard.pipelines.schedules import (
    ScheduleStore,
    cron_expression,
    executor_starter,
    fire_times,
    next_fire,
)
from shipyard.pipelines.schema import pipeline_runs
from shipyard.store.db import engine_for, now_ms


@pytest.fixture(autouse=True)
def _close_step_workers() -> Iterator[None]:
    """Stop the executor's warm step workers after each test, so none outlives its test."""
    yield
    from shipyard.pipelines.worker import shutdown_pools

    shutdown_pools()


T0 = datetime(2024, 3, 10, 9, 59, 30, tzinfo=UTC)

# --- pure cron logic against brute force ---------------------------------------------------


def _field(lo: int, hi: int, allow_star: bool = True) -> st.SearchStrategy[str]:
    number = st.integers(lo, hi)
    options = [
        number.map(str),
        st.tuples(number, number).map(lambda ab: f"{min(ab)}-{max(ab)}"),
        st.lists(number, min_size=1, max_size=3, unique=True).map(
            lambda xs: ",".join(map(str, sorted(xs)))
        ),
        st.tuples(number, number, st.integers(1, 5)).map(
            lambda abk: f"{min(abk[:2])}-{max(abk[:2])}/{abk[2]}"
        ),
    ]
    if allow_star:
        options += [st.just("*"), st.integers(1, 20).map(lambda k: f"*/{k}")]
    return st.one_of(*options)


def _values(field: str, lo: int, hi: int) -> set[int] | None:
    """The values a cron field allows; None for a plain star."""
    if field == "*":
        return None
    allowed: set[int] = set()
    for part in field.split(","):
        body, _, step_text = part.partition("/")
        step_by = int(step_text) if step_text else 1
        if body == "*":
            start, end = lo, hi
        elif "-" in body:
            start, end = map(int, body.split("-"))
        else:
            start = end = int(body)
        allowed.update(range(start, end + 1, step_by))
    return allowed


def _brute_next(expr: str, after: datetime) -> datetime:
    """Step minute by minute (whole hours or days when they cannot match) to the first
    time after ``after`` that the five fields allow, with Vixie cron's day rule: when both
    day fields are restricted a day matches either."""
    minute, hour, dom, month, dow = expr.split()
    minutes = _values(minute, 0, 59) or set(range(60))
    hours = _values(hour, 0, 23) or set(range(24))
    months = _values(month, 1, 12) or set(range(1, 13))
    doms, dows = _values(dom, 1, 31), _values(dow, 0, 6)

    def day_ok(t: datetime) -> bool:
        in_dom = doms is None or t.day in doms
        in_dow = dows is None or (t.isoweekday() % 7) in dows
        if doms is not None and dows is not None:
            return in_dom or in_dow
        return in_dom and in_dow

    t = after.replace(second=0, microsecond=0) + timedelta(minutes=1)
    while True:
        if t.month not in months or not day_ok(t):
            t = (t + timedelta(days=1)).replace(hour=0, minute=0)
        elif t.hour not in hours:
            t = (t + timedelta(hours=1)).replace(minute=0)
        elif t.minute not in minutes:
            t += timedelta(minutes=1)
        else:
            return t


@settings(max_examples=120, deadline=None)
@given(
    minute=_field(0, 59),
    hour=_field(0, 23),
    dom=st.one_of(st.just("*"), _field(1, 28, allow_star=False)),
    month=st.one_of(st.just("*"), _field(1, 12, allow_star=False)),
    dow=st.one_of(st.just("*"), _field(0, 6, allow_star=False)),
    after=st.datetimes(min_value=datetime(2020, 1, 1), max_value=datetime(2030, 1, 1)),
)
def test_next_fire_matches_brute_force_minute_stepping(
    minute: str, hour: str, dom: str, month: str, dow: str, after: datetime
) -> None:
    expr = f"{minute} {hour} {dom} {month} {dow}"
    after = after.replace(tzinfo=UTC)
    assert next_fire(expr, after) == _brute_next(expr, after)


@settings(max_examples=30, deadline=None)
@given(
    preset=st.sampled_from(["@hourly", "@daily", "@weekly", "*/7 * * * *", "15 3 * * 1-5"]),
    start=st.datetimes(min_value=datetime(2022, 1, 1), max_value=datetime(2026, 1, 1)),
    hours=st.integers(0, 24 * 4),
)
def test_fire_times_are_every_fire_in_the_closed_range(
    preset: str, start: datetime, hours: int
) -> None:
    start = start.replace(tzinfo=UTC)
    end = start + timedelta(hours=hours)
    times = fire_times(preset, start, end)
    expected = []
    t = start - timedelta(minutes=1)
    while (t := _brute_next(cron_expression(preset), t)) <= end:
        if t >= start:
            expected.append(t)
    assert times == expected


def test_presets_and_bad_expressions() -> None:
    assert cron_expression("@daily") == "0 0 * * *"
    assert cron_expression(" @HOURLY ") == "0 * * * *"
    assert next_fire("@daily", datetime(2024, 1, 1, 0, 0, tzinfo=UTC)) == datetime(
        2024, 1, 2, tzinfo=UTC
    )
    with pytest.raises(InvalidArgumentError, match=r"(?s)not a cron schedule.*@hourly"):
        cron_expression("every day")
    with pytest.raises(InvalidArgumentError, match="fires more than 5 times"):
        fire_times("* * * * *", T0, T0 + timedelta(hours=1), limit=5)


def test_backfill_range_gives_one_time_per_interval() -> None:
    start, end = datetime(2024, 1, 1, tzinfo=UTC), datetime(2024, 1, 10, tzinfo=UTC)
    assert len(fire_times("@daily", start, end)) == 10
    assert len(fire_times("@hourly", start, end)) == 9 * 24 + 1
    assert fire_times("@weekly", start, end) == [datetime(2024, 1, 7, tzinfo=UTC)]


# --- the scheduler, with runs recorded by a fake starter -----------------------------------


class FakeRuns:
    """Starts "runs" as rows of pipeline_runs whose status the test sets."""

    def __init__(self, engine: sa.Engine, status: str = "running") -> None:
        self.engine = engine
        self.status = status
        self.started: list[tuple[str, dict[str, Any], datetime | None]] = []
        self.lock = threading.Lock()

    def __call__(
        self, ref: str, params: dict[str, Any], workspace: str, at: datetime | None, name: str
    ) -> str:
        run_id = uuid.uuid4().hex
        with self.engine.begin() as conn:
            conn.execute(
                pipeline_runs.insert().values(
                    run_id=run_id,
                    workspace=workspace,
                    pipeline=ref,
                    status=self.status,
                    created_at=now_ms(),
                )
            )
        with self.lock:
            self.started.append((run_id, params, at))
        return run_id

    def finish_all(self) -> None:
        ids = [run_id for run_id, _, _ in self.started]
        with self.engine.begin() as conn:
            conn.execute(
                pipeline_runs.update()
                .where(pipeline_runs.c.run_id.in_(ids))
                .values(status="succeeded")
            )

    @property
    def times(self) -> list[datetime | None]:
        return [at for _, _, at in self.started]


@pytest.fixture
def engine(db_url: str) -> sa.Engine:
    return engine_for(db_url)


def _store(engine: sa.Engine, workspace: str) -> ScheduleStore:
    return ScheduleStore(engine, workspace)


def test_restarted_scheduler_neither_skips_nor_repeats_a_fire(
    engine: sa.Engine, workspace: str
) -> None:
    runs = FakeRuns(engine, status="succeeded")
    _store(engine, workspace).create("hourly", "mod:flow", "@hourly", params={"a": 1}, now=T0)
    first = Scheduler(engine, runs, workspace=workspace)
    assert first.tick(T0 + timedelta(minutes=1)) == [runs.started[0][0]]
    assert first.tick(T0 + timedelta(minutes=2)) == []
    restarted = Scheduler(
        engine, runs, workspace=workspace
    )  # a new process: only the database remembers
    assert restarted.tick(T0 + timedelta(minutes=3)) == []
    assert len(restarted.tick(T0 + timedelta(hours=1, minutes=5))) == 1
    assert runs.times == [
        datetime(2024, 3, 10, 10, tzinfo=UTC),
        datetime(2024, 3, 10, 11, tzinfo=UTC),
    ]
    assert runs.started[0][1] == {"a": 1}
    fires = _store(engine, workspace).fires("hourly")
    assert [f["run_id"] for f in fires] == [r for r, _, _ in runs.started]


def test_two_schedulers_on_one_database_fire_once(engine: sa.Engine, workspace: str) -> None:
    runs = FakeRuns(engine, status="succeeded")
    _store(engine, workspace).create("daily", "mod:flow", "@daily", max_active_runs=5, now=T0)
    at = datetime(2024, 3, 11, 0, 0, 20, tzinfo=UTC)
    started = Scheduler(engine, runs, workspace=workspace).tick(at) + Scheduler(
        engine, runs, workspace=workspace
    ).tick(at)
    assert len(started) == 1


def test_catchup_runs_every_missed_time_and_no_catchup_only_the_latest(
    engine: sa.Engine, workspace: str
) -> None:
    runs = FakeRuns(engine, status="succeeded")
    store = _store(engine, workspace)
    start = T0 - timedelta(hours=3)
    store.create(
        "catchup", "mod:flow", "@hourly", start_at=start, catchup=True, max_active_runs=10, now=T0
    )
    store.create("latest", "mod:flow", "@hourly", start_at=start, catchup=False, now=T0)
    Scheduler(engine, runs, workspace=workspace).tick(T0 + timedelta(hours=2))
    by_name = {
        name: [f["scheduled_at"] for f in store.fires(name)] for name in ("catchup", "latest")
    }
    assert by_name["catchup"] == [f"2024-03-10T{h:02d}:00:00+00:00" for h in range(7, 12)]
    # without catch-up the schedule starts from its creation and runs the latest due time
    assert by_name["latest"] == ["2024-03-10T11:00:00+00:00"]


def test_max_active_runs_holds_fires_until_a_run_finishes(
    engine: sa.Engine, workspace: str
) -> None:
    runs = FakeRuns(engine, status="running")
    store = _store(engine, workspace)
    store.create(
        "busy", "mod:flow", "*/10 * * * *", start_at=T0, catchup=True, max_active_runs=2, now=T0
    )
    scheduler = Scheduler(engine, runs, workspace=workspace)
    assert len(scheduler.tick(T0 + timedelta(minutes=45))) == 2
    assert scheduler.tick(T0 + timedelta(minutes=46)) == []
    runs.finish_all()
    assert len(scheduler.tick(T0 + timedelta(minutes=47))) == 2
    assert [t.minute for t in runs.times if t] == [0, 10, 20, 30]


def test_paused_schedules_do_not_fire_and_resume_without_the_missed_times(
    engine: sa.Engine, workspace: str
) -> None:
    runs = FakeRuns(engine, status="succeeded")
    store = _store(engine, workspace)
    store.create("paused", "mod:flow", "@hourly", paused=True, now=T0)
    scheduler = Scheduler(engine, runs, workspace=workspace)
    assert scheduler.tick(T0 + timedelta(hours=5)) == []
    resumed = store.set_paused("paused", False, now=T0 + timedelta(hours=5))
    assert resumed.next_fire_at == datetime(2024, 3, 10, 15, tzinfo=UTC)
    assert len(scheduler.tick(T0 + timedelta(hours=5, minutes=31))) == 1
    with pytest.raises(ConflictError, match="exists"):
        store.create("paused", "mod:flow", "@daily")
    store.delete("paused")
    assert store.list() == []


def test_backfill_starts_one_run_per_interval_once_within_max_active(
    engine: sa.Engine, workspace: str, db_url: str, tmp_path: Path
) -> None:
    runs = FakeRuns(engine, status="running")
    peak = [0]

    def finisher(stop: threading.Event) -> None:
        while not stop.is_set():
            mine = pipeline_runs.c.workspace == workspace
            with engine.begin() as conn:
                active = conn.execute(
                    sa.select(sa.func.count()).where(mine, pipeline_runs.c.status == "running")
                ).scalar_one()
                peak[0] = max(peak[0], active)
                conn.execute(pipeline_runs.update().where(mine).values(status="succeeded"))
            stop.wait(0.05)

    store = _store(engine, workspace)
    store.create("nightly", "mod:flow", "@daily", max_active_runs=2, now=T0)
    settings_ = Settings(home=tmp_path / "home", db=db_url)
    stop = threading.Event()
    thread = threading.Thread(target=finisher, args=(stop,))
    thread.start()
    try:
        started = backfill(
            settings_,
            "nightly",
            datetime(2024, 1, 1, tzinfo=UTC),
            datetime(2024, 1, 7, tzinfo=UTC),
            workspace=workspace,
            starter=runs,
            poll=0.02,
        )
        again = backfill(
            settings_,
            "nightly",
            datetime(2024, 1, 5, tzinfo=UTC),
            datetime(2024, 1, 8, tzinfo=UTC),
            workspace=workspace,
            starter=runs,
            poll=0.02,
        )
    finally:
        stop.set()
        thread.join()
    assert len(started) == 7
    assert len(again) == 1  # Jan 5-7 ran already
    assert [t.day for t in runs.times if t] == [1, 2, 3, 4, 5, 6, 7, 8]
    assert peak[0] <= 2


def test_scheduler_is_off_unless_enabled(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("SHIPYARD_SCHEDULER", raising=False)
    assert scheduler_enabled(Settings()) is False
    monkeypatch.setenv("SHIPYARD_SCHEDULER", "true")
    assert scheduler_enabled(Settings()) is True


# --- a scheduled run through the local executor --------------------------------------------


@step
def stamp(when: str) -> str:
    return when


@pipeline
def stamped():
    stamp(when=SCHEDULED_TIME)


def test_scheduled_run_gets_its_fire_time_as_scheduled_time(
    fresh_sqlite_url: str, artifacts_url: str, tmp_path: Path
) -> None:
    settings_ = Settings(home=tmp_path / "home", db=fresh_sqlite_url, artifacts=artifacts_url)
    engine = engine_for(fresh_sqlite_url)
    ScheduleStore(engine).create("stamped", f"{__name__}:stamped", "@daily", now=T0)
    (run_id,) = Scheduler(engine, executor_starter(settings_)).tick(
        datetime(2024, 3, 11, 0, 1, tzinfo=UTC)
    )
    run = _wait(lambda: get_run(run_id, settings=settings_))
    assert run.status == "succeeded", run.error
    assert run.scheduled_time == datetime(2024, 3, 11, tzinfo=UTC)
    assert run.outputs("stamp")["output"].startswith("2024-03-11T00:00:00")


def _wait(read: Callable[[], Any], timeout: float = 60.0) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        value = read()
        if value.status not in ("pending", "running") or time.monotonic() > deadline:
            return value
        time.sleep(0.1)


def test_a_fire_claimed_by_a_scheduler_that_died_is_started_once(
    engine: sa.Engine, workspace: str
) -> None:
    runs = FakeRuns(engine, status="succeeded")
    store = _store(engine, workspace)
    schedule = store.create("crashy", "mod:flow", "@hourly", now=T0)
    ten = datetime(2024, 3, 10, 10, tzinfo=UTC)
    assert store.claim(schedule, ten)  # ... and the scheduler died before starting the run
    later = datetime.now(UTC) + timedelta(minutes=2)
    first, second = (
        Scheduler(engine, runs, workspace=workspace),
        Scheduler(engine, runs, workspace=workspace),
    )
    first.tick(later)
    second.tick(later)
    assert runs.times.count(ten) == 1
    assert {f["scheduled_at"]: bool(f["run_id"]) for f in store.fires("crashy")}[ten.isoformat()]


def test_after_a_long_outage_the_latest_fires_or_catch_up_goes_in_batches(
    engine: sa.Engine, workspace: str
) -> None:
    runs = FakeRuns(engine, status="succeeded")
    store = _store(engine, workspace)
    store.create("minutely", "mod:flow", "* * * * *", now=T0)
    store.create("backlog", "mod:flow", "* * * * *", catchup=True, max_active_runs=500, now=T0)
    scheduler = Scheduler(engine, runs, workspace=workspace)
    month_later = T0 + timedelta(days=30)
    scheduler.tick(month_later)
    assert [f["scheduled_at"] for f in store.fires("minutely")] == ["2024-04-09T09:59:00+00:00"]
    assert len(store.fires("backlog")) == 100
    scheduler.tick(month_later)
    backlog = store.fires("backlog")
    assert len(backlog) == 200
    assert backlog[-1]["scheduled_at"] == (T0 + timedelta(minutes=200, seconds=-30)).isoformat()
