"""Resend failed (recovering after an outage): a receiver fails, then recovers; the page, the CLI and the API each
re-deliver the window's failed events once, in each escalation's order, same eventId and bytes, at the endpoint's
normal pace; bad windows are refused with nothing queued; the page in a real browser."""
import html
import threading
import time
from collections import Counter
from datetime import datetime, timedelta

import pytest
from apps import dispose, make_app, point_webhook
from helpers import api_token, assert_problem, login

from qlar_console.audit.models import AuditEntry
from qlar_console.audit.service import ACTION_NAMES
from qlar_console.clock import utcnow
from qlar_console.deliveries import service
from qlar_console.engine.models import Attempt, Endpoint, Event
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db

PAIR = ("agent-123", "production")
API = "/api/v1/agents/agent-123/production/deliveries/resend-failed"
PAGE = "/deliveries/resend-failed"


@pytest.fixture
def outage_app(tmp_path, receiver, database_url):
    """agent-123 · production sends to the test receiver; two quick tries, so an event fails within milliseconds."""

    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=database_url, CA_BUNDLE=str(receiver.ca_file),
                   ALLOW_PRIVATE_TARGETS=True, RETRY_SCHEDULE="10ms", TIMEOUT_SECONDS=2, LEASE_SECONDS=4,
                   SLOWDOWN_SECONDS=0.01, ENDPOINT_CONCURRENCY=2)
    point_webhook(app, receiver.url)
    yield app
    dispose(app)


def _events(app) -> list[Event]:
    with app.app_context():
        events = list(db.session.scalars(db.select(Event).order_by(Event.id)))
        db.session.expunge_all()
        return events


def _settle(app, timeout: float = 15.0, *, outage: bool = False) -> None:
    """Deliver inline until nothing is pending (retries included).

    outage: every try fails, which pauses the endpoint and holds its events; the operator presses Resume now
    each time it pauses, which starts a new failing streak: an event whose run began before that streak uses
    up its schedule and ends failed (with its tries recorded), as Resend failed expects.
    """
    from qlar_console.settings.alerting import resume
    from qlar_console.settings.service import get_settings

    deadline = time.monotonic() + timeout
    while any(e.status == "pending" for e in _events(app)):
        assert time.monotonic() < deadline, "events still pending"
        if not app.extensions["qlar_dispatcher"].drain() and outage:
            with app.app_context():
                if db.session.scalar(db.select(Endpoint.health).filter_by(agent_id=PAIR[0], environment=PAIR[1])) \
                        == "paused":
                    resume(get_settings(*PAIR), "operator")
        time.sleep(0.01)


def _flows(app, count: int) -> list[str]:
    """`count` escalations with one to three events each (created; claimed; completed)."""
    ids = []
    with app.app_context():
        for n in range(count):
            escalation = lifecycle.create_escalation(*PAIR)
            if n % 3 >= 1:
                lifecycle.claim(escalation.id, "supervisor-1")
            if n % 3 == 2:
                lifecycle.complete(escalation.id, "Refund issued.")
            ids.append(escalation.id)
    return ids


def _outage(app, receiver) -> dict:
    """One escalation failed two hours ago, then an outage fails three more; the receiver is back afterwards."""
    receiver.respond = lambda r: (503, {}, 0)
    old = _flows(app, 1)
    _settle(app, outage=True)
    with app.app_context():  # its tries were two hours ago: outside a 1h window
        earlier = utcnow() - timedelta(hours=2)
        old_ids = list(db.session.scalars(db.select(Event.id).where(Event.escalation_id.in_(old))))
        db.session.execute(db.update(Attempt).where(Attempt.event_id.in_(old_ids)).values(started_at=earlier))
        db.session.execute(db.update(Event).where(Event.id.in_(old_ids)).values(created_at=earlier))
        db.session.commit()
    during = _flows(app, 3)
    _settle(app, outage=True)
    events = _events(app)
    assert {e.status for e in events} == {"failed"} and len(events) == 7
    bodies = {e.id: e.body for e in events}  # the frozen bytes (a paused endpoint never sent most of them)
    receiver.respond = lambda r: (200, {}, 0)
    window = [e.id for e in events if e.escalation_id in during]
    return {"old": old_ids, "window": window, "escalations": during, "bodies": bodies, "start": len(receiver.requests)}


def _resend_from_page(app) -> str:
    client = app.test_client()
    login(client, "editor")
    preview = client.get(PAGE, query_string={"pair": "agent-123/production", "window": "1h"})
    assert preview.status_code == 200
    return client.post(PAGE, data={"pair": "agent-123/production", "window": "1h"},
                       follow_redirects=True).get_data(as_text=True)


def _resend_from_cli(app) -> str:
    result = app.test_cli_runner().invoke(args=["qlar", "resend-failed", *PAIR, "--since", "1h"])
    assert result.exit_code == 0, result.output
    return result.output


def _resend_from_api(app) -> str:
    response = app.test_client().post(API, json={"since": "1h"}, headers=api_token(app, "editor"))
    assert response.status_code == 202, response.json
    return str(response.json)


