"""An endpoint that is down loses nothing, and its owners are told (issue 22), through the real dispatcher:
a real HTTPS receiver that goes down and comes back, a real SMTP server and a real HTTPS alert receiver."""
import hashlib
import hmac
import threading
import time

import pytest
from apps import dispose, make_app, point_webhook
from helpers import stored_secret
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook

from qlar_console.engine.models import FAILED, SUCCEEDED, Alert, Attempt, Endpoint, Event
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.settings.alerting import primary_endpoint
from qlar_console.settings.service import get_settings

PAIR = ("agent-123", "production")


class Switch:
    """The receiver's answers: 503 while down (or for a poison escalation), 200 otherwise; each answer logged."""

    def __init__(self, receiver, poison: str | None = None):
        self.down, self.poison, self.log = False, poison, []
        self._lock = threading.Lock()
        receiver.respond = self

    def __call__(self, received):
        body = received.json
        status = 503 if self.down or body["escalation"]["id"] == self.poison else 200
        with self._lock:
            self.log.append((received.headers.get("Webhook-Id"), body["escalation"]["id"], body["sequence"],
                             status, time.monotonic()))
        return status, {}, 0


def outage_app(tmp_path, receiver, mail_server, alert_receiver, database_url="", schedule="300ms,300ms,300ms",
               **config):
    """An app delivering agent-123 · production to `receiver`, alerting by email and POST, fast pause and probe."""
    settings = dict(CA_BUNDLE=str(receiver.ca_file), ALLOW_PRIVATE_TARGETS=True, RETRY_SCHEDULE=schedule,
                    TIMEOUT_SECONDS=2, LEASE_SECONDS=5, SLOWDOWN_SECONDS=0.3, POLL_SECONDS=0.5, PROBE_MAX_SECONDS=1,
                    SMTP_URL=mail_server.url if mail_server else None, MAIL_FROM="qlar <qlar@example.test>",
                    ALERT_RETRY_SCHEDULE="300ms,300ms,1s")
    settings.update(config)
    if database_url:
        settings["SQLALCHEMY_DATABASE_URI"] = database_url
    app = make_app(tmp_path, **settings)
    point_webhook(app, receiver.url, alert_emails="ops@example.test, oncall@example.test",
                  alert_url=alert_receiver.url if alert_receiver else "")
    return app


def wait_until(predicate, timeout: float, what: str):
    """Poll until predicate() is truthy; fail naming `what` after timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(0.05)
    raise AssertionError(f"timed out waiting for {what}")


def events(app) -> list[Event]:
    with app.app_context():
        return list(db.session.scalars(select(Event).order_by(Event.id)))


def endpoint(app) -> Endpoint:
    with app.app_context():
        ep = primary_endpoint(get_settings(*PAIR))
        db.session.expunge(ep)
        return ep


def alert_rows(app) -> list[Alert]:
    with app.app_context():
        rows = list(db.session.scalars(select(Alert).order_by(Alert.id)))
        db.session.expunge_all()
        return rows


def flow(app, steps=("claim", "complete")) -> str:
    """One escalation's lifecycle, as QA drives it: create, then each step; returns its id."""
    with app.app_context():
        esc = lifecycle.create_escalation(*PAIR).id
        for step in steps:
            lifecycle.claim(esc, "qa") if step == "claim" else lifecycle.complete(esc, "done")
    return esc


def assert_signed(secret: str, headers: dict, body: bytes) -> None:
    """Both signatures of an alert POST verify with the endpoint's key, as for a delivery."""
    expected = "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    assert headers["X-Qlar-Signature"] == expected
    Webhook(secret).verify(body, {k.lower(): v for k, v in headers.items()})


