"""monitoring: ground-truth labels

Revision ID: 0005
Revises: 0004
"""

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "monitoring_labels",
        sa.Column("workspace", sa.String(length=64), nullable=False),
        sa.Column("model", sa.String(length=256), nullable=False),
        sa.Column("request_id", sa.String(length=128), nullable=False),
        sa.Column("label", sa.Text(), nullable=False),
        sa.Column("created_at", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(["workspace"], ["workspaces.name"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("workspace", "model", "request_id"),
    )
    with op.batch_alter_table("monitoring_labels", schema=None) as batch_op:
        batch_op.create_index(
            "ix_monitoring_labels_created", ["workspace", "model", "created_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("monitoring_labels", schema=None) as batch_op:
        batch_op.drop_index("ix_monitoring_labels_created")
    op.drop_table("monitoring_labels")
