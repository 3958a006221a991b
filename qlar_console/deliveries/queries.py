"""Read-only queries behind the Deliveries pages: the log (Search, filters, counts per status, keyset paging both
ways), one event, the daily chart and the queue-health panel."""
import json
import logging
import re
from collections import Counter
from dataclasses import dataclass, replace
from datetime import date, datetime, time, timedelta
from urllib.parse import urlsplit

from sqlalchemy import func, literal_column, or_, select
from sqlalchemy.orm import defer, selectinload

from ..clock import utcnow
from ..engine.housekeeping import live_workers
from ..engine.models import EVENT_TYPES, FAILED, PENDING, STATUSES, SUCCEEDED, DailyOutcome, Endpoint, Event
from ..errors import DomainError
from ..extensions import db

log = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
CHART_DAYS = 14
COUNT_CAP = 1000  # counts per status stop here ("1,000+"): each costs at most this many index entries
COUNT_WINDOW = 5000  # with a search or a date range, the matching events counted at most
EVENT_ID = re.compile(r"evt_[0-9a-f]{1,36}")
TRAFFIC_ARGS = {True: "only", False: "none"}  # Filters.synthetic -> the page's synthetic= argument (Traffic)


class InvalidFilter(DomainError):
    """A filter in the query string is not one the log knows; `field` is its argument."""


@dataclass(frozen=True)
class Filters:
    """What the log is narrowed to; None means any (the page shows every agent x environment, the API one).

    event_id and escalation_id come from the page's Search; since and until are UTC days, both included;
    synthetic: True only the simulator's, scenarios' and test flows' events, False only real ones (Traffic).
    """

    status: str | None = None
    event_type: str | None = None
    agent_id: str | None = None
    environment: str | None = None
    event_id: str | None = None
    escalation_id: str | None = None
    since: date | None = None
    until: date | None = None
    synthetic: bool | None = None
    endpoint_id: str | None = None  # one endpoint's rows (ep_…)

    @property
    def search(self) -> str:
        """What the Search field holds: the event id or escalation id searched for, or ""."""
        return self.event_id or self.escalation_id or ""

    def as_args(self) -> dict[str, str]:
        """The page's filters as query-string arguments (unset ones left out), for links that keep them."""
        args = {"q": self.search, "agent": self.agent_id, "env": self.environment, "status": self.status,
                "event_type": self.event_type, "from": self.since and self.since.isoformat(),
                "to": self.until and self.until.isoformat(), "synthetic": TRAFFIC_ARGS.get(self.synthetic),
                "endpoint": self.endpoint_id}
        return {k: v for k, v in args.items() if v}


@dataclass(frozen=True)
class Page:
    """One page of the log, newest first, and the ids to continue from when there are older or newer events."""

    events: list[Event]
    older_than: str | None
    newer_than: str | None = None


@dataclass(frozen=True)
class DayCount:
    """Events that finished on one UTC day, by outcome."""

    day: date
    succeeded: int
    failed: int


def parse_filters(args, agent_id: str | None = None, environment: str | None = None) -> tuple[Filters, str | None]:
    """Check the log's status and event-type filters and `before` cursor; raises InvalidFilter with a clear message.

    agent_id and environment narrow the log to one pair (the API's path); log_query.parse_log_args reads the page's.
    """
    status = args.get("status") or None
    event_type = args.get("event_type") or None
    before = args.get("before") or None
    if status is not None and status not in STATUSES:
        raise InvalidFilter(f"Unknown status {status!r}: choose one of {', '.join(STATUSES)}.", "status")
    if event_type is not None and event_type not in EVENT_TYPES:
        raise InvalidFilter(f"Unknown event type {event_type!r}: choose one of {', '.join(EVENT_TYPES)}.",
                            "event_type")
    if before is not None and not EVENT_ID.fullmatch(before):
        raise InvalidFilter(f"{before!r} is not an event id (evt_…): follow the Older link to page back.", "before")
    return Filters(status, event_type, agent_id, environment), before


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


