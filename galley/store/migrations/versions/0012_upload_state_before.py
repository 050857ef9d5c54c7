"""Upload leases remember the disk's state before the upload, so a failed upload restores it.

Revision ID: 0012
Revises: 0011
"""
import sqlalchemy as sa
from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("upload_leases", sa.Column("state_before", sa.String(32), nullable=True))


def downgrade() -> None:
    op.drop_column("upload_leases", "state_before")
