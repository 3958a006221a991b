"""An escalation's timeline in a real browser: Copy as cURL puts the attempt's command on the clipboard."""

import pytest
from escalations.test_timeline import SHOTS, deliver_a_retried_lifecycle
from helpers import axe_violations, served, sideways_overflow, wider_than
from playwright.sync_api import expect

from qlar_console.escalations.timeline import load_timeline


@pytest.mark.parametrize("database_url", ["sqlite"], indirect=True)
def test_copy_as_curl_in_a_browser(signed_in, delivery_app, receiver):
    escalation_id = deliver_a_retried_lifecycle(delivery_app, receiver)
    with delivery_app.app_context():
        expected = load_timeline(escalation_id).events[0].attempts[0].curl
    with served(delivery_app) as base_url:
        page = signed_in("viewer", path=None, base_url=base_url)
        problems = look_at_the_timeline(page, escalation_id, expected)
    assert not problems, "\n".join(problems)


def look_at_the_timeline(page, escalation_id: str, expected: str) -> list[str]:
    """Copy as cURL at 1280 px light and 390 px dark; what does not fit or fails axe."""
    problems = []
    for width, scheme in ((1280, "light"), (390, "dark")):
        page.set_viewport_size({"width": width, "height": 900})
        page.emulate_media(color_scheme=scheme)
        page.goto(f"/escalations/{escalation_id}")
        buttons = page.get_by_role("button", name="Copy as cURL")
        expect(buttons).to_have_count(4)
        page.evaluate("navigator.clipboard.writeText('')")
        buttons.first.click()
        expect(page.locator("#copy-curl-1-1-status")).to_have_text("Copied")
        assert page.evaluate("navigator.clipboard.readText()") == expected
        page.get_by_text("Show cURL").first.click()  # the command open: it wraps inside its own box
        expect(page.locator("#curl-1-1")).to_be_visible()
        if SHOTS:
            page.screenshot(path=f"{SHOTS}/timeline-{width}-{scheme}.png", full_page=True)
        if overflow := sideways_overflow(page):
            problems.append(f"{width} {scheme}: scrolls {overflow}px sideways: {wider_than(page, width)}")
        if width == 390 and (wide := wider_than(page, width)):
            problems.append(f"{width} {scheme}: wider than the screen: {wide}")
        problems.extend(f"{width} {scheme}: {v}" for v in axe_violations(page))
    return problems
