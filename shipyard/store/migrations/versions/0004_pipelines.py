"""pipelines: pipeline runs, step runs, cache, schedules and triggers

Revision ID: 0004
Revises: 0003
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def _ws() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(["workspace"], ["workspaces.name"], ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "pipeline_runs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("pipeline", sa.String(length=256), nullable=False),
        sa.Column("pipeline_ref", sa.Text(), server_default="", nullable=False),
        sa.Column("run_name", sa.String(length=256), server_default="", nullable=False),
        sa.Column("graph", sa.Text(), server_default="{}", nullable=False),
        sa.Column("params", sa.Text(), server_default="{}", nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("scheduled_time", sa.BigInteger(), nullable=True),
        sa.Column("max_workers", sa.Integer(), server_default="1", nullable=False),
        sa.Column("executor_host", sa.String(length=256), server_default="", nullable=False),
        sa.Column("executor_pid", sa.Integer(), nullable=True),
        sa.Column("cancel_requested", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        _ws(),
        sa.PrimaryKeyConstraint("run_id"),
    )
    op.create_index(
        "ix_pipeline_runs_workspace_created", "pipeline_runs", ["workspace", "created_at"]
    )
    op.create_table(
        "pipeline_step_runs",
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("step_key", sa.String(length=512), nullable=False),
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("iteration", sa.Text(), server_default="[]", nullable=False),
        sa.Column("state", sa.String(length=16), nullable=False),
        sa.Column("attempts", sa.Integer(), server_default="0", nullable=False),
        sa.Column("cache_key", sa.String(length=64), server_default="", nullable=False),
        sa.Column("cached_from", sa.String(length=32), server_default="", nullable=False),
        sa.Column("tracking_run_id", sa.String(length=32), server_default="", nullable=False),
        sa.Column("inputs", sa.Text(), server_default="{}", nullable=False),
        sa.Column("outputs", sa.Text(), server_default="{}", nullable=False),
        sa.Column("details", sa.Text(), server_default="{}", nullable=False),
        sa.Column("error", sa.Text(), server_default="", nullable=False),
        sa.Column("log_key", sa.Text(), server_default="", nullable=False),
        sa.Column("started_at", sa.BigInteger(), nullable=True),
        sa.Column("ended_at", sa.BigInteger(), nullable=True),
        sa.ForeignKeyConstraint(["run_id"], ["pipeline_runs.run_id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("run_id", "step_key"),
    )
    op.create_table(
        "pipeline_cache",
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("cache_key", sa.String(length=64), nullable=False),
        sa.Column("pipeline", sa.String(length=256), nullable=False),
        sa.Column("task", sa.String(length=64), nullable=False),
        sa.Column("outputs", sa.Text(), nullable=False),
        sa.Column("run_id", sa.String(length=32), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        _ws(),
        sa.PrimaryKeyConstraint("workspace", "cache_key"),
    )
    # --- schedules and triggers
    op.create_table(
        "pipeline_schedules",
        sa.Column("schedule_id", sa.String(length=32), nullable=False),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("pipeline_ref", sa.Text(), nullable=False),
        sa.Column("cron", sa.String(length=128), nullable=False),
        sa.Column("params", sa.Text(), server_default="{}", nullable=False),
        sa.Column("start_at", sa.BigInteger(), nullable=False),
        sa.Column("end_at", sa.BigInteger(), nullable=True),
        sa.Column("catchup", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("max_active_runs", sa.Integer(), server_default="1", nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("next_fire_at", sa.BigInteger(), nullable=True),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        _ws(),
        sa.PrimaryKeyConstraint("schedule_id"),
        sa.UniqueConstraint("workspace", "name", name="uq_pipeline_schedules_workspace_name"),
    )
    op.create_table(
        "pipeline_schedule_fires",
        sa.Column("schedule_id", sa.String(length=32), nullable=False),
        sa.Column("scheduled_at", sa.BigInteger(), nullable=False),
        sa.Column("run_id", sa.String(length=32), server_default="", nullable=False),
        sa.Column("source", sa.String(length=16), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["schedule_id"], ["pipeline_schedules.schedule_id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("schedule_id", "scheduled_at"),
    )
    op.create_table(
        "pipeline_triggers",
        sa.Column("trigger_id", sa.String(length=32), nullable=False),
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("pipeline_ref", sa.Text(), nullable=False),
        sa.Column("kind", sa.String(length=16), nullable=False),
        sa.Column("spec", sa.Text(), server_default="{}", nullable=False),
        sa.Column("params", sa.Text(), server_default="{}", nullable=False),
        sa.Column("paused", sa.Boolean(), server_default=sa.false(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.BigInteger(), nullable=False),
        _ws(),
        sa.PrimaryKeyConstraint("trigger_id"),
        sa.UniqueConstraint("workspace", "name", name="uq_pipeline_triggers_workspace_name"),
    )
    op.create_table(
        "pipeline_trigger_fires",
        sa.Column("trigger_id", sa.String(length=32), nullable=False),
        sa.Column("fingerprint", sa.String(length=64), nullable=False),
        sa.Column("run_id", sa.String(length=32), server_default="", nullable=False),
        sa.Column("detail", sa.Text(), server_default="{}", nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["trigger_id"], ["pipeline_triggers.trigger_id"], ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("trigger_id", "fingerprint"),
    )


def downgrade() -> None:
    # --- schedules and triggers
    op.drop_table("pipeline_trigger_fires")
    op.drop_table("pipeline_triggers")
    op.drop_table("pipeline_schedule_fires")
    op.drop_table("pipeline_schedules")
    op.drop_table("pipeline_cache")
    op.drop_table("pipeline_step_runs")
    op.drop_index("ix_pipeline_runs_workspace_created", table_name="pipeline_runs")
    op.drop_table("pipeline_runs")
