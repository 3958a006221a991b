"""/api/v1 deliveries: the log, one event with its attempts, Resend, Resend failed.

The blueprint (tag Deliveries) also holds the receiver check's route, from api/receiver_check.py.
"""
from dataclasses import replace

from flask import request, url_for
from marshmallow import RAISE, fields, validate

from ..deliveries import log_query, queries, service
from ..engine.models import EVENT_TYPES, STATUSES
from ..problems import ApiProblem
from ..settings.service import get_settings
from . import actor, api_blueprint, requires
from .schemas import StrictSchema, UtcDateTime, documented
from .settings import PAIR

PARAMETERS = {"status": "status", "event_type": "eventType", "before": "before"}  # the page's names -> the API's
bp = api_blueprint("Deliveries", "The delivery log, events and their attempts, Resend, Resend failed, the receiver "
                   "check.", where=lambda field: {"parameter": PARAMETERS[field]} if field in PARAMETERS
                   else {"pointer": "#/since"} if field == "since" else None)
TRIGGERS = ("scheduled", "manual")
LINK = {"description": 'The next (older) page: `<URL>; rel="next"`, only when there is one',
        "schema": {"type": "string"}}


NOT_EMPTY = validate.Length(min=1, error="Give a value, or leave the parameter out.")  # the page's "Any" is ""


class DeliveriesQuerySchema(StrictSchema):
    status = fields.String(validate=NOT_EMPTY, **documented(enum=STATUSES, description="Only events in this state"))
    eventType = fields.String(validate=NOT_EMPTY, **documented(enum=EVENT_TYPES, description="Only this event type"))
    before = fields.String(validate=NOT_EMPTY, **documented(
        pattern=f"^{log_query.EVENT_ID.pattern}$", description="Cursor: only events older than this id (see `next`)"))
    synthetic = fields.Boolean(truthy={"true"}, falsy={"false"}, metadata={
        "description": "true: only synthetic events (simulator, scenarios, test flow; sent with X-Qlar-Synthetic); "
                       "false: only real ones; left out: both"})
    limit = fields.Integer(load_default=queries.PAGE_SIZE, validate=validate.Range(1, queries.MAX_PAGE_SIZE),
                           metadata={"description": "Events per page"})


class EventSummarySchema(StrictSchema):
    id = fields.String(metadata={"description": "evt_…: the webhook-id, stable across retries"})
    eventType = fields.String(**documented(enum=EVENT_TYPES))
    agentId = fields.String()
    environment = fields.String()
    escalationId = fields.String()
    sequence = fields.Integer(metadata={"description": "The event's place in its escalation's order"})
    status = fields.String(**documented(enum=STATUSES))
    tries = fields.Integer(metadata={"description": "Tries in the current run (a Resend starts a new run)"})
    attemptCount = fields.Integer(metadata={"description": "Every try ever made, Resends included"})
    createdAt = UtcDateTime()
    deliveredAt = UtcDateTime(allow_none=True)
    nextAttemptAt = UtcDateTime(allow_none=True, metadata={"description": "When the dispatcher tries next, if pending"})
    lastStatusCode = fields.Integer(allow_none=True, metadata={"description": "HTTP status of the last try"})
    lastError = fields.String(allow_none=True)
    resendRequestedBy = fields.String(allow_none=True, metadata={"description": "Who asked for a Resend not yet tried"})
    synthetic = fields.Boolean(metadata={"description": "Made by the simulator, a scenario or the test flow"})


class AttemptSchema(StrictSchema):
    number = fields.Integer()
    at = UtcDateTime(metadata={"description": "When the try started"})
    trigger = fields.String(**documented(enum=TRIGGERS))
    url = fields.String()
    statusCode = fields.Integer(allow_none=True)
    durationMs = fields.Float(allow_none=True)
    error = fields.String(allow_none=True)
    requestHeaders = fields.Dict(keys=fields.String(), values=fields.String(),
                                 metadata={"description": "Exactly the headers sent, signatures included"})
    responseHeaders = fields.Dict(keys=fields.String(), values=fields.String(), allow_none=True)
    responseExcerpt = fields.String(allow_none=True, metadata={"description": "The first 16 KiB of the response body"})
    nextAttemptAt = UtcDateTime(allow_none=True)


class EventDetailSchema(EventSummarySchema):
    body = fields.String(metadata={"description": "The frozen body, exactly the bytes sent and signed (UTF-8)"})
    attempts = fields.List(fields.Nested(AttemptSchema))


class DeliveriesPageSchema(StrictSchema):
    items = fields.List(fields.Nested(EventSummarySchema))
    next = fields.String(allow_none=True, metadata={"description": "URL of the next (older) page, or null"})


class ResendFailedSchema(StrictSchema):
    since = fields.String(required=True, metadata={
        "description": "The window: events whose last try failed in the last hour (1h), 24 hours (24h), 7 days (7d), "
                       "or since the start of a UTC day (YYYY-MM-DD)",
        "anyOf": [{"enum": list(service.WINDOWS)}, {"format": "date"}]})


class ResendFailedResultSchema(StrictSchema):
    count = fields.Integer(metadata={"description": "How many failed events were queued again"})
    since = UtcDateTime(metadata={"description": "When the window starts"})
    eventIds = fields.List(fields.String(), metadata={"description": "The events queued, oldest first"})
    escalationIds = fields.List(fields.String(), metadata={"description": "Their escalations"})
    more = fields.Boolean(metadata={"description": f"More than {service.RESEND_FAILED_MAX:,} matched: the oldest "
                                                   "were queued; call again for the rest"})


