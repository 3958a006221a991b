"""Recording: the tries of a batch, their retry decisions and the day's counters, in one transaction.

Every statement is built once at import and run with executemany-style parameter lists. A try
whose lease another worker took over (ours expired) is kept as history only: the other worker's
run decides the event. Each try also tells its endpoint's health (health.py), which may pause the
endpoint, keep an event pending, and raise alerts (alerts.py), all in the same transaction.
"""
import functools
import logging
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from sqlalchemy import bindparam, insert, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert

from ..clock import utcnow
from ..extensions import db
from . import alerts
from .claim import Work
from .health import Health, HealthRules
from .models import CANCELLED, FAILED, PENDING, Attempt, DailyOutcome, Event
from .retry import decide
from .send import Outcome

log = logging.getLogger(__name__)

E = Event.__table__  # Core statements: no ORM bookkeeping on the hot path
SWITCHED_OFF = "Not sent: the webhook was switched off before this try."
Gone = Callable[[str, str, datetime], None]  # (endpoint id, event id, when): a 410 switches the endpoint off


@dataclass
class Try:
    """One finished try (or a cancellation when `outcome` is None), waiting to be recorded."""

    work: Work
    outcome: Outcome | None
    headers: dict = field(default_factory=dict)
    ended_at: datetime = field(default_factory=utcnow)  # when the try finished (it is recorded a little later)
    held: str | None = None  # not sent through no fault of the receiver (work.target.held): no try used


@dataclass(frozen=True)
class Rules:
    """What decides after a try: the default schedule, the slow-down, 410 handling and the health rules."""

    schedule: list[float]
    slowdown: float
    on_gone: Gone
    health: HealthRules = HealthRules()


_OURS = (update(E).where(E.c.id.in_(bindparam("ids", expanding=True)), E.c.lease_owner == bindparam("owner"))
         .values(lease_owner=E.c.lease_owner).returning(E.c.id))  # takes the write lock, says which are ours
_DECIDE = (update(E).where(E.c.id == bindparam("b_id")).values(
    status=bindparam("b_status"), tries=bindparam("b_tries"), attempt_count=bindparam("b_count"),
    next_attempt_at=bindparam("b_next"), delivered_at=bindparam("b_delivered"), manual_by=None, lease_owner=None,
    lease_until=None, last_status_code=bindparam("b_code"), last_error=bindparam("b_error")))
_HISTORY_ONLY = (update(E).where(E.c.id == bindparam("b_id")).values(attempt_count=E.c.attempt_count + 1)
                 .returning(E.c.attempt_count))
_ATTEMPT = insert(Attempt.__table__)
# Per-escalation order without scanning: successors of a retried event wait until its next try,
# and are due again at once when it finishes early (a Resend, or a try before its schedule).
# (index ix_events_escalation_sequence)
_SUCCESSORS = (E.c.escalation_id == bindparam("b_esc"), E.c.sequence > bindparam("b_seq"),
               E.c.endpoint_id == bindparam("b_ep"), E.c.status == PENDING)
_DEFER_SUCCESSORS = (update(E).where(*_SUCCESSORS, E.c.next_attempt_at < bindparam("b_next"))
                     .values(next_attempt_at=bindparam("b_next")))
_FREE_SUCCESSORS = (update(E).where(*_SUCCESSORS, E.c.tries == 0, E.c.next_attempt_at > bindparam("b_next"))
                    .values(next_attempt_at=bindparam("b_next")))


