"""The escalation lifecycle as plain functions: create, claim, complete, release.

Pending --claim--> Claimed --complete--> Completed; Claimed --release--> Pending.
Each transition and its event are committed together; any other transition is refused and emits nothing.
"""
import logging
import secrets

from ..deliveries.outbox import record_event
from ..deliveries.service import notify_dispatcher
from ..extensions import db
from ..settings.service import get_settings
from .models import CLAIMED, COMPLETED, PENDING, Escalation

log = logging.getLogger(__name__)

TEMPLATES = {
    "angry-customer": {
        "urgencyLevel": "high",
        "topic": "refund",
        "area": "payment",
        "reason": "User is angry and demands immediate refund",
        "triggerCondition": "Angry Customer Escalation",
    },
}
FIELDS = {  # payload name -> column
    "threadId": "thread_id",
    "urgencyLevel": "urgency_level",
    "topic": "topic",
    "area": "area",
    "reason": "reason",
    "triggerCondition": "trigger_condition",
}


class TransitionError(Exception):
    """A lifecycle rule refused the request; str(error) is the message."""


def create_escalation(agent_id: str, environment: str, template: str = "angry-customer", **fields) -> Escalation:
    """Create a Pending escalation from a template, with any step-8 field overridden; emits `created`."""
    if template not in TEMPLATES:
        raise TransitionError(f"Unknown template {template!r}; known: {', '.join(TEMPLATES)}.")
    settings = get_settings(agent_id, environment)
    values = {**TEMPLATES[template], "threadId": f"thread-{secrets.token_hex(4)}"}
    values.update({k: v for k, v in fields.items() if v})
    unknown = set(values) - set(FIELDS)
    if unknown:
        raise TransitionError(f"Unknown escalation field: {sorted(unknown)[0]}.")
    escalation = Escalation(
        id=f"esc-{secrets.token_hex(6)}", agent_id=agent_id, environment=environment, status=PENDING, last_sequence=0,
        **{FIELDS[k]: str(v) for k, v in values.items()},
    )
    db.session.add(escalation)
    return _commit(escalation, "created", settings)


def claim(escalation_id: str, by: str) -> Escalation:
    """A supervisor claims a Pending escalation; emits `claimed`."""
    if not (by or "").strip():
        raise TransitionError("Say who claims the escalation.")
    escalation = _transition(escalation_id, PENDING, CLAIMED, "claim")
    escalation.claimed_by = by.strip()
    return _commit(escalation, "claimed")


def complete(escalation_id: str, notes: str) -> Escalation:
    """Resolve a Claimed escalation with resolution notes; emits `completed`."""
    if not (notes or "").strip():
        raise TransitionError("Resolution notes are required to complete an escalation.")
    escalation = _transition(escalation_id, CLAIMED, COMPLETED, "complete")
    escalation.resolution_notes = notes.strip()
    return _commit(escalation, "completed")


def release(escalation_id: str) -> Escalation:
    """Give a Claimed escalation back to the queue; emits `released`."""
    escalation = _transition(escalation_id, CLAIMED, PENDING, "release")
    escalation.claimed_by = None
    return _commit(escalation, "released")


def allowed_actions(escalation: Escalation) -> list[str]:
    """The transitions the escalation's status allows, for buttons."""
    return {PENDING: ["claim"], CLAIMED: ["complete", "release"]}.get(escalation.status, [])


def get_escalation(escalation_id: str) -> Escalation:
    """The escalation, or TransitionError when there is none."""
    escalation = db.session.get(Escalation, escalation_id)
    if escalation is None:
        raise TransitionError(f"No escalation {escalation_id!r}.")
    return escalation


def _transition(escalation_id: str, source: str, target: str, verb: str) -> Escalation:
    escalation = get_escalation(escalation_id)
    if escalation.status != source:
        raise TransitionError(
            f"Cannot {verb} escalation {escalation_id}: it is {escalation.status}, and only a {source} "
            f"escalation can be {verb}{'d' if verb.endswith('e') else 'ed'}."
        )
    escalation.status = target
    return escalation


def _commit(escalation: Escalation, event_type: str, settings=None) -> Escalation:
    """Write the transition's event in the same transaction, commit, and wake the dispatcher."""
    settings = settings or get_settings(escalation.agent_id, escalation.environment)
    event = record_event(escalation, event_type, settings)
    db.session.commit()
    log.info("escalation %s %s (event %s)", escalation.id, event_type, event.id)
    notify_dispatcher()
    return escalation
