"""Purge synthetic data (admins): a preview of one agent x environment's synthetic escalations, events and attempts,
then the confirmed purge. Its routes join the Escalations blueprint (the page it starts from); the rules are in
purge.py, shared with `flask qlar purge --synthetic AGENT ENV`."""
from flask import flash, redirect, render_template, request, url_for
from flask_login import current_user

from ..auth.login import require_role
from .purge import SimulationRunning, check_no_simulation, purge_synthetic, synthetic_counts
from .views import bp


@bp.get("/escalations/purge-synthetic")
@require_role("admin")
def purge_synthetic_preview():
    """The counts that Purge synthetic data would remove for the pair (agent=…&env=…), and its confirm button."""
    found = synthetic_counts(request.args.get("agent", ""), request.args.get("env", ""))  # unknown pair: 404 page
    refused = None
    if not found.empty:
        try:
            check_no_simulation(found.agent_id, found.environment)
        except SimulationRunning as exc:
            refused = str(exc)
    return render_template("escalations/purge_synthetic.html", found=found, refused=refused)


@bp.post("/escalations/purge-synthetic")
@require_role("admin")
def purge_synthetic_confirm():
    """Purge synthetic data, confirmed: remove the pair's synthetic data (audited), then back to its escalations."""
    agent_id, environment = request.form.get("agent", ""), request.form.get("env", "")
    try:
        done = purge_synthetic(agent_id, environment, current_user.username)  # unknown pair: 404 page
    except SimulationRunning as exc:
        flash(str(exc), "error")
        return redirect(url_for(".purge_synthetic_preview", agent=agent_id, env=environment))
    pair = f"{done.agent_id} · {done.environment}"
    if done.empty and not done.in_flight:
        flash(f"No synthetic data of {pair}: nothing was removed.", "warning")
    else:
        flash(f"Removed {done.described()} of synthetic data of {pair}. {done.kept()}".strip(), "success")
    return redirect(url_for(".index", agent=done.agent_id, env=done.environment))
