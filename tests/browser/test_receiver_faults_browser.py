"""The reference receiver's Faults form in a real browser: set, see in force, clear; axe clean, light and dark."""

from helpers import axe_violations, keep_screenshot, served, sideways_overflow, wider_than
from reference_receiver.test_receiver_faults import _post_event

from qlar_console.crypto import generate_secret
from qlar_console.receiver import receiver_state
from qlar_console.receiver.app import create_receiver_app


def test_faults_form_in_the_browser(browser):
    """Set a fault, see it in force, clear it: axe clean, fits 390 px, light and dark (screenshots)."""
    rapp = create_receiver_app([generate_secret()])
    client = rapp.test_client()
    client.post("/faults", json={"reset": True})
    _post_event(client)  # a traced fault in the table
    with served(rapp) as base_url:
        for width, scheme in ((1280, "light"), (390, "dark"), (390, "light"), (1280, "dark")):
            context = browser.new_context(base_url=base_url, viewport={"width": width, "height": 900},
                                          color_scheme=scheme)
            try:
                _set_and_clear_in_the_browser(context.new_page(), rapp, width, scheme)
            finally:
                context.close()


def _set_and_clear_in_the_browser(page, rapp, width: int, scheme: str) -> None:
    """One run of the Faults form: a refused value, a fault set and shown in force, then cleared."""
    checked = (width, scheme) in ((1280, "light"), (390, "dark"))  # axe: both colour schemes, both widths
    page.goto("/")
    assert page.get_by_text("No fault: requests are answered normally.").is_visible()
    assert page.get_by_text("fault: connection reset (fault 1 of 1)").is_visible()
    page.get_by_label("Status").select_option("503")
    page.get_by_label("Count").fill("2")
    page.get_by_label("Delay (ms)").fill("999999")
    page.get_by_role("button", name="Inject fault").click()
    assert page.get_by_role("alert").inner_text().startswith("delayMs must be a whole number")
    assert page.get_by_label("Delay (ms)").get_attribute("aria-invalid") == "true"
    if width == 1280 and scheme == "light":
        assert axe_violations(page) == []
        keep_screenshot(page.locator("#faults"), "faults-error-1280-light")
    page.get_by_label("Delay (ms)").fill("0")
    page.get_by_role("button", name="Inject fault").click()
    page.wait_for_url("**/?faults=set")
    assert "(2 of 2 left)" in page.locator(".fault-state").inner_text()
    assert wider_than(page, width) == [] and sideways_overflow(page) == 0
    if checked:
        assert axe_violations(page) == []
    keep_screenshot(page.locator("#faults"), f"faults-{width}-{scheme}")
    page.get_by_role("button", name="Clear faults").click()
    page.wait_for_url("**/?faults=cleared")
    assert page.get_by_role("status").inner_text() == "Faults cleared: requests are answered normally."
    assert receiver_state(rapp).faults.current() is None
