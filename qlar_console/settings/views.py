"""The Escalation page: behaviour settings and the Webhook Notifications card."""
from flask import Blueprint, abort, current_app, flash, jsonify, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ..auth.login import require_role
from ..clock import utcnow
from ..crypto import MASKED
from ..engine.alerts import recent_alerts
from ..webhook_url import PRIVATE_WARNING, InvalidWebhookURL, check_webhook_url
from . import alerting, endpoints, keys, missed, receiver_check, service
from .forms import GRACE_CHOICES, EndpointForm, RegenerateForm, SettingsForm
from .schedule import default_schedule_text, schedule_in_force

bp = Blueprint("settings", __name__)


def _settings_or_404(agent_id: str, env: str):
    """The settings of the page's agent x environment, or 404."""
    try:
        return service.get_settings(agent_id, env)
    except service.UnknownPair:
        abort(404)


def _page_url(settings) -> str:
    return url_for("settings.escalation", agent_id=settings.agent_id, env=settings.environment)


@bp.get("/")
@login_required
def index():
    """The overview: each agent x environment with its webhook state and last 24 hours of deliveries."""
    from .overview import pair_overview  # imported here so this view's change stays within the view

    return render_template("settings/index.html", rows=pair_overview())


def _saved_form(settings) -> SettingsForm:
    """The form holding what is saved, the alert recipients from the pair's endpoint record."""
    endpoint = alerting.primary_endpoint(settings)
    return SettingsForm(obj=settings, alert_emails=", ".join(endpoint.alert_emails or []),
                        alert_url=endpoint.alert_url or "")


def _render(settings, form, pairs, *, version=None, status=200, endpoint_form=None):
    """Render the Escalation page with the given form state."""
    try:
        warning = check_webhook_url(form.webhook_url.data, enabled=False).warning
    except InvalidWebhookURL:
        warning = None
    now = utcnow()
    show_fields = bool(form.webhook_enabled.data or form.webhook_url.errors)
    html = render_template(
        "settings/escalation.html",
        settings=settings, form=form, pairs=pairs, url_warning=warning,
        version=settings.version if version is None else version, show_fields=show_fields,
        masked=MASKED, grace_choices=GRACE_CHOICES,
        now=now, grace_active=settings.previous_secret_active(now),
        can_edit=current_user.has_role("editor"), can_admin=current_user.has_role("admin"),
        schedule=schedule_in_force(settings), default_schedule=default_schedule_text(),
        missed=missed.missed_events(settings) if settings.webhook_enabled else [],
        check=receiver_check.latest_check(settings) if settings.webhook_url and settings.saved_at else None,
        health=alerting.health_view(settings), alerts=recent_alerts(settings.agent_id, settings.environment),
        draft=status != 200,  # the form holds edits the server refused: leaving the page would lose them
        additional=[(ep, alerting.health_view(settings, ep)) for ep in endpoints.additional_endpoints(settings)],
        endpoint_form=endpoint_form or EndpointForm(formdata=None),
        max_endpoints=current_app.config["MAX_ENDPOINTS"],
    )
    return html, status


@bp.route("/agents/<agent_id>/<env>/escalation", methods=["GET", "POST"])
@login_required
def escalation(agent_id: str, env: str):
    """Show the Escalation page; a POST is the page's Save."""
    pairs = service.all_settings()  # the switcher's list holds the page's own settings: one query for both
    settings = next((s for s in pairs if s.agent_id == agent_id and s.environment == env), None)
    if settings is None:
        abort(404)
    if request.method == "GET":
        return _render(settings, _saved_form(settings), pairs)
    if not current_user.has_role("editor"):
        abort(403)
    form = SettingsForm()
    if not form.validate_on_submit():
        return _render(settings, form, pairs, version=request.form.get("version"), status=422)
    expected = request.form.get("version", type=int)
    if expected is None:
        flash("The form was sent without its version: reload the page and try again.", "error")
        return _render(settings, form, pairs, status=400)
    change = service.SettingsChange(
        webhook_enabled=form.webhook_enabled.data,
        webhook_url=form.webhook_url.data,
        trigger_conditions=form.trigger_conditions.data,
        default_urgency=form.default_urgency.data,
        claim_timeout_minutes=form.claim_timeout_minutes.data,
        # only an admin's page has the field: without it the saved schedule stays (None)
        retry_schedule=form.retry_schedule.data if "retry_schedule" in request.form else None,
        alert_emails=form.alert_emails.data if "alert_emails" in request.form else None,  # absent: kept
        alert_url=form.alert_url.data if "alert_url" in request.form else None,
    )
    try:
        checked = service.save_settings(settings, change, expected_version=expected, actor=current_user.username,
                                        as_admin=current_user.has_role("admin"))
    except service.StaleSettings as exc:
        flash(str(exc), "error")
        return _render(settings, form, pairs, status=409)  # now carries the newest version: Save again overwrites
    except service.AdminOnly as exc:  # a field this user's page does not show: say so at the top
        flash(str(exc), "error")
        return _render(settings, form, pairs, version=expected, status=403)
    except (InvalidWebhookURL, service.SettingsError) as exc:
        if exc.field in form:
            form[exc.field].errors = [str(exc)]
        else:
            flash(str(exc), "error")
        return _render(settings, form, pairs, version=expected, status=422)
    flash("Escalation settings saved", "success")
    if checked.warning and checked.warning != PRIVATE_WARNING:  # found by a lookup the page does not redo
        flash(checked.warning, "warning")
    return redirect(_page_url(settings))


