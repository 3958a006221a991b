"""The Deliveries pages: the log with filters, keyset paging and the daily chart, one event, and Resend."""
import html
import re
from collections import Counter
from datetime import timedelta

import pytest
from conftest import PASSWORD
from helpers import login
from sqlalchemy import event as sa_event

from qlar_console.audit.models import AuditEntry
from qlar_console.clock import utcnow
from qlar_console.crypto import secret_box
from qlar_console.deliveries.queries import daily_outcomes
from qlar_console.engine.models import Attempt, Event
from qlar_console.engine.record import count_outcomes
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.settings.service import get_settings

ENV = ("agent-123", "production")
EVENT_LINK = re.compile(r'href="/deliveries/(evt_[0-9a-f]+)"')


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
                                 event_type=event_type, sequence=100 + i, body=b'{"x":1}', status=status,
                                 created_at=created_at or utcnow()))
            if status in ("succeeded", "failed"):
                count_outcomes((created_at or utcnow()).date(), Counter({status: 1}))
        db.session.commit()
    return ids


def _ids(page: str) -> list[str]:
    return EVENT_LINK.findall(page)


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
    assert 'href="/deliveries">Deliveries</a>' in page  # the nav link
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
    older = re.search(r'<a href="([^"]+)">Older</a>', first).group(1)
    assert html.unescape(older) == f"/deliveries?before={first_ids[-1]}"
    assert "Newest" not in first

    second = client.get(html.unescape(older)).get_data(as_text=True)
    second_ids = _ids(second)
    assert second_ids == everything[50:] and not set(first_ids) & set(second_ids)
    assert 'href="/deliveries">Newest</a>' in second and "Older" not in second
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
    older = html.unescape(re.search(r'<a href="([^"]+)">Older</a>', first).group(1))
    assert "status=failed" in older and "event_type=released" in older and "before=evt_" in older
    second = client.get(older).get_data(as_text=True)
    assert len(_ids(second)) == 2
    newest = html.unescape(re.search(r'<a href="([^"]+)">Newest</a>', second).group(1))
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
    from conftest import make_app

    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    (event_id,) = _insert(app, 1, status="failed")
    client = app.test_client()
    login = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf-token" content="([^"]+)"', login).group(1)
    client.post("/login", data={"username": "editor", "password": PASSWORD, "csrf_token": token})
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
