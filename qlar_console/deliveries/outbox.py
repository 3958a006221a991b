"""Writing events: the body is frozen as bytes in the transition's own transaction."""
import json
import secrets
import threading
import time

from ..clock import utcnow
from ..escalations.models import Escalation
from ..extensions import db
from ..settings.models import EscalationSettings
from .models import PENDING, SKIPPED, Event

_last_id = [0, 0]  # (milliseconds, random part) of the newest id made by this process
_id_lock = threading.Lock()


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


def event_body(event_id: str, event_type: str, escalation: Escalation, sequence: int, at) -> bytes:
    """The wire body: step 8's shape plus eventId, environment and sequence, as UTF-8 JSON bytes."""
    document = {
        "eventId": event_id,
        "eventType": event_type,
        "timestamp": at.strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z",
        "agentId": escalation.agent_id,
        "environment": escalation.environment,
        "escalation": escalation.as_payload(),
        "sequence": sequence,
    }
    return freeze(document)


def freeze(document: dict) -> bytes:
    """The bytes a body is sent (and signed) as: compact UTF-8 JSON."""
    return json.dumps(document, ensure_ascii=False, separators=(",", ":")).encode()


def record_event(escalation: Escalation, event_type: str, settings: EscalationSettings) -> Event:
    """Add the event of a transition to the session (the caller commits both together).

    It is queued for delivery only if the webhook is enabled and saved right now; otherwise it
    is kept as skipped (the CMS rule: nothing is delivered until saved).
    """
    now = utcnow()
    escalation.last_sequence += 1
    event_id = new_event_id()
    queued = settings.webhook_enabled and bool(settings.webhook_url)
    event = Event(
        id=event_id,
        escalation=escalation,
        agent_id=escalation.agent_id,
        environment=escalation.environment,
        event_type=event_type,
        sequence=escalation.last_sequence,
        body=event_body(event_id, event_type, escalation, escalation.last_sequence, now),
        created_at=now,
        status=PENDING if queued else SKIPPED,
        next_attempt_at=now if queued else None,
        last_error=None if queued else "Not sent: the webhook was not enabled and saved when this happened.",
    )
    db.session.add(event)
    return event
