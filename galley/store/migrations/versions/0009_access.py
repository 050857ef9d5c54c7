"""Access: custom role definitions, role assignments, groups of principals.

Revision ID: 0009
Revises: 0008
"""
import sqlalchemy as sa
from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "role_definitions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("role_name", sa.String(512), nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("actions", sa.Text, nullable=False),
        sa.Column("not_actions", sa.Text, nullable=False),
        sa.Column("assignable_scopes", sa.Text, nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "role_assignments",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("scope", sa.String(1024), nullable=False),
        sa.Column("scope_key", sa.String(1024), nullable=False),
        sa.Column("role_definition_id", sa.String(64), nullable=False),
        sa.Column("principal_id", sa.String(64), nullable=False),
        sa.Column("principal_type", sa.String(32), nullable=False),
        sa.Column("description", sa.Text),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("created_by", sa.String(64)),
    )
    op.create_index("ix_role_assignments_principal", "role_assignments", ["principal_id"])
    op.create_index("ix_role_assignments_scope", "role_assignments", ["scope_key"])
    op.create_table(
        "groups",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "group_members",
        sa.Column("group_id", sa.String(64), primary_key=True),
        sa.Column("member_id", sa.String(64), primary_key=True),
    )
    op.create_index("ix_group_members_member", "group_members", ["member_id"])


def downgrade() -> None:
    for table in ("group_members", "groups", "role_assignments", "role_definitions"):
        op.drop_table(table)
