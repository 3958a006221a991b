"""What the Escalations page lists: which agent x environment it shows, and that pair's newest escalations."""
import logging

from ..extensions import db
from ..settings.models import EscalationSettings
from .models import Escalation

log = logging.getLogger(__name__)

LIST_LIMIT = 50


def choose_pair(pairs: list[EscalationSettings], agent_id: str | None = None,
                environment: str | None = None) -> EscalationSettings | None:
    """The pair named (either part may be left out): the first with its webhook enabled, else the first; or None."""
    candidates = [p for p in pairs
                  if (not agent_id or p.agent_id == agent_id) and (not environment or p.environment == environment)]
    enabled = [p for p in candidates if p.webhook_enabled]
    return (enabled or candidates or [None])[0]


def recent_escalations(agent_id: str, environment: str, limit: int = LIST_LIMIT) -> list[Escalation]:
    """The pair's escalations, newest first, at most `limit`."""
    return list(db.session.scalars(
        db.select(Escalation)
        .where(Escalation.agent_id == agent_id, Escalation.environment == environment)
        .order_by(Escalation.created_at.desc(), Escalation.id.desc())
        .limit(limit)
    ))


def count_escalations(agent_id: str, environment: str) -> int:
    """How many escalations the pair has in all."""
    return db.session.scalar(
        db.select(db.func.count()).select_from(Escalation)
        .where(Escalation.agent_id == agent_id, Escalation.environment == environment)
    )
