"""/api/v1 simulate jobs: start one (random flows or a scenario's steps), read it, cancel it.

Its routes join the Escalations blueprint (one tag in the OpenAPI document with the lifecycle they drive).
"""
from flask import url_for
from marshmallow import fields

from ..escalations import job_status, jobs, service
from ..escalations import scenario as scenarios
from ..escalations.models import JOB_STATUSES
from ..problems import ApiProblem
from ..settings.models import URGENCY_LEVELS
from . import actor, requires
from .escalations import LIMITS, LOCATION, NOT_BLANK, PAIR, TEXT, bp
from .schemas import JsonNumber, StrictSchema, UtcDateTime, documented, integer


def scenario_json_schema() -> dict:
    """The scenario document as JSON Schema, from scenario.py's limits; the lifecycle order is the parser's alone."""
    def string(limit: int, pattern: str = TEXT, **extra) -> dict:
        return {"type": "string", "maxLength": limit, "pattern": pattern, **extra}

    common = {"delayMs": {"type": "integer", "minimum": 0, "maximum": scenarios.MAX_DELAY_MS,
                          "description": "Milliseconds to wait before this step"},
              "label": string(scenarios.TEXT_LIMITS["label"], description="A note for readers; never sent")}
    escalation = {"type": "object", "additionalProperties": False,
                  "description": "Fields instead of the template's (left out or empty: the template's)",
                  "properties": {name: {"type": "string", "enum": [*URGENCY_LEVELS, ""]} if name == "urgencyLevel"
                                 else string(LIMITS[name]) for name in service.FIELDS}}
    members = {"created": {"escalation": escalation, "template": {"type": "string", "enum": list(service.TEMPLATES)}},
               "claimed": {"by": string(LIMITS["claimedBy"], NOT_BLANK, description="Who claims it")},
               "released": {},
               "completed": {"notes": string(LIMITS["resolutionNotes"], NOT_BLANK, description="Resolution notes")}}
    steps = [{"type": "object", "additionalProperties": False, "title": f"{event} step",
              "required": ["event", *(name for name in extra if name in scenarios.REQUIRED)],
              "properties": {"event": {"type": "string", "enum": [event]}, **common, **extra}}
             for event, extra in members.items()]
    return {"type": "object", "additionalProperties": False, "required": ["steps"], "properties": {
        "name": string(scenarios.TEXT_LIMITS["name"]),
        "description": string(scenarios.TEXT_LIMITS["description"]),
        "steps": {"type": "array", "minItems": 1, "maxItems": scenarios.MAX_STEPS, "items": {"oneOf": steps},
                  "description": "The first step, and only it, is created; then each step as the lifecycle allows "
                                 "(claimed when Pending; released or completed when Claimed)"}}}


class SimulateSchema(StrictSchema):
    flows = integer(required=True, **documented(
        minimum=jobs.FLOWS[0], maximum=jobs.FLOWS[1],
        description="Full flows: created, claimed (sometimes released and reclaimed), completed"))
    rate = JsonNumber(allow_none=True, load_default=None, **documented(
        maximum=jobs.MAX_RATE, exclusiveMinimum=0,
        description="Flows per second; null or left out: as fast as possible"))
    waitSeconds = integer(load_default=jobs.DEFAULT_WAIT_SECONDS, **documented(
        minimum=jobs.WAIT_SECONDS[0], maximum=jobs.WAIT_SECONDS[1],
        description="How long to wait for the deliveries before summarising"))
    scenario = fields.Dict(allow_none=True, load_default=None, metadata={
        **scenario_json_schema(), "description": "Steps each flow follows instead of a random flow, as "
        "`flask qlar simulate --scenario FILE` reads them (docs/scenarios/ has examples); null or left out: random "
        "flows. Checked whole before anything is sent: a refusal names the step"})


class SummarySchema(StrictSchema):
    flows = fields.Integer()
    events = fields.Integer()
    delivered = fields.Integer()
    failed = fields.Integer()
    pending = fields.Integer(metadata={"description": "Still not delivered when the wait was over"})
    p50Ms = fields.Float(allow_none=True, metadata={"description": "Median time from event to delivery"})
    p99Ms = fields.Float(allow_none=True)


class JobSchema(StrictSchema):
    id = fields.String(metadata={"description": "job-…"})
    agentId = fields.String()
    environment = fields.String()
    status = fields.String(**documented(
        enum=JOB_STATUSES,
        description="running (flows), delivering (waiting for them), then finished, failed or cancelled"))
    flows = fields.Integer()
    flowsDone = fields.Integer(metadata={"description": "Updated about twice a second"})
    rate = fields.Float(allow_none=True)
    waitSeconds = fields.Integer()
    createdBy = fields.String()
    startedAt = UtcDateTime()
    finishedAt = UtcDateTime(allow_none=True)
    error = fields.String(allow_none=True, metadata={"description": "Why it failed (abandoned: its process ended)"})
    summary = fields.Nested(SummarySchema, allow_none=True, metadata={"description": "Once finished"})
    scenario = fields.Dict(allow_none=True, metadata={"description": "The scenario each flow follows, as sent; "
                                                                     "null: random flows"})


@bp.route(f"{PAIR}/simulate", methods=["POST"])
@requires("write")
@bp.arguments(SimulateSchema)
@bp.response(202, JobSchema, headers=LOCATION)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def simulate(body: dict, agent_id: str, env: str):
    """Start a simulate job: synthetic flows (random, or a scenario's steps) at a rate, then a delivery summary;
    poll the job it returns."""
    job = jobs.start_job(agent_id, env, body["flows"], body["rate"], body["waitSeconds"], actor=actor(),
                         scenario=body["scenario"])
    return job_status.job_document(job), 202, {"Location": url_for("Escalations.read_job", job_id=job.id)}


@bp.route("/jobs/<job_id>", methods=["GET"])
@requires("read")
@bp.response(200, JobSchema)
@bp.alt_response(404, response="NOT_FOUND")
def read_job(job_id: str):
    """Read a simulate job: its progress, then its delivery summary."""
    return job_status.job_document(_job_or_404(job_id))


@bp.route("/jobs/<job_id>/cancel", methods=["POST"])
@requires("write")
@bp.response(200, JobSchema)
@bp.alt_response(404, response="NOT_FOUND")
@bp.alt_response(409, response="CONFLICT")
def cancel_job(job_id: str):
    """Cancel a simulate job that is still running; the flows it already ran stay."""
    return job_status.job_document(jobs.cancel_job(_job_or_404(job_id), actor()))


def _job_or_404(job_id: str):
    job = job_status.get_job(job_id)
    if job is None:
        raise ApiProblem(404, f"No simulate job {job_id!r}.")
    return job
