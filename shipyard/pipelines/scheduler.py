"""The scheduler loop of the platform server: fires due schedules, polls data triggers and
acts on registry events, starting runs through the local executor.

Each tick reads the stored next fire times, so stopping and restarting the loop (or the
server) neither skips nor repeats a fire, and two servers sharing a database cannot both
start the same fire: the fire's row is claimed first (see ``ScheduleStore.claim``).
"""

from __future__ import annotations

import logging
import os
import queue
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Any

import sqlalchemy as sa
from sqlalchemy.engine import Engine

from shipyard.errors import InvalidArgumentError
from shipyard.pipelines.schedules import (
    RunStarter,
    Schedule,
    ScheduleStore,
    active_runs,
    as_utc,
    due_times,
    executor_starter,
    fire_times,
    schedule_from_row,
    to_ms,
)
from shipyard.pipelines.schema import pipeline_schedule_fires, pipeline_schedules
from shipyard.pipelines.triggers import on_registry_event, poll_data_triggers

if TYPE_CHECKING:
    from shipyard.config import Settings
    from shipyard.registry.entities import RegistryEvent

__all__ = ["DEFAULT_INTERVAL", "Scheduler", "backfill", "scheduler_enabled", "start_scheduler"]

logger = logging.getLogger(__name__)

#: Seconds between two ticks of the server's scheduler.
DEFAULT_INTERVAL = 5.0
#: A fire claimed this long ago without a run was lost with its scheduler; start it again.
STALE_CLAIM_MS = 60_000


class Scheduler:
    """Fires schedules and triggers of every workspace of one metadata store.

    Args:
        engine: the metadata store.
        starter: starts a run and returns its id (see ``schedules.executor_starter``).
        interval: seconds between ticks of :meth:`run_forever`.
        clock: the current time (tests pass a fake one).
        workspace: only this workspace's schedules and triggers (default: all).
    """

    def __init__(
        self,
        engine: Engine,
        starter: RunStarter,
        *,
        interval: float = DEFAULT_INTERVAL,
        clock: Callable[[], datetime] | None = None,
        workspace: str | None = None,
    ) -> None:
        self.engine = engine
        self.workspace = workspace
        self.starter = starter
        self.interval = interval
        self.clock = clock or (lambda: datetime.now(UTC))
        self.events: queue.SimpleQueue[RegistryEvent] = queue.SimpleQueue()
        self._wake = threading.Event()

    def due_schedules(self, now: datetime) -> list[Schedule]:
        query = (
            sa.select(pipeline_schedules)
            .where(
                pipeline_schedules.c.paused == sa.false(),
                pipeline_schedules.c.next_fire_at.is_not(None),
                pipeline_schedules.c.next_fire_at <= to_ms(now),
            )
            .order_by(pipeline_schedules.c.next_fire_at)
        )
        if self.workspace is not None:
            query = query.where(pipeline_schedules.c.workspace == self.workspace)
        with self.engine.connect() as conn:
            return [schedule_from_row(r) for r in conn.execute(query).mappings()]

    def fire_schedule(self, schedule: Schedule, now: datetime) -> list[str]:
        """Start the due runs of one schedule, at most its ``max_active_runs`` at a time;
        a fire that has no free slot waits for a later tick."""
        assert schedule.next_fire_at is not None
        store = ScheduleStore(self.engine, schedule.workspace)
        times = due_times(
            schedule.cron,
            schedule.next_fire_at,
            now,
            catchup=schedule.catchup,
            end_at=schedule.end_at,
        )
        if not times:
            if schedule.end_at and schedule.next_fire_at > schedule.end_at:
                store.advance(schedule, None)
            return []
        if times[0] > schedule.next_fire_at:
            # catch-up is off: the missed times are dropped, the latest one runs
            store.advance(schedule, times[0])
        started: list[str] = []
        free = schedule.max_active_runs - active_runs(self.engine, store.run_ids(schedule))
        for at in times:
            if free <= 0:
                break
            if not store.claim(schedule, at):
                continue  # another scheduler (or a backfill) has it
            started.append(self._start(store, schedule, at))
            free -= 1
        return started

    def recover(self, now: datetime) -> list[str]:
        """Start the fires whose scheduler died after claiming them (no run after
        ``STALE_CLAIM_MS``), so a crash at the worst moment does not skip a fire."""
        cutoff = to_ms(now) - STALE_CLAIM_MS
        query = (
            sa.select(pipeline_schedules)
            .join(
                pipeline_schedule_fires,
                pipeline_schedule_fires.c.schedule_id == pipeline_schedules.c.schedule_id,
            )
            .where(
                pipeline_schedule_fires.c.run_id == "",
                pipeline_schedule_fires.c.source == "schedule",
                pipeline_schedule_fires.c.created_at < cutoff,
                pipeline_schedules.c.paused == sa.false(),
            )
            .distinct()
        )
        if self.workspace is not None:
            query = query.where(pipeline_schedules.c.workspace == self.workspace)
        with self.engine.connect() as conn:
            schedules = [schedule_from_row(r) for r in conn.execute(query).mappings()]
        started: list[str] = []
        for schedule in schedules:
            store = ScheduleStore(self.engine, schedule.workspace)
            for at, claimed_at in store.stale_claims(schedule, cutoff):
                if store.reclaim(schedule, at, claimed_at):
                    started.append(self._start(store, schedule, at))
        return started

    def _start(self, store: ScheduleStore, schedule: Schedule, at: datetime) -> str:
        run_id = self.starter(
            schedule.pipeline_ref,
            dict(schedule.params),
            schedule.workspace,
            at,
            f"{schedule.name}-{at.strftime('%Y%m%dT%H%M')}",
        )
        store.record_run(schedule, at, run_id)
        logger.info("schedule %s fired for %s: run %s", schedule.name, at, run_id)
        return run_id

    def tick(self, now: datetime | None = None) -> list[str]:
        """One pass: due schedules, new data, queued registry events; the run ids started.
        A failing schedule or trigger is logged and does not stop the others."""
        now = now or self.clock()
        started: list[str] = []
        try:
            started += self.recover(now)
        except Exception:
            logger.exception("recovering lost schedule fires failed")
        for schedule in self.due_schedules(now):
            try:
                started += self.fire_schedule(schedule, now)
            except Exception:
                logger.exception("schedule %s failed to fire", schedule.name)
        try:
            started += poll_data_triggers(self.engine, self.starter, workspace=self.workspace)
        except Exception:
            logger.exception("polling data triggers failed")
        while True:
            try:
                event = self.events.get_nowait()
            except queue.Empty:
                break
            try:
                started += on_registry_event(event, engine=self.engine, starter=self.starter)
            except Exception:
                logger.exception("registry trigger on %s failed", event.type)
        return started

    def notify(self, event: RegistryEvent) -> None:
        """Queue a registry event and wake the loop (an EventBus subscriber: it returns at
        once, so the registry write that published it is not slowed down)."""
        self.events.put(event)
        self._wake.set()

    def run_forever(self, stop: threading.Event) -> None:
        """Tick every ``interval`` seconds, or at once on a registry event, until ``stop``
        is set (call :meth:`wake` after setting it to stop without waiting)."""
        while not stop.is_set():
            try:
                self.tick()
            except Exception:
                logger.exception("scheduler tick failed")
            self._wake.wait(self.interval)
            self._wake.clear()

    def wake(self) -> None:
        self._wake.set()


