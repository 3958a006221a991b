"""Guards on the delivery engine's wiring, seen from outside: what a receiver gets and what the log records.

Each test pins one rule of DESIGN.md "Delivery semantics" / "Wire contract" that the rest of the suite
could break without noticing. They drive the engine only through the fixtures, the dispatcher's
drain/start/stop, the lifecycle and settings services, the Event/Attempt rows, and the claim's next-due rule.
"""
import os
import re
import threading
import time
from datetime import UTC, datetime, timedelta

import pytest
from apps import dispose, make_app, point_webhook
from cryptography.fernet import Fernet
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response

from qlar_console import create_app
from qlar_console.clock import utcnow
from qlar_console.engine import claim as claims
from qlar_console.engine.models import Attempt, Event
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.settings.service import get_settings

ENV = ("agent-123", "production")
RFC3339_UTC = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d{1,6})?Z$")


# -- helpers -------------------------------------------------------------------------------------

class Apps:
    """Builds apps wired to the test receiver with chosen delivery settings, and disposes of them after."""

    def __init__(self, tmp_path, receiver, database_url):
        self.tmp_path, self.receiver, self.database_url = tmp_path, receiver, database_url
        self.built = []

    def build(self, **delivery):
        """A fresh database with agent-123 · production's webhook enabled and pointing at the receiver."""
        settings = dict(RETRY_SCHEDULE="200ms,200ms", TIMEOUT_SECONDS=2, LEASE_SECONDS=4, SLOWDOWN_SECONDS=0.3)
        settings.update(delivery)
        app = make_app(self.tmp_path, SQLALCHEMY_DATABASE_URI=self.database_url,
                       CA_BUNDLE=str(self.receiver.ca_file), ALLOW_PRIVATE_TARGETS=True, **settings)
        self.built.append(app)
        point_webhook(app, self.receiver.url)
        return app

    def twin(self, app, **overrides):
        """A second app (another worker) on the same database: tables and rows are left as they are."""
        keys = ("TESTING", "SECRET_KEY", "MASTER_KEY", "SQLALCHEMY_DATABASE_URI", "INSTANCE_PATH",
                "WTF_CSRF_ENABLED", "CA_BUNDLE", "ALLOW_PRIVATE_TARGETS", "RETRY_SCHEDULE", "TIMEOUT_SECONDS",
                "LEASE_SECONDS", "SLOWDOWN_SECONDS", "DISPATCHER_THREADS", "ENDPOINT_CONCURRENCY")
        other = create_app({**{k: app.config[k] for k in keys}, **overrides})
        self.built.append(other)
        return other

    def dispose(self):
        for app in reversed(self.built):
            dispose(app)


@pytest.fixture
def apps(tmp_path, receiver, database_url):
    """Build apps like delivery_app but with other delivery settings (each on SQLite and PostgreSQL)."""
    built = Apps(tmp_path, receiver, database_url)
    yield built
    built.dispose()


def _events(app) -> list[Event]:
    with app.app_context():
        events = db.session.scalars(db.select(Event).order_by(Event.escalation_id, Event.sequence)).all()
        for event in events:
            event.attempts  # noqa: B018 - load before the context closes
        return events


def _only_event(app) -> tuple[Event, list[Attempt]]:
    (event,) = _events(app)
    return event, list(event.attempts)


class PlainHTTPReceiver:
    """A plain-HTTP (no TLS) endpoint on loopback that answers 200 and records what reaches it."""

    def __init__(self):
        self.requests: list[bytes] = []
        self.server = make_server("127.0.0.1", 0, self._app, threaded=True)
        self.url = f"http://127.0.0.1:{self.server.server_port}/webhook"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @Request.application
    def _app(self, request: Request) -> Response:
        self.requests.append(request.get_data())
        return Response("ok", status=200)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()
        self._thread.join(timeout=5)


@pytest.fixture
def plain_http():
    server = PlainHTTPReceiver()
    yield server
    server.close()


