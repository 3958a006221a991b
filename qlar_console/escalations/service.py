"""The escalation lifecycle as plain functions: create, claim, complete, release.

Pending --claim--> Claimed --complete--> Completed; Claimed --release--> Pending.
Each transition and its event are committed together; any other transition is refused and emits nothing.
"""
import logging
import secrets
from collections import defaultdict

from sqlalchemy.orm import defer

from ..engine.models import Event
from ..engine.outbox import notify_dispatcher
from ..errors import Conflict, DomainError, NotFound
from ..extensions import db
from ..settings.models import URGENCY_LEVELS
from ..settings.service import get_settings
from .events import record_event
from .models import CLAIMED, COMPLETED, PENDING, Escalation

log = logging.getLogger(__name__)

DEFAULT_TEMPLATE = "angry-customer"
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
LABELS = {"threadId": "Thread ID", "urgencyLevel": "Urgency level", "topic": "Topic", "area": "Area",
          "reason": "Reason", "triggerCondition": "Trigger condition", "claimedBy": "Claimed by",
          "resolutionNotes": "Resolution notes"}
FIELD_MAX_LENGTH = {  # payload name -> most characters: the one home of these limits (form, API, CLI)
    "threadId": 120, "topic": 120, "area": 120, "reason": 2000, "triggerCondition": 120,
    "claimedBy": 80, "resolutionNotes": 2000,
}
NOTES_REQUIRED = "Resolution notes are required to complete an escalation."
CLAIMANT_REQUIRED = "Say who claims the escalation."
TRANSITIONS = {  # event -> (verb, from, to): the lifecycle's one home (the service and scenarios walk it)
    "claimed": ("claim", PENDING, CLAIMED),
    "completed": ("complete", CLAIMED, COMPLETED),
    "released": ("release", CLAIMED, PENDING),
}


class TransitionError(DomainError):
    """A lifecycle rule refused the request."""


class UnknownEscalation(TransitionError, NotFound):
    """There is no escalation with that id."""


class WrongStatus(TransitionError, Conflict):
    """The escalation's status does not allow the transition."""


class InvalidField(TransitionError):
    """A field's value was refused; `field` is its payload name (topic, claimedBy, resolutionNotes, ...)."""


def transition_refusal(event: str, status: str, escalation_id: str | None = None) -> str | None:
    """Why the transition emitting `event` cannot happen to an escalation in `status`, or None when it can."""
    verb, source, _ = TRANSITIONS[event]
    if status == source:
        return None
    done = f"{verb}{'d' if verb.endswith('e') else 'ed'}"
    name = f"escalation {escalation_id}" if escalation_id else "the escalation"
    return f"Cannot {verb} {name}: it is {status}, and only a {source} escalation can be {done}."


def check_text(field: str, value: str) -> str:
    """The value stripped, refused (InvalidField) when, as given, it is over the field's limit or not storable."""
    limit = FIELD_MAX_LENGTH.get(field)
    if limit is not None and len(value) > limit:
        raise InvalidField(f"{LABELS[field]} cannot be longer than {limit} characters.", field)
    if not storable(value):
        raise InvalidField(f"{LABELS[field]} contains a character that cannot be stored (NUL or a lone "
                           "surrogate).", field)
    return value.strip()


def storable(value: str) -> bool:
    """Whether a database can keep the text: no NUL (PostgreSQL refuses it), valid UTF-8 (no lone surrogate)."""
    try:
        value.encode()
    except UnicodeEncodeError:
        return False
    return "\x00" not in value


def create_escalation(agent_id: str, environment: str, template: str = DEFAULT_TEMPLATE, *, synthetic: bool = False,
                      **fields) -> Escalation:
    """Create a Pending escalation from a template, with any step-8 field overridden; emits `created`.

    A `synthetic` one (the simulator, a scenario, Run test flow) marks each of its events as synthetic.
    """
    values = check_fields(template, fields)
    settings = get_settings(agent_id, environment)
    escalation = Escalation(
        id=f"esc-{secrets.token_hex(6)}", agent_id=agent_id, environment=environment, status=PENDING, last_sequence=0,
        synthetic=synthetic,
        **{FIELDS[k]: v for k, v in values.items()},
    )
    db.session.add(escalation)
    return _commit(escalation, "created", settings)


