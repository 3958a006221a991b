"""The Deliveries pages: the event log with its daily chart, one event's attempts, Resend, and Resend failed."""
from urllib.parse import quote

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth.login import require_role
from ..engine.models import EVENT_TYPES, STATUSES
from ..errors import DomainError
from ..settings.alerting import unhealthy_endpoints
from ..settings.keys import debugger_keys
from ..settings.schedule import overridden_pairs, schedule_in_force
from ..settings.service import all_settings, get_settings
from . import display, log_query, queries, service, stats
from .debugger import diagnose

bp = Blueprint("deliveries", __name__)
PREVIEW_ESCALATIONS = 20  # escalation ids Resend failed's preview lists; the rest are counted
bp.add_app_template_filter(display.pretty_body, "pretty_json")  # the event page's (also after a debugger check)


@bp.app_template_global()
def url_with_endpoint(target: str, endpoint_id: str | None = None, **values) -> str:
    """url_for with an `endpoint=ep_…` argument, which url_for cannot take by name (its first parameter)."""
    url = url_for(target, **{k: v for k, v in values.items() if v is not None})
    if not endpoint_id:
        return url
    return f"{url}{'&' if '?' in url else '?'}endpoint={quote(str(endpoint_id), safe='')}"


@bp.get("/deliveries")
@login_required
def index():
    """The delivery log, newest first: Search, filters with counts per status, paged both ways by event id."""
    pairs = [(s.agent_id, s.environment) for s in all_settings()]
    labels = display.endpoint_labels()  # once: each row's endpoint is named from it (no query per row)
    try:
        filters, cursor = log_query.parse_log_args(request.args, pairs, labels)
    except log_query.InvalidFilter as exc:
        return _render_log(log_query.Filters(), None, pairs, labels, error=exc), 400
    page = queries.list_events(filters, cursor.before, after=cursor.after)
    return _render_log(filters, page, pairs, labels, paged=cursor != log_query.Cursor())


def _render_log(filters, page, pairs, labels, *, error=None, paged=False):
    """The log page; on a refused filter (error) the form keeps what was typed and no events are listed."""
    args = filters.as_args()
    links, counts, found = {}, None, True
    if page is not None:
        links = {
            "newest": _log_url(args) if paged else None,
            "newer": _log_url(args, after=page.newer_than) if page.newer_than else None,
            "older": _log_url(args, before=page.older_than) if page.older_than else None,
        }
        counts = queries.status_counts(filters)
        found = bool(page.events) or not filters.search or queries.search_found(filters)
    form = request.args.to_dict() if error else dict(args)  # what the fields show: as typed when refused
    if "pair" not in form and (form.get("agent") or form.get("env")):
        form["pair"] = f"{form.get('agent', '')}/{form.get('env', '')}"
    days = stats.daily_outcomes()
    dispatcher = current_app.extensions["qlar_dispatcher"]
    pair = get_settings(filters.agent_id, filters.environment) if filters.agent_id and filters.environment else None
    schedule = schedule_in_force(pair)  # the filtered pair's, or the default with the pairs that have their own
    return render_template(
        "deliveries/index.html", health=stats.queue_health(schedule.delays, dispatcher.timeout),
        schedule=schedule, own_schedules=[] if pair else overridden_pairs(), unhealthy=unhealthy_endpoints(),
        page=page, filters=filters, form=form, error=error, links=links, counts=counts, window=queries.COUNT_WINDOW,
        found=found, filtered=bool(args) or error is not None, pairs=pairs, statuses=STATUSES,
        event_types=EVENT_TYPES, days=days, peak=max([1] + [max(d.succeeded, d.failed) for d in days]),
        endpoint_labels=labels, endpoint_label=lambda ep_id: display.endpoint_label(labels, ep_id),
        endpoint_choices=_endpoint_choices(labels, form),
    )


def _log_url(args: dict, **cursor) -> str:
    """The log with the filters (args) and a cursor."""
    rest = {k: v for k, v in args.items() if k != "endpoint"}
    return url_with_endpoint(".index", args.get("endpoint"), **cursor, **rest)


def _endpoint_choices(labels, form) -> list:
    """The Endpoint select's endpoints: the chosen pair's, or every pair's (labelled with their pair)."""
    agent_id, _, environment = (form.get("pair") or "").partition("/")
    if agent_id:
        return [label for label in labels.values() if label.pair == (agent_id, environment)]
    return list(labels.values())


