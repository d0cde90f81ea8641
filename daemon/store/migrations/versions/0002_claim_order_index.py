"""planned touches indexed in claim order (due_at, id)

The dispatcher claims ``ORDER BY due_at, id LIMIT 1``. With the index on ``due_at`` alone PostgreSQL read and
sorted every due touch with the same due time for each claim (a batch's touches share one), so a backlog of
100,000 made each claim scan 100,000 rows. Indexed on ``(due_at, id)`` the claim reads one entry.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-24 20:45:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None

PLANNED = sa.text("state = 'planned'")


def upgrade() -> None:
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.drop_index("ix_touches_planned_due", sqlite_where=PLANNED, postgresql_where=PLANNED)
        batch_op.create_index(
            "ix_touches_planned_due", ["due_at", "id"], unique=False, sqlite_where=PLANNED, postgresql_where=PLANNED
        )


def downgrade() -> None:
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.drop_index("ix_touches_planned_due", sqlite_where=PLANNED, postgresql_where=PLANNED)
        batch_op.create_index(
            "ix_touches_planned_due", ["due_at"], unique=False, sqlite_where=PLANNED, postgresql_where=PLANNED
        )
