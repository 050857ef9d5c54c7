"""Index resources by (type, state): "which versions are being created?" is asked on every version
create and source delete (a source may be any being-created version's OS or data disk), and must
not scan every version.

Revision ID: 0007
Revises: 0006
"""
from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.drop_index("ix_resources_source_state", table_name="resources")
    op.create_index("ix_resources_type_state", "resources", ["type", "provisioning_state"])


def downgrade() -> None:
    op.drop_index("ix_resources_type_state", table_name="resources")
    op.create_index("ix_resources_source_state", "resources", ["source_key", "provisioning_state"])
