"""The schema, as SQLAlchemy Core tables. Alembic migrations in ``migrations/`` create exactly this.

Times are stored as naive UTC (``UTCDateTime``) on every backend and come back aware, so comparisons in SQL
never depend on the database server's clock or timezone. A loop's reference is not stored: it is derived from
the row id (``daemon.domain.reference``), so it can never clash or drift.
"""

from __future__ import annotations

from datetime import UTC, datetime

from sqlalchemy import (
    BigInteger,
    Column,
    DateTime,
    Dialect,
    ForeignKey,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    String,
    Table,
    Text,
    TypeDecorator,
    UniqueConstraint,
    text,
)


class UTCDateTime(TypeDecorator[datetime]):
    """Aware datetimes in, aware UTC datetimes out; naive UTC on disk."""

    impl = DateTime(timezone=False)
    cache_ok = True

    def process_bind_param(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError(f"naive datetime {value!r} given to the store; pass an aware one")
        return value.astimezone(UTC).replace(tzinfo=None)

    def process_result_value(self, value: datetime | None, dialect: Dialect) -> datetime | None:
        return None if value is None else value.replace(tzinfo=UTC)


metadata = MetaData(
    naming_convention={
        "ix": "ix_%(table_name)s_%(column_0_N_name)s",
        "uq": "uq_%(table_name)s_%(column_0_N_name)s",
        "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
        "pk": "pk_%(table_name)s",
    }
)

customers = Table(
    "customers",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("email", String(320), nullable=False, unique=True),
    Column("name", String(200), nullable=False, server_default=""),
    Column("first_name", String(100), nullable=False, server_default=""),
    Column("language", String(35)),
    Column("tz_offset_minutes", Integer),
    Column("consent", String(16), nullable=False, server_default="unknown"),
    Column("consent_at", UTCDateTime),
    Column("consent_via", String(200), nullable=False, server_default=""),
    Column("opted_out_at", UTCDateTime),
    Column("undeliverable_at", UTCDateTime),
    Column("undeliverable_reason", Text, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
)

loops = Table(
    "loops",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("inbox", String(100), nullable=False),
    Column("customer_id", Integer, ForeignKey("customers.id"), nullable=False),
    Column("state", String(20), nullable=False),
    Column("owner", String(320), nullable=False),
    Column("subject", Text, nullable=False),
    Column("language", String(35)),
    Column("opened_at", UTCDateTime, nullable=False),
    Column("promised_by", UTCDateTime),
    Column("acknowledged_at", UTCDateTime),
    Column("outcome", Text),
    Column("outcome_at", UTCDateTime),
    Column("outcome_sent_at", UTCDateTime),
    Column("checked_in_at", UTCDateTime),
    Column("closed_at", UTCDateTime),
    Column("close_reason", Text, nullable=False, server_default=""),
    Column("follow_throughs", Integer, nullable=False, server_default="0"),
    Column("paused_until", UTCDateTime),
    Column("closes_at", UTCDateTime),
    Column("parent_id", Integer, ForeignKey("loops.id")),
    # Lookups by customer, loop or Message-ID read the newest or oldest row first: indexed with the id, one
    # index serves both the match and the order, so the planner never walks the primary key instead.
    Index("ix_loops_customer_id", "customer_id", "id"),
    Index("ix_loops_state", "state"),
    Index(
        "ix_loops_closes_at",
        "closes_at",
        sqlite_where=text("closes_at IS NOT NULL"),
        postgresql_where=text("closes_at IS NOT NULL"),
    ),
)

touches = Table(
    "touches",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("loop_id", Integer, ForeignKey("loops.id"), nullable=False, index=True),
    Column("kind", String(32), nullable=False),
    Column("state", String(16), nullable=False),
    Column("due_at", UTCDateTime, nullable=False),
    Column("recipient", String(320), nullable=False),
    Column("message_id", String(255), nullable=False, unique=True),
    Column("sequence", Integer, nullable=False, server_default="0"),
    Column("attempts", Integer, nullable=False, server_default="0"),
    Column("note", Text, nullable=False, server_default=""),
    Column("answers", String(998)),
    Column("reason", Text, nullable=False, server_default=""),
    Column("created_at", UTCDateTime, nullable=False),
    Column("sent_at", UTCDateTime),
    Column("subject", Text),
    Column("body_text", Text),
    Column("body_html", Text),
    Column("template", String(255)),
    Column("template_version", String(64)),
    # The dispatcher's claim order: the claim reads one index entry, however many touches are due at once.
    Index(
        "ix_touches_planned_due",
        "due_at",
        "id",
        sqlite_where=text("state = 'planned'"),
        postgresql_where=text("state = 'planned'"),
    ),
    Index("ix_touches_recipient_sent", "recipient", "sent_at"),
    # The acknowledgement goes once per loop, ever: the database refuses a second one.
    Index(
        "uq_touches_one_acknowledgement",
        "loop_id",
        unique=True,
        sqlite_where=text("kind = 'acknowledgement'"),
        postgresql_where=text("kind = 'acknowledgement'"),
    ),
)

messages = Table(
    "messages",
    metadata,
    Column("id", Integer, primary_key=True),
    Column("direction", String(3), nullable=False),
    Column("inbox", String(100), nullable=False),
    Column("folder", String(255)),
    Column("uidvalidity", BigInteger),
    Column("uid", BigInteger),
    Column("fingerprint", String(64), unique=True),
    Column("message_id", String(998)),
    Column("in_reply_to", Text, nullable=False, server_default=""),
    Column("references", Text, nullable=False, server_default=""),
    Column("from_email", String(320), nullable=False, server_default=""),
    Column("from_name", String(200), nullable=False, server_default=""),
    Column("recipients", Text, nullable=False, server_default=""),
    Column("subject", Text, nullable=False, server_default=""),
    Column("sent_at", UTCDateTime),
    Column("received_at", UTCDateTime, nullable=False),
    Column("text_body", Text, nullable=False, server_default=""),
    Column("classification", String(20), nullable=False),
    Column("reason", Text, nullable=False, server_default=""),
    Column("loop_id", Integer, ForeignKey("loops.id")),
    Column("touch_id", Integer, ForeignKey("touches.id")),
    Column("size", Integer, nullable=False, server_default="0"),
    Column("raw", LargeBinary),
    # When the team was told about this message (quarantined messages only; see App.report_quarantine).
    Column("reported_at", UTCDateTime),
    UniqueConstraint("inbox", "folder", "uidvalidity", "uid"),
    Index("ix_messages_message_id", "message_id", "id"),
    Index("ix_messages_loop_id", "loop_id", "id"),
    # Quarantined messages nobody has been told about yet: a handful at most, found without reading the table.
    Index(
        "ix_messages_quarantine_unreported",
        "id",
        sqlite_where=text("classification = 'quarantined' AND reported_at IS NULL"),
        postgresql_where=text("classification = 'quarantined' AND reported_at IS NULL"),
    ),
)

intake_attempts = Table(
    "intake_attempts",
    metadata,
    Column("inbox", String(100), primary_key=True),
    Column("folder", String(255), primary_key=True),
    Column("uidvalidity", BigInteger, primary_key=True),
    Column("uid", BigInteger, primary_key=True),
    Column("attempts", Integer, nullable=False),
    Column("last_at", UTCDateTime, nullable=False),
)

mailboxes = Table(
    "mailboxes",
    metadata,
    Column("inbox", String(100), primary_key=True),
    Column("folder", String(255), primary_key=True),
    Column("uidvalidity", BigInteger, nullable=False),
    Column("last_uid", BigInteger, nullable=False),
    Column("updated_at", UTCDateTime, nullable=False),
)
