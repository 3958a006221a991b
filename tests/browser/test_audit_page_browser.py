"""The Audit log page in a real browser: dates never wrap, it fits 1280 px and 390 px, axe clean, links work."""

import pytest
from helpers import axe_violations, sideways_overflow, wider_than

from qlar_console.audit.models import AuditEntry
from qlar_console.extensions import db


@pytest.fixture
def audit_page(signed_in, live_server):
    """Factory: the Audit log in a fresh context of `width` px, logged in as the viewer, with 60 long entries."""
    base_url, app = live_server
    with app.app_context():
        for n in range(60):
            db.session.add(AuditEntry(actor="editor", action="settings.saved", agent_id="agent-123",
                                      environment="production", via="API token 'ci'" if n % 2 else None,
                                      details=f"version {n}; URL https://hooks.example.com/{'long/' * 12}{n}"))
        db.session.commit()
    return lambda width: signed_in("viewer", width, path="/audit")


def test_audit_page_in_the_browser(audit_page):
    """Dates never wrap; nothing beyond 1280 px; no sideways scroll at 390 px; axe clean; filter and page links work."""
    page = audit_page(1280)
    assert wider_than(page, 1280) == []
    assert page.evaluate("(el => el.scrollWidth - el.clientWidth)(document.querySelector('.table-scroll'))") <= 0
    heights = page.locator("table.audit td.when time").evaluate_all("els => els.map(e => e.getClientRects().length)")
    assert heights and set(heights) == {1}  # one line box each: the date never wraps
    assert axe_violations(page) == []
    page.get_by_label("Action").select_option(label="Settings saved")
    page.get_by_role("button", name="Filter").click()
    page.wait_for_url("**/audit?*action=settings.saved*")
    page.get_by_role("link", name="Older ›").click()
    page.wait_for_url("**before=*")
    assert page.locator("table.audit tbody tr").count() == 10  # 60 saved, 50 per page
    small = audit_page(390)
    assert sideways_overflow(small) == 0
    assert axe_violations(small) == []
