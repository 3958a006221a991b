"""/api/v1 receiver check: probe the saved webhook for the guide's rules, and its scorecard.

Its route joins the Deliveries blueprint (one tag in the OpenAPI document with the deliveries it checks).
"""
from marshmallow import fields

from ..problems import ApiProblem
from ..settings import receiver_check
from ..settings.service import SettingsError, get_settings
from . import actor, requires
from .deliveries import bp
from .schemas import StrictSchema, UtcDateTime
from .settings import PAIR


class CheckRuleSchema(StrictSchema):
    number = fields.Integer()
    rule = fields.String()
    required = fields.Boolean(metadata={"description": "false: advice only, not counted in `passed`"})
    passed = fields.Boolean()
    sent = fields.String()
    got = fields.String()
    fix = fields.String(allow_none=True)


class ReceiverCheckSchema(StrictSchema):
    agentId = fields.String()
    environment = fields.String()
    passed = fields.Boolean(metadata={"description": "Every required rule passed"})
    ranAt = UtcDateTime()
    ranBy = fields.String()
    url = fields.String()
    diagnosis = fields.String(allow_none=True, metadata={
        "description": "The one cause behind every failure (e.g. every probe answered 404), or null"})
    rules = fields.List(fields.Nested(CheckRuleSchema))


def check_document(check) -> dict:
    """A stored receiver check: its verdict and scorecard."""
    return {"agentId": check.agent_id, "environment": check.environment, "passed": check.passed,
            "ranAt": check.ran_at, "ranBy": check.ran_by, "url": check.url, "diagnosis": check.diagnosis,
            "rules": check.results}



@bp.route(f"{PAIR}/webhook/check", methods=["POST"])
@requires("write")
@bp.response(200, ReceiverCheckSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
@bp.alt_response(429, response="TOO_MANY_REQUESTS")
def check_receiver(agent_id: str, env: str):
    """Check receiver: probe the saved webhook for the guide's rules (needs a saved URL; once every 10 s at most)."""
    settings = get_settings(agent_id, env)
    try:
        check = receiver_check.check_receiver(settings, actor())
    except receiver_check.CheckTooSoon as exc:
        raise ApiProblem(429, str(exc), headers={"Retry-After": str(exc.retry_after)}) from None
    except SettingsError as exc:
        raise ApiProblem(409, str(exc)) from None
    return check_document(check)
