"""The activity log: every write and every refused request, by subscription and time.

Revision ID: 0010
Revises: 0009
"""
import sqlalchemy as sa
from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activity_log",
        sa.Column("id", sa.String(36), primary_key=True),
        sa.Column("subscription_id", sa.String(64)),
        sa.Column("event_timestamp", sa.String(40), nullable=False),
        sa.Column("submission_timestamp", sa.String(40), nullable=False),
        sa.Column("tenant_id", sa.String(64)),
        sa.Column("caller", sa.String(256), nullable=False),
        sa.Column("caller_object_id", sa.String(64)),
        sa.Column("method", sa.String(16), nullable=False),
        sa.Column("path", sa.Text, nullable=False),
        sa.Column("action", sa.String(512)),
        sa.Column("scope", sa.Text, nullable=False),
        sa.Column("resource_id", sa.Text, nullable=False),
        sa.Column("resource_group", sa.String(128)),
        sa.Column("status_code", sa.Integer, nullable=False),
        sa.Column("correlation_id", sa.String(128), nullable=False),
        sa.Column("request_id", sa.String(64), nullable=False),
        sa.Column("client_request_id", sa.String(128)),
        sa.Column("client_ip", sa.String(64)),
    )
    op.create_index("ix_activity_log_subscription_time", "activity_log", ["subscription_id", "event_timestamp"])
    op.create_index("ix_activity_log_time", "activity_log", ["event_timestamp"])


def downgrade() -> None:
    op.drop_table("activity_log")
