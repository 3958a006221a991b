"""Read-only queries behind the Deliveries log: the events matching its filters (keyset paging both ways), counts
per status, one event and its copies at the other endpoints."""
import logging
from collections import Counter
from dataclasses import dataclass, replace
from datetime import datetime, time, timedelta

from sqlalchemy import func, literal_column, or_
from sqlalchemy.orm import defer, selectinload

from ..engine.models import STATUSES, Event
from ..extensions import db
from .log_query import Filters

log = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
COUNT_CAP = 1000  # counts per status stop here ("1,000+"): each costs at most this many index entries
COUNT_WINDOW = 5000  # with a search or a date range, the matching events counted at most


@dataclass(frozen=True)
class Page:
    """One page of the log, newest first, and the ids to continue from when there are older or newer events."""

    events: list[Event]
    older_than: str | None
    newer_than: str | None = None


def _where(query, filters: Filters):
    """The query narrowed to the filters' events."""
    for column, value in ((Event.status, filters.status), (Event.event_type, filters.event_type),
                          (Event.agent_id, filters.agent_id), (Event.environment, filters.environment),
                          (Event.escalation_id, filters.escalation_id), (Event.synthetic, filters.synthetic),
                          (Event.endpoint_id, filters.endpoint_id)):
        if value is not None:
            query = query.where(column == value)
    if filters.event_id is not None:  # the event's row at every endpoint: its own id, or its webhook-id
        query = query.where(or_(Event.id == filters.event_id, Event.message_id == filters.event_id))
    if filters.since is not None:
        query = query.where(Event.created_at >= datetime.combine(filters.since, time()))
    if filters.until is not None:
        query = query.where(Event.created_at < datetime.combine(filters.until + timedelta(days=1), time()))
    return query


def _any(filters: Filters, *conditions) -> bool:
    """Whether some event matches the filters and the conditions (SELECT 1 … LIMIT 1: it stops at the first)."""
    query = _where(db.select(literal_column("1")).select_from(Event), filters).where(*conditions).limit(1)
    return db.session.scalar(query) is not None


def list_events(filters: Filters, before: str | None = None, limit: int = PAGE_SIZE, after: str | None = None) -> Page:
    """Events matching the filters, newest first, older than `before` or newer than `after` (keyset, no OFFSET)."""
    query = _where(db.select(Event).options(defer(Event.body)), filters).limit(limit + 1)
    if after:
        rows = list(db.session.scalars(query.where(Event.id > after).order_by(Event.id.asc())))
        events = rows[:limit][::-1]
        newer = len(rows) > limit
        older = bool(events) and _any(filters, Event.id < events[-1].id)
    else:
        if before:
            query = query.where(Event.id < before)
        events = list(db.session.scalars(query.order_by(Event.id.desc())))
        older = len(events) > limit
        events = events[:limit]
        newer = before is not None and bool(events) and _any(filters, Event.id > events[0].id)
    return Page(events, events[-1].id if older else None, events[0].id if newer else None)


@dataclass(frozen=True)
class StatusCounts:
    """Events per status for the Status select; `partial`: only a window of the matching events was counted."""

    counts: dict[str, int]
    cap: int
    partial: bool = False

    @property
    def over_cap(self) -> bool:
        """Whether some count stopped at the cap."""
        return any(n > self.cap for n in self.counts.values())

    def label(self, status: str) -> str:
        """"3", "1,000+" above the cap, "3+" (at least) when partial; "" when there is nothing to say."""
        n = self.counts.get(status, 0)
        if n > self.cap:
            return f"{self.cap:,}+"
        if self.partial:
            return f"{n:,}+" if n else ""
        return f"{n:,}"


def status_counts(filters: Filters, cap: int = COUNT_CAP, window: int = COUNT_WINDOW) -> StatusCounts:
    """Events per status under the other filters, each counted up to `cap`, for the Status select.

    With a search or a date range the counting follows their index (primary key, escalation, created_at) through at
    most `window` matching events: exact below that, at least beyond. Otherwise one statement of capped subqueries,
    each reading at most cap + 1 matches from ix_events_due (status first), so the counts cost about the same on a
    log of a thousand events or a million.
    """
    others = replace(filters, status=None)
    if filters.search or filters.since or filters.until:
        seen = list(db.session.scalars(_where(db.select(Event.status), others).limit(window)))
        return StatusCounts(Counter(seen), cap, partial=len(seen) == window)
    counts = []
    for status in STATUSES:
        capped = _where(db.select(literal_column("1")).select_from(Event), replace(others, status=status))
        counts.append(db.select(func.count()).select_from(capped.limit(cap + 1).subquery()).scalar_subquery())
    return StatusCounts(dict(zip(STATUSES, db.session.execute(db.select(*counts)).one(), strict=True)), cap)


def search_found(filters: Filters) -> bool:
    """Whether what Search names is in the log at all (other filters aside), to say which way nothing matched."""
    return _any(Filters(event_id=filters.event_id, escalation_id=filters.escalation_id))


def get_event(event_id: str) -> Event | None:
    """One event with all its attempts (in order), or None."""
    return db.session.scalar(
        db.select(Event).where(Event.id == event_id).options(selectinload(Event.attempts))
    )


def copies_of(event: Event) -> list[Event]:
    """The same event's rows at the other endpoints (same webhook-id), primary first; bodies not loaded."""
    webhook_id = event.webhook_id
    return list(db.session.scalars(
        db.select(Event).options(defer(Event.body))
        .where(or_(Event.id == webhook_id, Event.message_id == webhook_id), Event.id != event.id)
        .order_by(Event.message_id.is_not(None), Event.id)))
