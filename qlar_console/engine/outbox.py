"""The outbox: enqueueing an event in the caller's transaction, and queueing events again (Resend)."""
import json
import secrets
import threading
import time
from collections.abc import Sequence
from datetime import datetime

from flask import current_app
from sqlalchemy import text, update

from ..clock import utcnow
from ..extensions import db
from .models import PENDING, SKIPPED, Event
from .wakeup import CHANNEL

_last_id = [0, 0]  # (milliseconds, random part) of the newest id made by this process
_id_lock = threading.Lock()
NOT_QUEUED = "Not sent: the webhook was not enabled and saved when this happened."


def new_event_id() -> str:
    """evt_ + milliseconds + randomness (hex, fixed width): unique, and in creation order within a process."""
    with _id_lock:
        ms = int(time.time() * 1000)
        if ms <= _last_id[0]:  # same millisecond (or a clock step back): count up from the last id
            ms, rand = _last_id[0], _last_id[1] + 1
        else:
            rand = secrets.randbits(40)
        _last_id[:] = [ms, rand]
    return f"evt_{ms:012x}{rand:011x}"


def freeze(document: dict) -> bytes:
    """The bytes a body is sent (and signed) as: compact UTF-8 JSON."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def rfc3339(at: datetime) -> str:
    """A naive UTC datetime as the body's timestamp: RFC 3339, milliseconds, Z."""
    return at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


def enqueue(*, event_id: str, escalation_id: str, agent_id: str, environment: str, event_type: str,
            sequence: int, body: bytes, created_at: datetime, queued: bool, endpoint_id: str,
            copies: Sequence[str] = (), synthetic: bool = False) -> Event:
    """Add an event to the caller's transaction: the primary endpoint's row (`endpoint_id`), pending now if
    queued, else kept as skipped, and a pending row for each additional endpoint in `copies`, with the same
    body bytes and webhook-id (`event_id`). Returns the primary endpoint's row.

    On PostgreSQL the wake-up NOTIFY rides in the same transaction, so workers hear of it on commit.
    """
    common = dict(escalation_id=escalation_id, agent_id=agent_id, environment=environment, event_type=event_type,
                  sequence=sequence, body=body, created_at=created_at, synthetic=synthetic)
    event = Event(id=event_id, endpoint_id=endpoint_id, **common, status=PENDING if queued else SKIPPED,
                  next_attempt_at=created_at if queued else None, last_error=None if queued else NOT_QUEUED)
    db.session.add(event)
    for copy in copies:
        db.session.add(Event(id=new_event_id(), endpoint_id=copy, message_id=event_id, **common, status=PENDING,
                             next_attempt_at=created_at))
    if queued or copies:
        _announce()
    return event


def requeue(event_ids: list[str], by: str) -> int:
    """Queue events again now, each as a new run of tries by `by` (the caller audits and commits)."""
    if not event_ids:
        return 0
    _announce()
    return db.session.execute(
        update(Event).where(Event.id.in_(event_ids)).values(
            status=PENDING, tries=0, next_attempt_at=utcnow(), manual_by=by, lease_owner=None, lease_until=None)
    ).rowcount


def _announce() -> None:
    """PostgreSQL: NOTIFY the workers in this transaction (delivered on commit, never blocking a producer)."""
    if db.engine.dialect.name == "postgresql":
        db.session.execute(text(f"NOTIFY {CHANNEL}"))


def notify_dispatcher() -> None:
    """After a commit that queued work: wake this app's dispatcher and, through it, the other workers."""
    dispatcher = current_app.extensions.get("qlar_dispatcher")
    if dispatcher:
        dispatcher.notify()
