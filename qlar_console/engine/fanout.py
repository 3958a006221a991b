"""Fan-out: which endpoints of a pair an event goes to when it is written (DESIGN.md, round 3).

The primary endpoint (the card's webhook) gets a row for every event, pending or skipped as the card says;
each additional endpoint that is switched on and hears the event's type (none ticked: all) gets one too.
"""
from sqlalchemy import bindparam, select

from ..extensions import db
from .health import endpoints_of
from .models import Endpoint

EP = Endpoint.__table__
_OF_PAIR = select(EP.c.id, EP.c.is_primary, EP.c.enabled, EP.c.event_types).where(
    EP.c.agent_id == bindparam("agent"), EP.c.environment == bindparam("env"))


def destinations(agent_id: str, environment: str, event_type: str) -> tuple[str, list[str]]:
    """(the primary endpoint's id, the additional endpoints this event goes to, oldest first); one query."""
    primary, copies = None, []
    for ep_id, is_primary, enabled, event_types in db.session.execute(
            _OF_PAIR.order_by(EP.c.created_at, EP.c.id), {"agent": agent_id, "env": environment}):
        if is_primary:
            primary = primary or ep_id
        elif enabled and (not event_types or event_type in event_types):
            copies.append(ep_id)
    if primary is None:  # a pair made before endpoints existed and never touched since
        primary = endpoints_of({(agent_id, environment)})[(agent_id, environment)].id
    return primary, copies
