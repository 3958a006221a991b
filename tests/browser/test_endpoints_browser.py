"""Additional endpoints in a real browser (issue 23): Add endpoint through the Escalation page's form, the endpoint's
own page with its switch, Copy (to the clipboard, never into the page) and the Regenerate Key dialog; no axe
violations on the endpoint page; screenshots at 1280 and 390 px to QLAR_SCREENSHOTS (default /tmp/shots)."""
import os

from helpers import axe_violations, sideways_overflow
from playwright.sync_api import Page, expect

from qlar_console.engine.models import Endpoint
from qlar_console.extensions import db

SHOTS = os.environ.get("QLAR_SCREENSHOTS", "/tmp/shots")


def shot(page: Page, name: str) -> None:
    os.makedirs(SHOTS, exist_ok=True)
    page.screenshot(path=os.path.join(SHOTS, f"{name}.png"), full_page=True)


def stored(app) -> Endpoint:
    with app.app_context():
        [ep] = db.session.scalars(db.select(Endpoint).where(~Endpoint.is_primary))
        db.session.expunge(ep)
        return ep


def test_add_an_endpoint_then_switch_copy_and_regenerate_on_its_page(signed_in, live_server):
    _, app = live_server
    page = signed_in("editor")
    form = page.locator("#add-endpoint")
    form.get_by_label("Endpoint URL").fill("https://example.com/crm")
    form.get_by_label("created").check()
    form.get_by_label("completed").check()
    form.get_by_label("Headers").fill("X-Team: crm")
    form.get_by_label("Description").fill("CRM sync")
    form.get_by_role("button", name="Add endpoint").click()

    section = page.locator("#additional-endpoints")
    expect(page.get_by_text("added", exact=False).first).to_be_visible()
    expect(section).to_contain_text("https://example.com/crm")
    expect(section).to_contain_text("created, completed")
    ep = stored(app)
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        page.locator("#additional-endpoints").scroll_into_view_if_needed()
        shot(page, f"escalation-endpoints-{width}")
        assert sideways_overflow(page) == 0

    page.set_viewport_size({"width": 1280, "height": 900})
    section.get_by_role("link", name="https://example.com/crm").click()
    expect(page.get_by_role("heading", name=f"Endpoint {ep.id}")).to_be_visible()
    expect(page.get_by_role("link", name="Deliveries to this endpoint")).to_have_attribute(
        "href", f"/deliveries?endpoint={ep.id}")

    switch = page.get_by_role("switch", name="Endpoint")
    expect(switch).to_be_checked()
    switch.uncheck()
    expect(page.locator("#endpoint-state")).to_have_text("Disabled")
    page.get_by_role("button", name="Save").click()
    expect(page.get_by_text(f"Endpoint {ep.id} saved")).to_be_visible()
    expect(page.get_by_role("switch", name="Endpoint")).not_to_be_checked()
    assert not stored(app).enabled

    page.wait_for_load_state()  # the saved page's deferred script runs: Copy works from here on
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied")
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied.startswith("whsec_") and copied not in page.content()

    page.get_by_role("button", name="Regenerate Key").click()
    dialog = page.get_by_role("dialog", name="Confirm Regenerate Key")
    expect(dialog).to_be_visible()
    dialog.get_by_label("Keep the previous key valid for").select_option("1h")
    dialog.get_by_role("button", name="Regenerate Key").click()
    expect(page.get_by_text(f"Secret key of {ep.id} regenerated")).to_be_visible()
    expect(page.locator("#key-block")).to_contain_text("Previous key still valid until")
    page.wait_for_load_state()
    page.get_by_role("button", name="Copy").click()
    expect(page.locator("#copy-status")).to_have_text("Copied")
    assert page.evaluate("navigator.clipboard.readText()") != copied

    assert axe_violations(page) == []
    for width in (1280, 390):
        page.set_viewport_size({"width": width, "height": 900})
        shot(page, f"endpoint-page-{width}")
        assert sideways_overflow(page) == 0


def test_a_viewer_reads_the_endpoint_page(signed_in, live_server):
    _, app = live_server
    with app.app_context():
        from qlar_console.settings import endpoints
        from qlar_console.settings.service import get_settings

        ep_id = endpoints.add_endpoint(get_settings("agent-123", "production"),
                                       endpoints.EndpointChange(url="https://example.com/crm"), "test").id
    page = signed_in("viewer")
    expect(page.locator("#add-endpoint")).to_have_count(0)
    page.locator("#additional-endpoints").get_by_role("link", name="https://example.com/crm").click()
    expect(page.get_by_role("heading", name=f"Endpoint {ep_id}")).to_be_visible()
    expect(page.get_by_role("button", name="Copy")).to_have_count(0)
    expect(page.get_by_label("Endpoint URL")).to_be_disabled()
    assert axe_violations(page) == []
