"""Operations carry what their request asked (a VM run-command's script) and what they produced
(its output), for actions whose result is more than a resource's new state.

Revision ID: 0013
Revises: 0012
"""
import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.add_column("operations", sa.Column("payload", sa.Text, nullable=True))
    op.add_column("operations", sa.Column("result", sa.Text, nullable=True))


def downgrade() -> None:
    op.drop_column("operations", "result")
    op.drop_column("operations", "payload")
