"""The Deliveries pages: the event log with its daily chart, one event's attempts, and Resend."""
from flask import Blueprint, abort, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth.views import require_role
from . import queries, service
from .models import EVENT_TYPES, STATUSES

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
    return render_template(
        "deliveries/index.html",
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
