"""The Deliveries pages: the log with filters, keyset paging and the daily chart, one event, and Resend."""
import html
import re
from collections import Counter
from datetime import timedelta

import pytest
from apps import PASSWORD
from helpers import login
from sqlalchemy import event as sa_event

from qlar_console.audit.models import AuditEntry
from qlar_console.clock import utcnow
from qlar_console.crypto import secret_box
from qlar_console.deliveries.stats import daily_outcomes
from qlar_console.engine.fanout import destinations
from qlar_console.engine.models import Attempt, Event
from qlar_console.engine.record import count_outcomes
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.settings.service import get_settings

ENV = ("agent-123", "production")
EVENT_LINK = re.compile(r'href="/deliveries/(evt_[0-9a-f]+)"')
PAGER_LINK = {"Newest": r'<a href="([^"]+)">« Newest</a>', "Newer": r'<a href="([^"]+)" rel="prev">‹ Newer</a>',
              "Older": r'<a href="([^"]+)" rel="next">Older ›</a>'}  # _ui.html's pager()


def _deliver(app, claim=False) -> list[str]:
    """Create an escalation (and claim it), deliver its events to the receiver; their ids, oldest first."""
    with app.app_context():
        esc = lifecycle.create_escalation(*ENV).id
        if claim:
            lifecycle.claim(esc, "supervisor-1")
        app.extensions["qlar_dispatcher"].drain()
        return list(db.session.scalars(db.select(Event.id).where(Event.escalation_id == esc).order_by(Event.id)))


def _insert(app, count, status="skipped", event_type="created", created_at=None) -> list[str]:
    """Add `count` events directly (no delivery), with increasing ids; their ids, oldest first.

    Finished ones are counted on their day, as the dispatcher counts what it finishes."""
    with app.app_context():
        esc = lifecycle.create_escalation("agent-123", "staging").id  # staging has no webhook: one skipped event
        base = db.session.scalar(db.select(db.func.max(Event.id)))
        ids = [f"{base}{i:03d}" for i in range(count)]  # sort after every existing id, in this order
        for i, event_id in enumerate(ids):
            db.session.add(Event(id=event_id, escalation_id=esc, agent_id="agent-123", environment="staging",
                                 endpoint_id=destinations("agent-123", "staging", event_type)[0],
                                 event_type=event_type, sequence=100 + i, body=b'{"x":1}', status=status,
                                 created_at=created_at or utcnow()))
            if status in ("succeeded", "failed"):
                count_outcomes((created_at or utcnow()).date(), Counter({status: 1}))
        db.session.commit()
    return ids


def _ids(page: str) -> list[str]:
    return EVENT_LINK.findall(page)


def _link(page: str, name: str) -> str | None:
    """The URL of the pager's Newest, Newer or Older link, or None when the page has none."""
    found = re.search(PAGER_LINK[name], page)
    return html.unescape(found.group(1)) if found else None


def test_anonymous_is_sent_tologin(delivery_app):
    client = delivery_app.test_client()
    for path in ("/deliveries", "/deliveries/evt_0123", "/deliveries?status=failed"):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    assert client.post("/deliveries/evt_0123/resend").status_code == 302


def test_list_shows_events_newest_first_with_status(delivery_app, receiver):
    created, claimed = _deliver(delivery_app, claim=True)
    client = delivery_app.test_client()
    login(client, "viewer")
    page = client.get("/deliveries").get_data(as_text=True)
    assert "<h1>Deliveries</h1>" in page and "<title>Deliveries · qlar</title>" in page
    assert _ids(page) == [claimed, created]
    assert "agent-123 · production" in page
    assert page.count('<span class="badge badge-succeeded">succeeded</span>') == 2
    assert '<span class="code">200</span>' in page
    assert 'href="/deliveries" aria-current="page">Deliveries</a>' in page  # the nav link, marked current
    assert "Older" not in page and "Newest" not in page


