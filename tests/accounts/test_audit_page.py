"""The Audit log page: readable action names, filters (actor, action, UTC days), keyset paging both ways."""
import html
import re
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from helpers import login

from qlar_console.audit.models import AuditEntry
from qlar_console.audit.service import ACTION_NAMES, PAGE_SIZE, action_name
from qlar_console.extensions import db

SOURCE = Path(__file__).resolve().parents[2] / "qlar_console"
ROW_DETAILS = re.compile(r'<td class="details">([^<]*)</td>')


def _entries(app, count: int, start=datetime(2024, 5, 1, 12, 0), **fields) -> None:
    """Add `count` entries one hour apart from `start`, details "n=0", "n=1", … (oldest first)."""
    with app.app_context():
        for n in range(count):
            values = {"actor": "editor", "action": "settings.saved", **fields}
            db.session.add(AuditEntry(at=start + timedelta(hours=n), details=f"n={n}", **values))
        db.session.commit()


def _details(client, query: str = "") -> list[str]:
    page = client.get("/audit" + query)
    assert page.status_code == 200, page.data
    return ROW_DETAILS.findall(page.get_data(as_text=True))


def _link(page: str, name: str) -> str | None:
    found = re.search(r'<a href="([^"]+)"[^>]*>' + re.escape(name), page)
    return html.unescape(found.group(1)) if found else None


def test_every_recorded_action_has_a_readable_name():
    """grep "record(" across qlar_console: each action code it is called with is named on the page."""
    codes = set()
    for path in SOURCE.rglob("*.py"):
        codes |= set(re.findall(r'\brecord\(\s*[^,()]+,\s*"([a-z_]+\.[a-z_]+)"', path.read_text()))
    assert {"settings.saved", "webhook.secret_regenerated", "user.login"} <= codes
    assert codes - set(ACTION_NAMES) == set()
    assert action_name("settings.saved") == "Settings saved"
    assert action_name("webhook.secret_regenerated") == "Key regenerated"
    assert action_name("synthetic.data_purged") == "Synthetic data purged"  # a code not named yet stays readable


def test_entries_show_readable_names_local_times_and_where(app, client):
    _entries(app, 1, action="webhook.secret_regenerated", agent_id="agent-123", environment="production")
    login(client, "viewer")
    page = client.get("/audit").get_data(as_text=True)
    assert '<span class="action-name">Key regenerated</span>' in page
    assert '<code class="action-code">webhook.secret_regenerated</code>' in page
    assert '<time datetime="2024-05-01T12:00:00Z" data-local>2024-05-01 12:00:00 UTC</time>' in page
    assert "agent-123 · production" in page


def test_filters_by_actor_action_and_days(app, client):
    _entries(app, 3)  # 2024-05-01 12:00, 13:00, 14:00 by editor
    _entries(app, 2, start=datetime(2024, 5, 3, 23, 30), actor="admin", action="api_token.created")
    login(client, "viewer")
    assert _details(client, "?actor=admin") == ["n=1", "n=0"]
    assert _details(client, "?action=settings.saved") == ["n=2", "n=1", "n=0"]
    assert _details(client, "?from=2024-05-03&to=2024-05-03") == ["n=0"]  # 23:30 on the 3rd; 00:30 is the 4th
    assert _details(client, "?from=2024-05-04&to=2024-05-31") == ["n=1"]
    assert _details(client, "?to=2024-05-01&actor=editor&action=settings.saved") == ["n=2", "n=1", "n=0"]
    page = client.get("/audit?actor=nobody").get_data(as_text=True)
    assert "No entries match these filters." in page and "Clear filters" in page


def test_pages_go_older_and_back_newer_keeping_the_filters(app, client):
    _entries(app, PAGE_SIZE * 2 + 10)
    _entries(app, 5, actor="admin")  # filtered out
    login(client, "viewer")
    total = PAGE_SIZE * 2 + 10
    first = client.get("/audit?actor=editor").get_data(as_text=True)
    assert ROW_DETAILS.findall(first) == [f"n={n}" for n in range(total - 1, total - 1 - PAGE_SIZE, -1)]
    assert _link(first, "‹ Newer") is None and _link(first, "« Newest") is None
    second_url = _link(first, "Older ›")
    assert "actor=editor" in second_url
    second = client.get(second_url).get_data(as_text=True)
    assert ROW_DETAILS.findall(second)[0] == f"n={total - 1 - PAGE_SIZE}"
    last = client.get(_link(second, "Older ›")).get_data(as_text=True)
    assert ROW_DETAILS.findall(last) == [f"n={n}" for n in range(9, -1, -1)]
    assert _link(last, "Older ›") is None and _link(last, "« Newest") == "/audit?actor=editor"
    back = client.get(_link(last, "‹ Newer")).get_data(as_text=True)
    assert ROW_DETAILS.findall(back) == ROW_DETAILS.findall(second)
    newest = client.get(_link(back, "‹ Newer")).get_data(as_text=True)
    assert ROW_DETAILS.findall(newest) == ROW_DETAILS.findall(first) and _link(newest, "‹ Newer") is None


@pytest.mark.parametrize(("query", "message"), [
    ("?from=2024-13-01", "From must be a date written YYYY-MM-DD"),
    ("?to=yesterday", "To must be a date written YYYY-MM-DD"),
    ("?from=2024-05-03&to=2024-05-01", "From (2024-05-03) is after To (2024-05-01)"),
    ("?action=settings.exploded", "Unknown action 'settings.exploded'"),
    ("?actor=" + "x" * 81, "Actor must be a user name of at most 80"),
    ("?before=abc", "before='abc' is not an entry number"),
    ("?before=5&after=3", "not both"),
])
def test_bad_filters_are_a_clear_400(app, client, query, message):
    login(client, "viewer")
    response = client.get("/audit" + query)
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    assert message in page and 'role="alert"' in page and "<h1>Audit log</h1>" in page
