"""The event catalog: the JSON Schema (draft 2020-12) of the event documents the dispatcher sends, and what it means.

One home for the published schema: the API serves it (/api/v1/schemas/events.json), the Event types page renders
it as field tables, and tests/escalations/test_event_catalog.py validates every body the dispatcher produces against it.
The examples are made by the real code path (events.event_body on a transient escalation), never typed by hand.
"""
import json
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import cache

from ..engine.models import EVENT_TYPES
from ..settings.models import URGENCY_LEVELS
from .events import event_body
from .models import CLAIMED, COMPLETED, PENDING, Escalation
from .service import DEFAULT_TEMPLATE, FIELD_MAX_LENGTH, FIELDS, TEMPLATES

DIALECT = "https://json-schema.org/draft/2020-12/schema"
MEANINGS = {  # the guide's step 7 table, and when each is sent
    "created": ("A new escalation was created",
                "Sent once, first (sequence 1). The escalation is Pending: nobody holds it yet."),
    "claimed": ("A supervisor claimed the escalation",
                "The escalation is Claimed; claimedBy says who holds it. Sent again after a release and a new claim."),
    "completed": ("Escalation was resolved",
                  "The escalation is Completed, with the supervisor who held it and the resolution notes. "
                  "Nothing follows it."),
    "released": ("Escalation ownership was released",
                 "The supervisor gave it back: it is Pending again and claimedBy is gone. A claim may follow."),
}
STATUS_AFTER = {"created": PENDING, "claimed": CLAIMED, "completed": COMPLETED, "released": PENDING}
REQUIRED_BY_TYPE = {"created": [], "claimed": ["claimedBy"], "completed": ["claimedBy", "resolutionNotes"],
                    "released": []}
ENVELOPE = {
    "eventId": {"type": "string", "pattern": "^evt_[0-9a-f]+$",
                "description": "The event's unique id (evt_…), the same on every retry and Resend and in the "
                               "webhook-id header: process each eventId once."},
    "eventType": {"type": "string", "minLength": 1, "examples": list(EVENT_TYPES),
                  "description": "What happened: created, claimed, completed or released. Route on it, and log "
                                 "and skip a type you do not know (more may come)."},
    "timestamp": {"type": "string", "format": "date-time",
                  "description": "When the transition happened (not when it was sent): RFC 3339, UTC, "
                                 "milliseconds, e.g. 2026-05-19T10:15:00.000Z."},
    "agentId": {"type": "string", "description": "The qlar agent whose escalation it is."},
    "environment": {"type": "string", "description": "The agent's environment (production, staging, …) whose "
                                                     "webhook settings sent it."},
    "escalation": {"$ref": "#/$defs/escalation"},
    "sequence": {"type": "integer", "minimum": 1,
                 "description": "The event's place in its escalation's order: 1 for created, then one more per "
                                "transition. An event with a lower sequence than one already applied is stale."},
    "synthetic": {"type": "boolean", "description": "true on events of the simulator and QA scenarios; absent on "
                                                    "real escalations."},
}
ESCALATION = {
    "id": "The escalation's id (esc-…), the same in all its events.",
    "threadId": "The conversation the escalation came from.",
    "status": "Its status after this event: Pending, Claimed or Completed.",
    "urgencyLevel": "How urgent it is.",
    "topic": "What the user needs help with, e.g. refund.",
    "area": "The product area, e.g. payment.",
    "reason": "Why the agent escalated, in words.",
    "triggerCondition": "The escalation rule that fired, e.g. Angry Customer Escalation.",
    "claimedBy": "The supervisor who holds it: on claimed and completed, gone after released.",
    "resolutionNotes": "How it was resolved: on completed.",
}
OPTIONAL_ESCALATION = ("claimedBy", "resolutionNotes")  # required by some types only (REQUIRED_BY_TYPE)
EXAMPLE_AT = datetime(2026, 5, 19, 10, 15)
EXAMPLE_FLOW = (("created", None, None), ("claimed", "supervisor-1", None), ("released", None, None),
                ("claimed", "supervisor-2", None), ("completed", "supervisor-2", "Refund issued; the user confirmed."))


@dataclass(frozen=True)
class Field:
    """One row of a type's field table: dotted name, JSON type in words, required or not, and meaning."""

    name: str
    type: str
    required: bool
    description: str


def _escalation_schema() -> dict:
    properties = {name: {"type": "string", "description": text} for name, text in ESCALATION.items()}
    properties["status"]["enum"] = [PENDING, CLAIMED, COMPLETED]
    properties["urgencyLevel"]["enum"] = list(URGENCY_LEVELS)
    for name, limit in FIELD_MAX_LENGTH.items():
        if name in properties:
            properties[name]["maxLength"] = limit
    return {"type": "object", "description": "The escalation as it is after this event.",
            "required": [name for name in ESCALATION if name not in OPTIONAL_ESCALATION],
            "properties": properties}


