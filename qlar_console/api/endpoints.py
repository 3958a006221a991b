"""/api/v1/agents/{agent}/{env}/endpoints and /api/v1/endpoints/{id}: a pair's endpoints over JSON (DESIGN.md,
round 3), the rules of settings/endpoints.py. The primary endpoint (the card's webhook) is listed and read
here; it changes through …/settings."""
from flask import g, request
from marshmallow import fields

from ..auth.tokens import SCOPE_ROLES
from ..engine.models import EVENT_TYPES, HEALTH_STATES
from ..problems import ApiProblem
from ..settings import alerting, endpoints, keys, service
from ..settings.endpoint_headers import MAX_HEADERS
from ..settings.endpoints import MAX_DESCRIPTION
from ..webhook_url import MAX_URL_LENGTH
from . import actor, api_blueprint, requires
from .schemas import StrictSchema, UtcDateTime, boolean, documented, integer
from .settings import ALERT_URL_PATTERN, ECHO, EMAIL_PATTERN, URL_PATTERN, HealthDetailSchema, RegenerateSchema

POINTERS = {"url": "#/url", "event_types": "#/eventTypes", "headers": "#/headers", "description": "#/description",
            "retry_schedule": "#/retrySchedule", "alert_emails": "#/alerts/emails", "alert_url": "#/alerts/url",
            "grace": "#/grace"}
bp = api_blueprint("Endpoints", "A pair's endpoints: the card's webhook (primary) and additional ones.",
                   where=lambda field: {"pointer": POINTERS[field]} if field in POINTERS else None)
HIDDEN = "\u2022\u2022\u2022\u2022"  # a custom header value, to a token without the secrets scope
HEADER_NAME = r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]{1,100}$"
HEADER_VALUE = r"^[\x20-\x7e]{0,1000}$"


class EndpointAlertsSchema(StrictSchema):
    emails = fields.List(fields.String(**documented(max_length=254, pattern=EMAIL_PATTERN)),
                         metadata={"maxItems": alerting.MAX_ALERT_EMAILS})
    url = fields.String(allow_none=True, **documented(max_length=MAX_URL_LENGTH, pattern=ALERT_URL_PATTERN))


class EndpointSchema(StrictSchema):
    id = fields.String(dump_only=True)
    agentId = fields.String(dump_only=True)
    environment = fields.String(dump_only=True)
    primary = fields.Boolean(dump_only=True, metadata={"description": "The card's webhook (changed via …/settings)"})
    url = fields.String(required=True, allow_none=True, **documented(
        max_length=MAX_URL_LENGTH, pattern=URL_PATTERN, description="https:// URL (null: a primary not set yet)"))
    enabled = boolean(load_default=True)
    eventTypes = fields.List(fields.String(**documented(enum=EVENT_TYPES)), load_default=list,
                             metadata={"description": "The event types it hears; [] or left out: all"})
    headers = fields.Dict(keys=fields.String(**documented(pattern=HEADER_NAME)),
                          values=fields.String(**documented(pattern=HEADER_VALUE)), load_default=dict,
                          metadata={"maxProperties": MAX_HEADERS,
                                    "description": "Custom headers; not Host, Content-*, User-Agent, "
                                                   "Transfer-Encoding, Connection, X-Qlar-* or webhook-*. Their "
                                                   "values are shown only to a token with the secrets scope."})
    description = fields.String(allow_none=True, **documented(max_length=MAX_DESCRIPTION))
    alerts = fields.Nested(EndpointAlertsSchema)
    version = fields.Integer(dump_only=True, metadata={"description": "Also the ETag; send it back as If-Match"})
    createdAt = UtcDateTime(dump_only=True)
    savedAt = UtcDateTime(dump_only=True, allow_none=True)
    secretCreatedAt = UtcDateTime(dump_only=True, allow_none=True)
    health = fields.String(dump_only=True, **documented(enum=HEALTH_STATES))
    healthDetail = fields.Nested(HealthDetailSchema, dump_only=True)


