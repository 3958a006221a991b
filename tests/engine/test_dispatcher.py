"""The dispatcher against a real HTTPS receiver on loopback (trustme CA)."""
import base64
import hashlib
import hmac
import json
import threading
import time

import pytest
from helpers import login, stored_secret
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from qlar_console.clock import utcnow
from qlar_console.engine.models import Attempt, Event
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.settings.keys import regenerate_secret
from qlar_console.settings.service import get_settings
from qlar_console.worker import init_dispatcher

ENV = ("agent-123", "production")


def _flow(app) -> str:
    with app.app_context():
        esc = lifecycle.create_escalation(*ENV).id
        lifecycle.claim(esc, "supervisor-1")
        lifecycle.complete(esc, "Refund issued")
    return esc


def _events(app, **filters) -> list[Event]:
    with app.app_context():
        events = db.session.scalars(db.select(Event).filter_by(**filters).order_by(Event.id)).all()
        for e in events:
            e.attempts  # noqa: B018 - load before the context closes
        return events


def _wait_until(predicate, timeout=8.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError("condition not met in time")


def test_flow_arrives_in_order_signed_both_ways(delivery_app, receiver):
    delivery_app.extensions["qlar_dispatcher"].start()
    esc = _flow(delivery_app)
    got = receiver.wait_for(3)
    secret = stored_secret(delivery_app)
    assert [r.json["eventType"] for r in got] == ["created", "claimed", "completed"]
    assert [r.json["sequence"] for r in got] == [1, 2, 3]
    for r in got:
        body = r.json
        assert set(body) == {"eventId", "eventType", "timestamp", "agentId", "environment", "escalation", "sequence"}
        assert body["agentId"] == "agent-123" and body["environment"] == "production"
        assert body["escalation"]["id"] == esc
        assert body["escalation"]["triggerCondition"] == "Angry Customer Escalation"
        assert r.headers["Content-Type"] == "application/json"
        assert r.headers["User-Agent"].startswith("qlar-webhooks/")
        assert r.headers["X-Qlar-Event"] == body["eventType"]
        assert r.headers["Webhook-Id"] == body["eventId"]
        expected = "sha256=" + hmac.new(secret.encode(), r.body, hashlib.sha256).hexdigest()
        assert r.headers["X-Qlar-Signature"] == expected
        Webhook(secret).verify(r.body, {k.lower(): v for k, v in r.headers.items()})  # raises if invalid
    assert got[1].json["escalation"]["claimedBy"] == "supervisor-1"
    assert got[2].json["escalation"]["resolutionNotes"] == "Refund issued"
    assert got[2].json["escalation"]["status"] == "Completed"


def test_retry_after_500s_sends_same_id_and_bytes(delivery_app, receiver):
    answers = iter([500, 500])
    receiver.respond = lambda r: (next(answers, 200), {}, 0)
    delivery_app.extensions["qlar_dispatcher"].start()
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
    got = receiver.wait_for(3)
    assert len({r.headers["Webhook-Id"] for r in got}) == 1
    assert len({r.body for r in got}) == 1
    _wait_until(lambda: _events(delivery_app)[0].status == "succeeded")
    event = _events(delivery_app)[0]
    assert [a.response_status for a in event.attempts] == [500, 500, 200]
    assert event.attempts[0].next_attempt_at is not None and event.attempts[2].next_attempt_at is None
    assert event.attempts[0].request_headers["webhook-id"] == event.id


def test_failing_event_holds_its_escalation_but_not_others(delivery_app, receiver):
    with delivery_app.app_context():
        held = lifecycle.create_escalation(*ENV).id
        lifecycle.claim(held, "sup")
    failures = iter([503, 503])

    def respond(r):
        if r.json["escalation"]["id"] == held and r.json["eventType"] == "created":
            return next(failures, 200), {}, 0
        return 200, {}, 0

    receiver.respond = respond
    delivery_app.extensions["qlar_dispatcher"].start()
    with delivery_app.app_context():
        other = lifecycle.create_escalation(*ENV).id
        lifecycle.claim(other, "sup")
    got = receiver.wait_for(6)
    order = [(r.json["escalation"]["id"], r.json["eventType"]) for r in got]
    assert order.index((other, "claimed")) < order.index((held, "claimed"))
    held_only = [e for e in order if e[0] == held]
    assert held_only == [(held, "created")] * 3 + [(held, "claimed")]


def test_redirect_is_not_followed(delivery_app, receiver):
    receiver.respond = lambda r: (302, {"Location": "https://127.0.0.1:1/elsewhere"}, 0)
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        delivery_app.extensions["qlar_dispatcher"].drain(limit=1)
    assert len(receiver.requests) == 1
    attempt = _events(delivery_app)[0].attempts[0]
    assert attempt.response_status == 302
    assert "Redirect to https://127.0.0.1:1/elsewhere not followed" in attempt.error


def test_a_response_with_many_long_headers_is_stored_bounded(delivery_app, receiver):
    many = [(f"X-Filler-{n}", "v" * 20_000) for n in range(90)]  # http.client takes up to 100 of up to 64 KiB
    receiver.respond = lambda r: (200, many, 0)
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        delivery_app.extensions["qlar_dispatcher"].drain(limit=1)
    attempt = _events(delivery_app)[0].attempts[0]
    assert attempt.response_status == 200
    stored = attempt.response_headers
    assert len(stored) == 51 and stored["\u2026"].endswith("more headers left out")
    assert all(len(name) <= 100 and len(value) <= 1024 for name, value in stored.items())
    assert stored["X-Filler-0"] == "v" * 1023 + "\u2026"


def test_timeout_is_recorded_and_slows_down(delivery_app, receiver):
    receiver.respond = lambda r: (200, {}, 3)  # longer than TIMEOUT_SECONDS=2
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        delivery_app.extensions["qlar_dispatcher"].drain(limit=1)
    event = _events(delivery_app)[0]
    attempt = event.attempts[0]
    assert attempt.response_status is None and attempt.error.startswith("Timed out after 2s")
    assert (attempt.next_attempt_at - attempt.started_at).total_seconds() >= 0.3  # SLOWDOWN_SECONDS
    assert event.status == "pending"


def test_410_gone_disables_the_webhook_with_reason(delivery_app, receiver):
    receiver.respond = lambda r: (410, {}, 0)
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        delivery_app.extensions["qlar_dispatcher"].drain(limit=5)
        settings = get_settings(*ENV)
        assert not settings.webhook_enabled and "410 Gone" in settings.disabled_reason
    assert len(receiver.requests) == 1
    assert _events(delivery_app)[0].status == "failed"
    web = delivery_app.test_client()
    login(web, "editor")
    assert "answered 410 Gone" in web.get("/agents/agent-123/production/escalation").get_data(as_text=True)


def test_private_target_refused_unless_allowed(delivery_app, receiver):
    delivery_app.config["ALLOW_PRIVATE_TARGETS"] = False
    dispatcher = init_dispatcher(delivery_app)
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        dispatcher.drain(limit=1)
    assert receiver.requests == []
    attempt = _events(delivery_app)[0].attempts[0]
    assert "private" in attempt.error and "QLAR_ALLOW_PRIVATE_TARGETS=1" in attempt.error


def test_retry_after_regenerate_is_signed_with_new_key_only(delivery_app, receiver):
    receiver.respond = lambda r: (500, {}, 0) if len(receiver.requests) == 1 else (200, {}, 0)
    old = stored_secret(delivery_app)
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        delivery_app.extensions["qlar_dispatcher"].drain(limit=1)
        regenerate_secret(get_settings(*ENV), "editor")
    new = stored_secret(delivery_app)
    delivery_app.extensions["qlar_dispatcher"].start()
    first, retry = receiver.wait_for(2)
    sig = lambda key, body: "sha256=" + hmac.new(key.encode(), body, hashlib.sha256).hexdigest()  # noqa: E731
    assert first.headers["X-Qlar-Signature"] == sig(old, first.body)
    assert retry.headers["X-Qlar-Signature"] == sig(new, retry.body)
    Webhook(new).verify(retry.body, {k.lower(): v for k, v in retry.headers.items()})
    with pytest.raises(WebhookVerificationError, match="No matching signature"):
        Webhook(old).verify(retry.body, {k.lower(): v for k, v in retry.headers.items()})


def test_grace_period_sends_both_signatures(delivery_app, receiver):
    old = stored_secret(delivery_app)
    with delivery_app.app_context():
        regenerate_secret(get_settings(*ENV), "editor", grace="1h")
        lifecycle.create_escalation(*ENV)
        delivery_app.extensions["qlar_dispatcher"].drain(limit=1)
    new = stored_secret(delivery_app)
    (got,) = receiver.requests
    sig = lambda key: "sha256=" + hmac.new(key.encode(), got.body, hashlib.sha256).hexdigest()  # noqa: E731
    assert got.headers["X-Qlar-Signature"] == f"{sig(new)},{sig(old)}"
    assert len(got.headers["Webhook-Signature"].split(" ")) == 2
    for key in (new, old):
        Webhook(key).verify(got.body, {k.lower(): v for k, v in got.headers.items()})


def test_disabled_webhook_queues_nothing(delivery_app, receiver):
    runner = delivery_app.test_cli_runner()
    runner.invoke(args=["qlar", "webhook", "set", *ENV, "--disable"])
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        assert delivery_app.extensions["qlar_dispatcher"].drain() == 0
    assert receiver.requests == [] and _events(delivery_app)[0].status == "skipped"


@pytest.mark.parametrize(
    ("steps", "message"),
    [
        (["complete"], "Cannot complete escalation"),
        (["release"], "Cannot release escalation"),
        (["claim", "claim"], "Cannot claim escalation"),
        (["claim", "complete", "release"], "Cannot release escalation"),
    ],
)
def test_invalid_transitions_emit_nothing(delivery_app, steps, message):
    with delivery_app.app_context():
        esc = lifecycle.create_escalation(*ENV).id
        *fine, bad = steps
        for step in fine:
            {"claim": lambda: lifecycle.claim(esc, "sup"), "complete": lambda: lifecycle.complete(esc, "done")}[step]()
        before = db.session.scalar(db.select(db.func.count(Event.id)))
        with pytest.raises(lifecycle.TransitionError, match=message):
            {"claim": lambda: lifecycle.claim(esc, "sup"), "complete": lambda: lifecycle.complete(esc, "done"),
             "release": lambda: lifecycle.release(esc)}[bad]()
        db.session.rollback()
        assert db.session.scalar(db.select(db.func.count(Event.id))) == before


def test_purge_removes_only_old_traces(delivery_app, receiver):
    from qlar_console.engine.housekeeping import purge

    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        lifecycle.create_escalation(*ENV)
        delivery_app.extensions["qlar_dispatcher"].drain()
        old, recent = db.session.scalars(db.select(Event).order_by(Event.id)).all()
        old.created_at = utcnow().replace(year=2020)
        for attempt in old.attempts:
            attempt.started_at = old.created_at
        db.session.commit()
        assert purge(7) == 2  # the old event and its attempt (retention: 7 days)
        assert db.session.scalars(db.select(Event.id)).all() == [recent.id]
        assert db.session.scalar(db.select(db.func.count(Attempt.id))) == 1


def test_body_is_frozen_bytes(delivery_app):
    with delivery_app.app_context():
        esc = lifecycle.create_escalation(*ENV, reason="Customer says \u201cunacceptable\u201d")
        event = db.session.scalars(db.select(Event)).one()
        assert isinstance(event.body, bytes)
        reason = json.loads(event.body.decode("utf-8"))["escalation"]["reason"]
        assert reason == "Customer says \u201cunacceptable\u201d"
        assert event.escalation_id == esc.id


def test_standard_webhooks_key_is_the_decoded_secret(delivery_app):
    from qlar_console.signing import standard_signature

    secret = "whsec_" + base64.b64encode(b"k" * 32).decode()
    expected = base64.b64encode(hmac.new(b"k" * 32, b"evt_1.1700000000.{}", hashlib.sha256).digest()).decode()
    assert standard_signature(secret, "evt_1", 1700000000, b"{}") == "v1," + expected


def test_reenabling_after_410_offers_to_resend_missed_oldest_first(delivery_app, receiver):
    from helpers import page_version, save_form

    receiver.respond = lambda r: (410, {}, 0)
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        delivery_app.extensions["qlar_dispatcher"].drain()
        lifecycle.create_escalation(*ENV)  # while switched off: skipped
    receiver.respond = lambda r: (200, {}, 0)
    web = delivery_app.test_client()
    login(web, "editor")
    page = "/agents/agent-123/production/escalation"
    version = page_version(web.get(page).get_data(as_text=True))
    html = web.post(page, data=save_form(version, url=receiver.url), follow_redirects=True).get_data(as_text=True)
    assert "2 events were not delivered while the webhook was off." in html
    web.post("/agents/agent-123/production/webhook/resend-missed", data={"action": "resend"})
    with delivery_app.app_context():
        delivery_app.extensions["qlar_dispatcher"].drain()
    resent = receiver.requests[1:]
    assert [r.json["eventId"] for r in resent] == sorted(r.json["eventId"] for r in resent)
    assert all(e.status == "succeeded" for e in _events(delivery_app))


def test_embedded_dispatcher_starts_once_on_first_request(tmp_path):
    from apps import make_app

    app = make_app(tmp_path, TESTING=False, ENV="development", DISPATCHER_THREADS=2)
    dispatcher = app.extensions["qlar_dispatcher"]
    assert not dispatcher.running  # importing or running CLI commands starts nothing
    client = app.test_client()
    client.get("/login")
    client.get("/login")
    try:
        assert dispatcher.running
        workers = [t for t in threading.enumerate() if t.name.startswith("qlar-sender-")]
        assert len(workers) == 2
    finally:
        dispatcher.stop()
    assert not dispatcher.running


@pytest.mark.parametrize(("setup", "error"), [
    ("untrusted_ca", "TLS error"),
    ("closed_port", "Connection failed"),
])
def test_transport_failures_become_attempts(delivery_app, receiver, setup, error):
    dispatcher = delivery_app.extensions["qlar_dispatcher"]
    if setup == "untrusted_ca":
        delivery_app.config["TRUSTED_CAS"] = []  # the test CA is no longer trusted
        dispatcher = init_dispatcher(delivery_app)
    else:
        runner = delivery_app.test_cli_runner()
        runner.invoke(args=["qlar", "webhook", "set", *ENV, "--url", "https://127.0.0.1:9/webhook"])
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        dispatcher.drain(limit=1)
    event = _events(delivery_app)[0]
    assert event.status == "pending" and event.attempts[0].error.startswith(error)
    assert event.attempts[0].response_status is None and event.attempts[0].next_attempt_at is not None


def test_secret_never_logged_or_stored_in_attempts(delivery_app, receiver, caplog):
    caplog.set_level("DEBUG")
    _flow(delivery_app)
    with delivery_app.app_context():
        delivery_app.extensions["qlar_dispatcher"].drain()
    secret = stored_secret(delivery_app)
    attempts = [a for e in _events(delivery_app) for a in e.attempts]
    assert len(attempts) == 3 and caplog.text
    assert secret not in caplog.text and secret[6:] not in caplog.text
    assert all(secret not in json.dumps(a.request_headers) for a in attempts)


def test_hanging_endpoint_does_not_hold_up_another(delivery_app, receiver):
    """Agent A's receiver hangs; B's event still arrives at once (A may hold only half the threads)."""
    receiver.respond = lambda r: (200, {}, 2.5) if r.path == "/hangs" else (200, {}, 0)
    runner = delivery_app.test_cli_runner()
    runner.invoke(args=["qlar", "webhook", "set", *ENV, "--url", receiver.url.replace("/webhook", "/hangs")])
    runner.invoke(args=["qlar", "webhook", "set", "agent-123", "staging", "--url", receiver.url, "--enable"])
    with delivery_app.app_context():
        for _ in range(3):
            lifecycle.create_escalation(*ENV)
    dispatcher = delivery_app.extensions["qlar_dispatcher"]
    dispatcher.start(threads=2)
    receiver.wait_for(1)  # one thread is now stuck on the hanging endpoint (timeout 2s)
    with delivery_app.app_context():
        lifecycle.create_escalation("agent-123", "staging")
    created = time.monotonic()
    deadline = created + 5
    while not any(r.path == "/webhook" for r in receiver.requests):
        assert time.monotonic() < deadline, "B's event never arrived"
        time.sleep(0.01)
    arrived = next(r.at for r in receiver.requests if r.path == "/webhook")
    assert arrived - created < 1.0  # well under one timeout of A's endpoint
    assert sum(r.path == "/hangs" for r in receiver.requests) == 1  # A never had both threads


def test_a_cookie_a_receiver_sets_is_never_sent_back(delivery_app, receiver):
    """Each try carries only qlar's headers: what one answer sets (Set-Cookie) is not replayed on the next."""
    receiver.respond = lambda r: (200, {"Set-Cookie": "track=1; Path=/"}, 0)
    delivery_app.extensions["qlar_dispatcher"].start()
    _flow(delivery_app)
    got = receiver.wait_for(3)
    assert [r.headers.get("Cookie") for r in got] == [None, None, None]
    assert all(r.headers["Accept-Encoding"] == "gzip, deflate" for r in got)  # as before, when a session sent it
