"""/api/v1 escalations: create, read, claim, complete, release; the Escalations page's rules over JSON.

The blueprint (tag Escalations) also holds the simulate jobs' routes, from api/simulate.py.
"""
from flask import url_for
from marshmallow import fields

from ..engine.models import EVENT_TYPES, STATUSES
from ..errors import DomainError
from ..escalations import service
from ..escalations.models import CLAIMED, COMPLETED, PENDING
from ..extensions import db
from ..settings.models import TRIGGER_CONDITIONS, URGENCY_LEVELS
from . import actor, api_blueprint, requires
from .schemas import StrictSchema, UtcDateTime, documented

POINTERS = {"claimedBy": "#/by", "resolutionNotes": "#/notes"}  # where a service field has another name here
bp = api_blueprint("Escalations", "The escalation lifecycle and synthetic traffic (simulate jobs).",
                   where=lambda field: {"pointer": POINTERS.get(field, f"#/{field}")})
PAIR = "/agents/<agent_id>/<env>"
LIMITS = service.FIELD_MAX_LENGTH
TEXT = r"^[^\u0000]*$"  # any text a database can hold
NOT_BLANK = r"^[^\u0000]*\S[^\u0000]*$"
LOCATION = {"Location": {"description": "Where to read it", "schema": {"type": "string"}}}


class EventSchema(StrictSchema):
    id = fields.String(metadata={"description": "evt_…: the webhook-id, also /api/v1/events/{id}"})
    eventType = fields.String(**documented(enum=EVENT_TYPES))
    sequence = fields.Integer(metadata={"description": "The event's place in its escalation's order"})
    status = fields.String(**documented(enum=STATUSES, description="How its delivery stands"))


def text(field: str, pattern: str = TEXT, **kwargs) -> fields.String:
    """A text member documented with the service's length limit of `field`; kwargs: the field's, or metadata."""
    metadata = {k: kwargs.pop(k) for k in ("description",) if k in kwargs}
    return fields.String(**kwargs, **documented(max_length=LIMITS[field], pattern=pattern, **metadata))


class EscalationSchema(StrictSchema):
    id = fields.String(dump_only=True, metadata={"description": "esc-…"})
    agentId = fields.String(dump_only=True)
    environment = fields.String(dump_only=True)
    template = fields.String(load_only=True, load_default=service.DEFAULT_TEMPLATE, **documented(
        enum=service.TEMPLATES, description="Gives every field left out (or empty) its value"))
    threadId = text("threadId", description="Left out or empty: generated")
    status = fields.String(dump_only=True, **documented(enum=(PENDING, CLAIMED, COMPLETED)))
    urgencyLevel = fields.String(**documented(enum=(*URGENCY_LEVELS, ""), description="Empty: the template's"))
    topic = text("topic")
    area = text("area")
    reason = text("reason")
    triggerCondition = text("triggerCondition", description=f"Free text; the CMS's are {', '.join(TRIGGER_CONDITIONS)}")
    claimedBy = fields.String(dump_only=True, allow_none=True)
    resolutionNotes = fields.String(dump_only=True, allow_none=True)
    createdAt = UtcDateTime(dump_only=True)
    events = fields.List(fields.Nested(EventSchema), dump_only=True,
                         metadata={"description": "Its lifecycle events, in order, with their delivery status"})


class ClaimSchema(StrictSchema):
    by = text("claimedBy", NOT_BLANK, description="Who claims it; left out: the token's user")


class CompleteSchema(StrictSchema):
    notes = text("resolutionNotes", NOT_BLANK, required=True, description="Resolution notes",
                 error_messages={"required": service.NOTES_REQUIRED, "null": service.NOTES_REQUIRED})


def escalation_document(escalation) -> dict:
    """The escalation as the API shows it, with its events (as the Escalations page lists them)."""
    events = service.events_by_escalation([escalation.id]).get(escalation.id, [])
    return {
        "id": escalation.id, "agentId": escalation.agent_id, "environment": escalation.environment,
        **{payload: getattr(escalation, column) for payload, column in service.FIELDS.items()},
        "status": escalation.status, "claimedBy": escalation.claimed_by,
        "resolutionNotes": escalation.resolution_notes, "createdAt": escalation.created_at,
        "events": [{"id": e.id, "eventType": e.event_type, "sequence": e.sequence, "status": e.status}
                   for e in events],
    }


def lifecycle(change) -> dict:
    """Run a service call and show the escalation; a refusal (a problem: 404, 409 or 422) leaves nothing half-done."""
    try:
        escalation = change()
    except DomainError:
        db.session.rollback()  # nothing half-done reaches the commit of the call's audit entry
        raise
    return escalation_document(escalation)


@bp.route(f"{PAIR}/escalations", methods=["POST"])
@requires("write")
@bp.arguments(EscalationSchema, required=False)
@bp.response(201, EscalationSchema, headers=LOCATION)
@bp.alt_response(404, response="NOT_FOUND")
def create_escalation(body: dict, agent_id: str, env: str):
    """Create an escalation (Pending) from a template, any field overridden; emits `created`."""
    fields_given = {k: v for k, v in body.items() if k != "template"}
    template = body.get("template", service.DEFAULT_TEMPLATE)
    document = lifecycle(lambda: service.create_escalation(agent_id, env, template, **fields_given))
    return document, 201, {"Location": url_for("Escalations.read_escalation", escalation_id=document["id"])}


@bp.route("/escalations/<escalation_id>", methods=["GET"])
@requires("read")
@bp.response(200, EscalationSchema)
@bp.alt_response(404, response="NOT_FOUND")
def read_escalation(escalation_id: str):
    """Read an escalation, with its events and how their deliveries stand."""
    return lifecycle(lambda: service.get_escalation(escalation_id))


@bp.route("/escalations/<escalation_id>/claim", methods=["POST"])
@requires("write")
@bp.arguments(ClaimSchema, required=False)
@bp.response(200, EscalationSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def claim(body: dict, escalation_id: str):
    """Claim a Pending escalation (Claimed); emits `claimed`."""
    by = body.get("by", actor())
    return lifecycle(lambda: service.claim(escalation_id, by))


@bp.route("/escalations/<escalation_id>/complete", methods=["POST"])
@requires("write")
@bp.arguments(CompleteSchema)
@bp.response(200, EscalationSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def complete(body: dict, escalation_id: str):
    """Complete a Claimed escalation with resolution notes (Completed); emits `completed`."""
    return lifecycle(lambda: service.complete(escalation_id, body["notes"]))


@bp.route("/escalations/<escalation_id>/release", methods=["POST"])
@requires("write")
@bp.response(200, EscalationSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def release(escalation_id: str):
    """Release a Claimed escalation back to the queue (Pending); emits `released`."""
    return lifecycle(lambda: service.release(escalation_id))