@pytest.fixture
def local_time_not_utc():
    """The host's local time zone is seven hours behind UTC for the test (restored after)."""
    before = os.environ.get("TZ")
    os.environ["TZ"] = "QLR+07"  # POSIX form: local = UTC - 7h, needs no tz database
    time.tzset()
    try:
        yield
    finally:
        if before is None:
            os.environ.pop("TZ", None)
        else:
            os.environ["TZ"] = before
        time.tzset()


# -- 1. Retry-After is part of the retry decision ---------------------------------------------------

@pytest.mark.parametrize("retry_after", ["2", "30"])
def test_retry_after_sets_the_next_try_within_one_to_two_times_the_schedule(apps, receiver, retry_after):
    """A 503 with Retry-After moves the retry to what the receiver asked, capped at 2x the scheduled delay.

    Schedule 1s: without Retry-After the retry would come after 0.8-1.2 s (jitter); Retry-After: 2 asks
    for 2 s (within 1x-2x, taken as is), Retry-After: 30 is capped at 2 x 1 s. Either way: 2 s, no jitter.
    """
    app = apps.build(RETRY_SCHEDULE="1s,1s")
    receiver.respond = lambda r: (503, {"Retry-After": retry_after}, 0)
    with app.app_context():
        lifecycle.create_escalation(*ENV)
        assert app.extensions["qlar_dispatcher"].drain(limit=1) == 1
    event, (attempt,) = _only_event(app)
    assert attempt.response_status == 503 and event.status == "pending"
    assert event.next_attempt_at == attempt.next_attempt_at
    waited = (event.next_attempt_at - attempt.started_at).total_seconds()
    assert 1.95 <= waited <= 2.0 + attempt.duration_ms / 1000 + 0.1, (
        f"retry planned {waited:.3f}s after the try, expected 2s (Retry-After: {retry_after}, schedule 1s)")


# -- 2. The schedule ends: the delivery fails for good ------------------------------------------------

def test_delivery_fails_for_good_after_the_last_scheduled_try(delivery_app, receiver):
    """With schedule 200ms,200ms an event its receiver always answers 500 gets exactly 3 tries, then it is failed.

    It is not tried again afterwards, however long the dispatcher keeps draining. The endpoint delivers
    another event meanwhile: were every try to it failing, it would pause instead (tests/engine/test_outage.py).
    """
    dispatcher = delivery_app.extensions["qlar_dispatcher"]
    with delivery_app.app_context():
        poison = lifecycle.create_escalation(*ENV).id
        receiver.respond = lambda r: (500 if r.json["escalation"]["id"] == poison else 200, {}, 0)
        assert dispatcher.drain(limit=1) == 1  # its first try (a loaded run may reach its retry's due time)
        other = lifecycle.create_escalation(*ENV).id
        status = lambda: db.session.scalar(db.select(Event.status).filter_by(escalation_id=poison))  # noqa: E731
        deadline = time.monotonic() + 4
        while time.monotonic() < deadline and len(receiver.requests) <= 4:
            dispatcher.drain(limit=5)
            if status() != "pending":
                break
            db.session.commit()  # end the read transaction so the next poll sees the dispatcher's writes
            time.sleep(0.02)
        time.sleep(0.6)  # longer than any retry delay left (200 ms + 20% jitter, even doubled)
        assert dispatcher.drain(limit=5) == 0
        event = db.session.scalar(db.select(Event).filter_by(escalation_id=poison))
        attempts = list(event.attempts)
        db.session.expunge_all()
    poisoned = [r for r in receiver.requests if r.json["escalation"]["id"] == poison]
    assert len(poisoned) == 3 and len(attempts) == 3  # len(schedule) + 1
    assert [r.json["escalation"]["id"] for r in receiver.requests].count(other) == 1
    assert event.status == "failed" and event.next_attempt_at is None
    assert [a.response_status for a in attempts] == [500, 500, 500]
    assert [a.next_attempt_at is None for a in attempts] == [False, False, True]


# -- 3. A timeout counts as a timeout: at least the slow-down ------------------------------------------

