"""An escalation, as qlar's supervisor workspace sees it, and the simulate jobs that drive them."""
from datetime import datetime, timedelta

from sqlalchemy import JSON, ForeignKey, Index, String, Text, false, text
from sqlalchemy.orm import Mapped, WriteOnlyMapped, mapped_column, relationship

from ..clock import utcnow
from ..engine.models import Event
from ..extensions import db

PENDING, CLAIMED, COMPLETED = "Pending", "Claimed", "Completed"
RUNNING, DELIVERING, FINISHED, FAILED, CANCELLED = "running", "delivering", "finished", "failed", "cancelled"
JOB_STATUSES = (RUNNING, DELIVERING, FINISHED, FAILED, CANCELLED)
ABANDONED_AFTER = timedelta(seconds=60)  # a running job silent this long lost its thread (its process ended)


class Escalation(db.Model):
    """One escalation of an agent x environment; its transitions emit events."""

    __tablename__ = "escalations"
    __table_args__ = (Index("ix_escalations_synthetic", "agent_id", "environment", "synthetic"),)

    id: Mapped[str] = mapped_column(String(40), primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"))
    environment: Mapped[str] = mapped_column(String(64))
    thread_id: Mapped[str] = mapped_column(String(120))
    status: Mapped[str] = mapped_column(String(16), default=PENDING)
    urgency_level: Mapped[str] = mapped_column(String(16))
    topic: Mapped[str] = mapped_column(String(120))
    area: Mapped[str] = mapped_column(String(120))
    reason: Mapped[str] = mapped_column(Text)
    trigger_condition: Mapped[str] = mapped_column(String(120))
    claimed_by: Mapped[str | None] = mapped_column(String(80))
    resolution_notes: Mapped[str | None] = mapped_column(Text)
    last_sequence: Mapped[int] = mapped_column(default=0)
    synthetic: Mapped[bool] = mapped_column(default=False, server_default=false())  # simulator, scenario, test flow
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)
    # Never loaded; it tells the unit of work to INSERT an escalation before the events that refer to it.
    events: WriteOnlyMapped[Event] = relationship()

    def as_payload(self) -> dict:
        """The `escalation` object of an event body (step 8's shape, plus claim and resolution)."""
        payload = {
            "id": self.id,
            "threadId": self.thread_id,
            "status": self.status,
            "urgencyLevel": self.urgency_level,
            "topic": self.topic,
            "area": self.area,
            "reason": self.reason,
            "triggerCondition": self.trigger_condition,
        }
        if self.claimed_by:
            payload["claimedBy"] = self.claimed_by
        if self.resolution_notes:
            payload["resolutionNotes"] = self.resolution_notes
        return payload


class SimulationJob(db.Model):
    """A run of synthetic flows started from the API, in a thread of one web process; any process can read it."""

    __tablename__ = "simulation_jobs"
    __table_args__ = (  # one unfinished job per agent x environment, whichever process starts it
        Index("ix_simulation_jobs_one_unfinished", "agent_id", "environment", unique=True,
              sqlite_where=text("finished_at IS NULL"), postgresql_where=text("finished_at IS NULL")),
    )

    id: Mapped[str] = mapped_column(String(40), primary_key=True)  # job-...
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"))
    environment: Mapped[str] = mapped_column(String(64))
    status: Mapped[str] = mapped_column(String(16), default=RUNNING)
    flows: Mapped[int]
    rate: Mapped[float | None]  # flows per second; None: as fast as possible
    wait_seconds: Mapped[int]
    flows_done: Mapped[int] = mapped_column(default=0)
    created_by: Mapped[str] = mapped_column(String(80))
    started_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    progress_at: Mapped[datetime] = mapped_column(default=utcnow)  # the thread's last sign of life
    finished_at: Mapped[datetime | None]
    error: Mapped[str | None] = mapped_column(Text)
    summary: Mapped[dict | None] = mapped_column(JSON)  # simulate.Summary's fields
    scenario: Mapped[dict | None] = mapped_column(JSON)  # the scenario document each flow follows; None: random flows

    def abandoned(self, now: datetime) -> bool:
        """Unfinished, and its thread has not reported for ABANDONED_AFTER: it died with its process."""
        return self.finished_at is None and now - self.progress_at > ABANDONED_AFTER
