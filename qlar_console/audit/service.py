"""Recording audit entries (the caller commits, so the entry lands with the change)."""
from flask import g, has_app_context

from ..crypto import redact
from ..extensions import db
from .models import AuditEntry


def record(actor: str, action: str, details: str = "", *, agent_id=None, environment=None) -> AuditEntry:
    """Add an audit entry to the current transaction; details are redacted of any secret.

    An API call sets g.audit_via, so every entry it causes says which token made it.
    """
    entry = AuditEntry(
        actor=actor, action=action, agent_id=agent_id, environment=environment,
        details=redact(details).replace("\x00", "\\x00"),  # PostgreSQL text holds no NUL
        via=g.get("audit_via") if has_app_context() else None,
    )
    db.session.add(entry)
    if has_app_context():
        g.audit_recorded = True
    return entry


def recent(limit: int = 200) -> list[AuditEntry]:
    """The newest audit entries first."""
    return list(db.session.scalars(db.select(AuditEntry).order_by(AuditEntry.id.desc()).limit(limit)))
