"""Index versions by (source, state): "is a version still being created from this source?"
is asked on every version create and must not scan every version made from that source.

Revision ID: 0004
Revises: 0003
"""
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_resources_source", table_name="resources")
    op.create_index("ix_resources_source_state", "resources", ["source_key", "provisioning_state"])


def downgrade() -> None:
    op.drop_index("ix_resources_source_state", table_name="resources")
    op.create_index("ix_resources_source", "resources", ["source_key"])
