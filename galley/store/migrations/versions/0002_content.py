"""Content: chunk manifests, which resource holds which content, placements in stores, replicas.

Revision ID: 0002
Revises: 0001
"""
import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "contents",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("virtual_size", sa.BigInteger, nullable=False),
        sa.Column("chunk_size", sa.Integer, nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("data_bytes", sa.BigInteger, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
    )
    op.create_table(
        "content_chunks",
        sa.Column("content_id", sa.String(36), primary_key=True),
        sa.Column("idx", sa.BigInteger, primary_key=True),
        sa.Column("digest", sa.String(64), nullable=False),
        sa.Column("length", sa.Integer, nullable=False),
    )
    op.create_index("ix_content_chunks_digest", "content_chunks", ["digest"])
    op.create_table(
        "disk_contents",
        sa.Column("resource_key", sa.String(1024), primary_key=True),
        sa.Column("lun", sa.Integer, primary_key=True),
        sa.Column("content_id", sa.String(36), nullable=False),
    )
    op.create_index("ix_disk_contents_content", "disk_contents", ["content_id"])
    op.create_table(
        "content_placements",
        sa.Column("content_id", sa.String(36), primary_key=True),
        sa.Column("store", sa.String(256), primary_key=True),
    )
    op.create_index("ix_content_placements_store", "content_placements", ["store"])
    op.create_table(
        "store_chunks",
        sa.Column("store", sa.String(256), primary_key=True),
        sa.Column("digest", sa.String(64), primary_key=True),
        sa.Column("stored_bytes", sa.Integer, nullable=False),
        sa.Column("raw_bytes", sa.Integer, nullable=False),
        sa.Column("last_seen", sa.Float, nullable=False),
    )
    op.create_table(
        "replicas",
        sa.Column("version_key", sa.String(1024), primary_key=True),
        sa.Column("region", sa.String(64), primary_key=True),
        sa.Column("slot", sa.Integer, primary_key=True),
        sa.Column("store", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("bytes_done", sa.BigInteger, nullable=False),
        sa.Column("bytes_total", sa.BigInteger, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_table(
        "transfers",
        sa.Column("id", sa.Integer, primary_key=True, autoincrement=True),
        sa.Column("subscription_id", sa.String(64), nullable=False),
        sa.Column("resource_key", sa.String(1024), nullable=False),
        sa.Column("from_region", sa.String(64), nullable=False),
        sa.Column("to_region", sa.String(64), nullable=False),
        sa.Column("bytes", sa.BigInteger, nullable=False),
        sa.Column("at", sa.Float, nullable=False),
    )


def downgrade() -> None:
    for table in ("transfers", "replicas", "store_chunks", "content_placements", "disk_contents",
                  "content_chunks", "contents"):
        op.drop_table(table)