class EndpointInputSchema(EndpointSchema):
    """An endpoint as POST and PUT take it: what GET shows, of which the read-only members are ignored."""

    id = fields.String(**ECHO)
    agentId = fields.String(**ECHO)
    environment = fields.String(**ECHO)
    primary = boolean(**ECHO)
    version = integer(**ECHO)
    createdAt = fields.String(**ECHO)
    savedAt = fields.String(allow_none=True, **ECHO)
    secretCreatedAt = fields.String(allow_none=True, **ECHO)
    health = fields.String(**ECHO)
    healthDetail = fields.Dict(**ECHO)


class EndpointListSchema(StrictSchema):
    endpoints = fields.List(fields.Nested(EndpointSchema))


class EndpointRegenerateSchema(RegenerateSchema):
    regenerate = boolean(load_default=False, metadata={"description": "Regenerate Key before returning it"})


class EndpointSecretSchema(StrictSchema):
    secret = fields.String(metadata={"description": "The endpoint's key, whsec_…"})


IF_MATCH = {"in": "header", "name": "If-Match", "required": True,
            "description": "The ETag of the endpoint you edited (its version), or *", "schema": {"type": "string"}}
ETAG = {"ETag": {"schema": {"type": "string"}}}


def endpoint_document(ep, settings) -> dict:
    """An endpoint as the API shows it (never its key; custom header values only with the secrets scope)."""
    health = alerting.health_view(settings, ep)
    may_see = "secrets" in g.api_token.scopes and g.api_token.user.has_role(SCOPE_ROLES["secrets"])
    document = {"id": ep.id, "agentId": ep.agent_id, "environment": ep.environment, "primary": ep.is_primary,
                "version": ep.version, "createdAt": ep.created_at, "savedAt": ep.saved_at,
                "health": health.state, "healthDetail": health.document(),
                "alerts": {"emails": health.alert_emails, "url": health.alert_url}}
    if ep.is_primary:
        document.update(url=settings.webhook_url, enabled=settings.webhook_enabled, eventTypes=[], headers={},
                        description=None, secretCreatedAt=settings.secret_created_at)
    else:
        document.update(url=ep.url, enabled=ep.enabled, eventTypes=list(ep.event_types or []),
                        headers={k: v if may_see else HIDDEN for k, v in (ep.headers or {}).items()},
                        description=ep.description, secretCreatedAt=ep.secret_created_at)
    return document


def _change(document: dict, saved: dict | None = None) -> endpoints.EndpointChange:
    """The document as the rules take it; a header sent back masked (as GET showed it) keeps its saved value."""
    alerts, saved = document.get("alerts") or {}, saved or {}
    headers = {k: saved.get(k, v) if v == HIDDEN else v for k, v in (document.get("headers") or {}).items()}
    return endpoints.EndpointChange(
        url=document["url"] or "", enabled=document.get("enabled", True), event_types=document.get("eventTypes") or [],
        headers=headers, description=document.get("description") or "",
        alert_emails=alerts["emails"] if "emails" in alerts else None,
        alert_url=(alerts["url"] or "") if "url" in alerts else None)


def _found(endpoint_id: str):
    ep = endpoints.get_endpoint(endpoint_id)
    return ep, service.get_settings(ep.agent_id, ep.environment)


def _with_etag(document: dict, status: int = 200):
    return document, status, {"ETag": f'"{document["version"]}"'}


def _expected(ep) -> int:
    if "If-Match" not in request.headers:
        raise ApiProblem(428, "Send If-Match with the ETag of the endpoint you read (or *), so a change someone "
                              "saved meanwhile is not lost.")
    if request.if_match.star_tag or request.if_match.contains(str(ep.version)):
        return ep.version
    raise ApiProblem(412, f"{ep.saved_by or 'Someone'} saved endpoint {ep.id} after you read it: read it again "
                          f"(ETag \"{ep.version}\") and resend your change.")


