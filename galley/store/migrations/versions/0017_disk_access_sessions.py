"""Which node holds each disk access session, so that any node can forward the session's blob
requests, grants and revokes to it.

Revision ID: 0017
Revises: 0016
"""
import sqlalchemy as sa
from alembic import op

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "disk_access_sessions",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("resource_key", sa.String(1024), nullable=False, unique=True),
        sa.Column("node_id", sa.String(32), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("disk_access_sessions")