def test_timeout_waits_at_least_the_slowdown_after_the_try_ended(apps, receiver):
    """A receiver slower than the timeout is retried no sooner than SLOWDOWN_SECONDS after the try ended.

    Schedule 100ms, timeout 0.5 s, slow-down 3 s: a timeout not counted as one would retry ~0.1 s later.
    """
    app = apps.build(RETRY_SCHEDULE="100ms", TIMEOUT_SECONDS=0.5, LEASE_SECONDS=4, SLOWDOWN_SECONDS=3)
    receiver.respond = lambda r: (200, {}, 1.5)
    dispatcher = app.extensions["qlar_dispatcher"]
    with app.app_context():
        lifecycle.create_escalation(*ENV)
        assert dispatcher.drain(limit=1) == 1
        ended = utcnow()
        time.sleep(0.3)  # past the 100 ms schedule, far inside the slow-down
        assert dispatcher.drain(limit=1) == 0, "retried before the slow-down had passed"
    event, (attempt,) = _only_event(app)
    assert attempt.response_status is None and "timed out" in attempt.error.lower()
    assert event.status == "pending"
    # next try = end of the try + 3 s; `ended` is read a moment after, so allow 1 s for a loaded machine
    # (a timeout taken for a plain failure would give ~0.1 s)
    assert event.next_attempt_at - ended >= timedelta(seconds=3 - 1), (
        f"next try {event.next_attempt_at - ended} after the timed-out try ended; the slow-down is 3 s")
    assert len(receiver.requests) == 1


def test_an_idle_worker_wakes_for_a_try_that_came_due_during_a_slow_round(delivery_app):
    """The coordinator sleeps until the next try due after its claim looked, not a whole poll past it.

    A round slower than the retry delay (a loaded machine) used to find nothing due "after now" and sleep the
    2 s poll; a try that was already due when the claim looked, and was not claimed, waits on something else.
    """
    poll = delivery_app.config["POLL_SECONDS"]
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        due = db.session.scalar(db.select(Event.next_attempt_at))
        later = due + timedelta(seconds=0.3)  # the round ended 0.3 s after the try came due
        assert claims.seconds_until_next_due(poll, since=due - timedelta(milliseconds=1), now=later) == 0.01
        assert claims.seconds_until_next_due(poll, since=due, now=later) == poll
        early = due - timedelta(seconds=0.5)
        assert claims.seconds_until_next_due(poll, since=early, now=early) == pytest.approx(0.5)


# -- 4. The URL rule is checked again at send time ---------------------------------------------------

@pytest.mark.parametrize(("stored", "message"), [
    ("plain-http", "https://"),
    ("credentials", "username or password"),
], ids=["plain-http", "credentials"])
def test_stored_url_breaking_the_rule_is_not_posted(delivery_app, receiver, plain_http, stored, message):
    """A URL in the settings row that no longer passes the URL rule is never POSTed; the try says why."""
    url = {"plain-http": plain_http.url,
           "credentials": receiver.url.replace("https://", "https://user:pass@")}[stored]
    with delivery_app.app_context():
        settings = get_settings(*ENV)
        settings.webhook_url = url  # written straight into the row, as an old release or a hand edit might
        db.session.commit()
        lifecycle.create_escalation(*ENV)
        assert delivery_app.extensions["qlar_dispatcher"].drain(limit=1) == 1
    event, (attempt,) = _only_event(delivery_app)
    assert receiver.requests == [] and plain_http.requests == []
    assert attempt.response_status is None and message in attempt.error
    assert not attempt.request_headers  # nothing was signed or sent
    assert event.status != "succeeded"


# -- 5. A master key that cannot decrypt the secret ---------------------------------------------------