def test_an_outage_ten_times_the_schedule_loses_nothing_and_tells_the_owners_once(
        tmp_path, receiver, mail_server, alert_receiver, database_url, figure):
    app = outage_app(tmp_path, receiver, mail_server, alert_receiver, database_url)
    switch = Switch(receiver)
    dispatcher = app.extensions["qlar_dispatcher"]
    try:
        switch.down = True
        dispatcher.start()
        started = time.monotonic()
        flows = []
        while time.monotonic() - started < 9.0:  # 10 x the 0.9 s schedule, events arriving all along
            flows.append(flow(app))
            time.sleep(0.6)
        assert endpoint(app).health == "paused"
        assert not [e for e in events(app) if e.status == FAILED]
        switch.down = False
        wait_until(lambda: all(e.status == SUCCEEDED for e in events(app)), 20, "the backlog to drain")
        recovered_after = time.monotonic() - started - 9.0
        mail_server.wait_for(3)
        posts = alert_receiver.wait_for(3)
        time.sleep(0.5)  # nothing more arrives
    finally:
        dispatcher.stop()
        dispose(app)

    assert len(flows) * 3 == len(events(app))
    delivered = {}
    for _, esc, sequence, status, _ in switch.log:
        if status == 200:
            delivered.setdefault(esc, []).append(sequence)
    assert delivered == {esc: [1, 2, 3] for esc in flows}  # every event once, in order per escalation
    assert endpoint(app).health == "healthy"

    subjects = [m["Subject"] for m in mail_server.messages]
    assert len(subjects) == 3, subjects
    for word, subject in zip(("failing", "paused", "recovered"), subjects, strict=True):
        assert word in subject and "agent-123 \u00b7 production" in subject
    assert set(mail_server.messages[0].envelope_to) == {"ops@example.test", "oncall@example.test"}
    secret = stored_secret(app)
    assert [p.json["type"] for p in alert_receiver.requests] == [
        "endpoint.failing", "endpoint.paused", "endpoint.recovered"]
    for post in posts:
        document = post.json
        assert {"type", "agentId", "environment", "endpointUrl", "since", "pending", "lastError",
                "text"} <= set(document)
        assert (document["agentId"], document["environment"]) == PAIR
        assert document["endpointUrl"] == receiver.url and document["text"].startswith("qlar")
        assert_signed(secret, post.headers, post.body)
        assert secret not in post.body.decode() and secret.removeprefix("whsec_") not in post.body.decode()
    assert posts[0].json["lastError"] == "HTTP 503" and posts[1].json["pending"] >= 1
    for message in mail_server.messages:
        text = message.as_string()
        assert secret not in text and secret.removeprefix("whsec_") not in text
    assert "sent" == {row.status for row in alert_rows(app)}.pop()
    figure("outage: recovered and drained after the receiver came back (s)", f"{recovered_after:.1f}")


def test_a_paused_endpoint_is_probed_at_most_once_per_probe_max(tmp_path, receiver, figure):
    cap = 0.6  # reached after 2.4 s paused (a quarter of the time paused), so the 6 s pause holds it a while
    app = outage_app(tmp_path, receiver, None, None, schedule="200ms,200ms", PROBE_MAX_SECONDS=cap)
    switch = Switch(receiver)
    dispatcher = app.extensions["qlar_dispatcher"]
    try:
        switch.down = True
        dispatcher.start()
        for _ in range(3):
            flow(app, steps=())
        wait_until(lambda: endpoint(app).health == "paused", 5, "the pause")
        paused_at = time.monotonic()
        time.sleep(6)
        switch.down = False
        wait_until(lambda: all(e.status != "pending" for e in events(app)), 10, "the drain")
        assert [(e.status, e.last_error) for e in events(app)] == [(SUCCEEDED, None)] * 3
    finally:
        dispatcher.stop()
        dispose(app)
    # a try claimed before the pause may still reach the receiver just after it: it is no probe, and the
    # 503 answers at once, so every request 0.3 s after the pause was seen is a probe
    during = [at for *_, status, at in switch.log if status == 503 and at > paused_at + 0.3]
    gaps = [b - a for a, b in zip(during, during[1:], strict=False)]
    figure("probe gaps while paused (s)", ", ".join(f"{g:.2f}" for g in gaps))
    # one probe at a time, never a burst. Each gap is at least what the rule gives at its probe: the schedule's
    # first delay (0.2 s), or a quarter of the time paused so far, at most QLAR_PROBE_MAX_SECONDS (the cap).
    # The floor is taken from each probe's own time, so one late probe (a loaded machine) does not raise the
    # bar for the next; time paused is counted from when the test saw the pause, which is never early.
    floors = [min(cap, max(0.2, 0.25 * (at - paused_at))) for at in during[:-1]]
    assert gaps and all(gap >= floor * 0.95 for gap, floor in zip(gaps, floors, strict=True)), (gaps, floors)
    assert sum(floor == cap for floor in floors) >= 2, floors  # the cap was reached and held


def test_a_poison_event_fails_on_its_own_schedule_while_its_endpoint_stays_healthy(tmp_path, receiver, mail_server):
    app = outage_app(tmp_path, receiver, mail_server, None, schedule="200ms,200ms")
    with app.app_context():
        poison = lifecycle.create_escalation(*PAIR).id
    Switch(receiver, poison=poison)
    dispatcher = app.extensions["qlar_dispatcher"]
    try:
        dispatcher.start()
        started = time.monotonic()
        while time.monotonic() - started < 2.0:  # the endpoint delivers others meanwhile
            flow(app, steps=())
            time.sleep(0.1)
        wait_until(lambda: all(e.status != "pending" for e in events(app)), 10, "every event to finish")
        mails = mail_server.wait_for(1)
        time.sleep(0.5)
    finally:
        dispatcher.stop()
        dispose(app)
    failed = [e for e in events(app) if e.status == FAILED]
    assert [e.escalation_id for e in failed] == [poison]
    assert failed[0].attempt_count == 3  # its own schedule: 1 try + 2 retries
    assert all(e.status == SUCCEEDED for e in events(app) if e.escalation_id != poison)
    assert endpoint(app).health == "healthy"
    assert [row.type for row in alert_rows(app)] == ["delivery.failed"]  # no failing, no paused alert
    assert [m["Subject"] for m in mails] == ["qlar webhook failed: agent-123 \u00b7 production"]
    assert failed[0].id in mails[0].get_content()