@bp.get("/deliveries/<event_id>")
@login_required
def event(event_id: str):
    """One event: its frozen body (exact and pretty-printed) and every attempt, the latest open."""
    found = queries.get_event(event_id)
    if found is None:
        abort(404)
    return render_template("deliveries/event.html", event=found, can_resend=current_user.has_role("editor"),
                           **_endpoint_context(found))


def _endpoint_context(found) -> dict:
    """The event page's endpoint: its label, and the same event's rows at the other endpoints (same webhook-id)."""
    labels = display.endpoint_labels()
    return {"endpoint": labels.get(found.endpoint_id), "copies": queries.copies_of(found),
            "endpoint_label": lambda ep_id: display.endpoint_label(labels, ep_id)}


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
                           verdict=verdict, verdict_attempt=number, pasted=request.form.get("signature", ""),
                           **_endpoint_context(found))


@bp.post("/deliveries/<event_id>/resend")
@require_role("editor")
def resend(event_id: str):
    """Resend: queue the event again now, as a new run of tries."""
    try:
        service.resend(event_id, current_user.username)
    except service.UnknownEvent:
        abort(404)
    flash(f"Event {event_id} queued for resend.", "success")
    return redirect(url_for("deliveries.event", event_id=event_id))


@bp.get("/deliveries/resend-failed")
@require_role("editor")
def resend_failed_preview():
    """Resend failed: choose an agent · environment and a window; with both, preview what would be queued."""
    pairs = [(s.agent_id, s.environment) for s in all_settings()]
    form = {"pair": request.args.get("pair") or "", "window": request.args.get("window") or "1h",
            "day": request.args.get("day") or "", "endpoint": request.args.get("endpoint") or ""}
    if "window" not in request.args:  # the first visit: only the form (the pair may come from the log's filter)
        return _render_resend(pairs, form)
    try:
        found = service.failed_events(*_pair(form), _window(form), endpoint_id=form["endpoint"].strip() or None)
    except DomainError as exc:
        return _render_resend(pairs, form, error=exc), 400
    return _render_resend(pairs, form, found=found)


@bp.post("/deliveries/resend-failed")
@require_role("editor")
def resend_failed():
    """Resend failed, confirmed: queue the events again (oldest first, each escalation in order); audited."""
    form = {name: request.form.get(name) or "" for name in ("pair", "window", "day", "endpoint")}
    try:
        done = service.resend_failed(*_pair(form), _window(form), current_user.username,
                                     endpoint_id=form["endpoint"].strip() or None)
    except DomainError as exc:
        return _render_resend([(s.agent_id, s.environment) for s in all_settings()], form, error=exc), 400
    if not done.count:
        flash(f"No failed events {done.described}: nothing was queued.", "warning")
    else:
        rest = " (the oldest: run Resend failed again for the rest)" if done.more else ""
        flash(f"{done.count} failed {'event' if done.count == 1 else 'events'} queued{rest}: sent again at the "
              f"endpoint's normal pace, each escalation in order.", "success")
    return redirect(url_with_endpoint(".index", done.endpoint_id, pair=f"{done.agent_id}/{done.environment}"))


def _pair(form: dict) -> tuple[str, str]:
    """The form's agent · environment (pair=AGENT/ENV); an unknown one is refused by failed_events."""
    agent_id, _, environment = form["pair"].strip().partition("/")
    if not agent_id:
        raise DomainError("Choose an agent · environment.", "pair")
    return agent_id, environment


def _window(form: dict) -> str:
    """The window as service.parse_window takes it: 1h, 24h, 7d, or the day typed when "Since a day" is chosen."""
    if form["window"] == "date":
        if not form["day"].strip():
            raise service.InvalidWindow("Give the UTC day to resend from, written YYYY-MM-DD.", "day")
        return form["day"]
    return form["window"]


def _render_resend(pairs, form, *, found=None, error=None):
    """The Resend failed page: the form, then the preview with its confirmation, or the refusal."""
    field = error and ("day" if error.field == "since" and form["window"] == "date" else error.field or "pair")
    labels = display.endpoint_labels()
    return render_template("deliveries/resend_failed.html", pairs=pairs, form=form, found=found, error=error,
                           error_field=field, windows=service.WINDOWS, shown=PREVIEW_ESCALATIONS,
                           endpoints=list(labels.values()),
                           endpoint_label=lambda ep_id: display.endpoint_label(labels, ep_id))
