"""Delivery rules: claiming under a lease, one signed try, the retry decision, Resend and purge."""
import logging
import time
from contextlib import nullcontext
from dataclasses import dataclass, field
from datetime import timedelta

from flask import Flask, current_app
from sqlalchemy import case, exists, func, insert, or_, select, tuple_, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import aliased

from ..audit.service import record
from ..clock import utcnow
from ..crypto import MasterKeyError
from ..extensions import db
from ..receiver.certs import cert_paths
from ..settings.service import get_settings, signing_secrets
from ..signing import signature_headers
from ..webhook_url import InvalidWebhookURL, check_webhook_url
from .models import CANCELLED, FAILED, PENDING, SKIPPED, SUCCEEDED, Attempt, DailyOutcome, Event, WorkerHeartbeat
from .policy import parse_retry_after, retry_delay
from .sender import Outcome, Sender

log = logging.getLogger(__name__)

USER_AGENT = "qlar-webhooks/0.1.0"
NO_LOCK = nullcontext()


class DeliveryError(Exception):
    """A delivery rule refused the request; str(error) is the message."""


def trusted_cas(app: Flask) -> list[str]:
    """CA files trusted besides the system bundle: QLAR_CA_BUNDLE, and the demo's local CA if present."""
    extras = [app.config["CA_BUNDLE"]] if app.config.get("CA_BUNDLE") else []
    local_ca = cert_paths(app.instance_path).ca_cert  # made by `flask qlar demo` for the reference receiver
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


@dataclass
class Work:
    """A leased event and what its try needs, read in the claim's own transaction."""

    event_id: str
    endpoint: tuple[str, str]  # (agent, environment): one webhook URL
    event_type: str
    body: bytes
    tries: int
    attempt_count: int
    trigger: str  # scheduled | manual
    enabled: bool = True
    url: str = ""
    keys: list[str] = field(default_factory=list)
    problem: str | None = None  # why it cannot be sent (bad URL, master key), recorded as the try's error


def claim_next(worker_id: str, lease: timedelta, skip_endpoints=()) -> Work | None:
    """Lease the most overdue deliverable event to this worker and read what its try needs, or None.

    On PostgreSQL competing workers lock candidates with FOR UPDATE SKIP LOCKED; on SQLite the
    conditional UPDATE below is the arbiter. Events of endpoints in skip_endpoints are left for later.
    The settings are read after the lease is taken: each try uses the settings saved at that moment.
    """
    now = utcnow()
    query = select(Event.id).where(*_due_filter(now))
    if skip_endpoints:
        query = query.where(~tuple_(Event.agent_id, Event.environment).in_(list(skip_endpoints)))
    query = query.order_by(Event.next_attempt_at).limit(8)
    if db.engine.dialect.name == "postgresql":
        query = query.with_for_update(skip_locked=True, of=Event)
    for event_id in db.session.scalars(query).all():
        claimed = db.session.execute(
            update(Event)
            .where(Event.id == event_id, Event.status == PENDING,
                   or_(Event.lease_until.is_(None), Event.lease_until < now))
            .values(lease_owner=worker_id, lease_until=now + lease)
        )
        if claimed.rowcount == 1:
            work = _prepare(event_id)
            db.session.commit()  # hold no transaction (and no SQLite lock) during the network call
            return work
    db.session.commit()
    return None


def _prepare(event_id: str) -> Work:
    """Read the leased event and its webhook's current settings into a Work."""
    row = db.session.execute(
        select(Event.agent_id, Event.environment, Event.event_type, Event.body, Event.tries, Event.attempt_count,
               Event.manual_by).where(Event.id == event_id)
    ).one()
    settings = get_settings(row.agent_id, row.environment)
    work = Work(event_id, (row.agent_id, row.environment), row.event_type, row.body, row.tries, row.attempt_count,
                "manual" if row.manual_by else "scheduled", enabled=settings.webhook_enabled,
                url=settings.webhook_url or "")
    if work.enabled:
        try:
            work.url = check_webhook_url(work.url, enabled=True).url
            work.keys = signing_secrets(settings)
        except (InvalidWebhookURL, MasterKeyError) as exc:
            work.problem = str(exc)
    return work


