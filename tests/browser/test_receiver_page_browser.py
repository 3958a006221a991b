"""The reference receiver's page in a real browser: fits 1280 px and 390 px, axe clean, local times, paging."""

from helpers import axe_violations, served, sideways_overflow, wider_than
from reference_receiver.test_receiver_page import _fill

from qlar_console.crypto import generate_secret
from qlar_console.receiver.app import create_receiver_app


def test_receiver_page_in_the_browser(browser):
    """Fits 1280 px and 390 px, axe clean, app.js runs under the receiver's CSP (local times), Older pages on."""
    rapp = create_receiver_app([generate_secret()])
    _fill(rapp, 30)
    contexts = []
    with served(rapp) as base_url:
        try:
            for width in (1280, 390):
                context = browser.new_context(base_url=base_url, viewport={"width": width, "height": 900})
                contexts.append(context)
                page = context.new_page()
                errors = []
                page.on("console", lambda msg, errors=errors: errors.append(msg.text)
                        if "Content Security Policy" in msg.text else None)
                page.goto("/")
                when = page.locator("table.traces time").first  # app.js ran: local time, UTC on hover
                assert not when.inner_text().endswith("UTC") and when.get_attribute("title").endswith("UTC")
                assert page.get_by_label("Auto-refresh every 5 s").is_visible()
                assert wider_than(page, width) == [] and sideways_overflow(page) == 0
                assert axe_violations(page) == [] and errors == []
            page.get_by_role("link", name="Older ›").click()
            page.wait_for_url("**/?before=11")
            assert page.locator("table.traces summary").count() == 10
        finally:
            for context in contexts:
                context.close()
