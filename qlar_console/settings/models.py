"""Agents, their environments and each pair's escalation settings (webhook included)."""
from datetime import datetime

from sqlalchemy import JSON, ForeignKey, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from ..clock import utcnow
from ..engine.models import SigningKeys
from ..extensions import db

TRIGGER_CONDITIONS = (
    "Angry Customer Escalation",
    "Explicit Human Request",
    "Repeated Failed Answers",
    "Sensitive Topic",
)
URGENCY_LEVELS = ("low", "medium", "high", "critical")
CLAIM_TIMEOUT_MINUTES = (1, 1440)


class Agent(db.Model):
    """A qlar agent, such as agent-123."""

    __tablename__ = "agents"

    id: Mapped[str] = mapped_column(String(64), primary_key=True)
    created_at: Mapped[datetime] = mapped_column(default=utcnow)
    settings: Mapped[list["EscalationSettings"]] = relationship(
        back_populates="agent", order_by="EscalationSettings.environment"
    )


class EscalationSettings(SigningKeys, db.Model):
    """The Escalation page of one agent x environment: behaviour plus the webhook."""

    __tablename__ = "escalation_settings"
    __table_args__ = (UniqueConstraint("agent_id", "environment"),)

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[str] = mapped_column(ForeignKey("agents.id"))
    environment: Mapped[str] = mapped_column(String(64))
    agent: Mapped[Agent] = relationship(back_populates="settings")

    trigger_conditions: Mapped[list[str]] = mapped_column(JSON, default=lambda: [TRIGGER_CONDITIONS[0]])
    default_urgency: Mapped[str] = mapped_column(String(16), default="high")
    claim_timeout_minutes: Mapped[int] = mapped_column(default=30)

    webhook_enabled: Mapped[bool] = mapped_column(default=False)
    webhook_url: Mapped[str | None] = mapped_column(String(2048))
    # secret_ciphertext, secret_created_at, previous_secret_ciphertext, previous_secret_expires_at: SigningKeys
    retry_schedule: Mapped[str | None] = mapped_column(String(200))  # overrides QLAR_RETRY_SCHEDULE; None: default
    disabled_reason: Mapped[str | None] = mapped_column(Text)  # why the dispatcher switched it off (410)
    disabled_at: Mapped[datetime | None]

    version: Mapped[int] = mapped_column(default=1)
    saved_by: Mapped[str | None] = mapped_column(String(80))
    saved_at: Mapped[datetime | None]

    @property
    def label(self) -> str:
        """How the UI names this pair: agent-123 · production."""
        return f"{self.agent_id} \u00b7 {self.environment}"


class ReceiverCheck(db.Model):
    """One run of the receiver conformance check (its scorecard; never a secret)."""

    __tablename__ = "receiver_checks"

    id: Mapped[int] = mapped_column(primary_key=True)
    agent_id: Mapped[str] = mapped_column(String(64))
    environment: Mapped[str] = mapped_column(String(64))
    ran_at: Mapped[datetime] = mapped_column(default=utcnow)
    ran_by: Mapped[str] = mapped_column(String(80))
    url: Mapped[str] = mapped_column(String(2048))
    passed: Mapped[bool]
    results: Mapped[list] = mapped_column(JSON)
    diagnosis: Mapped[str | None] = mapped_column(Text)  # one cause behind every failure, when there is one
