"""The Escalations page: the simulator QA uses to create, claim, complete and release, and watch the deliveries.

Editors also start simulate jobs here (Flows, Rate, Simulate): the API's job, polled as JSON by app.js.
"""
import logging

from flask import Blueprint, abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth.login import require_role
from ..extensions import db
from ..settings.models import TRIGGER_CONDITIONS
from ..settings.service import SettingsError, all_settings
from . import job_status, jobs, service
from . import scenario as scenarios
from .forms import CUSTOM_SCENARIO, CreateEscalationForm, SimulateForm
from .listing import choose_pair, count_escalations, recent_escalations
from .timeline import load_timeline

log = logging.getLogger(__name__)

bp = Blueprint("escalations", __name__)

TEST_FLOW_NOTES = "Resolved by the qlar console test flow"


def _page_url(agent_id: str, environment: str) -> str:
    return url_for("escalations.index", agent=agent_id, env=environment)


def _render(pairs, pair, form, status=200, simulation=None):
    """Render the page for one pair (or the empty state when there is none), with its newest simulate job."""
    escalations = recent_escalations(pair.agent_id, pair.environment) if pair else []
    simulation = {"values": {"flows": "10", "rate": "", "scenario": "", "scenario_json": ""}, "errors": {},
                  "message": None, **(simulation or {})}
    if pair is not None and current_user.has_role("editor"):
        job = job_status.latest_job(pair.agent_id, pair.environment)
        simulation.update(state=job_status.simulation_state(job) if job else None, started_at=job and job.started_at)
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
    form = SimulateForm()
    message, status = None, 422
    if form.validate_on_submit():
        flows, rate, script = form.flows_value, form.rate_value, form.script
        try:
            job = jobs.start_job(agent_id, environment, flows, rate, actor=current_user.username,
                                 scenario=script and script.document)
        except jobs.JobRunning as exc:
            message, status = str(exc), 409
        except jobs.JobError as exc:
            form[exc.field].errors.append(str(exc))
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
                   simulation={"values": form.values(), "errors": form.field_errors(), "message": message})


@bp.get("/escalations/simulations/<job_id>")
@login_required
def simulation(job_id: str):
    """A simulate job as JSON for the page's script: the API's document, live counts, then the CLI's summary."""
    job = job_status.get_job(job_id)
    if job is None:
        abort(404)
    response = jsonify(job_status.simulation_state(job))
    response.headers["Cache-Control"] = "no-store"
    return response
