"""The engine's tables: the outbox (one event per transition, with its delivery state), one attempt per
HTTP try, each endpoint's health and alert recipients, the alert outbox, worker heartbeats, and the daily
outcome counters."""
from datetime import date, datetime

from sqlalchemy import JSON, ForeignKey, Index, LargeBinary, String, Text, false
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..extensions import db

PENDING, SUCCEEDED, FAILED = "pending", "succeeded", "failed"
SKIPPED, CANCELLED = "skipped", "cancelled"  # webhook off when written / switched off before sending
STATUSES = (PENDING, SUCCEEDED, FAILED, SKIPPED, CANCELLED)
EVENT_TYPES = ("created", "claimed", "completed", "released")
HEALTHY, FAILING, PAUSED = "healthy", "failing", "paused"
HEALTH_STATES = (HEALTHY, FAILING, PAUSED)
ALERT_TYPES = ("endpoint.failing", "endpoint.paused", "endpoint.recovered", "delivery.failed")
SENT, NO_RECIPIENT = "sent", "skipped"  # an alert row's states besides PENDING and FAILED


class Event(db.Model):
    """A lifecycle event whose body is frozen as bytes when written, and the state of delivering it.

    Indexes the engine's queries use: ix_events_due serves the claim's scan of due events in order and the
    sleep query; ix_events_escalation_sequence serves the per-escalation order check, per endpoint (NOT EXISTS
    an earlier pending event); ix_events_endpoint an endpoint's log; the primary key every lease and record
    update. (No index leads with endpoint_id and status: PostgreSQL's planner would take it for the order
    check before it has statistics, and scan an endpoint's whole backlog for every candidate.)
    """

    __tablename__ = "events"
    __table_args__ = (
        Index("ix_events_due", "status", "next_attempt_at"),
        Index("ix_events_escalation_sequence", "escalation_id", "endpoint_id", "sequence"),
        Index("ix_events_endpoint", "endpoint_id", "id"),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # evt_..., sortable by creation time
    # One row per event x endpoint: the primary endpoint's row has the event's own id (its webhook-id); the
    # row of each additional endpoint has an id of its own and the primary row's id as message_id.
    endpoint_id: Mapped[str] = mapped_column(String(40))
    message_id: Mapped[str | None] = mapped_column(String(40), index=True)  # webhook-id when not `id`
    escalation_id: Mapped[str] = mapped_column(ForeignKey("escalations.id"))  # Escalation.events orders INSERTs
    agent_id: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64))
    event_type: Mapped[str] = mapped_column(String(32))
    sequence: Mapped[int]
    body: Mapped[bytes] = mapped_column(LargeBinary)
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    synthetic: Mapped[bool] = mapped_column(default=False, server_default=false())  # X-Qlar-Synthetic: true

    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    tries: Mapped[int] = mapped_column(default=0)  # tries in the current run (a Resend starts a new run)
    attempt_count: Mapped[int] = mapped_column(default=0)  # all tries ever, numbers the attempts
    next_attempt_at: Mapped[datetime | None]
    lease_owner: Mapped[str | None] = mapped_column(String(80))
    lease_until: Mapped[datetime | None]
    manual_by: Mapped[str | None] = mapped_column(String(80))  # who asked for a Resend not yet tried
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    delivered_at: Mapped[datetime | None]

    attempts: Mapped[list["Attempt"]] = relationship(
        back_populates="event", order_by="Attempt.number", cascade="all, delete-orphan"
    )

    @property
    def webhook_id(self) -> str:
        """The webhook-id every endpoint's copy of this event is sent with."""
        return self.message_id or self.id


class Attempt(db.Model):
    """One HTTP try: exactly what was sent and what came back."""

    __tablename__ = "attempts"

    id: Mapped[int] = mapped_column(primary_key=True)
    event_id: Mapped[str] = mapped_column(ForeignKey("events.id"), index=True)
    event: Mapped[Event] = relationship(back_populates="attempts")
    number: Mapped[int]
    trigger: Mapped[str] = mapped_column(String(16))  # scheduled | manual
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    duration_ms: Mapped[float | None]
    url: Mapped[str] = mapped_column(String(2048))
    request_headers: Mapped[dict] = mapped_column(JSON, default=dict)
    response_status: Mapped[int | None]
    response_headers: Mapped[dict | None] = mapped_column(JSON)
    response_body: Mapped[bytes | None] = mapped_column(LargeBinary)  # the first 16 KiB
    error: Mapped[str | None] = mapped_column(Text)
    next_attempt_at: Mapped[datetime | None]


class WorkerHeartbeat(db.Model):
    """A dispatcher process's last sign of life, for the queue-health panel."""

    __tablename__ = "worker_heartbeats"

    id: Mapped[str] = mapped_column(String(120), primary_key=True)  # host:pid
    threads: Mapped[int]
    started_at: Mapped[datetime] = mapped_column(default=utcnow)
    heartbeat_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)


