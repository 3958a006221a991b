"""The home page: an overview of every agent x environment (webhook state, last delivery, 24-hour figures)."""
import html
from datetime import timedelta

import pytest
from apps import point_webhook
from helpers import login
from sqlalchemy import event as sa_event

from qlar_console.clock import utcnow
from qlar_console.engine.fanout import destinations
from qlar_console.engine.models import Attempt, Event
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.settings.overview import age_text, pair_overview, url_host

HOOK = "https://hooks.example.com:8443/qlar?token=x"


def _traffic(app) -> None:
    """agent-123 · production: webhook on; in the last 24 h 3 succeeded, 1 failed, 1 pending (last try a 503);
    two days ago 5 failed, outside the window."""
    with app.app_context():
        esc = lifecycle.create_escalation("agent-123", "production").id  # webhook off: one skipped event
        point_webhook(app, HOOK)
        now = utcnow()
        rows = [("succeeded", now - timedelta(hours=3)), ("succeeded", now - timedelta(hours=2)),
                ("succeeded", now - timedelta(hours=1)), ("failed", now - timedelta(minutes=50)),
                ("pending", now - timedelta(minutes=10))] + [("failed", now - timedelta(days=2))] * 5
        for n, (status, at) in enumerate(rows):
            event_id = f"evt_{'f' * 20}{n:04d}"
            db.session.add(Event(id=event_id, escalation_id=esc, agent_id="agent-123", environment="production",
                                 endpoint_id=destinations("agent-123", "production", "created")[0],
                                 event_type="created", sequence=10 + n, body=b"{}", status=status, created_at=at,
                                 next_attempt_at=now + timedelta(days=1) if status == "pending" else None))
            db.session.add(Attempt(event_id=event_id, number=1, trigger="scheduled", started_at=at, url=HOOK,
                                   response_status=503 if status in ("pending", "failed") else 200))
        db.session.commit()


def test_overview_figures_in_three_queries(app):
    _traffic(app)
    with app.app_context():
        statements = []
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        sa_event.listen(db.engine, "before_cursor_execute", listener)
        try:
            rows = pair_overview()
        finally:
            sa_event.remove(db.engine, "before_cursor_execute", listener)
    assert len(statements) <= 3
    production, staging = rows
    assert production.settings.label == "agent-123 · production" and production.host == "hooks.example.com:8443"
    assert (production.succeeded, production.failed, production.pending) == (3, 1, 1)
    assert production.success_text == "75.0 %" and production.key_age_text == "just now"
    assert production.last.result == "503" and not production.last.ok
    assert staging.last is None and staging.success_text is None and staging.host is None


@pytest.mark.parametrize(("url", "host"), [
    (None, None), ("https://a.example/x", "a.example"), ("https://u:p@b.example:444/", "b.example:444"),
])
def test_url_host_never_shows_credentials(url, host):
    assert url_host(url) == host


@pytest.mark.parametrize(("seconds", "text"), [(5, "just now"), (300, "5 min"), (7200, "2 h"), (86400, "1 day"),
                                               (86400 * 12 + 5, "12 days")])
def test_age_text(seconds, text):
    assert age_text(timedelta(seconds=seconds)) == text


def test_page_shows_each_pair_with_links(app, client):
    _traffic(app)
    login(client, "viewer")
    page = html.unescape(client.get("/").get_data(as_text=True))
    assert "<h1>Overview</h1>" in page
    assert 'href="/agents/agent-123/production/escalation" title="Escalation card">agent-123 · production</a>' in page
    assert 'href="/deliveries?agent=agent-123&env=production">Deliveries' in page
    assert 'href="/deliveries?agent=agent-123&env=staging">Deliveries' in page
    assert 'href="/deliveries?agent=agent-123&env=production&status=failed">1' in page
    assert "hooks.example.com:8443" in page and "token=x" not in page
    assert "75.0 %" in page and "3 of 4" in page and "1 pending" in page
    assert ">503</span>" in page and "none in 24 h" in page and "<time datetime=" in page
    assert "Enabled" in page and "Disabled" in page and "Key age: just now" in page and "No key yet" in page


def test_empty_state_names_the_command(tmp_path):
    from apps import dispose, make_app

    app = make_app(tmp_path)
    try:
        with app.app_context():
            db.session.execute(db.text("DELETE FROM escalation_settings"))
            db.session.commit()
        client = app.test_client()
        login(client, "viewer")
        page = client.get("/").get_data(as_text=True)
        assert "No agents yet: add one with <code>flask qlar agent add AGENT_ID --env production</code>." in page
    finally:
        dispose(app)
