"""Purge synthetic data and the Traffic filter in a real browser, at 1280 px light and 390 px dark."""

import pytest
from escalations.test_purge_synthetic import inventory, seed
from helpers import axe_violations, keep_screenshot, sideways_overflow, wider_than
from playwright.sync_api import expect


@pytest.mark.parametrize("width, scheme", [(1280, "light"), (390, "dark")])
def test_purge_and_traffic_filter_in_a_browser(signed_in, live_server, width, scheme):
    base_url, app = live_server
    seed(app)
    page = signed_in("admin", path=None, width=width, scheme=scheme)

    page.goto("/deliveries")
    page.get_by_label("Traffic").select_option("only")
    page.get_by_role("button", name="Filter").click()
    expect(page.locator("table.deliveries tbody tr")).to_have_count(13)  # production 9 + staging 4
    expect(page.locator("table.deliveries .badge-synthetic")).to_have_count(13)
    assert axe_violations(page) == []
    assert sideways_overflow(page) == 0 and not wider_than(page, width)
    keep_screenshot(page, f"synthetic-deliveries-{width}-{scheme}")
    page.locator("table.deliveries td.type a").first.click()
    expect(page.locator(".event-facts .badge-synthetic")).to_have_text("Synthetic")
    assert axe_violations(page) == [] and sideways_overflow(page) == 0
    keep_screenshot(page, f"synthetic-event-{width}-{scheme}")

    page.goto("/escalations?agent=agent-123&env=production")
    keep_screenshot(page, f"synthetic-escalations-{width}-{scheme}")
    page.get_by_role("link", name="Purge synthetic data…").click()
    expect(page.get_by_role("heading", name="Purge synthetic data")).to_be_visible()
    expect(page.locator(".purge-counts")).to_contain_text("5")
    assert axe_violations(page) == []
    assert sideways_overflow(page) == 0 and not wider_than(page, width)
    keep_screenshot(page, f"synthetic-preview-{width}-{scheme}")

    page.get_by_role("button", name="Purge synthetic data").click()
    expect(page.get_by_role("status").first).to_contain_text(
        "Removed 5 escalations, 9 events and 9 attempts of synthetic data of agent-123 · production.")
    assert axe_violations(page) == [] and sideways_overflow(page) == 0
    keep_screenshot(page, f"synthetic-purged-{width}-{scheme}")
    assert ("production", True) not in inventory(app) and inventory(app)[("staging", True)] == (2, 4, 4)
