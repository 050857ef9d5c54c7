"""A disk access session's expiry is recorded beside its holder, so that when the holder is lost
for good another node can tell that the session has run out and end it.

Revision ID: 0018
Revises: 0017
"""
import sqlalchemy as sa
from alembic import op

revision = "0018"
down_revision = "0017"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Nullable: sessions granted before this revision have no recorded expiry (see node_store.py).
    op.add_column("disk_access_sessions", sa.Column("expires_at", sa.Float, nullable=True))


def downgrade() -> None:
    op.drop_column("disk_access_sessions", "expires_at")
