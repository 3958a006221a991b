"""/api/v1/agents/{agent}/{env}/settings and the webhook's key: the Escalation page's rules over JSON."""
from flask import g, request
from marshmallow import fields

from ..engine.models import HEALTH_STATES
from ..problems import ApiProblem
from ..settings import alerting, keys, service
from ..settings.models import CLAIM_TIMEOUT_MINUTES, TRIGGER_CONDITIONS, URGENCY_LEVELS
from ..webhook_url import MAX_URL_LENGTH
from . import actor, api_blueprint, requires
from .schemas import StrictSchema, UtcDateTime, boolean, documented, integer

POINTERS = {"trigger_conditions": "#/triggerConditions", "default_urgency": "#/defaultUrgency",
            "claim_timeout_minutes": "#/claimTimeoutMinutes", "webhook_url": "#/webhook/url", "grace": "#/grace",
            "retry_schedule": "#/retrySchedule", "alert_emails": "#/alerts/emails", "alert_url": "#/alerts/url"}
bp = api_blueprint("Settings", "Escalation settings and the webhook: export, import, keys.",
                   where=lambda field: {"pointer": POINTERS[field]} if field in POINTERS else None)
PAIR = "/agents/<agent_id>/<env>"
# What the OpenAPI document promises is accepted (a subset of the URL rule, printable ASCII only).
URL_PATTERN = r"^[hH][tT][tT][pP][sS]://[A-Za-z0-9._~-]+(:[0-9]{1,4})?([/?#][\x21-\x7e]*)?$"
# The retry schedule's grammar (engine/retry.py parse_schedule); its limits (each delay at most 1d) it cannot say.
_DELAY = r" *[0-9]{1,9}(\.[0-9]{1,6})? *(ms|s|m|h|d) *"
SCHEDULE_PATTERN = rf"^{_DELAY}(,{_DELAY}){{0,19}}$"
# What the OpenAPI document promises of an alert address (a subset of settings/alerting.EMAIL).
_LABEL = r"[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
EMAIL_PATTERN = rf"^[A-Za-z0-9._%+-]{{1,64}}@{_LABEL}(\.{_LABEL})+$"
ALERT_URL_PATTERN = rf"^({URL_PATTERN[1:-1]})?$"  # "" clears, as null does


class WebhookSchema(StrictSchema):
    enabled = boolean(required=True)
    url = fields.String(allow_none=True, load_default=None, **documented(
        max_length=MAX_URL_LENGTH, pattern=URL_PATTERN,
        description="https:// URL; required when enabled. A private or localhost host is saved with a warning."))
    urlWarning = fields.String(dump_only=True, allow_none=True)
    secretSet = fields.Boolean(dump_only=True, metadata={"description": "Whether a key exists (never the key)"})
    secretCreatedAt = UtcDateTime(dump_only=True, allow_none=True)
    previousKeyExpiresAt = UtcDateTime(dump_only=True, allow_none=True)
    disabledReason = fields.String(dump_only=True, allow_none=True,
                                   metadata={"description": "Why the dispatcher switched it off (410 Gone)"})


class HealthDetailSchema(StrictSchema):
    state = fields.String(**documented(enum=HEALTH_STATES))
    since = UtcDateTime(allow_none=True, metadata={"description": "When it entered this state (null: healthy)"})
    lastError = fields.String(allow_none=True)
    lastErrorAt = UtcDateTime(allow_none=True)
    pauseReason = fields.String(allow_none=True, metadata={"description": "Why it is paused (null unless paused)"})
    nextProbeAt = UtcDateTime(allow_none=True, metadata={"description": "When a paused endpoint is probed next"})
    pending = fields.Integer(metadata={"description": "Events of the pair waiting (held, while paused)"})


class AlertsSchema(StrictSchema):
    """Who is told when the webhook fails, pauses or recovers; a member left out stays as saved."""

    emails = fields.List(fields.String(**documented(max_length=254, pattern=EMAIL_PATTERN)),
                         metadata={"maxItems": alerting.MAX_ALERT_EMAILS, "description": "Alert emails; [] clears"})
    url = fields.String(allow_none=True, **documented(
        max_length=MAX_URL_LENGTH, pattern=ALERT_URL_PATTERN,
        description="Alert webhook URL, https (a Slack or Teams incoming webhook works as is); null or \"\" clears"))