def record(tries: list[Try], owner: str, rules: Rules, *, commit: bool = True) -> int:
    """Store a batch of tries and decide each event; returns how many alerts were raised.

    One transaction: whose leases are still ours, the event updates, the attempts, the successors'
    waits, the endpoints' health and alerts, 410 switch-offs (through on_gone) and the daily counters.
    Without `commit` the caller ends it (the coordinator claims in the same transaction).
    """
    now = utcnow()
    conn = db.session.connection()  # Core statements straight to the connection, in the session's transaction
    ours = set(conn.scalars(_OURS, {"ids": [t.work.event_id for t in tries], "owner": owner}))
    mine = [t for t in tries if t.work.event_id in ours]
    health = Health.of_batch(rules.health, {t.work.endpoint_id for t in mine}, {
        t.work.endpoint_id for t in mine if t.held or (t.outcome is not None and not t.outcome.ok)})
    decisions, attempts, deferred, freed, gone, finished = [], [], [], [], {}, Counter()
    for t in tries:
        work, outcome = t.work, t.outcome
        schedule = work.target.schedule or rules.schedule
        if t.held or outcome is None:  # held (no try used), or switched off before the try: nothing was sent
            if work.event_id in ours and t.held:
                next_at = health.held(work, t.held, t.ended_at, schedule)
                decisions.append(_decision(work, PENDING, next_at, work.tries, work.attempt_count, None, t.held))
                deferred.append(_successors(work, next_at))
            elif work.event_id in ours:
                decisions.append(_decision(work, CANCELLED, None, work.tries, work.attempt_count, None, SWITCHED_OFF))
            continue
        status, next_at = decide(outcome, work.tries + 1, schedule, rules.slowdown, t.ended_at)
        error = outcome.error or (None if outcome.ok else f"HTTP {outcome.status}")
        if work.event_id in ours:
            number, used = work.attempt_count + 1, work.tries + 1
            started = t.ended_at - timedelta(milliseconds=outcome.duration_ms)
            if outcome.ok:
                health.succeeded(work, t.ended_at)
            elif outcome.status != 410:
                status, next_at, counted = health.failed(work, status, next_at, error, started, t.ended_at, schedule)
                used = used if counted else work.tries
            decisions.append(_decision(work, status, next_at, used, number, outcome.status, error,
                                       delivered=t.ended_at if outcome.ok else None))
            if status == PENDING:
                deferred.append(_successors(work, next_at))
            else:
                finished[status] += 1
                if work.tries:  # it had failed before: successors may be waiting for its retry
                    freed.append(_successors(work, now))
            if status == FAILED:
                health.raised.append((health.endpoints[work.endpoint_id], "delivery.failed", work.target.url, {
                    "since": started, "error": error, "eventId": work.event_id, "eventType": work.event_type,
                    "escalationId": work.escalation_id, "tries": used}))
            if outcome.status == 410:
                gone.setdefault(work.endpoint_id, work.event_id)
        else:  # our lease expired and another worker took over: history only
            number, next_at = conn.scalar(_HISTORY_ONLY, {"b_id": work.event_id}), None
        attempts.append(dict(
            event_id=work.event_id, number=number, trigger=work.trigger, duration_ms=round(outcome.duration_ms, 2),
            started_at=t.ended_at - timedelta(milliseconds=outcome.duration_ms),
            url=work.target.url, request_headers=t.headers, response_status=outcome.status,
            response_headers=outcome.headers or None, response_body=outcome.body or None, error=outcome.error,
            next_attempt_at=next_at))
        log.info("event %s try %d: %s", work.event_id, number, outcome.status or outcome.error)
    for statement, rows in ((_DECIDE, decisions), (_ATTEMPT, attempts), (_DEFER_SUCCESSORS, deferred),
                            (_FREE_SUCCESSORS, freed)):
        if rows:
            conn.execute(statement, rows)
    for endpoint_id, event_id in gone.items():
        rules.on_gone(endpoint_id, event_id, now)
    if health.raised:
        alerts.raise_alerts(health.raised, now)
    count_outcomes(now.date(), finished)
    if commit:
        db.session.commit()
    return len(health.raised)


def _successors(work: Work, next_at: datetime) -> dict:
    return {"b_esc": work.escalation_id, "b_seq": work.sequence, "b_ep": work.endpoint_id, "b_next": next_at}


def _decision(work: Work, status, next_at, tries, count, code, error, delivered=None) -> dict:
    return {"b_id": work.event_id, "b_status": status, "b_next": next_at, "b_tries": tries, "b_count": count,
            "b_delivered": delivered, "b_code": code, "b_error": error}


def count_outcomes(day, finished: Counter) -> None:
    """Add finished events to the day's chart counters (upserts, in the caller's transaction)."""
    if finished:
        db.session.connection().execute(_upsert_count(db.engine.dialect.name), [
            {"day": day, "outcome": outcome, "count": count} for outcome, count in sorted(finished.items())])


@functools.cache
def _upsert_count(dialect: str):
    """INSERT … ON CONFLICT DO UPDATE adding to a day's counter, built once per dialect."""
    table = DailyOutcome.__table__
    statement = (pg_insert if dialect == "postgresql" else sqlite_insert)(table)
    return statement.on_conflict_do_update(
        index_elements=["day", "outcome"], set_={"count": table.c["count"] + statement.excluded["count"]})
