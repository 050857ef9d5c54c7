"""Upload leases: which process is receiving an upload into a disk, and until when.

Revision ID: 0003
Revises: 0002
"""
import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "upload_leases",
        sa.Column("resource_key", sa.String(1024), primary_key=True),
        sa.Column("owner", sa.String(256), nullable=False),
        sa.Column("until", sa.Float, nullable=False),
    )


def downgrade() -> None:
    op.drop_table("upload_leases")
