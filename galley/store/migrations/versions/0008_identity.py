"""Identity: tenants, subscriptions, service principals, their hashed secrets, token signing keys.

Revision ID: 0008
Revises: 0007
"""
import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "tenants",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("issuer", sa.String(1024)),
        sa.Column("is_home", sa.Boolean, nullable=False, default=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_table(
        "subscriptions",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_subscriptions_tenant", "subscriptions", ["tenant_id"])
    op.create_table(
        "principals",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("app_id", sa.String(64), nullable=False, unique=True),
        sa.Column("tenant_id", sa.String(64), nullable=False),
        sa.Column("display_name", sa.String(256), nullable=False),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("failed_sign_ins", sa.Integer, nullable=False, default=0),
        sa.Column("locked_until", sa.Float, nullable=False, default=0.0),
        sa.Column("created_at", sa.String(40), nullable=False),
    )
    op.create_index("ix_principals_tenant", "principals", ["tenant_id"])
    op.create_table(
        "principal_secrets",
        sa.Column("id", sa.String(64), primary_key=True),
        sa.Column("principal_id", sa.String(64), nullable=False),
        sa.Column("secret_hash", sa.String(512), nullable=False),
        sa.Column("hint", sa.String(8), nullable=False),
        sa.Column("created_at", sa.String(40), nullable=False),
        sa.Column("expires_at", sa.Float),
    )
    op.create_index("ix_principal_secrets_principal", "principal_secrets", ["principal_id"])
    op.create_table(
        "signing_keys",
        sa.Column("kid", sa.String(64), primary_key=True),
        sa.Column("private_pem", sa.Text, nullable=False),
        sa.Column("created_at", sa.Float, nullable=False),
        sa.Column("retired_at", sa.Float),
        sa.Column("valid_until", sa.Float),
    )


def downgrade() -> None:
    for table in ("signing_keys", "principal_secrets", "principals", "subscriptions", "tenants"):
        op.drop_table(table)
