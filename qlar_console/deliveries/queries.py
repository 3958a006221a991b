"""Read-only queries behind the Deliveries pages: the filtered log, one event, the daily chart."""
import logging
import re
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import defer, selectinload

from ..clock import utcnow
from ..engine.housekeeping import live_workers
from ..engine.models import EVENT_TYPES, FAILED, PENDING, STATUSES, SUCCEEDED, DailyOutcome, Event
from ..errors import DomainError
from ..extensions import db

log = logging.getLogger(__name__)

PAGE_SIZE = 50
MAX_PAGE_SIZE = 100
CHART_DAYS = 14
EVENT_ID = re.compile(r"evt_[0-9a-f]{1,36}")


class InvalidFilter(DomainError):
    """A filter in the query string is not one the log knows; `field` is its argument."""


@dataclass(frozen=True)
class Filters:
    """What the log is narrowed to; None means any (the page shows every agent x environment, the API one)."""

    status: str | None = None
    event_type: str | None = None
    agent_id: str | None = None
    environment: str | None = None

    def as_args(self) -> dict[str, str]:
        """The page's filters as query-string arguments (unset ones left out), for links that keep them."""
        return {k: v for k, v in (("status", self.status), ("event_type", self.event_type)) if v}


@dataclass(frozen=True)
class Page:
    """One page of the log, newest first, and the id to continue from when there are older events."""

    events: list[Event]
    older_than: str | None


@dataclass(frozen=True)
class DayCount:
    """Events that finished on one UTC day, by outcome."""

    day: date
    succeeded: int
    failed: int


def parse_filters(args, agent_id: str | None = None, environment: str | None = None) -> tuple[Filters, str | None]:
    """Check the log's query-string filters and `before` cursor; raises InvalidFilter with a clear message.

    agent_id and environment narrow the log to one pair (the API's path); the page leaves them unset.
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


def list_events(filters: Filters, before: str | None = None, limit: int = PAGE_SIZE) -> Page:
    """Events matching the filters, newest first, older than the `before` id (keyset paging, no OFFSET)."""
    query = db.select(Event).options(defer(Event.body)).order_by(Event.id.desc()).limit(limit + 1)
    if filters.status:
        query = query.where(Event.status == filters.status)
    if filters.event_type:
        query = query.where(Event.event_type == filters.event_type)
    if filters.agent_id is not None:
        query = query.where(Event.agent_id == filters.agent_id)
    if filters.environment is not None:
        query = query.where(Event.environment == filters.environment)
    if before:
        query = query.where(Event.id < before)
    events = list(db.session.scalars(query))
    if len(events) > limit:
        return Page(events[:limit], events[limit - 1].id)
    return Page(events, None)


def get_event(event_id: str) -> Event | None:
    """One event with all its attempts (in order), or None."""
    return db.session.scalar(
        db.select(Event).where(Event.id == event_id).options(selectinload(Event.attempts))
    )


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