@bp.post("/agents/<agent_id>/<env>/webhook/secret")
@require_role("editor")
def reveal_secret(agent_id: str, env: str):
    """Copy: hand the plaintext key to the page's script, once, never cached."""
    settings = _settings_or_404(agent_id, env)
    response = jsonify(secret=keys.reveal_secret(settings, current_user.username))
    response.headers["Cache-Control"] = "no-store"
    return response


@bp.post("/agents/<agent_id>/<env>/webhook/regenerate")
@require_role("editor")
def regenerate(agent_id: str, env: str):
    """Regenerate Key, after a confirmation (the script's dialog, or a page without JS)."""
    settings = _settings_or_404(agent_id, env)
    form = RegenerateForm()
    if not form.validate_on_submit():
        abort(400)
    if form.confirmed.data != "yes":
        return render_template("settings/confirm_regenerate.html", settings=settings, form=form)
    keys.regenerate_secret(settings, current_user.username, form.grace.data)
    if form.grace.data == "none":
        flash("Secret key regenerated. The previous key no longer validates: "
              "update your receiver with the new key now.", "success")
    else:
        flash("Secret key regenerated. The previous key stays valid during the grace period; "
              "update your receiver before it ends.", "success")
    return redirect(_page_url(settings))


@bp.post("/agents/<agent_id>/<env>/webhook/revoke-previous")
@require_role("editor")
def revoke_previous(agent_id: str, env: str):
    """Revoke previous key now: end the grace period early."""
    settings = _settings_or_404(agent_id, env)
    keys.revoke_previous_secret(settings, current_user.username)
    flash("Previous key revoked: only the current key validates now.", "success")
    return redirect(_page_url(settings))


@bp.post("/agents/<agent_id>/<env>/webhook/resend-missed")
@require_role("editor")
def resend_missed(agent_id: str, env: str):
    """After a 410 switched the webhook off and it was re-enabled: resend what was missed, oldest first."""
    settings = _settings_or_404(agent_id, env)
    dismiss = request.form.get("action") == "dismiss"
    count = missed.resend_missed(settings, current_user.username, dismiss=dismiss)
    flash("Dismissed." if dismiss else f"{count} missed events queued for delivery, oldest first.", "success")
    return redirect(_page_url(settings))


@bp.post("/agents/<agent_id>/<env>/webhook/resume")
@require_role("editor")
def resume(agent_id: str, env: str):
    """Resume now: end the webhook's pause at once; its held events go out in order."""
    settings = _settings_or_404(agent_id, env)
    try:
        count = alerting.resume(settings, current_user.username)
    except alerting.NotPaused as exc:
        flash(str(exc), "error")
    else:
        flash(f"Resumed: {count} held events are being delivered.", "success")
    return redirect(_page_url(settings))


@bp.post("/agents/<agent_id>/<env>/webhook/check")
@require_role("editor")
def check_receiver(agent_id: str, env: str):
    """Check receiver: probe the saved endpoint and show the scorecard on the card."""
    settings = _settings_or_404(agent_id, env)
    try:
        check = receiver_check.check_receiver(settings, current_user.username)
    except (service.SettingsError, receiver_check.CheckTooSoon) as exc:
        flash(str(exc), "error")
    else:
        if check.passed:
            flash("Receiver check: every required rule passed.", "success")
        else:
            flash("Receiver check: some required rules failed; see the scorecard below.", "error")
    return redirect(_page_url(settings) + "#receiver-check")