@pytest.mark.parametrize("surface, actor, says", [
    (_resend_from_page, "editor", "6 failed events queued"),
    (_resend_from_cli, "cli", "Queued 6 failed events of agent-123/production (last try failed in the last hour) "
                              "again, in 3 escalations"),
    (_resend_from_api, "editor", "'count': 6"),
])
def test_resend_failed_redelivers_the_outage_once_each_in_order(outage_app, receiver, surface, actor, says):
    outage = _outage(outage_app, receiver)
    assert len(outage["window"]) == 6  # created; created, claimed; created, claimed, completed
    output = surface(outage_app)
    assert says in output
    _settle(outage_app)

    resent = receiver.requests[outage["start"]:]
    ids = [r.headers["Webhook-Id"] for r in resent]
    assert Counter(ids) == Counter(outage["window"])  # each once; nothing from before the window
    for r in resent:
        assert r.body == outage["bodies"][r.headers["Webhook-Id"]] and r.json["eventId"] == r.headers["Webhook-Id"]
    for escalation in outage["escalations"]:
        sequences = [r.json["sequence"] for r in resent if r.json["escalation"]["id"] == escalation]
        assert sequences == sorted(sequences)
    status = {e.id: e.status for e in _events(outage_app)}
    assert all(status[i] == "succeeded" for i in outage["window"]) and all(status[i] == "failed" for i in outage["old"])
    with outage_app.app_context():
        entry = db.session.scalar(db.select(AuditEntry).filter_by(action="deliveries.resend_failed"))
        assert entry.actor == actor and (entry.agent_id, entry.environment) == PAIR
        assert entry.details.startswith("6 failed events in the last hour")
        assert outage["escalations"][0] in entry.details
    assert ACTION_NAMES["deliveries.resend_failed"] == "Failed events resent"


def test_resent_events_go_out_at_the_endpoints_normal_pace(outage_app, receiver):
    outage = _outage(outage_app, receiver)
    busy, peak, lock = [0], [0], threading.Lock()

    def slow_ok(received):
        with lock:
            busy[0] += 1
            peak[0] = max(peak[0], busy[0])
        time.sleep(0.05)
        with lock:
            busy[0] -= 1
        return 200, {}, 0

    receiver.respond = slow_ok
    outage_app.extensions["qlar_dispatcher"].start(threads=6)  # room for a burst: the endpoint limit is 2
    assert _resend_from_cli(outage_app)
    receiver.wait_for(outage["start"] + 6)
    deadline = time.monotonic() + 10
    while any(e.status != "succeeded" for e in _events(outage_app) if e.id in outage["window"]):
        assert time.monotonic() < deadline
        time.sleep(0.02)
    assert peak[0] == 2  # three escalations at once would make 3: QLAR_ENDPOINT_CONCURRENCY holds it at 2
    resent = receiver.requests[outage["start"]:]
    assert Counter(r.headers["Webhook-Id"] for r in resent) == Counter(outage["window"])
    for escalation in outage["escalations"]:
        sequences = [r.json["sequence"] for r in resent if r.json["escalation"]["id"] == escalation]
        assert sequences == sorted(sequences)


def _text(response) -> str:
    return html.unescape(response.get_data(as_text=True))


def _queued(app) -> int:
    return sum(e.status == "pending" for e in _events(app))


@pytest.mark.parametrize("window, message", [
    ("2h", "Choose a window: 1h, 24h, 7d, or a UTC day written YYYY-MM-DD (since its start). Got '2h'."),
    ("2024-02-30", "Got '2024-02-30'."),
    ("20240101", "Got '20240101'."),
    ("yesterday", "Got 'yesterday'."),
])
def test_bad_window_is_refused_everywhere_with_nothing_queued(outage_app, receiver, window, message):
    _outage(outage_app, receiver)
    client = outage_app.test_client()
    login(client, "editor")
    page = client.get(PAGE, query_string={"pair": "agent-123/production", "window": window})
    assert page.status_code == 400 and message in _text(page)
    confirm = client.post(PAGE, data={"pair": "agent-123/production", "window": window})
    assert confirm.status_code == 400 and "Nothing was queued." in confirm.get_data(as_text=True)
    cli = outage_app.test_cli_runner().invoke(args=["qlar", "resend-failed", *PAIR, "--since", window])
    assert cli.exit_code == 1 and message in cli.output
    api = client.post(API, json={"since": window}, headers=api_token(outage_app, "editor"))
    body = assert_problem(api, 422, "validation-error")
    assert body["errors"][0]["pointer"] == "#/since" and message in body["errors"][0]["detail"]
    assert _queued(outage_app) == 0
    with outage_app.app_context():
        assert db.session.scalar(db.select(AuditEntry).filter_by(action="deliveries.resend_failed")) is None


