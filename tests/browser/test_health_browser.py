"""The webhook's health and Alerts on the Escalation card, in a real browser: the paused badge and Resume now, the
Alerts fields saved by Save; no axe violations, nothing sideways at 390 px. QLAR_SCREENSHOTS=DIR keeps health-*.png."""
from datetime import timedelta

import pytest
from helpers import axe_violations, keep_screenshot, leaving_asks, sideways_overflow
from playwright.sync_api import expect

from qlar_console.clock import utcnow
from qlar_console.engine.models import Alert
from qlar_console.extensions import db
from qlar_console.settings.alerting import health_view, primary_endpoint
from qlar_console.settings.service import get_settings

REASON = "Failing for 30 min (QLAR_PAUSE_AFTER) with no success."


def pause(app) -> None:
    """Pause agent-123 · production's endpoint as the engine would, with one alert of each state on its list."""
    with app.app_context():
        now = utcnow()
        endpoint = primary_endpoint(get_settings("agent-123", "production"))
        endpoint.health, endpoint.health_since, endpoint.failing_since = "paused", now, now - timedelta(minutes=30)
        endpoint.pause_reason, endpoint.next_probe_at = REASON, now + timedelta(minutes=5)
        endpoint.last_error, endpoint.last_error_at = "HTTP 503 Service Unavailable from the receiver", now
        db.session.flush()
        rows = (("endpoint.failing", "email", "ops@x.example", "sent"),
                ("endpoint.paused", "webhook", "https://hooks.example.com/T/B", "pending"),
                ("endpoint.paused", "email", "ops@x.example", "failed"))
        for kind, channel, target, status in rows:
            db.session.add(Alert(alert_id="alr_test", endpoint_id=endpoint.id, agent_id="agent-123",
                                 environment="production", type=kind, channel=channel, target=target,
                                 subject=kind, body=b"{}", status=status, tries=1, created_at=now,
                                 sent_at=now if status == "sent" else None, next_attempt_at=now + timedelta(minutes=1),
                                 last_error=None if status == "sent" else "Connection refused"))
        db.session.commit()


def test_the_paused_badge_and_resume_now(signed_in, live_server):
    _, app = live_server
    pause(app)
    page = signed_in("editor")
    health = page.locator("#webhook-health")
    expect(health.locator("#health-state")).to_have_text("Paused")
    expect(health).to_contain_text(REASON)
    expect(health).to_contain_text("HTTP 503 Service Unavailable from the receiver")
    expect(health).to_contain_text("Next probe")

    page.get_by_role("button", name="Resume now").click()

    expect(page.get_by_text("Resumed: 0 held events are being delivered.")).to_be_visible()
    expect(page.locator("#health-state")).to_have_text("Healthy")
    expect(page.get_by_role("button", name="Resume now")).to_have_count(0)
    with app.app_context():
        assert health_view(get_settings("agent-123", "production")).state == "healthy"


def test_alert_recipients_are_saved_with_the_page(signed_in, live_server):
    _, app = live_server
    page = signed_in("editor")
    alerts = page.get_by_role("group", name="Alerts")
    expect(alerts).to_be_visible()
    alerts.get_by_label("Alert emails").fill("ops@x.example, oncall@y.example")
    alerts.get_by_label("Alert webhook URL").fill("http://hooks.example.com/T/B")
    page.get_by_role("button", name="Save", exact=True).click()
    field = page.get_by_label("Alert webhook URL")
    expect(page.locator("#alert-url-error")).to_contain_text("must start with https://")
    expect(field).to_have_attribute("aria-invalid", "true")
    expect(field).to_have_value("http://hooks.example.com/T/B")
    expect(page.get_by_label("Alert emails")).to_have_value("ops@x.example, oncall@y.example")

    field.fill("https://hooks.example.com/T/B")
    page.get_by_role("button", name="Save", exact=True).click()

    expect(page.get_by_text("Escalation settings saved")).to_be_visible()
    expect(page.get_by_label("Alert emails")).to_have_value("ops@x.example, oncall@y.example")
    expect(page.get_by_label("Alert webhook URL")).to_have_value("https://hooks.example.com/T/B")
    with app.app_context():
        view = health_view(get_settings("agent-123", "production"))
        assert view.alert_emails == ["ops@x.example", "oncall@y.example"]
        assert view.alert_url == "https://hooks.example.com/T/B"


def test_an_unsaved_alert_email_warns_before_leaving(signed_in):
    page = signed_in("editor")
    page.get_by_label("Alert emails").fill("ops@x.example")
    assert leaving_asks(page) == ["beforeunload"]


@pytest.mark.parametrize(("username", "width", "scheme"), [("editor", 1280, "light"), ("editor", 390, "dark"),
                                                           ("viewer", 390, "light")])
def test_health_and_alerts_pass_axe_and_fit(signed_in, live_server, username, width, scheme):
    _, app = live_server
    pause(app)
    page = signed_in(username, width, scheme)
    expect(page.locator("#health-state")).to_have_text("Paused")
    expect(page.get_by_role("heading", name="Recent alerts")).to_be_visible()
    assert axe_violations(page) == []
    assert sideways_overflow(page) == 0
    keep_screenshot(page, f"health-{username}-{width}-{scheme}")