def test_a_master_key_that_cannot_decrypt_pauses_without_using_tries(tmp_path, receiver, mail_server):
    from cryptography.fernet import Fernet

    from qlar_console import create_app

    app = outage_app(tmp_path, receiver, mail_server, None, PROBE_MAX_SECONDS=0.3)
    switch = Switch(receiver)
    wrong = create_app({**app.config, "MASTER_KEY": Fernet.generate_key().decode(), "TESTING": True})
    try:
        esc = flow(app, steps=("claim",))
        assert wrong.extensions["qlar_dispatcher"].drain() == 1  # the claimed event waits for the created one
        held = events(app)
        assert [(e.status, e.tries, e.attempt_count) for e in held] == [("pending", 0, 0)] * 2
        with app.app_context():
            assert db.session.scalar(select(db.func.count()).select_from(Attempt)) == 0
        ep = endpoint(app)
        assert ep.health == "paused" and "master key" in ep.pause_reason
        rows = alert_rows(app)
        assert [r.type for r in rows] == ["endpoint.paused"] and "master key" in rows[0].body.decode()
        wrong.extensions["qlar_dispatcher"].send_alerts()
        (mail,) = mail_server.wait_for(1)
        assert "paused" in mail["Subject"] and "master key" in mail.get_content()
        assert not switch.log  # nothing was sent

        time.sleep(0.35)  # the probe is due: the right key sends it, and then the rest
        dispatcher = app.extensions["qlar_dispatcher"]
        assert dispatcher.drain() >= 1
        wait_until(lambda: dispatcher.drain() == 0 and all(e.status == SUCCEEDED for e in events(app)), 5, "delivery")
        assert [seq for _, e, seq, status, _ in switch.log if e == esc and status == 200] == [1, 2]
        assert endpoint(app).health == "healthy"
    finally:
        dispose(wrong)
        dispose(app)


@pytest.mark.parametrize("kill_after_alert", [True])
def test_the_alert_outbox_survives_a_worker_sigkill(tmp_path, receiver, kill_after_alert):
    import signal

    from mail import MailServer, free_port
    from workers import start_worker, stop

    port = free_port()  # the SMTP server is down at first: the alerts wait in the outbox
    app = outage_app(tmp_path, receiver, None, None, schedule="200ms", SMTP_URL=f"smtp://127.0.0.1:{port}")
    switch = Switch(receiver)
    switch.down = True
    env = dict(SMTP_URL=f"smtp://127.0.0.1:{port}", ALERT_RETRY_SCHEDULE="500ms,500ms,500ms,500ms,500ms,500ms",
               PROBE_MAX_SECONDS=1, POLL_SECONDS=0.3, RETRY_SCHEDULE="200ms")
    first = start_worker(app, tmp_path / "worker1.log", **env)
    mail = None
    try:
        flow(app, steps=())
        wait_until(lambda: any(r.type == "endpoint.paused" and r.tries for r in alert_rows(app)), 10,
                   "a paused alert tried and not sent")
        first.send_signal(signal.SIGKILL)
        first.wait(5)
        mail = MailServer(port)
        second = start_worker(app, tmp_path / "worker2.log", **env)
        try:
            mails = mail.wait_for(2, timeout=15)
            wait_until(lambda: {r.status for r in alert_rows(app)} == {"sent"}, 5, "the alerts recorded as sent")
        finally:
            stop(second)
    finally:
        stop(first)
        if mail:
            mail.close()
        dispose(app)
    assert sorted(m["Subject"].split(":")[0] for m in mails) == ["qlar webhook failing", "qlar webhook paused"]


def test_events_held_past_the_retention_end_failed_with_an_alert_never_silently(app):
    from datetime import timedelta

    from qlar_console.clock import utcnow
    from qlar_console.engine.health import expire_held
    from qlar_console.settings.targets import resolve_endpoints

    with app.app_context():
        old, new = lifecycle.create_escalation(*PAIR).id, lifecycle.create_escalation(*PAIR).id
        ep = primary_endpoint(get_settings(*PAIR))
        ep.health, ep.health_since, ep.alert_emails = "paused", utcnow(), ["ops@example.test"]
        db.session.execute(db.update(Event).where(Event.escalation_id == old)
                           .values(status="pending", created_at=utcnow() - timedelta(days=8)))
        db.session.execute(db.update(Event).where(Event.escalation_id == new).values(status="pending"))
        db.session.commit()
        assert expire_held(7, utcnow(), resolve_endpoints) == 1
        by_escalation = {e.escalation_id: e for e in db.session.scalars(select(Event))}
        assert by_escalation[old].status == FAILED and "QLAR_TRACE_RETENTION_DAYS" in by_escalation[old].last_error
        assert by_escalation[new].status == "pending"
        (alert,) = db.session.scalars(select(Alert))
        assert (alert.type, alert.channel, alert.target) == ("delivery.failed", "email", "ops@example.test")
        assert b'"expired":1' in alert.body and b"QLAR_TRACE_RETENTION_DAYS" in alert.body