@bp.route("/agents/<agent_id>/<env>/endpoints", methods=["GET"])
@requires("read")
@bp.response(200, EndpointListSchema)
def list_endpoints(agent_id: str, env: str):
    """The pair's endpoints, the primary (the card's webhook) first."""
    settings = service.get_settings(agent_id, env)
    return {"endpoints": [endpoint_document(ep, settings) for ep in endpoints.endpoints_of_pair(settings)]}


@bp.route("/agents/<agent_id>/<env>/endpoints", methods=["POST"])
@requires("write")
@bp.arguments(EndpointInputSchema)
@bp.response(201, EndpointSchema, headers=ETAG)
def add_endpoint(document: dict, agent_id: str, env: str):
    """Add an endpoint with a key of its own (read it with POST /endpoints/{id}/secret)."""
    settings = service.get_settings(agent_id, env)
    ep = endpoints.add_endpoint(settings, _change(document), actor(), as_admin=g.api_token.user.has_role("admin"))
    return _with_etag(endpoint_document(ep, settings), 201)


@bp.route("/endpoints/<endpoint_id>", methods=["GET"])
@requires("read")
@bp.response(200, EndpointSchema, headers=ETAG)
def read_endpoint(endpoint_id: str):
    """One endpoint (never its key)."""
    return _with_etag(endpoint_document(*_found(endpoint_id)))


@bp.route("/endpoints/<endpoint_id>", methods=["PUT"])
@requires("write")
@bp.doc(parameters=[IF_MATCH])
@bp.arguments(EndpointInputSchema)
@bp.response(200, EndpointSchema, headers=ETAG)
@bp.alt_response(409, response="CONFLICT")
@bp.alt_response(412, response="PRECONDITION_FAILED")
@bp.alt_response(428, response="PRECONDITION_REQUIRED")
def replace_endpoint(document: dict, endpoint_id: str):
    """Replace an additional endpoint, guarded by If-Match; 409 for the primary (change it via …/settings)."""
    ep, settings = _found(endpoint_id)
    endpoints.editable(ep.id)
    try:
        ep = endpoints.update_endpoint(ep, _change(document, dict(ep.headers or {})), actor(),
                                       expected_version=_expected(ep), as_admin=g.api_token.user.has_role("admin"))
    except endpoints.EndpointConflict as exc:
        raise ApiProblem(412, str(exc)) from None
    return _with_etag(endpoint_document(ep, settings))


@bp.route("/endpoints/<endpoint_id>", methods=["DELETE"])
@requires("write")
@bp.response(204)
@bp.alt_response(409, response="CONFLICT")
def remove_endpoint(endpoint_id: str):
    """Remove an additional endpoint; its pending events end cancelled. 409 for the primary."""
    endpoints.remove_endpoint(endpoints.editable(endpoint_id), actor())
    return "", 204


@bp.route("/endpoints/<endpoint_id>/secret", methods=["POST"])
@requires("secrets")
@bp.arguments(EndpointRegenerateSchema, required=False)
@bp.response(200, EndpointSecretSchema, headers={"Cache-Control": {"schema": {"type": "string", "const": "no-store"}}})
@bp.alt_response(409, response="CONFLICT")
def endpoint_secret(body: dict, endpoint_id: str):
    """The endpoint's key, audited, never cached; with {"regenerate": true} (and a grace) a new key first."""
    ep = endpoints.editable(endpoint_id)
    if body.get("grace", "none") not in keys.GRACE_PERIODS:
        raise endpoints.EndpointError(f"Grace period must be one of: {', '.join(keys.GRACE_PERIODS)}.", "grace")
    if body.get("regenerate"):
        endpoints.regenerate_endpoint_secret(ep, actor(), body.get("grace", "none"))
    return {"secret": endpoints.reveal_endpoint_secret(ep, actor(), via="API")}, 200, {"Cache-Control": "no-store"}

