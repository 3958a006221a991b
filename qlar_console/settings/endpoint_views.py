"""The Escalation page's Additional endpoints (Add endpoint, switch on or off, Regenerate Key, Remove) and each
endpoint's own page (its fields, key, retry schedule, alerts, health, Check receiver).
Thin views over settings/endpoints.py; on the settings blueprint."""
from flask import abort, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth.login import require_role
from ..clock import utcnow
from ..crypto import MASKED
from ..engine.retry import parse_schedule
from ..extensions import db
from ..webhook_url import InvalidWebhookURL
from . import alerting, endpoints, receiver_check, service
from .forms import GRACE_CHOICES, EndpointForm, EndpointPageForm, RegenerateForm
from .schedule import ScheduleInForce, default_schedule_text
from .views import _page_url, _render, _saved_form, _settings_or_404, bp


def _endpoint_of(settings, endpoint_id: str):
    """The pair's additional endpoint with that id (404 for another pair's or the primary)."""
    ep = endpoints.get_endpoint(endpoint_id)
    if ep.is_primary or (ep.agent_id, ep.environment) != (settings.agent_id, settings.environment):
        raise endpoints.EndpointNotFound(f"No endpoint {endpoint_id!r} here.")
    return ep


@bp.post("/agents/<agent_id>/<env>/endpoints")
@require_role("editor")
def add_endpoint(agent_id: str, env: str):
    """Add endpoint: saved and listed, or the page again with the field marked and the input kept."""
    settings = _settings_or_404(agent_id, env)
    form = EndpointForm()
    if form.validate_on_submit():
        change = endpoints.EndpointChange(url=form.url.data, event_types=form.event_types.data,
                                          headers=form.headers.data, description=form.description.data)
        try:
            ep = endpoints.add_endpoint(settings, change, current_user.username,
                                        as_admin=current_user.has_role("admin"))
        except service.SettingsError as exc:
            field = exc.field if exc.field in form else "url"
            form[field].errors = [str(exc)]
        else:
            flash(f"Endpoint {ep.id} added", "success")
            return redirect(_page_url(settings) + "#additional-endpoints")
    return _render(settings, _saved_form(settings), service.all_settings(), status=422, endpoint_form=form)


@bp.post("/agents/<agent_id>/<env>/endpoints/<endpoint_id>/<action>")
@require_role("editor")
def change_endpoint(agent_id: str, env: str, endpoint_id: str, action: str):
    """Enable, Disable, Regenerate Key (with the chosen grace) or Remove one additional endpoint."""
    settings = _settings_or_404(agent_id, env)
    ep = _endpoint_of(settings, endpoint_id)
    actor = current_user.username
    back = (_endpoint_url(ep) if request.form.get("back") == "endpoint" else _page_url(settings)
            + "#additional-endpoints")
    if action == "regenerate" and request.form.get("confirmed", "yes") != "yes":  # the page's dialog, without JS
        form = RegenerateForm()
        if not form.validate_on_submit():
            abort(400)
        return render_template("settings/confirm_regenerate.html", settings=settings, form=form, endpoint=ep,
                               cancel=_endpoint_url(ep))
    if action in ("enable", "disable"):
        endpoints.update_endpoint(ep, endpoints.EndpointChange(enabled=action == "enable"), actor)
        flash(f"Endpoint {ep.id} {action}d", "success")
    elif action == "regenerate":
        endpoints.regenerate_endpoint_secret(ep, actor, request.form.get("grace", "none"))
        flash(f"Secret key of {endpoint_id} regenerated", "success")
    elif action == "remove":
        cancelled = endpoints.remove_endpoint(ep, actor)
        flash(f"Endpoint {endpoint_id} removed; {cancelled} pending events cancelled", "success")
        return redirect(_page_url(settings) + "#additional-endpoints")
    elif action == "resume":
        try:
            count = alerting.resume_endpoint(ep, actor)
        except alerting.NotPaused as exc:
            flash(str(exc), "error")
        else:
            flash(f"Resumed: {count} held events are being delivered.", "success")
    elif action == "check":
        try:
            check = receiver_check.check_endpoint(ep, actor)
        except (service.SettingsError, receiver_check.CheckTooSoon) as exc:
            flash(str(exc), "error")
        else:
            flash("Receiver check: every required rule passed." if check.passed else
                  "Receiver check: some required rules failed; see the scorecard below.",
                  "success" if check.passed else "error")
            return _render_endpoint(settings, ep, _saved_endpoint_form(ep), check=check)
    else:
        raise endpoints.EndpointNotFound(f"No such action {action[:20]!r}.")
    return redirect(back)


