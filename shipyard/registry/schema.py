"""Tables owned by the model registry: models, versions, aliases and their history, gates,
webhooks and the durable outbox of registry events."""

import sqlalchemy as sa

from shipyard.store.db import metadata


def _ws() -> sa.ForeignKey:
    return sa.ForeignKey("workspaces.name", ondelete="CASCADE")


registered_models = sa.Table(
    "registered_models",
    metadata,
    sa.Column("workspace", sa.String(64), _ws(), primary_key=True),
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)


def _model() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace", "name"],
        ["registered_models.workspace", "registered_models.name"],
        ondelete="CASCADE",
    )


model_tags = sa.Table(
    "model_tags",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    _model(),
)

model_versions = sa.Table(
    "model_versions",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("source", sa.Text, nullable=False),
    sa.Column("run_id", sa.String(32), nullable=True),
    sa.Column("status", sa.String(16), nullable=False, server_default="READY"),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("flavor", sa.String(64), nullable=False, server_default=""),
    sa.Column("manifest_sha256", sa.String(64), nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    _model(),
    sa.Index("ix_model_versions_run", "run_id"),
)


def _version() -> sa.ForeignKeyConstraint:
    return sa.ForeignKeyConstraint(
        ["workspace", "name", "version"],
        ["model_versions.workspace", "model_versions.name", "model_versions.version"],
        ondelete="CASCADE",
    )


model_version_tags = sa.Table(
    "model_version_tags",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("key", sa.String(250), primary_key=True),
    sa.Column("value", sa.Text, nullable=False),
    _version(),
)

model_aliases = sa.Table(
    "model_aliases",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    _version(),
)

alias_history = sa.Table(
    "alias_history",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column("workspace", sa.String(64), nullable=False),
    sa.Column("name", sa.String(256), nullable=False),
    sa.Column("alias", sa.String(128), nullable=False),
    sa.Column("from_version", sa.Integer, nullable=True),
    sa.Column("to_version", sa.Integer, nullable=True),
    sa.Column("actor", sa.String(256), nullable=False, server_default=""),
    sa.Column("at", sa.BigInteger, nullable=False),
    sa.Column("reason", sa.Text, nullable=False, server_default=""),
    _model(),
    sa.Index("ix_alias_history_lookup", "workspace", "name", "alias", "at"),
)

model_gates = sa.Table(
    "model_gates",
    metadata,
    sa.Column("workspace", sa.String(64), primary_key=True),
    sa.Column("name", sa.String(256), primary_key=True),
    sa.Column("alias", sa.String(128), primary_key=True),
    sa.Column("expression", sa.Text, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
    _model(),
)

webhooks = sa.Table(
    "webhooks",
    metadata,
    sa.Column("webhook_id", sa.String(32), primary_key=True),
    sa.Column("workspace", sa.String(64), _ws(), nullable=False),
    sa.Column("url", sa.Text, nullable=False),
    sa.Column("events", sa.Text, nullable=False, server_default="*"),
    sa.Column("secret", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)

webhook_deliveries = sa.Table(
    "webhook_deliveries",
    metadata,
    sa.Column("id", sa.BigInteger().with_variant(sa.Integer, "sqlite"), primary_key=True),
    sa.Column(
        "webhook_id",
        sa.String(32),
        sa.ForeignKey("webhooks.webhook_id", ondelete="CASCADE"),
        nullable=False,
    ),
    sa.Column("event", sa.Text, nullable=False),
    sa.Column("attempts", sa.Integer, nullable=False, server_default="0"),
    sa.Column("status", sa.String(16), nullable=False, server_default="pending"),
    sa.Column("next_attempt_at", sa.BigInteger, nullable=False),
    sa.Column("last_error", sa.Text, nullable=False, server_default=""),
    sa.Index("ix_webhook_deliveries_due", "status", "next_attempt_at"),
)