def backfill(
    settings: Settings,
    name: str,
    start: datetime,
    end: datetime,
    *,
    workspace: str | None = None,
    starter: RunStarter | None = None,
    wait: bool = True,
    poll: float = 0.2,
    on_start: Callable[[datetime, str], None] | None = None,
) -> list[str]:
    """One run per fire time of schedule ``name`` in ``[start, end]``, each with its time
    as ``SCHEDULED_TIME``, at most the schedule's ``max_active_runs`` at once. Times that
    already fired (scheduled or backfilled before) are not run again.

    Args:
        wait: wait for the last runs to finish before returning.
        on_start: called with each time and run id as runs start (progress output).

    Returns:
        The ids of the runs started, oldest scheduled time first.

    Raises:
        InvalidArgumentError: ``end`` before ``start``, or too many intervals.
        ScheduleNotFoundError: no such schedule.
    """
    from shipyard.store.db import engine_for

    start, end = as_utc(start), as_utc(end)
    if end < start:
        raise InvalidArgumentError("The backfill's end is before its start.")
    engine = engine_for(settings.db)
    store = ScheduleStore(engine, workspace or settings.workspace)
    schedule = store.get(name)
    starter = starter or executor_starter(settings)
    started: list[str] = []
    for at in fire_times(schedule.cron, start, end):
        while active_runs(engine, started) >= schedule.max_active_runs:
            time.sleep(poll)
        if not store.claim(schedule, at, source="backfill", advance=False):
            continue
        run_id = starter(
            schedule.pipeline_ref,
            dict(schedule.params),
            schedule.workspace,
            at,
            f"{schedule.name}-backfill-{at.strftime('%Y%m%dT%H%M')}",
        )
        store.record_run(schedule, at, run_id)
        started.append(run_id)
        if on_start:
            on_start(at, run_id)
    while wait and active_runs(engine, started):
        time.sleep(poll)
    return started


def scheduler_enabled(settings: Any) -> bool:
    """Whether the platform server runs the scheduler: ``settings.scheduler``
    (``SHIPYARD_SCHEDULER``, on in ``shipyard server``) or ``SHIPYARD_SCHEDULER`` set in
    the environment after the settings were read; off by default, so an app built in tests
    or notebooks starts no runs by itself."""
    if getattr(settings, "scheduler", False) is True:
        return True
    value = os.environ.get("SHIPYARD_SCHEDULER", "")
    return value.strip().lower() in ("1", "true", "on", "yes")


def start_scheduler(app: Any) -> Callable[[], None] | None:
    """Background service of the platform server (see ``server/background.py``): a thread
    ticking the scheduler, subscribed to the registry's events; None when disabled."""
    platform = app.state.platform
    settings = platform.settings
    if not scheduler_enabled(settings):
        return None
    scheduler = Scheduler(platform.engine, executor_starter(settings))
    unsubscribe = platform.events.subscribe(scheduler.notify)
    stop = threading.Event()
    thread = threading.Thread(
        target=scheduler.run_forever, args=(stop,), name="shipyard-scheduler", daemon=True
    )
    thread.start()

    def shutdown() -> None:
        unsubscribe()
        stop.set()
        scheduler.wake()
        thread.join(timeout=10)

    return shutdown
