"""The Escalation page's Additional endpoints: Add endpoint, switch on or off, Regenerate Key, Remove.
Thin views over settings/endpoints.py; on the settings blueprint."""
from flask import flash, redirect, request
from flask_login import current_user

from ..auth.login import require_role
from . import endpoints, service
from .forms import EndpointForm
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
    if action in ("enable", "disable"):
        endpoints.update_endpoint(ep, endpoints.EndpointChange(enabled=action == "enable"), actor)
        flash(f"Endpoint {ep.id} {action}d", "success")
    elif action == "regenerate":
        endpoints.regenerate_endpoint_secret(ep, actor, request.form.get("grace", "none"))
        flash(f"Secret key of {endpoint_id} regenerated", "success")
    elif action == "remove":
        cancelled = endpoints.remove_endpoint(ep, actor)
        flash(f"Endpoint {endpoint_id} removed; {cancelled} pending events cancelled", "success")
    else:
        raise endpoints.EndpointNotFound(f"No such action {action[:20]!r}.")
    return redirect(_page_url(settings) + "#additional-endpoints")