def _endpoint_url(ep) -> str:
    return url_for("settings.endpoint", agent_id=ep.agent_id, env=ep.environment, endpoint_id=ep.id)


def _saved_endpoint_form(ep) -> EndpointPageForm:
    return EndpointPageForm(formdata=None, url=ep.url, enabled=ep.enabled, event_types=list(ep.event_types or []),
                            headers="\n".join(f"{k}: {v}" for k, v in (ep.headers or {}).items()),
                            description=ep.description or "", retry_schedule=ep.retry_schedule or "",
                            alert_emails=", ".join(ep.alert_emails or []), alert_url=ep.alert_url or "")


def _schedule_of(ep) -> ScheduleInForce:
    text = ep.retry_schedule or default_schedule_text()
    return ScheduleInForce(ep.id, text, parse_schedule(text), bool(ep.retry_schedule))


def _render_endpoint(settings, ep, form, *, version=None, status=200, check=None):
    """Render an additional endpoint's page with the given form state."""
    now = utcnow()
    html = render_template(
        "settings/endpoint.html", settings=settings, ep=ep, form=form,
        version=ep.version if version is None else version, masked=MASKED, grace_choices=GRACE_CHOICES, now=now,
        grace_active=ep.previous_secret_active(now), can_edit=current_user.has_role("editor"),
        can_admin=current_user.has_role("admin"), schedule=_schedule_of(ep), default_schedule=default_schedule_text(),
        health=alerting.health_view(settings, ep), check=check, draft=status != 200)
    return html, status


@bp.route("/agents/<agent_id>/<env>/endpoints/<endpoint_id>", methods=["GET", "POST"])
@login_required
def endpoint(agent_id: str, env: str, endpoint_id: str):
    """An additional endpoint's page; a POST is its Save (refused if someone saved since it was loaded)."""
    settings = _settings_or_404(agent_id, env)
    ep = _endpoint_of(settings, endpoint_id)
    if request.method == "GET":
        return _render_endpoint(settings, ep, _saved_endpoint_form(ep))
    if not current_user.has_role("editor"):
        abort(403)
    form = EndpointPageForm()
    expected = request.form.get("version", type=int)
    if not form.validate_on_submit() or expected is None:
        if expected is None:
            flash("The form was sent without its version: reload the page and try again.", "error")
        return _render_endpoint(settings, ep, form, version=request.form.get("version"), status=400)
    change = endpoints.EndpointChange(
        url=form.url.data, enabled=form.enabled.data, event_types=form.event_types.data or [],
        headers=form.headers.data, description=form.description.data,
        retry_schedule=form.retry_schedule.data if "retry_schedule" in request.form else None,  # admins' page only
        alert_emails=form.alert_emails.data, alert_url=form.alert_url.data)
    try:
        endpoints.update_endpoint(ep, change, current_user.username, expected_version=expected,
                                  as_admin=current_user.has_role("admin"))
    except endpoints.EndpointConflict as exc:
        flash(str(exc), "error")
        return _render_endpoint(settings, ep, form, status=409)  # carries the newest version: Save again overwrites
    except (service.SettingsError, InvalidWebhookURL) as exc:
        db.session.rollback()
        db.session.refresh(ep)
        if isinstance(exc, InvalidWebhookURL):
            form.url.errors = [str(exc)]
        elif exc.field in form:
            form[exc.field].errors = [str(exc)]
        else:
            flash(str(exc), "error")
        return _render_endpoint(settings, ep, form, version=expected, status=422)
    flash(f"Endpoint {ep.id} saved", "success")
    return redirect(_endpoint_url(ep))


@bp.post("/agents/<agent_id>/<env>/endpoints/<endpoint_id>/secret")
@require_role("editor")
def reveal_endpoint_secret(agent_id: str, env: str, endpoint_id: str):
    """Copy: hand the endpoint's plaintext key to the page's script, once, never cached; audited."""
    settings = _settings_or_404(agent_id, env)
    ep = _endpoint_of(settings, endpoint_id)
    response = jsonify(secret=endpoints.reveal_endpoint_secret(ep, current_user.username))
    response.headers["Cache-Control"] = "no-store"
    return response

