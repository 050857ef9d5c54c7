"""Initial schema: resources, version target regions, long-running operations.

Revision ID: 0001
Revises:
"""
import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "resources",
        sa.Column("key", sa.String(1024), primary_key=True),
        sa.Column("id", sa.String(1024), nullable=False),
        sa.Column("type", sa.String(128), nullable=False),
        sa.Column("subscription_id", sa.String(64), nullable=False),
        sa.Column("resource_group", sa.String(128)),
        sa.Column("parent_key", sa.String(1024), nullable=False),
        sa.Column("name", sa.String(256), nullable=False),
        sa.Column("sort_key", sa.String(256), nullable=False),
        sa.Column("location", sa.String(64)),
        sa.Column("properties", sa.Text, nullable=False),
        sa.Column("tags", sa.Text, nullable=False),
        sa.Column("sku", sa.Text),
        sa.Column("provisioning_state", sa.String(32), nullable=False),
        sa.Column("identity_key", sa.String(512)),
        sa.Column("version_major", sa.BigInteger),
        sa.Column("version_minor", sa.BigInteger),
        sa.Column("version_patch", sa.BigInteger),
        sa.Column("exclude_from_latest", sa.Boolean, nullable=False),
        sa.Column("end_of_life", sa.String(40)),
        sa.Column("source_key", sa.String(1024)),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("updated_at", sa.String(40), nullable=False),
        sa.UniqueConstraint("parent_key", "identity_key", name="uq_resources_identity"),
    )
    op.create_index("ix_resources_parent_sort", "resources", ["parent_key", "sort_key"])
    op.create_index("ix_resources_group_type_sort", "resources",
                    ["subscription_id", "resource_group", "type", "sort_key"])
    op.create_index("ix_resources_sub_type_sort", "resources", ["subscription_id", "type", "sort_key"])
    op.create_index("ix_resources_sub_type_location", "resources", ["subscription_id", "type", "location"])
    op.create_index("ix_resources_latest", "resources",
                    ["parent_key", "version_major", "version_minor", "version_patch"])
    op.create_index("ix_resources_source", "resources", ["source_key"])

    op.create_table(
        "target_regions",
        sa.Column("version_key", sa.String(1024), primary_key=True),
        sa.Column("region", sa.String(64), primary_key=True),
        sa.Column("replica_count", sa.Integer, nullable=False),
        sa.Column("storage_account_type", sa.String(32), nullable=False),
        sa.Column("exclude_from_latest", sa.Boolean, nullable=False),
        sa.Column("state", sa.String(32), nullable=False),
        sa.Column("progress", sa.Integer, nullable=False),
        sa.Column("details", sa.Text, nullable=False),
    )
    op.create_index("ix_target_regions_region_state", "target_regions", ["region", "state"])

    op.create_table(
        "operations",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("resource_key", sa.String(1024), nullable=False),
        sa.Column("resource_id", sa.String(1024), nullable=False),
        sa.Column("resource_type", sa.String(128), nullable=False),
        sa.Column("subscription_id", sa.String(64), nullable=False),
        sa.Column("action", sa.String(16), nullable=False),
        sa.Column("region", sa.String(64), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("error", sa.Text),
        sa.Column("start_time", sa.String(40), nullable=False),
        sa.Column("end_time", sa.String(40)),
        sa.Column("lease_owner", sa.String(64)),
        sa.Column("lease_until", sa.Float, nullable=False),
        sa.Column("attempts", sa.Integer, nullable=False),
    )
    op.create_index("ix_operations_status_lease", "operations", ["status", "lease_until"])
    op.create_index("ix_operations_resource", "operations", ["resource_key"])


def downgrade() -> None:
    op.drop_table("operations")
    op.drop_table("target_regions")
    op.drop_table("resources")
