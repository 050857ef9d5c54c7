"""Nodes name their process (host:pid), the owner their upload leases carry, so that `galley
status` can show the uploads each node is receiving.

Revision ID: 0016
Revises: 0015
"""
import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("nodes", sa.Column("process", sa.String(256), nullable=True))


def downgrade() -> None:
    op.drop_column("nodes", "process")
