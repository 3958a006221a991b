"""The retry schedule under Advanced on the Escalation page, in a real browser: an admin sets it, an editor sees
no field; no axe violations, nothing sideways at 390 px. QLAR_SCREENSHOTS=DIR keeps retry-*.png of the card."""
import os

import pytest
from helpers import axe_violations, leaving_asks, sideways_overflow
from playwright.sync_api import Page, expect

from qlar_console.settings.service import get_settings

SHOTS = os.environ.get("QLAR_SCREENSHOTS")


def _shot(page: Page, name: str) -> None:
    if SHOTS:
        os.makedirs(SHOTS, exist_ok=True)
        page.screenshot(path=f"{SHOTS}/retry-{name}.png", full_page=True)


def test_admin_sets_a_schedule_under_advanced(signed_in, live_server):
    _, app = live_server
    page = signed_in("admin")
    field = page.get_by_label("Retry schedule")
    expect(field).to_be_hidden()
    page.get_by_text("Advanced", exact=True).click()
    expect(field).to_be_visible()
    expect(field).to_have_attribute("placeholder", "5s,5m,30m,2h,5h,10h,10h")

    field.fill("1s, 5x")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.locator("#retry-schedule-error")).to_contain_text("Not a duration: '5x'")
    expect(field).to_be_visible()  # Advanced stays open on an error
    expect(field).to_have_value("1s, 5x")
    expect(field).to_have_attribute("aria-invalid", "true")

    field.fill("1000ms,2s")
    page.get_by_role("button", name="Save", exact=True).click()
    expect(page.get_by_text("Escalation settings saved")).to_be_visible()
    page.get_by_text("Advanced", exact=True).click()
    expect(page.get_by_label("Retry schedule")).to_have_value("1s,2s")
    expect(page.locator("#retry-schedule-now")).to_have_text("In force now: 1s,2s (this pair's own).")
    with app.app_context():
        assert get_settings("agent-123", "production").retry_schedule == "1s,2s"


def test_an_unsaved_schedule_warns_before_leaving(signed_in):
    page = signed_in("admin")
    page.get_by_text("Advanced", exact=True).click()
    page.get_by_label("Retry schedule").fill("1s")
    assert leaving_asks(page) == ["beforeunload"]
    expect(page.get_by_label("Retry schedule")).to_have_value("1s")


def test_an_editor_has_no_advanced(signed_in):
    page = signed_in("editor")
    expect(page.get_by_text("Advanced", exact=True)).to_have_count(0)
    expect(page.get_by_label("Retry schedule")).to_have_count(0)
    expect(page.locator("#retry-schedule-now")).to_contain_text("only an admin can change it")
    assert axe_violations(page) == []


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (390, "dark")])
def test_advanced_open_passes_axe_and_fits(signed_in, width, scheme):
    page = signed_in("admin", width, scheme)
    page.get_by_text("Advanced", exact=True).click()
    page.get_by_label("Retry schedule").fill("1s,2s,5s")
    assert axe_violations(page) == []
    assert sideways_overflow(page) == 0
    page.locator("#advanced").scroll_into_view_if_needed()
    _shot(page, f"{width}-{scheme}")