def pretty_body(body: bytes) -> str | None:
    """The body as indented JSON for reading (never for verifying: the bytes sent differ), or None if not JSON."""
    try:
        return json.dumps(json.loads(body), indent=2, ensure_ascii=False)
    except ValueError:
        return None


def daily_outcomes(days: int = CHART_DAYS, now: datetime | None = None) -> list[DayCount]:
    """Events that succeeded or finally failed per UTC day, for the last `days` days (today included), oldest first.

    Reads the day counters the dispatcher keeps, so its cost does not grow with the log.
    """
    today = (now or utcnow()).date()
    first = today - timedelta(days=days - 1)
    rows = db.session.execute(
        db.select(DailyOutcome.day, DailyOutcome.outcome, DailyOutcome.count).where(DailyOutcome.day >= first)
    )
    counts = {(day, outcome): count for day, outcome, count in rows}
    result = []
    for offset in range(days):
        current = first + timedelta(days=offset)
        result.append(DayCount(current, counts.get((current, SUCCEEDED), 0), counts.get((current, FAILED), 0)))
    return result


@dataclass(frozen=True)
class QueueHealth:
    """The queue at a glance: backlog, failures, what comes next, and whether anyone is working it."""

    now: datetime
    oldest_pending_age: timedelta | None
    pending: int
    failed_24h: int
    next_attempt_at: datetime | None
    retry_times: list[datetime]  # when the tries of an event failing now would happen (before jitter)
    workers: list


def queue_health(schedule: list[float], worker_timeout: float, now: datetime | None = None) -> QueueHealth:
    """Compute the queue-health panel of the Deliveries page."""
    now = now or utcnow()
    oldest, pending, next_at = db.session.execute(
        select(func.min(Event.created_at), func.count(), func.min(Event.next_attempt_at)).where(Event.status == PENDING)
    ).one()
    failed = db.session.scalar(
        select(func.count()).where(Event.status == FAILED, Event.created_at >= now - timedelta(hours=24))
    )
    times, at = [now], now
    for delay in schedule:
        at += timedelta(seconds=delay)
        times.append(at)
    return QueueHealth(now, now - oldest if oldest else None, pending, failed, next_at, times,
                       live_workers(max(30.0, 2 * worker_timeout)))


@dataclass(frozen=True)
class EndpointLabel:
    """How the pages name an endpoint: its pair and a short label ("primary", or its description or URL host)."""

    id: str
    agent_id: str
    environment: str
    short: str
    is_primary: bool = False

    @property
    def pair(self) -> tuple[str, str]:
        return self.agent_id, self.environment

    def __str__(self) -> str:
        return f"{self.agent_id} \u00b7 {self.environment}: {self.short}"


def endpoint_labels() -> dict[str, EndpointLabel]:
    """Every endpoint's label (one query), each pair's primary first then the others oldest first."""
    rows = db.session.execute(select(Endpoint.id, Endpoint.is_primary, Endpoint.description, Endpoint.url,
                                     Endpoint.agent_id, Endpoint.environment)
                              .order_by(Endpoint.agent_id, Endpoint.environment, Endpoint.is_primary.desc(),
                                        Endpoint.created_at, Endpoint.id))
    return {ep_id: EndpointLabel(ep_id, agent, env, "primary" if primary else
                                 (description or urlsplit(url or "").netloc or ep_id), bool(primary))
            for ep_id, primary, description, url, agent, env in rows}


def endpoint_label(labels: dict[str, EndpointLabel], endpoint_id: str | None) -> str:
    """An endpoint's short label, or its id when it is gone (a removed endpoint's rows stay in the log)."""
    found = labels.get(endpoint_id or "")
    return found.short if found else (endpoint_id or "—")


def copies_of(event: Event) -> list[Event]:
    """The same event's rows at the other endpoints (same webhook-id), primary first; bodies not loaded."""
    webhook_id = event.webhook_id
    return list(db.session.scalars(
        db.select(Event).options(defer(Event.body))
        .where(or_(Event.id == webhook_id, Event.message_id == webhook_id), Event.id != event.id)
        .order_by(Event.message_id.is_not(None), Event.id)))
