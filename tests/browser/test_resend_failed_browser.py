"""Resend failed in a real browser: preview, a refused day, then the resend, at 1280 px and 390 px."""
from datetime import timedelta

import pytest
from deliveries.test_resend_failed import _events, _flows
from helpers import axe_violations, sideways_overflow, wider_than
from playwright.sync_api import expect

from qlar_console.clock import utcnow
from qlar_console.engine.models import Attempt, Event
from qlar_console.extensions import db


def _fail_everything(app) -> list[str]:
    """Escalations whose events all failed a minute ago (the webhook is off in the live server: no real sends)."""
    escalations = _flows(app, 3)
    with app.app_context():
        for event in db.session.scalars(db.select(Event)):
            event.status, event.attempt_count, event.last_status_code = "failed", 1, 503
            db.session.add(Attempt(event_id=event.id, number=1, trigger="scheduled", url="https://example.com/hook",
                                   started_at=utcnow() - timedelta(minutes=1), response_status=503))
        db.session.commit()
    return escalations


@pytest.mark.parametrize("width", [1280, 390])
def test_page_flow_in_a_browser(signed_in, live_server, width):
    base_url, app = live_server
    escalations = _fail_everything(app)
    page = signed_in("editor", path=None, width=width)
    page.goto("/deliveries")
    assert sideways_overflow(page) == 0 and not wider_than(page, width)
    page.get_by_role("link", name="Resend failed…").click()
    expect(page.get_by_role("heading", name="Resend failed events")).to_be_visible()
    page.get_by_label("Agent · environment").select_option("agent-123/production")
    page.get_by_label("Failed within").select_option("date")
    page.get_by_label("Since (UTC day)").fill("2024-02-30" if width == 390 else utcnow().date().isoformat())
    page.get_by_role("button", name="Preview").click()
    if width == 390:  # the browser's date field refuses a day that does not exist: the field is left empty
        expect(page.get_by_role("alert")).to_contain_text("Give the UTC day to resend from")
        assert axe_violations(page) == [] and sideways_overflow(page) == 0
        page.get_by_label("Failed within").select_option("24h")
        page.get_by_role("button", name="Preview").click()
    expect(page.get_by_text("6 failed events", exact=False).first).to_be_visible()
    for escalation in escalations:
        expect(page.get_by_role("link", name=escalation)).to_be_visible()
    assert axe_violations(page) == []
    assert sideways_overflow(page) == 0 and not wider_than(page, width)
    page.get_by_role("button", name="Resend 6 failed events").click()
    expect(page.get_by_role("status").first).to_contain_text("6 failed events queued")
    assert page.url.endswith("/deliveries?pair=agent-123/production") or "pair=agent-123%2Fproduction" in page.url
    assert axe_violations(page) == [] and sideways_overflow(page) == 0
    assert sum(e.status == "pending" for e in _events(app)) == 6
