"""Audit entries: who changed what, when. Never a secret."""
from datetime import datetime

from sqlalchemy import String, Text
from sqlalchemy.orm import Mapped, mapped_column

from ..clock import utcnow
from ..extensions import db


class AuditEntry(db.Model):
    """One change or sensitive read, as shown on the Audit log page."""

    __tablename__ = "audit_entries"

    id: Mapped[int] = mapped_column(primary_key=True)
    at: Mapped[datetime] = mapped_column(default=utcnow, index=True)
    actor: Mapped[str] = mapped_column(String(80))
    action: Mapped[str] = mapped_column(String(64))
    agent_id: Mapped[str | None] = mapped_column(String(64))
    environment: Mapped[str | None] = mapped_column(String(64))
    details: Mapped[str] = mapped_column(Text, default="")
    via: Mapped[str | None] = mapped_column(String(120))  # e.g. "API token 'ci'"; empty for the pages and CLI
