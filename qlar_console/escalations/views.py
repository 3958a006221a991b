"""The Escalations page: the simulator QA uses to create, claim, complete and release, and watch the deliveries.

Editors also start simulate jobs here (Flows, Rate, Simulate): the API's job, polled as JSON by app.js.
"""
import logging
from datetime import datetime

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth.login import require_role
from ..extensions import db
from ..settings.models import TRIGGER_CONDITIONS, EscalationSettings
from ..settings.service import SettingsError, all_settings
from . import jobs, service
from . import scenario as scenarios
from .forms import CreateEscalationForm
from .models import CANCELLED, DELIVERING, FINISHED, RUNNING, Escalation
from .simulate import Summary
from .timeline import load_timeline

log = logging.getLogger(__name__)

bp = Blueprint("escalations", __name__)

LIST_LIMIT = 50
TEST_FLOW_NOTES = "Resolved by the qlar console test flow"
CUSTOM_SCENARIO = "custom"  # the Scenario choice that reads the Scenario JSON field


def choose_pair(pairs: list[EscalationSettings], agent_id: str | None = None,
                environment: str | None = None) -> EscalationSettings | None:
    """The pair named (either part may be left out): the first with its webhook enabled, else the first; or None."""
    candidates = [p for p in pairs
                  if (not agent_id or p.agent_id == agent_id) and (not environment or p.environment == environment)]
    enabled = [p for p in candidates if p.webhook_enabled]
    return (enabled or candidates or [None])[0]


def recent_escalations(agent_id: str, environment: str, limit: int = LIST_LIMIT) -> list[Escalation]:
    """The pair's escalations, newest first, at most `limit`."""
    return list(db.session.scalars(
        db.select(Escalation)
        .where(Escalation.agent_id == agent_id, Escalation.environment == environment)
        .order_by(Escalation.created_at.desc(), Escalation.id.desc())
        .limit(limit)
    ))


def count_escalations(agent_id: str, environment: str) -> int:
    """How many escalations the pair has in all."""
    return db.session.scalar(
        db.select(db.func.count()).select_from(Escalation)
        .where(Escalation.agent_id == agent_id, Escalation.environment == environment)
    )


def _page_url(agent_id: str, environment: str) -> str:
    return url_for("escalations.index", agent=agent_id, env=environment)


def simulation_state(job) -> dict:
    """A simulate job as the API shows it, plus its live counts and, once finished, the summary lines the CLI prints."""
    document = {name: value.isoformat() + "Z" if isinstance(value, datetime) else value
                for name, value in jobs.job_document(job).items()}  # the API's document, in JSON
    summary = Summary(**job.summary) if job.summary else None
    progress = ({"events": summary.events, "delivered": summary.delivered, "failed": summary.failed,
                 "pending": summary.pending} if summary else jobs.live_counts(job))
    return {**document, "progress": progress, "statusText": _status_text(document),
            "unfinished": document["status"] in (RUNNING, DELIVERING),
            "summaryLines": summary.lines() if summary else None}


def _status_text(document: dict) -> str:
    """One sentence on where the job stands, for the page's live region (changes only with the status)."""
    job_id, status = document["id"], document["status"]
    return {
        RUNNING: f"Simulate job {job_id} is running its flows.",
        DELIVERING: f"Simulate job {job_id} ran its flows; waiting up to {document['waitSeconds']} s for their "
                    "deliveries.",
        FINISHED: f"Simulate job {job_id} finished. Summary:",
        CANCELLED: f"Simulate job {job_id} stopped: {document['error'] or 'cancelled'}.",
    }.get(status, f"Simulate job {job_id} failed: {document['error']}.")


def parse_simulation(values: dict[str, str]) -> tuple[int | None, float | None, dict[str, str]]:
    """The Flows and Rate fields as start_job takes them (Rate empty: as fast as possible), and the field errors."""
    errors, flows, rate = {}, None, None
    try:
        flows = int(values["flows"])
    except ValueError:
        errors["flows"] = f"Flows must be a whole number from {jobs.FLOWS[0]} to {jobs.FLOWS[1]}."
    if values["rate"]:
        try:
            rate = float(values["rate"])
        except ValueError:
            errors["rate"] = (f"Rate must be a number of flows per second, at most {jobs.MAX_RATE}; "
                              "leave it empty to run as fast as possible.")
    return flows, rate, errors


