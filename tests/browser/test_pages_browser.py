"""Every console page, as a browser shows it: nothing sideways at 390 px or cut at 1280 px, zero axe violations,
in light and dark mode. Set QLAR_SCREENSHOTS=DIR to keep a full-page PNG of each page (the README's come from it)."""
import os
from pathlib import Path

import pytest
from apps import PASSWORD, dispose, make_app
from helpers import axe_violations, served, served_receiver, sideways_overflow, wider_than

from qlar_console.auth.tokens import create_token
from qlar_console.engine.models import Event
from qlar_console.escalations import service as escalations
from qlar_console.extensions import db
from qlar_console.receiver.app import create_receiver_app, receiver_state
from qlar_console.receiver.certs import ensure_local_ca
from qlar_console.settings.keys import signing_secrets
from qlar_console.settings.receiver_check import check_receiver
from qlar_console.settings.service import SettingsChange, get_settings, save_settings

SHOTS = os.environ.get("QLAR_SCREENSHOTS")


@pytest.fixture(scope="module")
def site(tmp_path_factory):
    """A console with history on every page (deliveries, attempts, a receiver check, audit, a token) and its
    reference receiver; yields (console_url, receiver_url, event_id)."""
    tmp_path = tmp_path_factory.mktemp("pages")
    certs = ensure_local_ca(tmp_path)
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True, ALLOW_PRIVATE_TARGETS=True, TIMEOUT_SECONDS=3, LEASE_SECONDS=5)
    receiver_app = create_receiver_app([])
    with served_receiver(receiver_app, certs) as receiver:
        receiver_url = f"https://127.0.0.1:{receiver.server_port}"
        with app.app_context():
            staging = get_settings("agent-123", "staging")
            save_settings(staging, SettingsChange(webhook_enabled=True, webhook_url=f"{receiver_url}/webhook"),
                          expected_version=staging.version, actor="admin")
            receiver_state(receiver_app).set_keys(signing_secrets(staging))
            for _ in range(3):
                escalation = escalations.create_escalation("agent-123", "staging")
                escalations.claim(escalation.id, "admin")
                escalations.complete(escalation.id, "Refund issued and the customer thanked us.")
            escalations.create_escalation("agent-123", "production")
            app.extensions["qlar_dispatcher"].drain()
            check_receiver(get_settings("agent-123", "staging"), "admin")
            create_token("ci pipeline", "admin", ["read"], actor="admin")
            event_id = db.session.scalar(db.select(Event.id).where(Event.environment == "staging").limit(1))
        with served(app) as console:
            yield console, receiver_url, event_id
    dispose(app)


PAGES = {
    "home": "/",
    "escalation": "/agents/agent-123/staging/escalation",
    "escalations": "/escalations?agent=agent-123&env=staging",
    "deliveries": "/deliveries",
    "event": "/deliveries/{event_id}",
    "audit": "/audit",
    "tokens": "/tokens",
    "not-found": "/deliveries/evt_0",
}


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (390, "dark")])
@pytest.mark.long(15)
def test_every_page_fits_and_passes_axe(browser, site, width, scheme):
    console, receiver, event_id = site
    context = browser.new_context(base_url=console, viewport={"width": width, "height": 900}, color_scheme=scheme,
                                  ignore_https_errors=True)
    page = context.new_page()
    problems = []

    def look(name: str, url: str | None) -> None:
        if url:  # goto waits for the load event: every page is rendered by the server, and fetches nothing on load
            page.goto(url)
        if SHOTS:
            Path(SHOTS).mkdir(parents=True, exist_ok=True)
            page.screenshot(path=f"{SHOTS}/{name}-{width}-{scheme}.png", full_page=True)
        if overflow := sideways_overflow(page):
            problems.append(f"{name}: scrolls {overflow}px sideways at {width}px: {wider_than(page, width)}")
        problems.extend(f"{name}: {violation}" for violation in axe_violations(page))

    look("login", "/login")
    page.get_by_label("Username").fill("admin")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()
    page.wait_for_url(f"{console}/")
    for name, path in PAGES.items():
        look(name, path.format(event_id=event_id))
    page.goto(PAGES["escalation"])
    if SHOTS:  # the README's close-ups
        page.get_by_role("region", name="Webhook Notifications").screenshot(path=f"{SHOTS}/card-{width}-{scheme}.png")
    page.get_by_role("button", name="Regenerate Key").click()
    look("regenerate-dialog", None)
    look("receiver", f"{receiver}/")
    context.close()
    assert not problems, "\n".join(problems)
