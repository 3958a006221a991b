"""The demo that `make run` seeds and serves: agent-123 (production, staging), an admin, the reference receiver,
and a local SMTP catcher for the alert emails."""
import click
from flask import Flask

from .auth.models import User
from .auth.service import create_user
from .extensions import db
from .receiver.app import create_receiver_app, receiver_options, serve_receiver_in_thread
from .receiver.certs import ensure_local_ca
from .receiver.store import InvalidReceiverSetting
from .settings.keys import signing_secrets
from .settings.service import SettingsChange, add_agent, all_settings, get_settings, save_settings

DEMO_AGENT = "agent-123"
DEMO_ENVIRONMENTS = ["production", "staging"]
CONSOLE_PORT = 5000
RECEIVER_PORT = 8443
DEMO_WEBHOOK_URL = "https://127.0.0.1:{port}/webhook"  # the reference receiver's, on make run's RECEIVER_PORT
DEMO_RETRY_SCHEDULE = "1s,2s,5s"
DEMO_ALERT_EMAIL = "qa@example.test"
MAIL_PORT = 8025  # the demo's SMTP catcher (mailcatcher.py)


def seed_demo(instance_path: str, receiver_port: int = RECEIVER_PORT) -> str | None:
    """Create what is missing; returns the admin's one-time password when the admin is new.

    The staging webhook points at the reference receiver on `receiver_port` (once, while nobody has saved
    staging yet; again when only the demo saved it, for another port), and the local CA the receiver's
    certificate comes from is created for the console to trust.
    """
    ensure_local_ca(instance_path)
    add_agent(DEMO_AGENT, DEMO_ENVIRONMENTS, "demo")
    staging = get_settings(DEMO_AGENT, "staging")
    url = DEMO_WEBHOOK_URL.format(port=receiver_port)
    if staging.saved_at is None:  # a short schedule and an alert address: Switch down shows the whole outage cycle
        save_settings(staging, SettingsChange(webhook_enabled=True, webhook_url=url,
                                              retry_schedule=DEMO_RETRY_SCHEDULE, alert_emails=DEMO_ALERT_EMAIL),
                      expected_version=staging.version, actor="demo", as_admin=True)
    elif staging.saved_by == "demo" and staging.webhook_url != url:  # make run with another RECEIVER_PORT
        save_settings(staging, SettingsChange.from_settings(staging, webhook_url=url),
                      expected_version=staging.version, actor="demo", as_admin=True)
    if db.session.scalar(db.select(User).filter_by(username="admin")):
        return None
    _, password = create_user("admin", "admin", actor="demo")
    return password


def start_reference_receiver(app: Flask, port: int = RECEIVER_PORT):
    """Serve the reference receiver on https://127.0.0.1:port in a thread, holding the keys of the
    webhooks that point at it; returns the server (call .shutdown() to stop it)."""
    prefix = f"https://127.0.0.1:{port}/"
    keys = [key for s in all_settings() if (s.webhook_url or "").startswith(prefix) for key in signing_secrets(s)]
    try:
        receiver = create_receiver_app(keys, **receiver_options(app))
    except InvalidReceiverSetting as exc:
        raise click.ClickException(str(exc)) from None
    try:
        server, _ = serve_receiver_in_thread(receiver, "127.0.0.1", port, ensure_local_ca(app.instance_path))
    except OSError as exc:
        click.echo(f" * Reference receiver not started: port {port} is busy ({exc.strerror}).", err=True)
        return None
    click.echo(f" * Reference receiver on {prefix} (traces) with webhook {prefix}webhook")
    return server
