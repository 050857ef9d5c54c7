"""The Galley processes sharing this database: each registers itself and beats every few seconds,
so `galley status` can show which nodes are up, their roles, and the work each holds.

Revision ID: 0015
Revises: 0014
"""
import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "nodes",
        sa.Column("id", sa.String(32), primary_key=True),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("roles", sa.String(64), nullable=False),
        sa.Column("url", sa.String(1024)),
        sa.Column("version", sa.String(32), nullable=False),
        sa.Column("started_at", sa.Float, nullable=False),
        sa.Column("heartbeat_at", sa.Float, nullable=False),
        sa.Column("stopped_at", sa.Float),
    )


def downgrade() -> None:
    op.drop_table("nodes")
