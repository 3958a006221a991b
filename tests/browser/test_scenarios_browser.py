"""QA scenarios on the Escalations page in a real browser: a bad one refused in place, an example run to its
summary."""
import json

from escalations.test_scenarios import COMPLETE_BEFORE_CLAIM, ISSUE_EXAMPLE, _assert_as_written, _flows
from helpers import (
    axe_violations,
    keep_screenshot,
    sideways_overflow,
    wider_than,
)
from playwright.sync_api import expect

ESCALATIONS = "/escalations?agent=agent-123&env=production"


def test_the_page_runs_a_scenario_and_refuses_a_bad_one_in_place(signed_in, delivering_server, receiver):
    """Custom JSON starts from an example; a bad one is refused next to the field, input kept; an example runs to
    the summary with exactly its events; axe clean at 1280 and 390 px, light and dark, no sideways overflow."""
    page = signed_in("editor", path=ESCALATIONS, base_url=delivering_server)
    scenario_json = page.get_by_label("Scenario JSON")
    expect(scenario_json).to_be_hidden()  # Random flows: nothing to paste
    page.get_by_label("Scenario", exact=True).select_option(label="Quick resolution (3 steps)")
    page.get_by_label("Scenario", exact=True).select_option("custom")
    expect(scenario_json).to_be_visible()
    assert json.loads(scenario_json.input_value())["name"] == "Quick resolution"  # the example chosen last
    bad = json.dumps(COMPLETE_BEFORE_CLAIM, indent=2)
    scenario_json.fill(bad)
    page.get_by_label("Flows", exact=True).fill("2")
    page.get_by_role("button", name="Simulate", exact=True).click()

    error = page.locator("#sim-scenario-json-error")
    expect(error).to_have_text("Step 2 (completed): cannot complete the escalation: it is Pending, and only a "
                               "Claimed escalation can be completed.")
    expect(scenario_json).to_be_visible()
    assert scenario_json.input_value() == bad and scenario_json.get_attribute("aria-invalid") == "true"
    assert axe_violations(page) == [] and wider_than(page, 1280) == []
    keep_screenshot(page.locator("#simulation"), "scenario-error-1280-light")
    assert receiver.requests == []

    page.get_by_label("Scenario", exact=True).select_option(label="Release and reclaim (5 steps)")
    expect(scenario_json).to_be_hidden()
    page.get_by_role("button", name="Simulate", exact=True).click()
    expect(page.get_by_text('started: 2 flows of the scenario "Release and reclaim" (5 steps)')).to_be_visible()
    live = page.locator(".sim-live")
    expect(live).to_contain_text("finished. Summary:", timeout=15_000)
    summary = live.locator("pre").inner_text()
    assert summary.startswith("flows: 2\nevents: 10\ndelivered: 10\nfailed: 0\nstill pending: 0\n"), summary
    expect(page.locator(".sim-state")).to_contain_text("2 flows of the scenario “Release and reclaim” (5 steps)")
    flows = _flows(receiver.requests)
    assert len(receiver.requests) == 10 and len(flows) == 2
    for flow in flows.values():
        _assert_as_written(flow, ISSUE_EXAMPLE["steps"])
    assert axe_violations(page) == [] and wider_than(page, 1280) == []
    keep_screenshot(page.locator("#simulation"), "scenario-run-1280-light")
    for width, scheme in ((390, "dark"), (390, "light"), (1280, "dark")):
        page = signed_in("editor", width, scheme, path=ESCALATIONS, base_url=delivering_server)
        page.get_by_label("Scenario", exact=True).select_option("custom")
        expect(page.get_by_label("Scenario JSON")).to_be_visible()
        assert axe_violations(page) == [] and sideways_overflow(page) == 0
        keep_screenshot(page.locator("#simulation"), f"scenario-custom-{width}-{scheme}")

