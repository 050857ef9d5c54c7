"""The platform image catalog: publisher/offer/sku/version entries whose disks are in the content store.

Revision ID: 0006
Revises: 0005
"""
import sqlalchemy as sa
from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "platform_images",
        sa.Column("key", sa.String(300), primary_key=True),
        sa.Column("publisher", sa.String(64), nullable=False),
        sa.Column("offer", sa.String(64), nullable=False),
        sa.Column("sku", sa.String(64), nullable=False),
        sa.Column("version", sa.String(40), nullable=False),
        sa.Column("os_type", sa.String(16), nullable=False),
        sa.Column("hyper_v_generation", sa.String(8), nullable=False),
        sa.Column("architecture", sa.String(16), nullable=False),
        sa.Column("virtual_size", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("platform_images")