def event_summary(event) -> dict:
    """An event as the log shows it (no body, no attempts)."""
    return {
        "id": event.id, "eventType": event.event_type, "agentId": event.agent_id, "environment": event.environment,
        "escalationId": event.escalation_id, "sequence": event.sequence, "status": event.status,
        "tries": event.tries, "attemptCount": event.attempt_count, "createdAt": event.created_at,
        "deliveredAt": event.delivered_at, "nextAttemptAt": event.next_attempt_at,
        "lastStatusCode": event.last_status_code, "lastError": event.last_error, "resendRequestedBy": event.manual_by,
        "synthetic": event.synthetic,
    }


def attempt_document(attempt) -> dict:
    """One try as the event page shows it."""
    excerpt = attempt.response_body.decode("utf-8", "replace") if attempt.response_body else None
    return {
        "number": attempt.number, "at": attempt.started_at, "trigger": attempt.trigger, "url": attempt.url,
        "statusCode": attempt.response_status, "durationMs": attempt.duration_ms, "error": attempt.error,
        "requestHeaders": attempt.request_headers or {}, "responseHeaders": attempt.response_headers,
        "responseExcerpt": excerpt, "nextAttemptAt": attempt.next_attempt_at,
    }


def event_detail(event) -> dict:
    """An event with its frozen body and every attempt, in order."""
    return {**event_summary(event), "body": event.body.decode("utf-8", "replace"),
            "attempts": [attempt_document(a) for a in event.attempts]}


def parse_query(query: dict, agent_id: str, env: str) -> tuple[log_query.Filters, str | None]:
    """The page's filter rules applied to the API's parameters; a refusal is a 422 naming the parameter."""
    args = {"status": query.get("status"), "event_type": query.get("eventType"), "before": query.get("before")}
    filters, before = log_query.parse_filters(args, agent_id, env)
    return replace(filters, synthetic=query.get("synthetic")), before


def next_url(query: dict, older_than: str) -> str:
    """The URL of the page after this one: same filters and limit, continuing from older_than."""
    params = {k: query[k] for k in ("status", "eventType") if query.get(k)}
    if query.get("synthetic") is not None:
        params["synthetic"] = "true" if query["synthetic"] else "false"
    if query["limit"] != queries.PAGE_SIZE:
        params["limit"] = query["limit"]
    return url_for(request.endpoint, **request.view_args, **params, before=older_than, _external=True)


def known_id(event_id: str) -> str:
    """The path's event id, or 404 when it cannot be one (never sent to the database)."""
    if not log_query.EVENT_ID.fullmatch(event_id):
        raise ApiProblem(404, f"No event {event_id!r}.")
    return event_id


def get_event(event_id: str):
    """The event with its attempts, or 404."""
    event = queries.get_event(known_id(event_id))
    if event is None:
        raise ApiProblem(404, f"No event {event_id!r}.")
    return event


@bp.route(f"{PAIR}/deliveries", methods=["GET"])
@requires("read")
@bp.arguments(DeliveriesQuerySchema, location="query", unknown=RAISE)
@bp.response(200, DeliveriesPageSchema, headers={"Link": LINK})
@bp.alt_response(404, response="NOT_FOUND")
def list_deliveries(query: dict, agent_id: str, env: str):
    """The delivery log of this agent x environment, newest first; follow `next` (or the Link header) for older."""
    settings = get_settings(agent_id, env)
    filters, before = parse_query(query, settings.agent_id, settings.environment)
    page = queries.list_events(filters, before, query["limit"])
    document = {"items": [event_summary(e) for e in page.events], "next": None}
    if page.older_than is None:
        return document
    document["next"] = next_url(query, page.older_than)
    return document, 200, {"Link": f'<{document["next"]}>; rel="next"'}


@bp.route("/events/<event_id>", methods=["GET"])
@requires("read")
@bp.response(200, EventDetailSchema)
@bp.alt_response(404, response="NOT_FOUND")
def read_event(event_id: str):
    """One event: its frozen body and every attempt (request headers, status, timing, response excerpt)."""
    return event_detail(get_event(event_id))


@bp.route("/events/<event_id>/resend", methods=["POST"])
@requires("write")
@bp.response(202, EventSummarySchema)
@bp.alt_response(404, response="NOT_FOUND")
def resend(event_id: str):
    """Resend: queue the event again now, as a new run of tries (the same body bytes, signed with the current key)."""
    return event_summary(service.resend(known_id(event_id), actor()))


@bp.route(f"{PAIR}/deliveries/resend-failed", methods=["POST"])
@requires("write")
@bp.arguments(ResendFailedSchema)
@bp.response(202, ResendFailedResultSchema)
@bp.alt_response(404, response="NOT_FOUND")
def resend_failed(body: dict, agent_id: str, env: str):
    """Resend failed: queue again every event of this agent x environment whose last try failed in the window.

    Each keeps its eventId and bytes; each escalation's events go out in order, at the endpoint's normal pace.
    """
    done = service.resend_failed(agent_id, env, body["since"], actor())
    return {"count": done.count, "since": done.since, "eventIds": done.event_ids,
            "escalationIds": done.escalation_ids, "more": done.more}
