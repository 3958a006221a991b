"""The Escalations page: the simulator QA uses to create, claim, complete and release, and watch the deliveries."""
import logging

from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth.login import require_role
from ..extensions import db
from ..settings.models import TRIGGER_CONDITIONS, EscalationSettings
from ..settings.service import SettingsError, all_settings
from . import service
from .forms import CreateEscalationForm
from .models import Escalation

log = logging.getLogger(__name__)

bp = Blueprint("escalations", __name__)

LIST_LIMIT = 50
TEST_FLOW_NOTES = "Resolved by the qlar console test flow"


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


def _render(pairs, pair, form, status=200):
    """Render the page for one pair (or the empty state when there is none)."""
    escalations = recent_escalations(pair.agent_id, pair.environment) if pair else []
    html = render_template(
        "escalations/index.html",
        pairs=pairs, pair=pair, form=form, escalations=escalations,
        total=count_escalations(pair.agent_id, pair.environment) if pair else 0,
        events=service.events_by_escalation([e.id for e in escalations]), allowed_actions=service.allowed_actions,
        can_edit=current_user.has_role("editor"), template=service.DEFAULT_TEMPLATE,
        trigger_conditions=TRIGGER_CONDITIONS,
        notes_max_length=service.FIELD_MAX_LENGTH["resolutionNotes"],
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
    """Run test flow: create (angry-customer), claim as the current user, complete; three events."""
    agent_id, environment = request.form.get("agent", ""), request.form.get("env", "")
    escalation_id = None
    try:
        escalation_id = service.create_escalation(agent_id, environment).id
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
