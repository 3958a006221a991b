"""The Deliveries pages: the event log with its daily chart, one event's attempts, and Resend."""
from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth.login import require_role
from ..engine.models import EVENT_TYPES, STATUSES
from ..settings.service import all_settings, debugger_keys, get_settings
from . import log_query, queries, service
from .debugger import diagnose

bp = Blueprint("deliveries", __name__)
bp.add_app_template_filter(queries.pretty_body, "pretty_json")  # the event page's (also after a debugger check)


@bp.get("/deliveries")
@login_required
def index():
    """The delivery log, newest first: Search, filters with counts per status, paged both ways by event id."""
    pairs = [(s.agent_id, s.environment) for s in all_settings()]
    try:
        filters, cursor = log_query.parse_log_args(request.args, pairs)
    except queries.InvalidFilter as exc:
        return _render_log(queries.Filters(), None, pairs, error=exc), 400
    page = queries.list_events(filters, cursor.before, after=cursor.after)
    return _render_log(filters, page, pairs, paged=cursor != log_query.Cursor())


def _render_log(filters, page, pairs, *, error=None, paged=False):
    """The log page; on a refused filter (error) the form keeps what was typed and no events are listed."""
    args = filters.as_args()
    links, counts, found = {}, None, True
    if page is not None:
        links = {
            "newest": url_for(".index", **args) if paged else None,
            "newer": url_for(".index", after=page.newer_than, **args) if page.newer_than else None,
            "older": url_for(".index", before=page.older_than, **args) if page.older_than else None,
        }
        counts = queries.status_counts(filters)
        found = bool(page.events) or not filters.search or queries.search_found(filters)
    form = request.args.to_dict() if error else dict(args)  # what the fields show: as typed when refused
    if "pair" not in form and (form.get("agent") or form.get("env")):
        form["pair"] = f"{form.get('agent', '')}/{form.get('env', '')}"
    days = queries.daily_outcomes()
    dispatcher = current_app.extensions["qlar_dispatcher"]
    return render_template(
        "deliveries/index.html", health=queries.queue_health(dispatcher.schedule, dispatcher.timeout),
        page=page, filters=filters, form=form, error=error, links=links, counts=counts, window=queries.COUNT_WINDOW,
        found=found, filtered=bool(args) or error is not None, pairs=pairs, statuses=STATUSES,
        event_types=EVENT_TYPES, days=days, peak=max([1] + [max(d.succeeded, d.failed) for d in days]),
    )


@bp.get("/deliveries/<event_id>")
@login_required
def event(event_id: str):
    """One event: its frozen body (exact and pretty-printed) and every attempt, the latest open."""
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