def chosen_scenario(values: dict[str, str]) -> scenarios.Scenario | None:
    """The Scenario field: None (Random flows), a shipped example, or the Scenario JSON pasted; ScenarioError."""
    if not values["scenario"]:
        return None
    if values["scenario"] == CUSTOM_SCENARIO:
        if not values["scenario_json"].strip():
            raise scenarios.ScenarioError("Paste a scenario's JSON, or choose another scenario.")
        return scenarios.parse_scenario(scenarios.load_json(values["scenario_json"], "The scenario JSON"))
    example = scenarios.examples().get(values["scenario"])
    if example is None:
        raise scenarios.ScenarioError("Choose a scenario from the list.")
    return example


def _render(pairs, pair, form, status=200, simulation=None):
    """Render the page for one pair (or the empty state when there is none), with its newest simulate job."""
    escalations = recent_escalations(pair.agent_id, pair.environment) if pair else []
    simulation = {"values": {"flows": "10", "rate": "", "scenario": "", "scenario_json": ""}, "errors": {},
                  "message": None, **(simulation or {})}
    if pair is not None and current_user.has_role("editor"):
        job = jobs.latest_job(pair.agent_id, pair.environment)
        simulation.update(state=simulation_state(job) if job else None, started_at=job and job.started_at)
    html = render_template(
        "escalations/index.html",
        pairs=pairs, pair=pair, form=form, escalations=escalations,
        total=count_escalations(pair.agent_id, pair.environment) if pair else 0,
        events=service.events_by_escalation([e.id for e in escalations]), allowed_actions=service.allowed_actions,
        can_edit=current_user.has_role("editor"), template=service.DEFAULT_TEMPLATE,
        trigger_conditions=TRIGGER_CONDITIONS,
        notes_max_length=service.FIELD_MAX_LENGTH["resolutionNotes"], simulation=simulation,
        flows_range=jobs.FLOWS, max_rate=jobs.MAX_RATE,
        scenario_examples=scenarios.examples() if pair is not None else {}, custom_scenario=CUSTOM_SCENARIO,
        max_steps=scenarios.MAX_STEPS,
    )
    return html, status


@bp.get("/escalations")
@login_required
def index():
    """Show one agent x environment's escalations, with the create form and the test flow for editors."""
    agent_id, environment = request.args.get("agent") or None, request.args.get("env") or None
    pairs = all_settings()
    pair = choose_pair(pairs, agent_id, environment)
    if pair is None and (agent_id or environment):
        abort(404)
    if pair is not None and not (agent_id and environment) and (agent_id or environment):
        return redirect(_page_url(pair.agent_id, pair.environment))
    return _render(pairs, pair, CreateEscalationForm.prefilled())


@bp.get("/escalations/<escalation_id>")
@login_required
def timeline(escalation_id: str):
    """An escalation's timeline: its events in sequence order, every attempt under each, Copy as cURL on each."""
    return render_template("escalations/timeline.html", timeline=load_timeline(escalation_id))


@bp.post("/escalations")
@require_role("editor")
def create():
    """Create escalation: an angry-customer escalation with the fields as edited."""
    form = CreateEscalationForm()
    agent_id, environment = request.form.get("agent", ""), request.form.get("env", "")
    if form.validate_on_submit():
        try:
            escalation = service.create_escalation(agent_id, environment, **form.escalation_fields())
        except (service.TransitionError, SettingsError) as exc:
            db.session.rollback()
            flash(str(exc), "error")
        else:
            flash(f"Escalation {escalation.id} created.", "success")
            return redirect(_page_url(agent_id, environment))
    pairs = all_settings()
    pair = choose_pair(pairs, agent_id, environment) if agent_id and environment else None
    return _render(pairs, pair or choose_pair(pairs), form, status=422)


def _act(escalation_id: str, transition, success: str):
    """Run one lifecycle transition; its refusal becomes a flash; back to the escalation's page."""
    try:
        escalation = service.get_escalation(escalation_id)
    except service.TransitionError as exc:
        flash(str(exc), "error")
        return redirect(url_for("escalations.index"))
    back = _page_url(escalation.agent_id, escalation.environment)
    try:
        transition()
    except (service.TransitionError, SettingsError) as exc:
        db.session.rollback()
        flash(str(exc), "error")
    else:
        flash(success, "success")
    return redirect(back)


