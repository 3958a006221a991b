"""The Deliveries page's figures: events per day by outcome (the chart) and the queue-health panel."""
import logging
from dataclasses import dataclass
from datetime import date, datetime, timedelta

from sqlalchemy import func, select

from ..clock import utcnow
from ..engine.housekeeping import live_workers
from ..engine.models import FAILED, PENDING, SUCCEEDED, DailyOutcome, Event
from ..extensions import db

log = logging.getLogger(__name__)

CHART_DAYS = 14


@dataclass(frozen=True)
class DayCount:
    """Events that finished on one UTC day, by outcome."""

    day: date
    succeeded: int
    failed: int


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
