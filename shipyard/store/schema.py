"""Tables shared by every component: workspaces, the isolation boundary of all resources."""

import sqlalchemy as sa

from shipyard.store.db import metadata

DEFAULT_WORKSPACE = "default"

workspaces = sa.Table(
    "workspaces",
    metadata,
    sa.Column("name", sa.String(64), primary_key=True),
    sa.Column("description", sa.Text, nullable=False, server_default=""),
    sa.Column("created_at", sa.BigInteger, nullable=False),
)