@pytest.mark.parametrize(("query", "expected"), [
    ("status=succeeded", ["claimed", "created"]),
    ("status=skipped", ["skipped"]),
    ("status=failed", []),
    ("event_type=claimed", ["claimed"]),
    ("event_type=created&status=succeeded", ["created"]),
    ("status=&event_type=", ["skipped", "claimed", "created"]),  # the form's "Any"
])
def test_filters(delivery_app, receiver, query, expected):
    created, claimed = _deliver(delivery_app, claim=True)
    with delivery_app.app_context():
        lifecycle.create_escalation("agent-123", "staging")  # webhook off there: skipped
        skipped = db.session.scalar(db.select(Event.id).where(Event.status == "skipped"))
    names = {"created": created, "claimed": claimed, "skipped": skipped}
    client = delivery_app.test_client()
    login(client)
    response = client.get(f"/deliveries?{query}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert _ids(page) == [names[n] for n in expected]
    if not expected:
        assert "No events match." in page
    for value in (p.split("=")[1] for p in query.split("&")):
        if value:
            assert f'<option value="{value}" selected>' in page


@pytest.mark.parametrize(("query", "message"), [
    ("status=bogus", "Unknown status &#39;bogus&#39;: choose one of pending, succeeded, failed, skipped, cancelled."),
    ("event_type=deleted", "Unknown event type &#39;deleted&#39;: choose one of created, claimed, completed, released"),
    ("before=1%20OR%201=1", "is not an event id"),
    ("status=failed&before=evt_zz", "is not an event id"),
])
def test_invalid_filter_is_400_with_a_message(delivery_app, query, message):
    client = delivery_app.test_client()
    login(client)
    response = client.get(f"/deliveries?{query}")
    assert response.status_code == 400
    assert message in response.get_data(as_text=True)


def test_keyset_pagination_without_offset(delivery_app):
    ids = _insert(delivery_app, 55)
    with delivery_app.app_context():
        everything = list(db.session.scalars(db.select(Event.id).order_by(Event.id.desc())))
    statements = []

    def remember(conn, cursor, statement, parameters, *args):
        if statement.lstrip().startswith("SELECT events.id"):
            statements.append((statement, parameters))

    with delivery_app.app_context():
        engine = db.engine
    sa_event.listen(engine, "before_cursor_execute", remember)
    client = delivery_app.test_client()
    login(client)

    first = client.get("/deliveries").get_data(as_text=True)
    first_ids = _ids(first)
    assert first_ids == everything[:50] and first_ids[0] == ids[-1]
    older = _link(first, "Older")
    assert older == f"/deliveries?before={first_ids[-1]}"
    assert "Newest" not in first and "Newer" not in first

    second = client.get(older).get_data(as_text=True)
    second_ids = _ids(second)
    assert second_ids == everything[50:] and not set(first_ids) & set(second_ids)
    assert _link(second, "Newest") == "/deliveries" and "Older" not in second
    sa_event.remove(engine, "before_cursor_execute", remember)
    (_, first_params), (keyset, second_params) = statements
    assert "WHERE events.id <" in keyset and first_ids[-1] in str(second_params)
    if engine.dialect.name == "sqlite":  # SQLAlchemy's SQLite dialect always says OFFSET; it is 0
        assert first_params[-1] == second_params[-1] == 0
    else:
        assert "OFFSET" not in keyset


def test_older_link_keeps_the_filters(delivery_app):
    _insert(delivery_app, 52, status="failed", event_type="released")
    client = delivery_app.test_client()
    login(client)
    first = client.get("/deliveries?status=failed&event_type=released").get_data(as_text=True)
    older = _link(first, "Older")
    assert "status=failed" in older and "event_type=released" in older and "before=evt_" in older
    second = client.get(older).get_data(as_text=True)
    assert len(_ids(second)) == 2
    newest = _link(second, "Newest")
    assert "before" not in newest and "status=failed" in newest and "event_type=released" in newest


def test_detail_shows_body_and_every_attempt(delivery_app, receiver):
    answers = iter([(503, {"Retry-After": "0", "X-Receiver": "busy"}), (200, {"X-Receiver": "ok"})])
    receiver.respond = lambda r: (*next(answers), 0)
    (event_id,) = _deliver(delivery_app)
    with delivery_app.app_context():
        db.session.execute(db.update(Event).values(next_attempt_at=utcnow()))  # the retry is due now
        db.session.commit()
        delivery_app.extensions["qlar_dispatcher"].drain()
        event = db.session.get(Event, event_id)
        body = event.body.decode()
        url = event.attempts[0].url
        signature = event.attempts[1].request_headers["X-Qlar-Signature"]
        secret = secret_box().decrypt(get_settings(*ENV).secret_ciphertext)
    client = delivery_app.test_client()
    login(client, "viewer")
    response = client.get(f"/deliveries/{event_id}")
    assert response.status_code == 200
    page = html.unescape(response.get_data(as_text=True))
    assert f"<pre class=\"payload\">{body}</pre>" in page
    assert page.index("Attempt 1 · scheduled") < page.index("Attempt 2 · scheduled")
    assert '<span class="code">503</span>' in page and '<span class="code">200</span>' in page
    assert f"<code>{url}</code>" in page
    assert "<code>X-Qlar-Signature</code>" in page and signature in page
    assert "<code>webhook-id</code></th><td><code>" + event_id in page
    assert "<code>X-Receiver</code></th><td><code>busy</code>" in page
    assert "status 503" in page and "status 200" in page  # response body excerpts
    assert "succeeded" in page and "Request headers" in page and "Response headers" in page
    assert secret not in page and secret.removeprefix("whsec_") not in page


def test_detail_decodes_bad_bytes_and_shows_errors(delivery_app):
    (event_id,) = _insert(delivery_app, 1, status="failed")
    with delivery_app.app_context():
        db.session.add(Attempt(event_id=event_id, number=1, trigger="scheduled", url="https://example.com/h",
                               request_headers={}, response_body=b"ok \xff\xfe <b>", error="Connection refused"))
        db.session.commit()
    client = delivery_app.test_client()
    login(client)
    page = client.get(f"/deliveries/{event_id}").get_data(as_text=True)
    assert "ok \ufffd\ufffd &lt;b&gt;" in page
    assert "Connection refused" in page and "Request headers: none." in page


def test_unknown_event_is_404(delivery_app):
    client = delivery_app.test_client()
    login(client)
    assert client.get("/deliveries/evt_000000000000nope").status_code == 404
    assert client.post("/deliveries/evt_000000000000nope/resend").status_code == 404


def test_editor_resends_and_a_manual_attempt_follows(delivery_app, receiver):
    (event_id,) = _deliver(delivery_app)
    client = delivery_app.test_client()
    login(client, "editor")
    detail = client.get(f"/deliveries/{event_id}").get_data(as_text=True)
    assert f'action="/deliveries/{event_id}/resend"' in detail and ">Resend</button>" in detail
    assert 'name="csrf_token"' in detail

    response = client.post(f"/deliveries/{event_id}/resend")
    assert response.status_code == 302 and response.headers["Location"].endswith(f"/deliveries/{event_id}")
    page = client.get(response.headers["Location"]).get_data(as_text=True)
    assert f"Event {event_id} queued for resend." in page
    with delivery_app.app_context():
        assert delivery_app.extensions["qlar_dispatcher"].drain() == 1
        event = db.session.get(Event, event_id)
        assert [a.trigger for a in event.attempts] == ["scheduled", "manual"]
        assert event.status == "succeeded"
        audit = db.session.scalars(db.select(AuditEntry).where(AuditEntry.action == "event.resent")).one()
        assert audit.actor == "editor" and audit.details == event_id
    assert len(receiver.requests) == 2
    assert "Attempt 2 · manual" in client.get(f"/deliveries/{event_id}").get_data(as_text=True)


def test_viewer_sees_no_resend_and_gets_403(delivery_app, receiver):
    (event_id,) = _deliver(delivery_app)
    client = delivery_app.test_client()
    login(client, "viewer")
    detail = client.get(f"/deliveries/{event_id}").get_data(as_text=True)
    assert "Resend" not in detail and "/resend" not in detail
    assert client.post(f"/deliveries/{event_id}/resend").status_code == 403
    with delivery_app.app_context():
        assert db.session.get(Event, event_id).status == "succeeded"
        assert delivery_app.extensions["qlar_dispatcher"].drain() == 0


def test_resend_needs_the_csrf_token(tmp_path):
    from apps import make_app

    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    (event_id,) = _insert(app, 1, status="failed")
    client = app.test_client()
    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', login).group(1)
    client.post("/login", data={"username": "editor", "password": PASSWORD, "csrf_token": token})
    token = re.search(r'name="csrf-token" content="([^"]+)"', client.get("/deliveries").get_data(as_text=True)).group(1)
    assert client.post(f"/deliveries/{event_id}/resend").status_code == 400
    assert client.post(f"/deliveries/{event_id}/resend", data={"csrf_token": token}).status_code == 302
    with app.app_context():
        assert db.session.get(Event, event_id).status == "pending"


def test_chart_counts_per_day(delivery_app, receiver):
    _deliver(delivery_app, claim=True)
    _insert(delivery_app, 3, status="failed")
    _insert(delivery_app, 4, status="failed", created_at=utcnow() - timedelta(days=2))
    _insert(delivery_app, 5, status="failed", created_at=utcnow() - timedelta(days=20))  # outside the window
    today, two_days_ago = utcnow().date(), utcnow().date() - timedelta(days=2)
    with delivery_app.app_context():
        days = daily_outcomes()
    assert len(days) == 14 and days[-1].day == today
    assert (days[-1].succeeded, days[-1].failed) == (2, 3) and (days[-3].succeeded, days[-3].failed) == (0, 4)
    assert sum(d.failed for d in days) == 7

    client = delivery_app.test_client()
    login(client, "viewer")
    page = client.get("/deliveries").get_data(as_text=True)
    svg = page[page.index("<svg"):page.index("</svg>")]
    assert 'role="img"' in svg
    assert 'aria-label="Deliveries per day over the last 14 days: 2 succeeded, 7 failed in total"' in svg
    assert f"<title>{today.isoformat()}: 2 succeeded</title>" in svg
    assert f"<title>{today.isoformat()}: 3 failed</title>" in svg
    assert f"<title>{two_days_ago.isoformat()}: 4 failed</title>" in svg
    assert svg.count("<rect") == 28 and 'fill="#067647"' in svg and 'fill="#b42318"' in svg
    assert "style=" not in page  # the CSP allows no inline styles


def _escalation_of(app, event_id: str) -> str:
    with app.app_context():
        return db.session.get(Event, event_id).escalation_id


def test_search_finds_an_event_or_an_escalations_events(delivery_app, receiver):
    created, claimed = _deliver(delivery_app, claim=True)
    others = _insert(delivery_app, 3, status="failed")
    escalation = _escalation_of(delivery_app, created)
    client = delivery_app.test_client()
    login(client, "viewer")

    page = client.get(f"/deliveries?q=+{claimed}+").get_data(as_text=True)
    assert _ids(page) == [claimed] and f'name="q" type="search" value="{claimed}"' in page

    page = client.get(f"/deliveries?q={escalation}").get_data(as_text=True)
    assert _ids(page) == [claimed, created] and not set(others) & set(_ids(page))
    assert '<option value="succeeded">succeeded (2)</option>' in page  # counts follow the search
    assert '<option value="failed">failed (0)</option>' in page

    other = _escalation_of(delivery_app, others[0])
    page = client.get(f"/deliveries?q={other}&status=failed").get_data(as_text=True)
    assert _ids(page) == others[::-1]
    assert f'href="/deliveries?q={escalation}"' in client.get("/deliveries").get_data(as_text=True)  # row link


@pytest.mark.parametrize(("query", "message"), [
    ("q=evt_00000000000000000000000", "No event <code>evt_00000000000000000000000</code> in the log"),
    ("q=esc-000000000000", "No events of escalation <code>esc-000000000000</code> in the log."),
])
def test_search_for_what_is_not_there_says_so(delivery_app, query, message):
    _insert(delivery_app, 1)
    client = delivery_app.test_client()
    login(client)
    response = client.get(f"/deliveries?{query}")
    assert response.status_code == 200 and message in response.get_data(as_text=True)
    assert _ids(response.get_data(as_text=True)) == []


def test_search_with_filters_that_exclude_it_says_no_match(delivery_app, receiver):
    created, _ = _deliver(delivery_app, claim=True)
    client = delivery_app.test_client()
    login(client)
    page = client.get(f"/deliveries?q={created}&status=failed").get_data(as_text=True)
    assert "No events match." in page and "in the log" not in page


@pytest.mark.parametrize("query", ["pair=agent-123/staging", "agent=agent-123&env=staging"])
def test_agent_environment_filter(delivery_app, receiver, query):
    production = _deliver(delivery_app, claim=True)
    staging = _insert(delivery_app, 2, status="failed")
    client = delivery_app.test_client()
    login(client)
    page = client.get(f"/deliveries?{query}").get_data(as_text=True)
    found = _ids(page)
    assert found[:2] == staging[::-1] and not set(production) & set(found)
    assert '<option value="agent-123/staging" selected>agent-123 · staging</option>' in page
    assert '<option value="failed">failed (2)</option>' in page  # counts follow the pair
    assert _ids(client.get("/deliveries?pair=agent-123/production").get_data(as_text=True)) == production[::-1]
    assert len(_ids(client.get("/deliveries?pair=").get_data(as_text=True))) == len(found) + 2  # "Any"


def test_date_range_includes_both_days(delivery_app):
    now = utcnow()
    old = _insert(delivery_app, 2, status="failed", created_at=now - timedelta(days=10))
    mid = _insert(delivery_app, 2, status="failed", created_at=now - timedelta(days=5))
    client = delivery_app.test_client()
    login(client)
    day = (now - timedelta(days=5)).date().isoformat()

    def found(query):
        return set(_ids(client.get(f"/deliveries?{query}").get_data(as_text=True)))

    assert found(f"from={day}&to={day}") == set(mid)
    assert found(f"to={day}") == set(old + mid)
    assert not found(f"from={day}") & set(old)
    assert found(f"from={(now - timedelta(days=11)).date()}&to={(now - timedelta(days=9)).date()}") == set(old)
    page = client.get(f"/deliveries?from={day}&to={day}").get_data(as_text=True)
    assert f'name="from" type="date" value="{day}"' in page and '<option value="failed">failed (2)</option>' in page


@pytest.mark.parametrize(("query", "message", "field"), [
    ("q=hello", "Search takes an event id (evt_…) or an escalation id (esc-…); &#39;hello&#39; is neither.", "q"),
    ("q=%3Cscript%3E", "&#39;&lt;script&gt;&#39; is neither", "q"),
    ("q=evt_XYZ", "is neither", "q"),
    ("pair=nobody/prod", "Unknown agent · environment &#39;nobody/prod&#39;", "pair"),
    ("agent=agent-123", "Unknown agent · environment &#39;agent-123/&#39;", "pair"),
    ("from=2024-13-01", "From must be a date written YYYY-MM-DD, such as 2024-05-31; got &#39;2024-13-01", "from"),
    ("to=yesterday", "To must be a date written YYYY-MM-DD", "to"),
    ("from=2024-06-02&to=2024-06-01", "From (2024-06-02) is after To (2024-06-01): swap them.", "from"),
    ("after=1%20OR%201=1", "is not an event id (evt_…): follow the Newer link", None),
    ("after=evt_01&before=evt_02", "not both: use the page links", None),
])
def test_bad_search_or_filter_is_400_with_a_clear_message(delivery_app, query, message, field):
    client = delivery_app.test_client()
    login(client)
    response = client.get(f"/deliveries?{query}")
    page = response.get_data(as_text=True)
    assert response.status_code == 400
    assert '<p id="filter-error" class="flash flash-error" role="alert">' in page and message in page
    assert 'id="filter-search"' in page and 'class="deliveries"' not in page  # the form stays, to fix it; no log
    if field:
        assert re.search(rf'name="{field}"[^>]*aria-invalid="true"', page)
    if query == "q=hello":
        assert 'name="q" type="search" value="hello"' in page  # kept as typed, to correct it


def test_paging_forward_and_back_keeps_the_filters(delivery_app):
    ids = _insert(delivery_app, 120, status="failed", event_type="released")
    _insert(delivery_app, 3, status="skipped")  # filtered out, newer than all of them
    newest_first = ids[::-1]
    client = delivery_app.test_client()
    login(client)
    first = client.get("/deliveries?status=failed&event_type=released").get_data(as_text=True)
    assert _ids(first) == newest_first[:50] and _link(first, "Newer") is None and _link(first, "Newest") is None

    second = client.get(_link(first, "Older")).get_data(as_text=True)
    third = client.get(_link(second, "Older")).get_data(as_text=True)
    assert _ids(second) == newest_first[50:100] and _ids(third) == newest_first[100:]
    assert _link(third, "Older") is None

    newer = _link(third, "Newer")
    assert f"after={newest_first[100]}" in newer and "status=failed" in newer and "event_type=released" in newer
    back = client.get(newer).get_data(as_text=True)
    assert _ids(back) == newest_first[50:100]
    assert _link(back, "Older") == _link(second, "Older")
    back_again = client.get(_link(back, "Newer")).get_data(as_text=True)
    assert _ids(back_again) == newest_first[:50] and _link(back_again, "Newer") is None
    assert _link(back_again, "Newest") == "/deliveries?status=failed&event_type=released"


def test_status_counts_are_capped():
    from qlar_console.deliveries.queries import StatusCounts

    counts = StatusCounts({"failed": 3, "succeeded": 1001}, cap=1000)
    assert [counts.label(s) for s in ("failed", "succeeded", "pending")] == ["3", "1,000+", "0"]
    assert counts.over_cap
    partial = StatusCounts({"failed": 3}, cap=1000, partial=True)
    assert [partial.label(s) for s in ("failed", "pending")] == ["3+", ""] and not partial.over_cap


def test_counts_stop_at_the_cap(delivery_app):
    from qlar_console.deliveries.log_query import Filters
    from qlar_console.deliveries.queries import status_counts

    _insert(delivery_app, 4, status="failed")
    with delivery_app.app_context():
        assert status_counts(Filters(), cap=2).label("failed") == "2+"
        assert status_counts(Filters(), cap=5).label("failed") == "4"
        windowed = status_counts(Filters(since=utcnow().date()), window=3)
        assert windowed.partial and windowed.label("failed").endswith("+")


def test_event_page_has_pretty_json_with_copy_and_folds_older_attempts(delivery_app):
    (event_id,) = _insert(delivery_app, 1, status="failed")
    with delivery_app.app_context():
        event = db.session.get(Event, event_id)
        event.body = b'{"eventId":"x","escalation":{"id":"esc-1","reason":"caf\xc3\xa9"}}'
        for number in (1, 2, 3):
            db.session.add(Attempt(event_id=event_id, number=number, trigger="scheduled", url="https://example.com/h",
                                   request_headers={"webhook-id": event_id}, response_status=500,
                                   response_headers={"Server": "x"}))
        db.session.commit()
    client = delivery_app.test_client()
    login(client)
    page = client.get(f"/deliveries/{event_id}").get_data(as_text=True)
    assert '<pre class="payload">{&#34;eventId&#34;:&#34;x&#34;' in page  # the exact bytes, unchanged
    pretty = page[page.index('id="body-pretty"'):]
    assert '\n  &#34;escalation&#34;: {\n    &#34;id&#34;: &#34;esc-1&#34;,' in pretty and "café" in pretty
    assert '<button type="button" id="copy-pretty" data-copy="body-pretty">Copy</button>' in page
    assert '<button type="button" id="copy-body" data-copy="body-exact">Copy exact bytes</button>' in page
    folds = re.findall(r'<details class="card attempt"( open)?>', page)
    assert folds == ["", "", " open"]  # the latest attempt open, older ones folded
    assert page.count('<details class="headers">') == 6  # request and response headers folded
    assert "<time datetime=" in page


def test_event_page_without_json_body_says_so(delivery_app):
    (event_id,) = _insert(delivery_app, 1, status="failed")
    with delivery_app.app_context():
        db.session.get(Event, event_id).body = b"not json \xff"
        db.session.commit()
    client = delivery_app.test_client()
    login(client)
    page = client.get(f"/deliveries/{event_id}").get_data(as_text=True)
    assert "no pretty-printed view" in page and 'id="body-pretty"' not in page


def test_debugger_verdict_opens_its_attempt(delivery_app):
    (event_id,) = _insert(delivery_app, 1, status="failed")
    with delivery_app.app_context():
        for number in (1, 2):
            db.session.add(Attempt(event_id=event_id, number=number, trigger="scheduled", url="https://example.com/h",
                                   request_headers={"webhook-id": event_id}, response_status=401))
        db.session.commit()
    client = delivery_app.test_client()
    login(client)
    page = client.post(f"/deliveries/{event_id}/attempts/1/debug", data={"signature": "sha256=00"}).get_data(
        as_text=True)
    assert re.findall(r'<details class="card attempt"( open)?>', page) == [" open", " open"]
    assert 'class="verdict verdict-bad"' in page