class SettingsSchema(StrictSchema):
    agentId = fields.String(dump_only=True)
    environment = fields.String(dump_only=True)
    version = fields.Integer(dump_only=True, metadata={"description": "Also the ETag; send it back as If-Match"})
    savedBy = fields.String(dump_only=True, allow_none=True)
    savedAt = UtcDateTime(dump_only=True, allow_none=True)
    triggerConditions = fields.List(fields.String(**documented(enum=TRIGGER_CONDITIONS)), required=True)
    defaultUrgency = fields.String(required=True, **documented(enum=URGENCY_LEVELS))
    claimTimeoutMinutes = integer(required=True, **documented(minimum=CLAIM_TIMEOUT_MINUTES[0],
                                                              maximum=CLAIM_TIMEOUT_MINUTES[1]))
    webhook = fields.Nested(WebhookSchema, required=True)
    retrySchedule = fields.String(allow_none=True, **documented(
        pattern=SCHEDULE_PATTERN,
        description="Delays between tries for this pair, such as 1s,2s,5s (at most 20, each at most 1d); null: the "
                    "server default (QLAR_RETRY_SCHEDULE). Only an admin's token may change it; left out: unchanged."))
    health = fields.String(dump_only=True, **documented(enum=HEALTH_STATES, description="The webhook's health"))
    healthDetail = fields.Nested(HealthDetailSchema, dump_only=True)
    alerts = fields.Nested(AlertsSchema, metadata={"description": "Alert recipients; left out: unchanged"})


ECHO = {"metadata": {"description": "As GET shows it: may be sent back, and is ignored"}}


class WebhookInputSchema(WebhookSchema):
    """The webhook as PUT takes it: what GET shows, of which only enabled and url change anything."""

    urlWarning = fields.String(allow_none=True, **ECHO)
    secretSet = boolean(**ECHO)
    secretCreatedAt = fields.String(allow_none=True, **ECHO)
    previousKeyExpiresAt = fields.String(allow_none=True, **ECHO)
    disabledReason = fields.String(allow_none=True, **ECHO)


class SettingsInputSchema(SettingsSchema):
    """The settings as PUT takes them: the document GET returned, edited (export in one place, import in another)."""

    agentId = fields.String(**ECHO)
    environment = fields.String(**ECHO)
    version = integer(**ECHO)
    savedBy = fields.String(allow_none=True, **ECHO)
    savedAt = fields.String(allow_none=True, **ECHO)
    webhook = fields.Nested(WebhookInputSchema, required=True)
    health = fields.String(**ECHO)
    healthDetail = fields.Dict(**ECHO)


class RegenerateSchema(StrictSchema):
    grace = fields.String(load_default="none", **documented(
        enum=keys.GRACE_PERIODS, description="How long the previous key keeps validating"))


class SecretSchema(StrictSchema):
    secret = fields.String(metadata={"description": "The webhook key, whsec_…, exactly as receivers use it"})


# JSON Schema the marshmallow schemas cannot say, merged into the OpenAPI components by init_api.
SPEC_EXTRAS = {"WebhookInput": {"if": {"properties": {"enabled": {"const": True}}, "required": ["enabled"]},
                           "then": {"required": ["url"], "properties": {"url": {"type": "string"}}}}}
IF_MATCH = {"in": "header", "name": "If-Match", "required": True,
            "description": "The ETag of the settings you edited (their version), or * to overwrite",
            "schema": {"type": "string"}}


def settings_document(settings, warning: str | None = None) -> dict:
    """The settings as the API shows them: everything on the page but the key itself."""
    health = alerting.health_view(settings)
    return {
        "agentId": settings.agent_id, "environment": settings.environment, "version": settings.version,
        "savedBy": settings.saved_by, "savedAt": settings.saved_at,
        "triggerConditions": list(settings.trigger_conditions), "defaultUrgency": settings.default_urgency,
        "claimTimeoutMinutes": settings.claim_timeout_minutes, "retrySchedule": settings.retry_schedule,
        "webhook": {
            "enabled": settings.webhook_enabled, "url": settings.webhook_url, "urlWarning": warning,
            "secretSet": bool(settings.secret_ciphertext), "secretCreatedAt": settings.secret_created_at,
            "previousKeyExpiresAt": settings.previous_secret_expires_at, "disabledReason": settings.disabled_reason,
        },
        "health": health.state, "healthDetail": health.document(),
        "alerts": {"emails": health.alert_emails, "url": health.alert_url},
    }


def _schedule_text(document: dict) -> str | None:
    """retrySchedule as the service takes it: left out keeps the saved one (None), null is the default ("")."""
    if "retrySchedule" not in document:
        return None
    return document["retrySchedule"] or ""


