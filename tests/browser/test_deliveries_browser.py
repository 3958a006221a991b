"""Real-browser tests of Deliveries: Search finds an escalation's events, the log fits 1280 px and 390 px, the event
page's Copy and folded attempts, and zero axe violations on both pages."""
from datetime import timedelta

import pytest
from helpers import axe_violations, sideways_overflow, wider_than
from playwright.sync_api import Page, expect

from qlar_console.clock import utcnow
from qlar_console.engine.models import Attempt, Event
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db

LONG_ERROR = "Connection refused: nothing is listening on receiver.example.com:443 (after 3 tries at 10 s)"


@pytest.fixture
def log(live_server):
    """A log of three escalations (nine events) in varied states, some of them days old; yields (base_url, ids),
    ids: escalation id -> its event ids, and "event": an event with three attempts."""
    base_url, app = live_server
    now = utcnow()
    with app.app_context():
        escalations = []
        for env in ("production", "staging", "production"):
            escalation = lifecycle.create_escalation("agent-123", env)
            lifecycle.claim(escalation.id, "supervisor-1")
            lifecycle.complete(escalation.id, "Refund issued.")
            escalations.append(escalation.id)
        events = list(db.session.scalars(db.select(Event).order_by(Event.id)))
        for n, event in enumerate(events):
            event.created_at = now - timedelta(days=3 if n < 3 else 0, minutes=len(events) - n)
            event.status, event.attempt_count = ("failed", "pending", "succeeded")[n % 3], 3
            event.last_status_code, event.last_error = (None, LONG_ERROR) if n % 3 else (503, "HTTP 503")
            event.next_attempt_at = now + timedelta(minutes=5) if event.status == "pending" else None
        for number in (1, 2, 3):
            db.session.add(Attempt(event_id=events[0].id, number=number, trigger="scheduled",
                                   url="https://receiver.example.com/hooks/qlar", started_at=now,
                                   request_headers={"webhook-id": events[0].id, "Content-Type": "application/json"},
                                   response_status=503, response_headers={"Server": "test"}, response_body=b"busy"))
        db.session.commit()
        ids = {esc: [e.id for e in events if e.escalation_id == esc] for esc in escalations}
    yield base_url, ids | {"event": events[0].id}


@pytest.fixture
def new_page(signed_in, log):
    """Factory: a viewer's page of the given size and colour scheme on the log's console."""
    return lambda width=1280, scheme="light": signed_in("viewer", width, scheme, path=None, base_url=log[0])


def log_rows(page: Page):
    return page.locator("table.deliveries tbody tr")


def inner_overflow(page: Page) -> int:
    """How far the log table scrolls sideways inside its own box."""
    return page.evaluate("(() => { const box = document.querySelector('.table-scroll');"
                         " return box.scrollWidth - box.clientWidth; })()")


def test_search_finds_an_escalations_events(new_page, log):
    _, ids = log
    escalation, *_ = (key for key in ids if key.startswith("esc-"))
    page = new_page()
    page.goto("/deliveries")
    expect(log_rows(page)).to_have_count(9)
    page.get_by_label("Search", exact=True).fill(escalation)
    page.get_by_role("button", name="Filter").click()
    expect(log_rows(page)).to_have_count(3)
    for row in log_rows(page).all():
        expect(row.locator("td.escalation")).to_contain_text(escalation)
    page.get_by_label("Search", exact=True).fill("not-an-id")
    page.get_by_role("button", name="Filter").click()
    expect(page.get_by_role("alert")).to_contain_text("Search takes an event id (evt_…) or an escalation id (esc-…)")
    expect(page.get_by_label("Search", exact=True)).to_have_attribute("aria-invalid", "true")


def test_log_fits_1280_and_390_and_passes_axe(new_page):
    wide = new_page(1280)
    wide.goto("/deliveries")  # waits for the load event: the log is rendered by the server
    assert wider_than(wide, 1280) == [] and sideways_overflow(wide) == 0
    assert inner_overflow(wide) == 0  # every column, Last result included, is in view without scrolling
    assert axe_violations(wide) == []

    narrow = new_page(390, "dark")
    for path in ("/deliveries", "/deliveries?status=failed&pair=agent-123/production"):
        narrow.goto(path)
        assert sideways_overflow(narrow) == 0, wider_than(narrow, 390)
    assert axe_violations(narrow) == []


def test_event_page_copies_pretty_json_folds_attempts_and_passes_axe(new_page, log):
    _, ids = log
    page = new_page(1280)
    page.goto(f"/deliveries/{ids['event']}")
    attempts = page.locator("details.attempt")
    expect(attempts).to_have_count(3)
    assert [a.get_attribute("open") is not None for a in attempts.all()] == [False, False, True]
    headers = page.locator("#request-headers-3")
    expect(headers).to_be_hidden()  # even in the open attempt, the headers are folded
    page.get_by_text("Request headers (2)").last.click()
    expect(headers).to_be_visible()
    expect(headers.get_by_role("rowheader", name="webhook-id")).to_be_visible()
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.locator("#copy-pretty-status")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith('{\n  "eventId": "' + ids["event"])
    assert axe_violations(page) == []

    narrow = new_page(390, "dark")
    narrow.goto(f"/deliveries/{ids['event']}")
    assert sideways_overflow(narrow) == 0, wider_than(narrow, 390)
    assert axe_violations(narrow) == []