def test_page_refusals_name_the_field(outage_app, receiver):
    client = outage_app.test_client()
    login(client, "editor")
    no_day = client.get(PAGE, query_string={"pair": "agent-123/production", "window": "date", "day": ""})
    assert no_day.status_code == 400 and "Give the UTC day to resend from" in no_day.get_data(as_text=True)
    assert 'id="resend-day" name="day" type="date" value="" aria-invalid="true"' in no_day.get_data(as_text=True)
    unknown = client.post(PAGE, data={"pair": "agent-9/nowhere", "window": "1h"})
    assert unknown.status_code == 400 and "No agent 'agent-9' with environment" in _text(unknown)
    api = client.post("/api/v1/agents/agent-9/nowhere/deliveries/resend-failed", json={"since": "1h"},
                      headers=api_token(outage_app, "editor"))
    assert_problem(api, 404, "not-found")
    missing = client.post(API, json={}, headers=api_token(outage_app, "editor"))
    assert_problem(missing, 422, "validation-error")


def test_preview_and_dry_run_queue_nothing_and_a_day_window_counts_from_its_start(outage_app, receiver):
    outage = _outage(outage_app, receiver)
    client = outage_app.test_client()
    login(client, "admin")
    html = client.get(PAGE, query_string={"pair": "agent-123/production", "window": "1h"}).get_data(as_text=True)
    assert "6 failed events</strong>" in html and "in 3\n    escalations" in html and ">Resend 6 failed events<" in html
    assert all(esc in html for esc in outage["escalations"]) and _queued(outage_app) == 0
    day = (utcnow() - timedelta(days=1)).date().isoformat()  # from yesterday's start: the old escalation too
    dry = outage_app.test_cli_runner().invoke(args=["qlar", "resend-failed", *PAIR, "--since", day, "--dry-run"])
    assert dry.output.startswith(f"Would queue 7 failed events of agent-123/production (last try failed since {day} "
                                 "(UTC)) again, in 4 escalations")
    assert _queued(outage_app) == 0
    week = client.get(PAGE, query_string={"pair": "agent-123/staging", "window": "7d"}).get_data(as_text=True)
    assert "No events of agent-123 · staging failed in the last 7 days: nothing to resend." in week
    empty = client.post(PAGE, data={"pair": "agent-123/staging", "window": "24h"}, follow_redirects=True)
    assert "No failed events in the last 24 hours: nothing was queued." in empty.get_data(as_text=True)


def test_only_the_oldest_are_queued_beyond_the_cap(outage_app, receiver, monkeypatch):
    outage = _outage(outage_app, receiver)
    monkeypatch.setattr(service, "RESEND_FAILED_MAX", 4)
    response = outage_app.test_client().post(API, json={"since": "7d"}, headers=api_token(outage_app, "editor"))
    assert response.status_code == 202 and response.json["more"] is True
    assert response.json["eventIds"] == sorted([*outage["old"], *outage["window"]])[:4]
    assert _queued(outage_app) == 4


def test_editors_and_admins_only(outage_app, receiver):
    outage = _outage(outage_app, receiver)
    viewer = outage_app.test_client()
    login(viewer, "viewer")
    assert "Resend failed…" not in viewer.get("/deliveries").get_data(as_text=True)
    assert viewer.get(PAGE, query_string={"pair": "agent-123/production", "window": "1h"}).status_code == 403
    assert viewer.post(PAGE, data={"pair": "agent-123/production", "window": "1h"}).status_code == 403
    assert_problem(viewer.post(API, json={"since": "1h"}, headers=api_token(outage_app, "viewer")), 403,
                   "forbidden-role")
    assert_problem(viewer.post(API, json={"since": "1h"}, headers=api_token(outage_app, "editor", "read")), 403,
                   "forbidden-scope")
    assert _queued(outage_app) == 0
    editor = outage_app.test_client()
    login(editor, "editor")
    index = editor.get("/deliveries", query_string={"pair": "agent-123/production"}).get_data(as_text=True)
    assert 'href="/deliveries/resend-failed?pair=agent-123/production">Resend failed…</a>' in index
    assert len(outage["window"]) == 6


def test_openapi_documents_resend_failed(client):
    spec = client.get("/api/v1/openapi.json").json
    operation = spec["paths"]["/api/v1/agents/{agent_id}/{env}/deliveries/resend-failed"]["post"]
    assert operation["security"] == [{"bearer": []}] and "202" in operation["responses"]
    body = operation["requestBody"]["content"]["application/json"]["schema"]
    schema = spec["components"]["schemas"][body["$ref"].split("/")[-1]]
    assert schema["required"] == ["since"]
    assert schema["properties"]["since"]["anyOf"] == [{"enum": ["1h", "24h", "7d"]}, {"format": "date"}]


@pytest.mark.parametrize("window, since", [
    ("1h", datetime(2024, 5, 31, 11, 0)), ("24h", datetime(2024, 5, 30, 12, 0)), ("7d", datetime(2024, 5, 24, 12, 0)),
    (" 2024-05-01 ", datetime(2024, 5, 1)),
])
def test_parse_window(window, since):
    assert service.parse_window(window, now=datetime(2024, 5, 31, 12, 0)) == since


@pytest.mark.parametrize("window", ["", None, "1d", "2024-13-01", "2024-W01-1", "1h ago", "x" * 100])
def test_parse_window_refuses(window):
    with pytest.raises(service.InvalidWindow) as refused:
        service.parse_window(window)
    assert refused.value.field == "since" and len(str(refused.value)) < 140
