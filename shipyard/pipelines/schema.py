"""Tables owned by pipelines: runs and their step runs (state after every transition), the
step cache, and (below) schedules and triggers.

Times are epoch milliseconds (UTC); JSON columns hold text. A pipeline run's id is also the id
of the tracking run that records it.
"""

import sqlalchemy as sa

from shipyard.store.db import metadata


def _ws() -> sa.ForeignKey:
    return sa.ForeignKey("workspaces.name", ondelete="CASCADE")


pipeline_runs = sa.Table(
    "pipeline_runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("workspace", sa.String(64), _ws(), nullable=False),
    sa.Column("pipeline", sa.String(256), nullable=False),
    sa.Column("pipeline_ref", sa.Text, nullable=False, server_default=""),
    sa.Column("run_name", sa.String(256), nullable=False, server_default=""),
    sa.Column("graph", sa.Text, nullable=False, server_default="{}"),
    sa.Column("params", sa.Text, nullable=False, server_default="{}"),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("scheduled_time", sa.BigInteger, nullable=True),
    sa.Column("max_workers", sa.Integer, nullable=False, server_default="1"),
    sa.Column("executor_host", sa.String(256), nullable=False, server_default=""),
    sa.Column("executor_pid", sa.Integer, nullable=True),
    sa.Column("cancel_requested", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("started_at", sa.BigInteger, nullable=True),
    sa.Column("ended_at", sa.BigInteger, nullable=True),
    sa.Index("ix_pipeline_runs_workspace_created", "workspace", "created_at"),
)

pipeline_step_runs = sa.Table(
    "pipeline_step_runs",
    metadata,
    sa.Column(
        "run_id",
        sa.String(32),
        sa.ForeignKey("pipeline_runs.run_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("step_key", sa.String(512), primary_key=True),
    sa.Column("task", sa.String(64), nullable=False),
    sa.Column("iteration", sa.Text, nullable=False, server_default="[]"),
    sa.Column("state", sa.String(16), nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("cache_key", sa.String(64), nullable=False, server_default=""),
    sa.Column("cached_from", sa.String(32), nullable=False, server_default=""),
    sa.Column("tracking_run_id", sa.String(32), nullable=False, server_default=""),
    sa.Column("inputs", sa.Text, nullable=False, server_default="{}"),
    sa.Column("outputs", sa.Text, nullable=False, server_default="{}"),
    sa.Column("details", sa.Text, nullable=False, server_default="{}"),
    sa.Column("error", sa.Text, nullable=False, server_default=""),
    sa.Column("log_key", sa.Text, nullable=False, server_default=""),
    sa.Column("started_at", sa.BigInteger, nullable=True),
    sa.Column("ended_at", sa.BigInteger, nullable=True),
)

pipeline_cache = sa.Table(
    "pipeline_cache",
    metadata,
    sa.Column("workspace", sa.String(64), _ws(), primary_key=True),
    sa.Column("cache_key", sa.String(64), primary_key=True),
    sa.Column("pipeline", sa.String(256), nullable=False),
    sa.Column("task", sa.String(64), nullable=False),
    sa.Column("outputs", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(32), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

# --- schedules and triggers

pipeline_schedules = sa.Table(
    "pipeline_schedules",
    metadata,
    sa.Column("schedule_id", sa.String(32), primary_key=True),
    sa.Column("workspace", sa.String(64), _ws(), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("pipeline_ref", sa.Text, nullable=False),
    sa.Column("cron", sa.String(128), nullable=False),
    sa.Column("params", sa.Text, nullable=False, server_default="{}"),
    sa.Column("start_at", sa.BigInteger, nullable=False),
    sa.Column("end_at", sa.BigInteger, nullable=True),
    sa.Column("catchup", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("max_active_runs", sa.Integer, nullable=False, server_default="1"),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    # the next fire time, persisted so a restarted scheduler neither skips nor repeats one
    sa.Column("next_fire_at", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("workspace", "name", name="uq_pipeline_schedules_workspace_name"),
)

# One row per (schedule, scheduled time): the primary key makes every fire happen once, even
# with two schedulers (server workers) or a schedule and a backfill on the same interval.
pipeline_schedule_fires = sa.Table(
    "pipeline_schedule_fires",
    metadata,
    sa.Column(
        "schedule_id",
        sa.String(32),
        sa.ForeignKey("pipeline_schedules.schedule_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("scheduled_at", sa.BigInteger, primary_key=True),
    sa.Column("run_id", sa.String(32), nullable=False, server_default=""),
    sa.Column("source", sa.String(16), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

pipeline_triggers = sa.Table(
    "pipeline_triggers",
    metadata,
    sa.Column("trigger_id", sa.String(32), primary_key=True),
    sa.Column("workspace", sa.String(64), _ws(), nullable=False),
    sa.Column("name", sa.String(128), nullable=False),
    sa.Column("pipeline_ref", sa.Text, nullable=False),
    sa.Column("kind", sa.String(16), nullable=False),
    sa.Column("spec", sa.Text, nullable=False, server_default="{}"),
    sa.Column("params", sa.Text, nullable=False, server_default="{}"),
    sa.Column("paused", sa.Boolean, nullable=False, server_default=sa.false()),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("workspace", "name", name="uq_pipeline_triggers_workspace_name"),
)

# One row per event a trigger saw (a file's fingerprint, an alert, a registry event).
pipeline_trigger_fires = sa.Table(
    "pipeline_trigger_fires",
    metadata,
    sa.Column(
        "trigger_id",
        sa.String(32),
        sa.ForeignKey("pipeline_triggers.trigger_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("fingerprint", sa.String(64), primary_key=True),
    sa.Column("run_id", sa.String(32), nullable=False, server_default=""),
    sa.Column("detail", sa.Text, nullable=False, server_default="{}"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