@bp.post("/escalations/<escalation_id>/claim")
@require_role("editor")
def claim(escalation_id: str):
    """Claim: the current user takes a Pending escalation."""
    by = current_user.username
    return _act(escalation_id, lambda: service.claim(escalation_id, by),
                f"Escalation {escalation_id} claimed by {by}.")


@bp.post("/escalations/<escalation_id>/complete")
@require_role("editor")
def complete(escalation_id: str):
    """Complete: resolve a Claimed escalation with the resolution notes given."""
    notes = request.form.get("notes", "")
    return _act(escalation_id, lambda: service.complete(escalation_id, notes),
                f"Escalation {escalation_id} completed.")


@bp.post("/escalations/<escalation_id>/release")
@require_role("editor")
def release(escalation_id: str):
    """Release: give a Claimed escalation back to the queue."""
    return _act(escalation_id, lambda: service.release(escalation_id), f"Escalation {escalation_id} released.")


@bp.post("/escalations/test-flow")
@require_role("editor")
def test_flow():
    """Run test flow: create (angry-customer), claim as the current user, complete; three synthetic events."""
    agent_id, environment = request.form.get("agent", ""), request.form.get("env", "")
    escalation_id = None
    try:
        escalation_id = service.create_escalation(agent_id, environment, synthetic=True).id
        service.claim(escalation_id, current_user.username)
        service.complete(escalation_id, TEST_FLOW_NOTES)
    except SettingsError as exc:
        db.session.rollback()
        flash(str(exc), "error")
        return redirect(url_for("escalations.index"))
    except service.TransitionError as exc:
        db.session.rollback()
        flash(f"Test flow stopped{f' at {escalation_id}' if escalation_id else ''}: {exc}", "error")
    else:
        flash(f"Test flow ran: {escalation_id} created, claimed and completed.", "success")
    return redirect(_page_url(agent_id, environment))


@bp.post("/escalations/simulate")
@require_role("editor")
def simulate():
    """Simulate: start the API's simulate job (Flows, Rate, Scenario) for the pair; the page then shows its progress."""
    agent_id, environment = request.form.get("agent", ""), request.form.get("env", "")
    values = {name: request.form.get(name, "").strip() for name in ("flows", "rate", "scenario")}
    values["scenario_json"] = request.form.get("scenario_json", "")  # as typed: errors name its lines
    flows, rate, errors = parse_simulation(values)
    script = None
    try:
        script = chosen_scenario(values)
    except scenarios.ScenarioError as exc:
        errors["scenario_json" if values["scenario"] == CUSTOM_SCENARIO else "scenario"] = str(exc)
    message, status = None, 422
    if not errors:
        try:
            job = jobs.start_job(agent_id, environment, flows, rate, actor=current_user.username,
                                 scenario=script and script.document)
        except jobs.JobRunning as exc:
            message, status = str(exc), 409
        except jobs.JobError as exc:
            errors[exc.field] = str(exc)
        else:
            pace = f"{rate:g} per second" if rate else "as fast as possible"
            following = f" of the {script.describe()}" if script else ""
            flash(f"Simulate job {job.id} started: {flows} flows{following}, {pace}.", "success")
            return redirect(url_for("escalations.index", agent=agent_id, env=environment, _anchor="simulation"))
    pairs = all_settings()
    pair = choose_pair(pairs, agent_id, environment) if agent_id and environment else None
    if pair is None:
        abort(404)
    return _render(pairs, pair, CreateEscalationForm.prefilled(), status=status,
                   simulation={"values": values, "errors": errors, "message": message})


@bp.get("/escalations/simulations/<job_id>")
@login_required
def simulation(job_id: str):
    """A simulate job as JSON for the page's script: the API's document, live counts, then the CLI's summary."""
    job = jobs.get_job(job_id)
    if job is None:
        abort(404)
    response = jsonify(simulation_state(job))
    response.headers["Cache-Control"] = "no-store"
    return response