def seconds_until_next_due(ceiling: float) -> float:
    """How long a worker may sleep: until the next scheduled try or lease expiry, at most `ceiling`."""
    now = utcnow()
    ready_at = case((Event.lease_until > Event.next_attempt_at, Event.lease_until), else_=Event.next_attempt_at)
    soonest = db.session.scalar(select(func.min(ready_at)).where(Event.status == PENDING, _unblocked()))
    db.session.commit()
    if soonest is None:
        return ceiling
    return min(ceiling, max(0.01, (soonest - now).total_seconds()))


def deliver(work: Work, worker_id: str, sender: Sender, schedule: list[float], slowdown: float,
            write_lock=NO_LOCK) -> bool:
    """Make one try of a leased event; True when the event is finished (delivered, failed or cancelled).

    write_lock is held while the try is recorded (the dispatcher serialises its SQLite writes with it).
    """
    if not work.enabled:
        with write_lock:
            cancelled = db.session.execute(
                update(Event).where(Event.id == work.event_id, Event.lease_owner == worker_id)
                .values(status=CANCELLED, last_error="Not sent: the webhook was switched off before this try.",
                        lease_owner=None, lease_until=None, next_attempt_at=None)
            ).rowcount
            db.session.commit()
        return cancelled == 1
    headers = {}
    if work.problem:
        outcome = Outcome(0, error=work.problem)
    else:
        headers = {
            "Content-Type": "application/json",
            "User-Agent": USER_AGENT,
            "X-Qlar-Event": work.event_type,
            **signature_headers(work.keys, work.event_id, int(time.time()), work.body),
        }
        outcome = sender.post(work.url, work.body, headers)
    with write_lock:
        return _record_try(work, worker_id, headers, outcome, schedule, slowdown)


def _record_try(work: Work, worker_id: str, headers: dict, outcome: Outcome, schedule, slowdown) -> bool:
    """Store the attempt and decide, in one transaction: delivered, retry later, or failed for good."""
    now = utcnow()
    status, next_at, tries = PENDING, None, work.tries + 1
    if outcome.ok:
        status = SUCCEEDED
    elif outcome.status == 410:
        status = FAILED
    else:
        delay = retry_delay(
            tries, schedule, status=outcome.status, timed_out=outcome.timed_out, slowdown=slowdown,
            retry_after=parse_retry_after(outcome.headers.get("Retry-After"), now),
        )
        status, next_at = (FAILED, None) if delay is None else (PENDING, now + timedelta(seconds=delay))
    ours = db.session.execute(
        update(Event).where(Event.id == work.event_id, Event.lease_owner == worker_id).values(
            status=status, tries=tries, attempt_count=Event.attempt_count + 1, next_attempt_at=next_at,
            delivered_at=now if status == SUCCEEDED else None, manual_by=None, lease_owner=None, lease_until=None,
            last_status_code=outcome.status,
            last_error=outcome.error or (None if outcome.ok else f"HTTP {outcome.status}"),
        )
    ).rowcount == 1
    if ours:
        number = work.attempt_count + 1
    else:  # our lease expired and another worker took over: keep the try as history only
        db.session.execute(update(Event).where(Event.id == work.event_id)
                           .values(attempt_count=Event.attempt_count + 1))
        number = db.session.scalar(select(Event.attempt_count).where(Event.id == work.event_id))
        next_at = None
    db.session.execute(insert(Attempt).values(
        event_id=work.event_id, number=number, trigger=work.trigger,
        started_at=now - timedelta(milliseconds=outcome.duration_ms), duration_ms=round(outcome.duration_ms, 2),
        url=work.url, request_headers=headers, response_status=outcome.status,
        response_headers=outcome.headers or None, response_body=outcome.body or None, error=outcome.error,
        next_attempt_at=next_at,
    ))
    if ours and outcome.status == 410:
        _disable_after_gone(work, now)
    if ours and status != PENDING:
        count_outcome(now.date(), status)
    db.session.commit()
    log.info("event %s try %d: %s", work.event_id, number, outcome.status or outcome.error)
    return ours and status != PENDING


def _disable_after_gone(work: Work, now) -> None:
    """410 Gone: the receiver asks us to stop; switch the webhook off and say why on the card."""
    settings = get_settings(*work.endpoint)
    settings.webhook_enabled = False
    settings.disabled_reason = (
        f"The endpoint answered 410 Gone at {now:%Y-%m-%d %H:%M:%S} UTC (event {work.event_id}), "
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
