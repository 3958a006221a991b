"""The reference receiver's page: requests paged 20 at a time both ways, refresh and auto-refresh, local times."""
import html
import re

import pytest

from qlar_console.crypto import generate_secret
from qlar_console.receiver import create_receiver_app, receiver_state
from qlar_console.receiver.store import TRACE_PAGE_SIZE, Trace, TraceStore, utc_now_iso

NUMBER = re.compile(r"Request and response #(\d+)")


def _fill(app, count: int) -> None:
    """Keep `count` traces (numbered 1…count), as if that many requests had come in."""
    store = receiver_state(app).traces
    for n in range(count):
        store.add(Trace(received_at=utc_now_iso(), method="POST", path="/webhook", verdict="signature valid",
                        status=200, outcome="processed", event_type="created", event_id=f"evt_{n:04d}",
                        escalation_id=f"esc-{n}", sequence=n, body_excerpt="{}", response_body="{}"))


def _shown(page: str) -> list[int]:
    return [int(n) for n in NUMBER.findall(page)]


def _link(page: str, name: str) -> str | None:
    found = re.search(r'<a href="([^"]+)"[^>]*>' + re.escape(name), page)
    return html.unescape(found.group(1)) if found else None


@pytest.fixture
def rapp():
    return create_receiver_app([generate_secret()])


def test_store_pages_by_trace_number():
    store = TraceStore(retention_seconds=60)
    for _ in range(45):
        store.add(Trace(received_at="t", method="POST", path="/webhook", verdict="signature valid", status=200))
    first = store.page()
    assert [t.id for t in first.traces] == list(range(45, 25, -1)) and first.total == 45 and first.start == 0
    assert (first.newer_after, first.older_before) == (None, 26)
    last = store.page(before=6)
    assert [t.id for t in last.traces] == [5, 4, 3, 2, 1] and last.start == 40
    assert (last.newer_after, last.older_before) == (5, None)
    assert [t.id for t in store.page(after=5).traces] == list(range(25, 5, -1))
    assert store.page(after=40).newer_after is None  # fewer than a page above it: the newest page
    assert store.page(before=1).traces == []


def test_requests_page_by_page_forward_and_back(rapp):
    _fill(rapp, 45)
    client = rapp.test_client()
    first = client.get("/").get_data(as_text=True)
    assert "Requests (45)" in first and "1–20 of 45, newest first" in first
    assert _shown(first) == list(range(45, 25, -1)) and len(_shown(first)) == TRACE_PAGE_SIZE
    assert _link(first, "‹ Newer") is None and _link(first, "« Newest") is None
    second = client.get(_link(first, "Older ›")).get_data(as_text=True)
    assert _shown(second) == list(range(25, 5, -1)) and "21–40 of 45" in second
    third = client.get(_link(second, "Older ›")).get_data(as_text=True)
    assert _shown(third) == [5, 4, 3, 2, 1] and _link(third, "Older ›") is None
    assert _link(third, "« Newest") == "/"
    back = client.get(_link(third, "‹ Newer")).get_data(as_text=True)
    assert _shown(back) == _shown(second)
    assert _shown(client.get(_link(back, "‹ Newer")).get_data(as_text=True)) == _shown(first)
    assert len(client.get("/traces.json").get_json()["traces"]) == 45  # the JSON is not paged


def test_page_has_refresh_auto_refresh_and_local_times_without_inline_script(rapp):
    _fill(rapp, 1)
    response = rapp.test_client().get("/")
    page = response.get_data(as_text=True)
    assert '<script src="/static/app.js" defer></script>' in page
    assert not re.search(r"<script(?![^>]*\bsrc=)", page) and "style=" not in page
    assert "script-src 'self'" in response.headers["Content-Security-Policy"]
    assert 'data-auto-refresh="5"' in page and '<a href="/">Refresh</a>' in page
    assert re.search(r'<time datetime="\d{4}-\d\d-\d\dT[\d:.]+\+00:00" data-local>[\d -:]+ UTC</time>', page)


@pytest.mark.parametrize(("query", "message"), [
    ("?before=abc", "before='abc' is not a request number"),
    ("?after=-1", "after='-1' is not a request number"),
    ("?before=5&after=2", "not both"),
])
def test_bad_page_links_are_a_clear_400(rapp, query, message):
    response = rapp.test_client().get("/" + query)
    assert response.status_code == 400
    page = html.unescape(response.get_data(as_text=True))
    assert message in page and 'role="alert"' in page and "<h1>qlar reference receiver</h1>" in page




def test_the_page_says_how_replays_are_handled(tmp_path):
    durable = create_receiver_app([generate_secret()], tolerance_seconds=120, seen_path=tmp_path / "seen.db",
                                  seen_days=7).test_client().get("/").get_data(as_text=True)
    assert "<h2 id=\"replay-title\">Replay safety</h2>" in durable
    assert "is more than 120 s from now, past or future" in durable and "within\n          120 s of now" in durable
    assert "no time window can apply to it" in durable and "Processed ids are kept 7 days on disk" in durable
    in_memory = create_receiver_app([generate_secret()]).test_client().get("/").get_data(as_text=True)
    assert "Processed ids are kept in memory only: a restart forgets them." in in_memory
