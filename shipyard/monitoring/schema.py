"""Tables owned by monitoring: ground-truth labels, joined with the prediction log by
request id."""

import sqlalchemy as sa

from shipyard.store.db import metadata

# One row per (model, request): the label arrived later than the prediction. ``label`` is
# the JSON text of the value, so 1, 1.0 and "1" stay apart.
monitoring_labels = sa.Table(
    "monitoring_labels",
    metadata,
    sa.Column(
        "workspace",
        sa.String(64),
        sa.ForeignKey("workspaces.name", ondelete="CASCADE"),
        primary_key=True,
    ),
    sa.Column("model", sa.String(256), primary_key=True),
    sa.Column("request_id", sa.String(128), primary_key=True),
    sa.Column("label", sa.Text, nullable=False),
    sa.Column("created_at", sa.BigInteger, nullable=False),
    sa.Index("ix_monitoring_labels_created", "workspace", "model", "created_at"),
)
