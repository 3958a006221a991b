"""Delivery actions people take: Resend, resending what was missed while a 410 had switched the webhook off, and
Resend failed (everything of one agent x environment that failed within a window: recovering after an outage)."""
import logging
from dataclasses import dataclass
from datetime import datetime, time, timedelta

from sqlalchemy import exists, select

from ..audit.service import record
from ..clock import parse_day, utcnow
from ..engine.models import FAILED, Attempt, Endpoint, Event
from ..engine.outbox import notify_dispatcher, requeue
from ..errors import DomainError, NotFound
from ..extensions import db
from ..settings.service import get_settings

log = logging.getLogger(__name__)


class UnknownEvent(NotFound):
    """The event a delivery action names does not exist."""


def resend(event_id: str, actor: str) -> Event:
    """Queue an event again now, as a new run of tries; audited."""
    event = db.session.get(Event, event_id)
    if event is None:
        raise UnknownEvent(f"No event {event_id!r}.")
    requeue([event_id], actor)
    record(actor, "event.resent", event_id, agent_id=event.agent_id, environment=event.environment)
    db.session.commit()
    notify_dispatcher()
    return event


# -- Resend failed: recover after an outage ------------------------------------------------------------------------

WINDOWS = {"1h": ("last hour", timedelta(hours=1)), "24h": ("last 24 hours", timedelta(hours=24)),
           "7d": ("last 7 days", timedelta(days=7))}
RESEND_FAILED_MAX = 10_000  # events one Resend failed queues at most (the oldest); run it again for the rest
REQUEUE_CHUNK = 500  # ids per UPDATE: well under every database's bound-parameter limit
WINDOW_HELP = "Choose a window: 1h, 24h, 7d, or a UTC day written YYYY-MM-DD (since its start)."


class InvalidWindow(DomainError):
    """A Resend failed window that is not 1h, 24h, 7d or a YYYY-MM-DD day; `field` is "since"."""


class InvalidEndpoint(DomainError):
    """A Resend failed endpoint that is not one of the pair's; `field` is "endpoint"."""


@dataclass(frozen=True)
class FailedEvents:
    """The events of one agent x environment whose last try failed finally within a window, oldest first.

    `more`: more than RESEND_FAILED_MAX matched and only the oldest are here.
    """

    agent_id: str
    environment: str
    window: str  # as given: 1h, 24h, 7d or a day
    since: datetime
    event_ids: list[str]
    escalation_ids: list[str]  # distinct, in the order of their first event here
    more: bool = False
    endpoint_id: str | None = None  # only this endpoint's rows (None: every endpoint of the pair)

    @property
    def count(self) -> int:
        """How many events would be (or were) queued."""
        return len(self.event_ids)

    @property
    def described(self) -> str:
        """The window in words: "in the last hour", "since 2024-05-31 (UTC)"."""
        return f"in the {WINDOWS[self.window][0]}" if self.window in WINDOWS else f"since {self.window} (UTC)"


def parse_window(window: str | None, now: datetime | None = None) -> datetime:
    """When a Resend failed window starts: 1h, 24h and 7d back from now, or a UTC day's start; else InvalidWindow."""
    text = (window or "").strip()
    if text in WINDOWS:
        return (now or utcnow()) - WINDOWS[text][1]
    if day := parse_day(text):
        return datetime.combine(day, time())
    shown = text if len(text) <= 30 else text[:30] + "…"
    raise InvalidWindow(f"{WINDOW_HELP} Got {shown!r}." if text else WINDOW_HELP, "since")


def failed_events(agent_id: str, environment: str, window: str | None, *, lock: bool = False,
                  endpoint_id: str | None = None) -> FailedEvents:
    """Resend failed's preview: the events of the pair that failed finally with their last try in the window, at
    every endpoint of the pair or only at `endpoint_id` (one row per event x endpoint).

    Unknown pair: settings.UnknownPair; bad window: InvalidWindow; an endpoint not of the pair: InvalidEndpoint.
    `lock` (PostgreSQL): hold the rows until the caller commits, so two confirmations at once cannot queue an
    event twice.
    """
    settings = get_settings(agent_id, environment)
    since = parse_window(window)
    if endpoint_id is not None:
        ep = db.session.get(Endpoint, str(endpoint_id)[:40])
        if ep is None or (ep.agent_id, ep.environment) != (settings.agent_id, settings.environment):
            raise InvalidEndpoint(f"{str(endpoint_id)[:40]!r} is not an endpoint of {settings.agent_id} \u00b7 "
                                  f"{settings.environment}: choose one of its endpoints, or All endpoints.", "endpoint")
    tried_in_window = exists().where(Attempt.event_id == Event.id, Attempt.started_at >= since)
    query = (select(Event.id, Event.escalation_id)
             .where(Event.agent_id == settings.agent_id, Event.environment == settings.environment,
                    Event.status == FAILED, tried_in_window)
             .order_by(Event.id).limit(RESEND_FAILED_MAX + 1))
    if endpoint_id is not None:
        query = query.where(Event.endpoint_id == endpoint_id)
    if lock and db.engine.dialect.name == "postgresql":
        query = query.with_for_update(of=Event.__table__)
    rows = db.session.execute(query).all()
    more, rows = len(rows) > RESEND_FAILED_MAX, rows[:RESEND_FAILED_MAX]
    return FailedEvents(settings.agent_id, settings.environment, (window or "").strip(), since,
                        [row.id for row in rows], list(dict.fromkeys(row.escalation_id for row in rows)), more,
                        endpoint_id)


def resend_failed(agent_id: str, environment: str, window: str | None, actor: str, *,
                  endpoint_id: str | None = None) -> FailedEvents:
    """Resend failed: queue again the events failed_events finds, each keeping its id and bytes; audited.

    They go out at the endpoint's normal pace (the dispatcher's per-endpoint limit) and in each escalation's
    order (an event waits while an earlier one of its escalation is pending: engine/claim.py).
    """
    found = failed_events(agent_id, environment, window, lock=True, endpoint_id=endpoint_id)
    if not found.event_ids:
        db.session.commit()
        return found
    for start in range(0, found.count, REQUEUE_CHUNK):
        requeue(found.event_ids[start:start + REQUEUE_CHUNK], actor)
    shown = ", ".join(found.escalation_ids[:10]) + (", …" if len(found.escalation_ids) > 10 else "")
    record(actor, "deliveries.resend_failed",
           f"{found.count} failed events {found.described} (since {found.since:%Y-%m-%d %H:%M:%S} UTC) queued "
           f"again{' (the oldest; more remain)' if found.more else ''}"
           f"{f' at endpoint {found.endpoint_id}' if found.endpoint_id else ''}; "
           f"{len(found.escalation_ids)} escalations: {shown}", agent_id=found.agent_id, environment=found.environment)
    db.session.commit()
    notify_dispatcher()
    log.info("%s queued %d failed events of %s/%s again", actor, found.count, found.agent_id, found.environment)
    return found
