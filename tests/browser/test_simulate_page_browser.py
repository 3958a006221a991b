"""The Escalations page's Simulation form in a real browser: the job polled in place to the CLI's summary."""
import re

from escalations.test_simulate_page import PAGE
from helpers import axe_violations, sideways_overflow, wider_than
from playwright.sync_api import expect


def test_a_simulation_runs_from_the_page_and_ends_with_the_summary(signed_in, delivering_server, receiver):
    """Flows and Rate, Simulate: the page polls the job in place and ends with the CLI's summary; axe, 390 px."""
    page = signed_in("editor", path=None, base_url=delivering_server)
    page.goto(PAGE)
    page.get_by_label("Flows", exact=True).fill("3")
    page.get_by_label("Rate", exact=True).fill("4")
    page.get_by_role("button", name="Simulate", exact=True).click()

    expect(page.get_by_text("started: 3 flows, 4 per second.")).to_be_visible()
    assert page.locator(".sim-state").get_attribute("data-unfinished") == "yes"  # rendered while it ran
    live = page.locator(".sim-live")
    expect(live).to_have_attribute("role", "status")
    expect(live).to_contain_text("finished. Summary:", timeout=10_000)  # updated in place, no reload
    summary = live.locator("pre").inner_text()
    assert re.fullmatch(r"flows: 3\nevents: (\d+)\ndelivered: \1\nfailed: 0\nstill pending: 0\n"
                        r"time to delivery: p50 \d+ ms, p99 \d+ ms", summary), summary
    events = int(re.search(r"events: (\d+)", summary).group(1))
    assert events >= 9 and len(receiver.requests) == events
    expect(page.locator('[data-sim="delivered"]')).to_have_text(str(events))
    expect(page.get_by_text("to see its progress.")).to_be_hidden()
    expect(page.locator(".sim-title")).to_have_text(re.compile(r"^Last simulation: job-"))

    page.goto(PAGE)
    expect(page.locator(".sim-live pre")).to_have_text(summary)
    assert axe_violations(page) == [] and wider_than(page, 1280) == []
    page.set_viewport_size({"width": 390, "height": 844})
    assert sideways_overflow(page) == 0
