"""What a 410 made the webhook miss: the card's offer, once it is switched on again, to resend it oldest first."""
from datetime import timedelta

from sqlalchemy import select

from ..audit.service import record
from ..engine.models import CANCELLED, FAILED, SKIPPED, Event
from ..engine.outbox import notify_dispatcher, requeue
from ..extensions import db


def missed_events(settings) -> list[Event]:
    """Events not delivered since a 410 switched the webhook off, oldest first."""
    if not settings.disabled_at:
        return []
    return list(db.session.scalars(
        select(Event).where(Event.agent_id == settings.agent_id, Event.environment == settings.environment,
                            Event.created_at >= settings.disabled_at - timedelta(minutes=1),
                            Event.status.in_((FAILED, SKIPPED, CANCELLED)))
        .order_by(Event.id)
    ))


def resend_missed(settings, actor: str, dismiss: bool = False) -> int:
    """Resend what was missed while the webhook was off, oldest first, each audited as a Resend (or dismiss the
    offer)."""
    events = [] if dismiss else missed_events(settings)
    requeue([event.id for event in events], actor)
    for event in events:
        record(actor, "event.resent", event.id, agent_id=event.agent_id, environment=event.environment)
    settings.disabled_reason = settings.disabled_at = None
    db.session.commit()
    notify_dispatcher()
    return len(events)
