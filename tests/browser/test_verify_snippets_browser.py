"""The card's verify links and the snippet pages in a real browser: axe clean and fit, light and dark."""

import pytest
from reference_receiver.test_verify_snippets import VERIFY


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (390, "dark")])
def test_card_and_snippet_pages_in_a_browser(signed_in, live_server, width, scheme):
    from helpers import axe_violations, sideways_overflow

    console, _ = live_server
    page = signed_in("editor", path=None, base_url=console, width=width, scheme=scheme)
    page.wait_for_url(f"{console}/")
    page.goto("/agents/agent-123/production/escalation")
    page.get_by_text("Verify in your receiver").click()
    assert page.get_by_role("link", name="Node.js").is_visible()
    problems = [f"card: {v}" for v in axe_violations(page)] + [f"card: {sideways_overflow(page)}px sideways"]
    page.get_by_role("link", name="Java").click()
    page.wait_for_url(f"{console}/verify/java")
    page.get_by_role("button", name="Copy").click()
    page.get_by_role("status").filter(has_text="Copied").wait_for(timeout=3000)
    copied = page.evaluate("navigator.clipboard.readText()")
    assert copied == (VERIFY / "Verify.java").read_text()
    problems += [f"java page: {v}" for v in axe_violations(page)] + [f"java page: {sideways_overflow(page)}px sideways"]
    assert [p for p in problems if not p.endswith(": 0px sideways")] == []