class DailyOutcome(db.Model):
    """How many events finished (succeeded or finally failed) on a UTC day: the Deliveries chart.

    Kept as counters, so drawing the chart reads a few rows however large the log grows.
    """

    __tablename__ = "daily_outcomes"

    day: Mapped[date] = mapped_column(primary_key=True)
    outcome: Mapped[str] = mapped_column(String(16), primary_key=True)
    count: Mapped[int] = mapped_column(default=0)


class SigningKeys:
    """A webhook's signing key, encrypted, and its predecessor during a Regenerate Key grace period
    (the card's webhook on its settings row, each additional endpoint on its own row)."""

    secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    secret_created_at: Mapped[datetime | None]
    previous_secret_ciphertext: Mapped[str | None] = mapped_column(Text)
    previous_secret_expires_at: Mapped[datetime | None]

    def previous_secret_active(self, now: datetime) -> bool:
        """True while a regenerated key's predecessor is still inside its grace period."""
        return bool(
            self.previous_secret_ciphertext
            and self.previous_secret_expires_at
            and self.previous_secret_expires_at > now
        )


class Endpoint(SigningKeys, db.Model):
    """Where a pair's events go: its health (healthy, failing, paused), the probe of a paused endpoint,
    and who is alerted. The card's webhook is the pair's primary endpoint (its URL, switch, key and
    schedule stay on the settings row); an additional endpoint keeps its own here, with the event types it
    hears (none: all), its custom headers and a description.

    Health is kept here, never on the settings row, so each endpoint of a pair has its own.
    """

    __tablename__ = "endpoints"
    __table_args__ = (Index("ix_endpoints_pair", "agent_id", "environment"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # ep_...
    agent_id: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64))
    is_primary: Mapped[bool] = mapped_column(default=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)

    # An additional endpoint's own settings (unused on the primary, whose settings are the card's)
    url: Mapped[str | None] = mapped_column(String(2048))
    enabled: Mapped[bool] = mapped_column(default=True)
    description: Mapped[str | None] = mapped_column(String(200))
    event_types: Mapped[list[str]] = mapped_column(JSON, default=list)  # none: every event type
    headers: Mapped[dict[str, str]] = mapped_column(JSON, default=dict)  # custom headers, in the order given
    retry_schedule: Mapped[str | None] = mapped_column(String(200))  # None: QLAR_RETRY_SCHEDULE
    disabled_reason: Mapped[str | None] = mapped_column(Text)  # why the dispatcher switched it off (410)
    disabled_at: Mapped[datetime | None]
    version: Mapped[int] = mapped_column(default=1)
    saved_by: Mapped[str | None] = mapped_column(String(80))
    saved_at: Mapped[datetime | None]

    alert_emails: Mapped[list[str]] = mapped_column(JSON, default=list)
    alert_url: Mapped[str | None] = mapped_column(String(2048))

    health: Mapped[str] = mapped_column(String(16), default=HEALTHY, index=True)
    health_since: Mapped[datetime | None]  # when it entered the state it is in
    failing_since: Mapped[datetime | None]  # the outage's first failed try (no success since); None when healthy
    consecutive_failures: Mapped[int] = mapped_column(default=0)
    last_error: Mapped[str | None] = mapped_column(Text)
    last_error_at: Mapped[datetime | None]
    last_success_at: Mapped[datetime | None]
    pause_reason: Mapped[str | None] = mapped_column(Text)
    probe_delay: Mapped[float | None]  # seconds until the next probe while paused (doubles, capped)
    next_probe_at: Mapped[datetime | None]
    failing_alerted: Mapped[bool] = mapped_column(default=False)  # at most one of each alert per outage
    paused_alerted: Mapped[bool] = mapped_column(default=False)
    check_started_at: Mapped[datetime | None]  # the last Check receiver's start (one each MIN_INTERVAL)


class Alert(db.Model):
    """The alert outbox: one row per alert and channel (email or webhook), sent, retried and logged apart
    from deliveries, so an alert that cannot be sent never holds an event up."""

    __tablename__ = "alerts"
    __table_args__ = (Index("ix_alerts_due", "status", "next_attempt_at"),
                      Index("ix_alerts_pair", "agent_id", "environment", "created_at"))

    id: Mapped[int] = mapped_column(primary_key=True)
    alert_id: Mapped[str] = mapped_column(String(40))  # alr_...: the email and the POST of one alert share it
    endpoint_id: Mapped[str] = mapped_column(ForeignKey("endpoints.id"))
    agent_id: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64))
    type: Mapped[str] = mapped_column(String(32))
    channel: Mapped[str] = mapped_column(String(16))  # email | webhook | none (no recipient set)
    target: Mapped[str | None] = mapped_column(Text)  # the addresses (comma-separated) or the alert URL
    subject: Mapped[str] = mapped_column(String(300))
    body: Mapped[bytes] = mapped_column(LargeBinary)  # the alert document, frozen JSON
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    tries: Mapped[int] = mapped_column(default=0)
    next_attempt_at: Mapped[datetime | None]
    lease_until: Mapped[datetime | None]
    last_status_code: Mapped[int | None]
    last_error: Mapped[str | None] = mapped_column(Text)
    sent_at: Mapped[datetime | None]
