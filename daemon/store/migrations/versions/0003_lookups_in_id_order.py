"""lookups by customer, loop and Message-ID indexed together with the id

Queries such as "the message with this Message-ID, oldest first" (``WHERE message_id = ? ORDER BY id LIMIT 1``)
had an index for the match and the primary key for the order. Without fresh statistics PostgreSQL walked the
primary key and filtered, reading the whole table: 35 ms a touch with 100,000 loops. With the id in the same
index, one index serves both.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-24 21:20:00
"""

from __future__ import annotations

from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

INDEXES = (
    ("loops", "ix_loops_customer_id", "customer_id"),
    ("messages", "ix_messages_message_id", "message_id"),
    ("messages", "ix_messages_loop_id", "loop_id"),
)


def upgrade() -> None:
    for table, name, column in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
            batch_op.create_index(name, [column, "id"], unique=False)


def downgrade() -> None:
    for table, name, column in INDEXES:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.drop_index(name)
            batch_op.create_index(name, [column], unique=False)
