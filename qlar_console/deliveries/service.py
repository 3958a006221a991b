"""Delivery actions people take: Resend, and resending what was missed while a 410 had switched the webhook off."""
from datetime import timedelta

from sqlalchemy import select

from ..audit.service import record
from ..engine.models import CANCELLED, FAILED, SKIPPED, Event
from ..engine.outbox import notify_dispatcher, requeue
from ..errors import NotFound
from ..extensions import db


class DeliveryError(NotFound):
    """The event a delivery action names does not exist."""


def resend(event_id: str, actor: str) -> Event:
    """Queue an event again now, as a new run of tries; audited."""
    event = db.session.get(Event, event_id)
    if event is None:
        raise DeliveryError(f"No event {event_id!r}.")
    requeue([event_id], actor)
    record(actor, "event.resent", event_id, agent_id=event.agent_id, environment=event.environment)
    db.session.commit()
    notify_dispatcher()
    return event


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
    """Resend what was missed while the webhook was off, oldest first (or dismiss the offer)."""
    events = [] if dismiss else missed_events(settings)
    for event in events:
        resend(event.id, actor)
    settings.disabled_reason = settings.disabled_at = None
    db.session.commit()
    return len(events)
