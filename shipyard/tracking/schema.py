"""Tables owned by tracking: experiments, runs, params, metrics, tags, datasets, artifacts.

Times are epoch milliseconds (UTC). ``latest_metrics`` keeps each run's newest value per
key so that searching 10,000 runs by a metric is one indexed join.
"""

import sqlalchemy as sa

from shipyard.store.db import metadata


def _ws() -> sa.ForeignKey:
    return sa.ForeignKey("workspaces.name", ondelete="CASCADE")


def _run() -> sa.ForeignKey:
    return sa.ForeignKey("runs.run_id", ondelete="CASCADE")


experiments = sa.Table(
    "experiments",
    metadata,
    sa.Column("experiment_id", sa.String(32), primary_key=True),
    sa.Column("workspace", sa.String(64), _ws(), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("artifact_location", sa.Text, nullable=False),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("workspace", "name", name="uq_experiments_workspace_name"),
)

experiment_tags = sa.Table(
    "experiment_tags",
    metadata,
    sa.Column(
        "experiment_id",
        sa.String(32),
        sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

runs = sa.Table(
    "runs",
    metadata,
    sa.Column("run_id", sa.String(32), primary_key=True),
    sa.Column("workspace", sa.String(64), _ws(), nullable=False),
    sa.Column(
        "experiment_id",
        sa.String(32),
        sa.ForeignKey("experiments.experiment_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("status", sa.String(16), nullable=False),
    sa.Column("start_time", sa.BigInteger, nullable=False),
    sa.Column("end_time", sa.BigInteger, nullable=True),
    sa.Column("parent_run_id", sa.String(32), nullable=True),
    sa.Column("user", sa.String(256), nullable=False, server_default=""),
    sa.Column("artifact_uri", sa.Text, nullable=False),
    sa.Column("lifecycle_stage", sa.String(16), nullable=False, server_default="active"),
    sa.Index("ix_runs_experiment_start", "experiment_id", "start_time"),
    sa.Index("ix_runs_parent", "parent_run_id"),
)

run_tags = sa.Table(
    "run_tags",
    metadata,
    sa.Column("run_id", sa.String(32), _run(), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

params = sa.Table(
    "params",
    metadata,
    sa.Column("run_id", sa.String(32), _run(), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
)

metrics = sa.Table(
    "metrics",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("run_id", sa.String(32), _run(), nullable=False),
    sa.Column("key", sa.String(250), nullable=False),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Index("ix_metrics_run_key_step", "run_id", "key", "step"),
)

latest_metrics = sa.Table(
    "latest_metrics",
    metadata,
    sa.Column("run_id", sa.String(32), _run(), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("step", sa.BigInteger, nullable=False),
    sa.Column("timestamp", sa.BigInteger, nullable=False),
    sa.Column("value", sa.Float, nullable=False),
    sa.Index("ix_latest_metrics_key_value", "key", "value"),
)

datasets = sa.Table(
    "datasets",
    metadata,
    sa.Column("dataset_id", sa.String(32), primary_key=True),
    sa.Column("workspace", sa.String(64), _ws(), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("digest", sa.String(64), nullable=False),
    sa.Column("source", sa.Text, nullable=False, server_default=""),
    sa.Column("source_type", sa.String(32), nullable=False, server_default=""),
    sa.Column("schema", sa.Text, nullable=False, server_default="{}"),
    sa.Column("profile", sa.Text, nullable=False, server_default="{}"),
    sa.Column("num_rows", sa.BigInteger, nullable=True),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.UniqueConstraint("workspace", "name", "digest", name="uq_datasets_name_digest"),
)

run_inputs = sa.Table(
    "run_inputs",
    metadata,
    sa.Column("run_id", sa.String(32), _run(), primary_key=True),
    sa.Column(
        "dataset_id",
        sa.String(32),
        sa.ForeignKey("datasets.dataset_id", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("context", sa.String(64), nullable=False, server_default=""),
)

run_artifacts = sa.Table(
    "run_artifacts",
    metadata,
    sa.Column("run_id", sa.String(32), _run(), primary_key=True),
    sa.Column("path", sa.String(1024), primary_key=True),
    sa.Column("size", sa.BigInteger, nullable=False),
    sa.Column("sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
