"""quarantined messages remember when the team was told

A message intake could not handle is recorded raw and quarantined; it is never answered. ``reported_at`` records
when the staff were mailed about it, so each one is reported once, and a partial index finds the unreported ones
without reading the table.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 02:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

UNREPORTED = "classification = 'quarantined' AND reported_at IS NULL"


def upgrade() -> None:
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.add_column(sa.Column("reported_at", sa.DateTime(), nullable=True))
    op.create_index(
        "ix_messages_quarantine_unreported",
        "messages",
        ["id"],
        unique=False,
        sqlite_where=sa.text(UNREPORTED),
        postgresql_where=sa.text(UNREPORTED),
    )


def downgrade() -> None:
    op.drop_index("ix_messages_quarantine_unreported", table_name="messages")
    with op.batch_alter_table("messages", schema=None) as batch_op:
        batch_op.drop_column("reported_at")
