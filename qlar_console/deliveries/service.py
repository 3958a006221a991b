"""Delivery rules: claiming under a lease, one signed try, the retry decision, Resend and purge."""
import logging
import time
from datetime import timedelta
from pathlib import Path

from flask import Flask, current_app
from sqlalchemy import case, exists, func, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased

from ..audit.service import record
from ..clock import utcnow
from ..crypto import MasterKeyError
from ..extensions import db
from ..settings.service import get_settings, signing_secrets
from ..signing import signature_headers
from ..webhook_url import InvalidWebhookURL, check_webhook_url
from .models import CANCELLED, FAILED, PENDING, SKIPPED, SUCCEEDED, Attempt, DailyOutcome, Event, WorkerHeartbeat
from .policy import parse_retry_after, retry_delay
from .sender import Outcome, Sender

log = logging.getLogger(__name__)

USER_AGENT = "qlar-webhooks/0.1.0"


class DeliveryError(Exception):
    """A delivery rule refused the request; str(error) is the message."""


def trusted_cas(app: Flask) -> list[str]:
    """CA files trusted besides the system bundle: QLAR_CA_BUNDLE, and the demo's local CA if present."""
    extras = [app.config["CA_BUNDLE"]] if app.config.get("CA_BUNDLE") else []
    local_ca = Path(app.instance_path) / "ca" / "ca.pem"  # made by `flask qlar demo` for the reference receiver
    if local_ca.exists():
        extras.append(str(local_ca))
    return extras


def _unblocked():
    """No earlier event of the same escalation is still pending (per-escalation order)."""
    earlier = aliased(Event)
    return ~exists().where(
        earlier.escalation_id == Event.escalation_id, earlier.sequence < Event.sequence, earlier.status == PENDING
    )


def _due_filter(now):
    """Pending, due, not leased, and next in its escalation's order."""
    return (Event.status == PENDING, Event.next_attempt_at <= now,
            or_(Event.lease_until.is_(None), Event.lease_until < now), _unblocked())


def claim_next(worker_id: str, lease: timedelta, skip_endpoints=()) -> tuple[str, tuple[str, str]] | None:
    """Lease the most overdue deliverable event to this worker: (event id, (agent, environment)) or None.

    On PostgreSQL competing workers lock candidates with FOR UPDATE SKIP LOCKED; on SQLite the
    conditional UPDATE below is the arbiter. Events of endpoints in skip_endpoints are left for later.
    """
    now = utcnow()
    query = select(Event.id, Event.agent_id, Event.environment).where(*_due_filter(now))
    if skip_endpoints:
        query = query.where(~tuple_(Event.agent_id, Event.environment).in_(list(skip_endpoints)))
    query = query.order_by(Event.next_attempt_at).limit(8)
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Event)
    for event_id, agent_id, environment in db.session.execute(query).all():
        claimed = db.session.execute(
            update(Event)
            .where(Event.id == event_id, Event.status == PENDING,
                   or_(Event.lease_until.is_(None), Event.lease_until < now))
            .values(lease_owner=worker_id, lease_until=now + lease)
        )
        if claimed.rowcount == 1:
            db.session.commit()
            return event_id, (agent_id, environment)
    db.session.commit()
    return None


def seconds_until_next_due(ceiling: float) -> float:
    """How long a worker may sleep: until the next scheduled try or lease expiry, at most `ceiling`."""
    now = utcnow()
    ready_at = case((Event.lease_until > Event.next_attempt_at, Event.lease_until), else_=Event.next_attempt_at)
    soonest = db.session.scalar(select(func.min(ready_at)).where(Event.status == PENDING, _unblocked()))
    db.session.commit()
    if soonest is None:
        return ceiling
    return min(ceiling, max(0.01, (soonest - now).total_seconds()))


def deliver(event_id: str, worker_id: str, sender: Sender, schedule: list[float], slowdown: float) -> bool:
    """Make one try of a leased event with the settings saved now; True when the event is finished."""
    event = db.session.get(Event, event_id)
    if event is None or event.status != PENDING or event.lease_owner != worker_id:
        return False
    settings = get_settings(event.agent_id, event.environment)
    trigger = "manual" if event.manual_by else "scheduled"
    if not settings.webhook_enabled:
        event.status, event.last_error = CANCELLED, "Not sent: the webhook was switched off before this try."
        event.lease_owner = event.lease_until = event.next_attempt_at = None
        db.session.commit()
        return True
    url, headers, body = settings.webhook_url or "", {}, event.body
    try:
        url = check_webhook_url(url, enabled=True).url
        keys = signing_secrets(settings)
    except (InvalidWebhookURL, MasterKeyError) as exc:
        outcome = Outcome(0, error=str(exc))
    else:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Qlar-Event": event.event_type,
            **signature_headers(keys, event.id, int(time.time()), body),
        }
        db.session.commit()  # hold no transaction (and no SQLite lock) during the network call
        outcome = sender.post(url, body, headers)
    return _record_try(event, worker_id, trigger, url, headers, outcome, schedule, slowdown)


