"""The delivery feature's own table: receiver conformance checks (the engine's tables are in engine/models.py)."""
from datetime import datetime

from sqlalchemy import JSON, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db


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