def _type_schema(event_type: str) -> dict:
    meaning, when = MEANINGS[event_type]
    escalation = {"properties": {"status": {"const": STATUS_AFTER[event_type]}}}
    if REQUIRED_BY_TYPE[event_type]:
        escalation["required"] = REQUIRED_BY_TYPE[event_type]
    return {"title": event_type, "description": f"{meaning}. {when}",
            "properties": {"eventType": {"const": event_type}, "escalation": escalation},
            "examples": [example(event_type)]}


@cache
def event_schema() -> dict:
    """The JSON Schema of the event document: the envelope, then per known eventType what differs."""
    return {
        "$schema": DIALECT,
        "title": "qlar escalation event",
        "description": "The JSON body qlar POSTs to your webhook for each escalation lifecycle event. Required "
                       "fields are always there; ignore members you do not know (additionalProperties is open: "
                       "fields may be added) and skip event types you do not know.",
        "type": "object",
        "required": [name for name in ENVELOPE if name != "synthetic"],
        "properties": ENVELOPE,
        "allOf": [{"if": {"properties": {"eventType": {"const": t}}, "required": ["eventType"]},
                   "then": {"$ref": f"#/$defs/{t}"}} for t in EVENT_TYPES],
        "$defs": {"escalation": _escalation_schema(), **{t: _type_schema(t) for t in EVENT_TYPES}},
    }


@cache
def schema_bytes() -> bytes:
    """The schema as served: indented UTF-8 JSON, built once."""
    return json.dumps(event_schema(), indent=2, ensure_ascii=False).encode()


def required_fields(event_type: str) -> set[str]:
    """The dotted names the schema requires in an event of this type (escalation's as escalation.NAME)."""
    schema = event_schema()
    escalation = schema["$defs"]["escalation"]["required"] + REQUIRED_BY_TYPE.get(event_type, [])
    return set(schema["required"]) | {f"escalation.{name}" for name in escalation}


def fields(event_type: str) -> list[Field]:
    """A type's field table: the envelope's fields, then the escalation's, as the schema describes them."""
    schema, required = event_schema(), required_fields(event_type)
    rows = [Field(name, _in_words(spec, event_type, name), name in required, spec.get("description", ""))
            for name, spec in schema["properties"].items() if name != "escalation"]
    rows.insert(list(schema["properties"]).index("escalation"),
                Field("escalation", "object", True, schema["$defs"]["escalation"]["description"]))
    for name, spec in schema["$defs"]["escalation"]["properties"].items():
        dotted = f"escalation.{name}"
        rows.append(Field(dotted, _in_words(spec, event_type, dotted), dotted in required, spec["description"]))
    return rows


def _in_words(spec: dict, event_type: str, name: str) -> str:
    """A property's type as the field table says it: string (date-time), one of …, always "Claimed"."""
    if name == "eventType":
        return f'always "{event_type}"'
    if name == "escalation.status":
        return f'always "{STATUS_AFTER[event_type]}"'
    words = spec["type"]
    if "format" in spec:
        words += f" ({spec['format']})"
    if "enum" in spec:
        words = "one of: " + ", ".join(spec["enum"])
    if "maxLength" in spec:
        words += f", at most {spec['maxLength']} characters"
    if "minimum" in spec:
        words += f", from {spec['minimum']}"
    return words


def example_bodies() -> dict[str, bytes]:
    """A body of each type from one example flow (created, claimed, released, claimed, completed), made by
    events.event_body on a transient escalation exactly as the dispatcher makes them; the last of each type."""
    values = {column: TEMPLATES[DEFAULT_TEMPLATE].get(name) for name, column in FIELDS.items()}
    escalation = Escalation(id="esc-3f9c2a1b7d4e", agent_id="agent-123", environment="production",
                            **{**values, "thread_id": "thread-abc"})
    bodies = {}
    for sequence, (event_type, by, notes) in enumerate(EXAMPLE_FLOW, start=1):
        escalation.status, escalation.claimed_by, escalation.resolution_notes = STATUS_AFTER[event_type], by, notes
        at = EXAMPLE_AT.replace(minute=15 + 3 * (sequence - 1))
        event_id = f"evt_{int(at.replace(tzinfo=UTC).timestamp() * 1000):012x}{sequence:011x}"
        bodies[event_type] = event_body(event_id, event_type, escalation, sequence, at)
    return bodies


def example(event_type: str) -> dict:
    """The example body of a type, as a document."""
    return json.loads(example_bodies()[event_type])