def _alert_fields(document: dict) -> dict:
    """alerts as the service takes them: a member left out keeps the saved value (None), null clears the URL."""
    alerts = document.get("alerts") or {}
    return {"alert_emails": alerts["emails"] if "emails" in alerts else None,
            "alert_url": (alerts["url"] or "") if "url" in alerts else None}


def _with_etag(document: dict):
    return document, 200, {"ETag": f'"{document["version"]}"'}


def _expected_version(settings) -> int:
    """The version If-Match names: 428 without it, 412 when it is not the current one."""
    if "If-Match" not in request.headers:
        raise ApiProblem(428, "Send If-Match with the ETag of the settings you read (or * to overwrite them), "
                              "so a change someone saved meanwhile is not lost.")
    if request.if_match.star_tag or request.if_match.contains(str(settings.version)):
        return settings.version
    raise stale(settings)


def stale(settings) -> ApiProblem:
    """412: the settings changed since the caller read them."""
    when = f"{settings.saved_at:%Y-%m-%d %H:%M:%S} UTC" if settings.saved_at else "an unknown time"
    return ApiProblem(412, f"{settings.saved_by or 'Someone'} saved these settings at {when}, after you read them: "
                           f"read them again (ETag \"{settings.version}\") and resend your change.")


@bp.route(f"{PAIR}/settings", methods=["GET"])
@requires("read")
@bp.response(200, SettingsSchema, headers={"ETag": {"schema": {"type": "string"}}})
def read_settings(agent_id: str, env: str):
    """Read the escalation settings (webhook included, never its key)."""
    return _with_etag(settings_document(service.get_settings(agent_id, env)))


@bp.route(f"{PAIR}/settings", methods=["PUT"])
@requires("write")
@bp.doc(parameters=[IF_MATCH])
@bp.arguments(SettingsInputSchema)
@bp.response(200, SettingsSchema, headers={"ETag": {"schema": {"type": "string"}}})
@bp.alt_response(412, response="PRECONDITION_FAILED")
@bp.alt_response(428, response="PRECONDITION_REQUIRED")
def replace_settings(document: dict, agent_id: str, env: str):
    """Replace the escalation settings (the page's Save), guarded by If-Match."""
    settings = service.get_settings(agent_id, env)
    expected = _expected_version(settings)
    webhook = document["webhook"]
    change = service.SettingsChange(
        webhook_enabled=webhook["enabled"], webhook_url=webhook.get("url") or "",
        trigger_conditions=document["triggerConditions"], default_urgency=document["defaultUrgency"],
        claim_timeout_minutes=document["claimTimeoutMinutes"],
        retry_schedule=_schedule_text(document), **_alert_fields(document),
    )
    try:
        checked = service.save_settings(settings, change, expected_version=expected, actor=actor(),
                                        as_admin=g.api_token.user.has_role("admin"))
    except service.StaleSettings:
        raise stale(settings) from None
    return _with_etag(settings_document(settings, checked.warning))


@bp.route(f"{PAIR}/webhook/regenerate", methods=["POST"])
@requires("write")
@bp.arguments(RegenerateSchema, required=False)
@bp.response(200, SettingsSchema, headers={"ETag": {"schema": {"type": "string"}}})
def regenerate(body: dict, agent_id: str, env: str):
    """Regenerate Key now; the previous key validates only during the grace period chosen."""
    settings = service.get_settings(agent_id, env)
    keys.regenerate_secret(settings, actor(), body.get("grace", "none"))
    return _with_etag(settings_document(settings))


@bp.route(f"{PAIR}/webhook/resume", methods=["POST"])
@requires("write")
@bp.response(200, SettingsSchema, headers={"ETag": {"schema": {"type": "string"}}})
@bp.alt_response(409, response="CONFLICT")
def resume(agent_id: str, env: str):
    """Resume now: end the webhook's pause at once; its held events go out in order. 409 when it is not paused."""
    settings = service.get_settings(agent_id, env)
    alerting.resume(settings, actor())
    return _with_etag(settings_document(settings))


@bp.route(f"{PAIR}/webhook/secret", methods=["POST"])
@requires("secrets")
@bp.response(200, SecretSchema, headers={"Cache-Control": {"schema": {"type": "string", "const": "no-store"}}})
def reveal_secret(agent_id: str, env: str):
    """Copy: the webhook key, audited, never cached."""
    secret = keys.reveal_secret(service.get_settings(agent_id, env), actor(), via="API")
    return {"secret": secret}, 200, {"Cache-Control": "no-store"}
