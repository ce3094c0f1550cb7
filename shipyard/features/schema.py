"""Tables owned by features: the current definition of each object and its version history."""

import sqlalchemy as sa

from shipyard.store.db import metadata

feature_definitions = sa.Table(
    "feature_definitions",
    metadata,
    sa.Column(
        "workspace",
        sa.String(64),
        sa.ForeignKey("workspaces.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("spec_sha256", sa.String(64), nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Column("updated_at", sa.BigInteger, nullable=False),
)

# Every applied change, including removals ("removed" keeps the last spec), so a version
# number is never reused and any past definition can be read back.
feature_definition_versions = sa.Table(
    "feature_definition_versions",
    metadata,
    sa.Column(
        "workspace",
        sa.String(64),
        sa.ForeignKey("workspaces.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("kind", sa.String(32), primary_key=True),
    sa.Column("name", sa.String(128), primary_key=True),
    sa.Column("version", sa.Integer, primary_key=True),
    sa.Column("action", sa.String(16), nullable=False),
    sa.Column("spec", sa.Text, nullable=False),
    sa.Column("spec_sha256", sa.String(64), nullable=False),
    sa.Column("applied_by", sa.String(256), nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