def check_fields(template: str, fields: dict) -> dict[str, str]:
    """A new escalation's values: the template's, each field given (not empty) instead; InvalidField when refused."""
    if template not in TEMPLATES:
        raise InvalidField(f"Unknown template {template!r}; known: {', '.join(TEMPLATES)}.", "template")
    unknown = set(fields) - set(FIELDS)
    if unknown:
        raise InvalidField(f"Unknown escalation field: {sorted(unknown)[0]}.", sorted(unknown)[0])
    values = {**TEMPLATES[template], "threadId": f"thread-{secrets.token_hex(4)}"}
    values.update({k: check_text(k, str(v)) for k, v in fields.items() if v is not None and str(v).strip()})
    if values["urgencyLevel"] not in URGENCY_LEVELS:
        raise InvalidField(f"Urgency level must be one of: {', '.join(URGENCY_LEVELS)}.", "urgencyLevel")
    return values


def check_required(field: str, value: str | None) -> str:
    """Who claims (claimedBy) or the resolution notes (resolutionNotes): required, checked, stripped."""
    if not (value or "").strip():
        raise InvalidField(CLAIMANT_REQUIRED if field == "claimedBy" else NOTES_REQUIRED, field)
    return check_text(field, value)


def claim(escalation_id: str, by: str) -> Escalation:
    """A supervisor claims a Pending escalation; emits `claimed`."""
    by = check_required("claimedBy", by)
    escalation = _transition(escalation_id, "claimed")
    escalation.claimed_by = by
    return _commit(escalation, "claimed")


def complete(escalation_id: str, notes: str) -> Escalation:
    """Resolve a Claimed escalation with resolution notes; emits `completed`."""
    notes = check_required("resolutionNotes", notes)
    escalation = _transition(escalation_id, "completed")
    escalation.resolution_notes = notes
    return _commit(escalation, "completed")


def release(escalation_id: str) -> Escalation:
    """Give a Claimed escalation back to the queue; emits `released`."""
    escalation = _transition(escalation_id, "released")
    escalation.claimed_by = None
    return _commit(escalation, "released")


def allowed_actions(escalation: Escalation) -> list[str]:
    """The transitions the escalation's status allows, for buttons."""
    return {PENDING: ["claim"], CLAIMED: ["complete", "release"]}.get(escalation.status, [])


def get_escalation(escalation_id: str) -> Escalation:
    """The escalation, or UnknownEscalation (a TransitionError) when there is none."""
    escalation = db.session.get(Escalation, escalation_id)
    if escalation is None:
        raise UnknownEscalation(f"No escalation {escalation_id!r}.")
    return escalation


def events_by_escalation(escalation_ids: list[str]) -> dict[str, list[Event]]:
    """Each escalation's events in sequence order (bodies not loaded)."""
    grouped: dict[str, list[Event]] = defaultdict(list)
    if escalation_ids:
        query = (db.select(Event).options(defer(Event.body))
                 .where(Event.escalation_id.in_(escalation_ids)).order_by(Event.escalation_id, Event.sequence))
        for event in db.session.scalars(query):
            grouped[event.escalation_id].append(event)
    return grouped


def _transition(escalation_id: str, event: str) -> Escalation:
    """The escalation moved to the status the transition emitting `event` leads to; WrongStatus when it may not."""
    escalation = get_escalation(escalation_id)
    refusal = transition_refusal(event, escalation.status, escalation_id)
    if refusal:
        raise WrongStatus(refusal)
    escalation.status = TRANSITIONS[event][2]
    return escalation


def _commit(escalation: Escalation, event_type: str, settings=None) -> Escalation:
    """Write the transition's event in the same transaction, commit, and wake the dispatcher."""
    settings = settings or get_settings(escalation.agent_id, escalation.environment)
    event = record_event(escalation, event_type, settings)
    db.session.commit()
    log.info("escalation %s %s (event %s)", escalation.id, event_type, event.id)
    notify_dispatcher()
    return escalation
