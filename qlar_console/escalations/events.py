"""An escalation's lifecycle events: the body a receiver gets, frozen and handed to the engine's outbox."""
from ..clock import utcnow
from ..engine.fanout import destinations
from ..engine.outbox import enqueue, freeze, new_event_id, rfc3339
from ..settings.models import EscalationSettings
from .models import Escalation


def event_body(event_id: str, event_type: str, escalation: Escalation, sequence: int, at) -> bytes:
    """The wire body: step 8's shape plus eventId, environment and sequence (and "synthetic": true on the
    events of synthetic escalations), as UTF-8 JSON bytes."""
    document = {
        "eventId": event_id,
        "eventType": event_type,
        "timestamp": rfc3339(at),
        "agentId": escalation.agent_id,
        "environment": escalation.environment,
        "escalation": escalation.as_payload(),
        "sequence": sequence,
    }
    if escalation.synthetic:
        document["synthetic"] = True
    return freeze(document)


def record_event(escalation: Escalation, event_type: str, settings: EscalationSettings):
    """Add the event of a transition to the session (the caller commits both together).

    It is queued for delivery only if the webhook is enabled and saved right now; otherwise it
    is kept as skipped (the CMS rule: nothing is delivered until saved). It also goes to each additional
    endpoint of the pair that is switched on and hears its type (engine/fanout.py).
    """
    now = utcnow()
    escalation.last_sequence += 1
    event_id = new_event_id()
    primary, copies = destinations(escalation.agent_id, escalation.environment, event_type)
    return enqueue(event_id=event_id, escalation_id=escalation.id, agent_id=escalation.agent_id,
                   environment=escalation.environment, event_type=event_type, sequence=escalation.last_sequence,
                   body=event_body(event_id, event_type, escalation, escalation.last_sequence, now),
                   created_at=now, queued=settings.webhook_enabled and bool(settings.webhook_url),
                   endpoint_id=primary, copies=copies, synthetic=escalation.synthetic)