def test_wrong_master_key_uses_no_try_sends_nothing_and_pauses_the_endpoint(apps, receiver):
    """A worker started with another master key sends nothing and uses no try: the endpoint pauses with the
    master key as its reason, the event waits.

    The dispatcher does not crash: drain returns normally, the event stays pending, and a worker with
    the right key delivers it at the endpoint's probe, signed.
    """
    from qlar_console.settings.alerting import primary_endpoint

    app = apps.build()
    with app.app_context():
        lifecycle.create_escalation(*ENV)
    wrong_key = apps.twin(app, MASTER_KEY=Fernet.generate_key().decode())
    with wrong_key.app_context():
        assert wrong_key.extensions["qlar_dispatcher"].drain(limit=1) == 1
    event, attempts = _only_event(app)
    assert receiver.requests == [] and attempts == []
    assert "master key" in event.last_error and "QLAR_MASTER_KEY" in event.last_error
    assert event.status == "pending" and event.tries == 0 and event.next_attempt_at is not None
    assert event.lease_owner is None
    with app.app_context():
        endpoint = primary_endpoint(get_settings(*ENV))
        assert endpoint.health == "paused" and "master key" in endpoint.pause_reason
    with app.app_context():  # the right key: the probe (the schedule's first delay, 200 ms, later) goes out
        deadline = time.monotonic() + 3
        while not app.extensions["qlar_dispatcher"].drain(limit=1):
            assert time.monotonic() < deadline, "the event was not sent with the right master key"
            time.sleep(0.05)
    (got,) = receiver.requests
    assert got.json["eventId"] == event.id and got.headers["X-Qlar-Signature"].startswith("sha256=")
    assert _only_event(app)[0].status == "succeeded"


# -- 6. Per-escalation order with many threads and two workers -----------------------------------------

def test_escalation_order_holds_with_threads_two_workers_and_retries(apps, receiver):
    """Each escalation's events reach the receiver in sequence order, one success each, even with 8 threads
    in two workers racing and every `created` failing its first try: nothing later arrives before it succeeded.
    """
    app = apps.build(DISPATCHER_THREADS=4, ENDPOINT_CONCURRENCY=4)
    other = apps.twin(app)
    lock = threading.Lock()
    arrivals: list[tuple[str, int, int]] = []  # (escalation, sequence, status answered) in arrival order
    failed_once: set[str] = set()

    def respond(received):
        body = received.json
        with lock:
            status = 200
            if body["eventType"] == "created" and body["eventId"] not in failed_once:
                failed_once.add(body["eventId"])
                status = 500
            arrivals.append((body["escalation"]["id"], body["sequence"], status))
        return status, {}, 0.05  # each send takes a moment: room for a racing thread to overtake

    receiver.respond = respond
    escalations = []
    with app.app_context():
        for _ in range(4):
            esc = lifecycle.create_escalation(*ENV).id
            lifecycle.claim(esc, "supervisor-1")
            lifecycle.complete(esc, "Refund issued")
            escalations.append(esc)
    # Both dispatchers live in this process, so they share a process id (heartbeat row, lease-owner names);
    # real workers are separate processes. Order must hold regardless.
    app.extensions["qlar_dispatcher"].start()
    other.extensions["qlar_dispatcher"].start()
    deadline = time.monotonic() + 8
    with app.app_context():
        while db.session.scalar(db.select(db.func.count(Event.id)).where(Event.status != "succeeded")):
            db.session.commit()
            assert time.monotonic() < deadline, f"not all delivered in time; arrivals: {arrivals}"
            time.sleep(0.05)
    app.extensions["qlar_dispatcher"].stop()
    other.extensions["qlar_dispatcher"].stop()
    for esc in escalations:
        seen = [(sequence, status) for e, sequence, status in arrivals if e == esc]
        assert seen == [(1, 500), (1, 200), (2, 200), (3, 200)], f"{esc} arrived as {seen}"
    assert len(arrivals) == 4 * 4


# -- 7. The body's timestamp -----------------------------------------------------------------------

def test_body_timestamp_is_rfc3339_utc_with_z(delivery_app, receiver, local_time_not_utc):
    """The body's `timestamp` is RFC 3339 in UTC with a Z suffix and is when the event happened,
    even on a host whose local time is not UTC."""
    before = datetime.now(UTC)
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        after = datetime.now(UTC)
        delivery_app.extensions["qlar_dispatcher"].drain(limit=1)
    (got,) = receiver.requests
    stamp = got.json["timestamp"]
    assert RFC3339_UTC.match(stamp), f"not RFC 3339 UTC with Z: {stamp!r}"
    when = datetime.fromisoformat(stamp)
    assert when.utcoffset() == timedelta(0)
    assert before - timedelta(milliseconds=1) <= when <= after, f"{stamp} is not when the event happened"
    event, _ = _only_event(delivery_app)
    assert abs(when.replace(tzinfo=None) - event.created_at) < timedelta(seconds=1)
