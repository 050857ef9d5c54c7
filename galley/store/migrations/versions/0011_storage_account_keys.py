"""Storage account keys (listKeys, regenerateKey; Shared Key and SAS signing).

Revision ID: 0011
Revises: 0010
"""
import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "storage_account_keys",
        sa.Column("account_key", sa.String(1024), primary_key=True),
        sa.Column("key_name", sa.String(16), primary_key=True),
        sa.Column("account_created", sa.String(40), nullable=False),
        sa.Column("value", sa.String(128), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )


def downgrade() -> None:
    op.drop_table("storage_account_keys")
