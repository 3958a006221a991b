"""The Deliveries pages: the event log with its daily chart, one event's attempts, and Resend."""
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth.login import require_role
from ..engine.models import EVENT_TYPES, STATUSES
from ..settings.service import debugger_keys, get_settings
from . import queries, service
from .debugger import diagnose

bp = Blueprint("deliveries", __name__)


@bp.get("/deliveries")
@login_required
def index():
    """The delivery log, newest first, filtered by status and event type, paged by event id."""
    try:
        filters, before = queries.parse_filters(request.args)
    except queries.InvalidFilter as exc:
        return render_template("error.html", message=str(exc), status=400), 400
    days = queries.daily_outcomes()
    dispatcher = current_app.extensions["qlar_dispatcher"]
    return render_template(
        "deliveries/index.html", health=queries.queue_health(dispatcher.schedule, dispatcher.timeout),
        page=queries.list_events(filters, before), filters=filters, paging=before is not None,
        statuses=STATUSES, event_types=EVENT_TYPES, days=days,
        peak=max([1] + [max(d.succeeded, d.failed) for d in days]),
    )


@bp.get("/deliveries/<event_id>")
@login_required
def event(event_id: str):
    """One event: its frozen body and every attempt, in order."""
    found = queries.get_event(event_id)
    if found is None:
        abort(404)
    return render_template("deliveries/event.html", event=found, can_resend=current_user.has_role("editor"))


@bp.post("/deliveries/<event_id>/attempts/<int:number>/debug")
@login_required
def debug_signature(event_id: str, number: int):
    """Signature debugger: does the signature a receiver computed match the current key, the previous, neither?"""
    found = queries.get_event(event_id)
    attempt = next((a for a in found.attempts if a.number == number), None) if found else None
    if attempt is None:
        abort(404)
    headers = attempt.request_headers or {}
    verdict = diagnose(
        request.form.get("signature", ""), found.body, debugger_keys(get_settings(found.agent_id, found.environment)),
        headers.get("webhook-id", found.id), headers.get("webhook-timestamp"),
    )
    return render_template("deliveries/event.html", event=found, can_resend=current_user.has_role("editor"),
                           verdict=verdict, verdict_attempt=number, pasted=request.form.get("signature", ""))


@bp.post("/deliveries/<event_id>/resend")
@require_role("editor")
def resend(event_id: str):
    """Resend: queue the event again now, as a new run of tries."""
    try:
        service.resend(event_id, current_user.username)
    except service.DeliveryError:
        abort(404)
    flash(f"Event {event_id} queued for resend.", "success")
    return redirect(url_for("deliveries.event", event_id=event_id))