def _record_try(event, worker_id, trigger, url, headers, outcome: Outcome, schedule, slowdown) -> bool:
    """Store the attempt and decide: delivered, retry later, or failed for good."""
    db.session.refresh(event)
    now = utcnow()
    attempt = Attempt(
        event_id=event.id, number=event.attempt_count + 1, trigger=trigger,
        started_at=now - timedelta(milliseconds=outcome.duration_ms), duration_ms=round(outcome.duration_ms, 2),
        url=url, request_headers=headers, response_status=outcome.status,
        response_headers=outcome.headers or None, response_body=outcome.body or None, error=outcome.error,
    )
    db.session.add(attempt)
    event.attempt_count += 1
    if event.lease_owner != worker_id:  # our lease expired and another worker took over: history only
        db.session.commit()
        return False
    event.tries += 1
    event.manual_by = event.lease_owner = event.lease_until = None
    event.last_status_code = outcome.status
    event.last_error = outcome.error or (None if outcome.ok else f"HTTP {outcome.status}")
    if outcome.ok:
        event.status, event.delivered_at, event.next_attempt_at = SUCCEEDED, now, None
    elif outcome.status == 410:
        event.status, event.next_attempt_at = FAILED, None
        _disable_after_gone(event, now)
    else:
        delay = retry_delay(
            event.tries, schedule, status=outcome.status, timed_out=outcome.timed_out, slowdown=slowdown,
            retry_after=parse_retry_after(outcome.headers.get("Retry-After"), now),
        )
        if delay is None:
            event.status, event.next_attempt_at = FAILED, None
        else:
            event.next_attempt_at = now + timedelta(seconds=delay)
    attempt.next_attempt_at = event.next_attempt_at
    if event.status in (SUCCEEDED, FAILED):
        count_outcome(now.date(), event.status)
    db.session.commit()
    log.info("event %s try %d: %s", event.id, attempt.number, outcome.status or outcome.error)
    return event.status != PENDING


def _disable_after_gone(event: Event, now) -> None:
    """410 Gone: the receiver asks us to stop; switch the webhook off and say why on the card."""
    settings = get_settings(event.agent_id, event.environment)
    settings.webhook_enabled = False
    settings.disabled_reason = (
        f"The endpoint answered 410 Gone at {now:%Y-%m-%d %H:%M:%S} UTC (event {event.id}), "
        "so qlar switched the webhook off. Enable it and save to resume."
    )
    settings.disabled_at = now
    settings.version += 1
    settings.saved_by, settings.saved_at = "dispatcher (410 Gone)", now
    record("dispatcher", "webhook.disabled", settings.disabled_reason,
           agent_id=settings.agent_id, environment=settings.environment)


def count_outcome(day, outcome: str) -> None:
    """Add one finished event to the day's chart counter (an upsert, in the caller's transaction)."""
    dialect_insert = pg_insert if db.engine.dialect.name == "postgresql" else sqlite_insert
    table = DailyOutcome.__table__
    db.session.execute(
        dialect_insert(table).values(day=day, outcome=outcome, count=1)
        .on_conflict_do_update(index_elements=["day", "outcome"], set_={"count": table.c["count"] + 1})
    )


def resend(event_id: str, actor: str) -> Event:
    """Queue an event again now, as a new run of tries; audited."""
    event = db.session.get(Event, event_id)
    if event is None:
        raise DeliveryError(f"No event {event_id!r}.")
    event.status, event.tries, event.next_attempt_at = PENDING, 0, utcnow()
    event.manual_by, event.lease_owner, event.lease_until = actor, None, None
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


def purge(now=None) -> int:
    """Delete attempts and finished events older than QLAR_TRACE_RETENTION_DAYS; pending work is kept."""
    cutoff = (now or utcnow()) - timedelta(days=float(current_app.config["TRACE_RETENTION_DAYS"]))
    removed = db.session.execute(db.delete(Attempt).where(Attempt.started_at < cutoff)).rowcount
    old_events = select(Event.id).where(Event.created_at < cutoff, Event.status != PENDING)
    db.session.execute(db.delete(Attempt).where(Attempt.event_id.in_(old_events)))
    removed += db.session.execute(db.delete(Event).where(Event.id.in_(old_events))).rowcount
    db.session.commit()
    return removed


def notify_dispatcher() -> None:
    """Wake the dispatcher: new work is due now."""
    dispatcher = current_app.extensions.get("qlar_dispatcher")
    if dispatcher:
        dispatcher.notify()


def heartbeat(worker: str, threads: int) -> None:
    """Record that this dispatcher process is alive."""
    row = db.session.get(WorkerHeartbeat, worker) or WorkerHeartbeat(id=worker, threads=threads)
    row.threads, row.heartbeat_at = threads, utcnow()
    db.session.add(row)
    db.session.commit()


def forget_worker(worker: str) -> None:
    """A dispatcher stopped cleanly: it is no longer alive."""
    db.session.execute(db.delete(WorkerHeartbeat).where(WorkerHeartbeat.id == worker))
    db.session.commit()


def live_workers(within_seconds: float = 30) -> list[WorkerHeartbeat]:
    """Dispatchers whose heartbeat is recent."""
    since = utcnow() - timedelta(seconds=within_seconds)
    return list(db.session.scalars(select(WorkerHeartbeat).where(WorkerHeartbeat.heartbeat_at >= since)))
