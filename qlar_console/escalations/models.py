"""An escalation, as qlar's supervisor workspace sees it."""
from datetime import datetime

from sqlalchemy import ForeignKey, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db

PENDING, CLAIMED, COMPLETED = "Pending", "Claimed", "Completed"


class Escalation(db.Model):
    """One escalation of an agent x environment; its transitions emit events."""

    __tablename__ = "escalations"

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
    created_at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    updated_at: Mapped[datetime] = mapped_column(default=utcnow, onupdate=utcnow)

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
