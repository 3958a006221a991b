"""Receiver conformance check against the reference receiver and against deliberately broken receivers."""
import json
import time
from types import SimpleNamespace

import pytest
from apps import make_app, point_webhook
from helpers import login, served_receiver

from qlar_console.audit.models import AuditEntry
from qlar_console.crypto import secret_box
from qlar_console.extensions import db
from qlar_console.receiver.app import create_receiver_app, receiver_state
from qlar_console.receiver.certs import ensure_local_ca
from qlar_console.settings.keys import regenerate_secret, signing_secrets
from qlar_console.settings.models import ReceiverCheck
from qlar_console.settings.receiver_check import CHECK_EVENT, CheckTooSoon, check_receiver
from qlar_console.settings.service import get_settings
from qlar_console.signing import verify_qlar_signature

ENV = ("agent-123", "production")
KNOWN = {"created", "claimed", "completed", "released"}


def _failed(check) -> set[int]:
    return {r["number"] for r in check.results if r["required"] and not r["passed"]}


def _check(app):
    with app.app_context():
        check = check_receiver(get_settings(*ENV), "editor")
        return SimpleNamespace(passed=check.passed, results=check.results)


def _receiver_like(keys, *, accept_all=False, reserialise=False, fail_unknown=False, conflict=False, get_ok=False):
    """A receiver that follows the guide except for the one mistake asked for."""
    seen = set()

    def respond(received):
        if received.method != "POST":
            return (200 if get_ok and received.method == "GET" else 405), {}, 0
        if accept_all:
            return 200, {}, 0
        signed = received.body
        if reserialise:  # the mistake: verify JSON parsed and serialised again, not the raw bytes
            signed = json.dumps(json.loads(signed), ensure_ascii=False, separators=(",", ":")).encode()
        if not verify_qlar_signature(keys(), signed, received.headers.get("X-Qlar-Signature")):
            return 401, {}, 0
        document = json.loads(received.body)
        if document["eventType"] not in KNOWN and fail_unknown:
            return 500, {}, 0
        if document["eventId"] in seen:
            return (409 if conflict else 200), {}, 0
        seen.add(document["eventId"])
        return 200, {}, 0

    return respond


@pytest.fixture
def reference(tmp_path):
    """An app whose webhook points at the project's reference receiver (local CA trusted by the console)."""
    certs = ensure_local_ca(tmp_path)
    app = make_app(tmp_path, ALLOW_PRIVATE_TARGETS=True, TIMEOUT_SECONDS=3, LEASE_SECONDS=5)
    receiver_app = create_receiver_app([])
    with served_receiver(receiver_app, certs) as server:
        with app.app_context():
            point_webhook(app, f"https://127.0.0.1:{server.server_port}/webhook")
            receiver_state(receiver_app).set_keys(signing_secrets(get_settings(*ENV)))
        yield app, receiver_app


def test_reference_receiver_passes_every_rule(reference):
    app, receiver_app = reference
    with app.app_context():  # a Regenerate Key whose grace is over: rule 9 applies
        regenerate_secret(get_settings(*ENV), "editor")
        receiver_state(receiver_app).set_keys(signing_secrets(get_settings(*ENV)))
    check = _check(app)
    assert check.passed and _failed(check) == set()
    assert [r["number"] for r in check.results] == list(range(1, 12))
    assert [r["number"] for r in check.results if not r["required"]] == [10, 11]
    assert next(r for r in check.results if r["number"] == 11)["passed"]  # it refuses an hour-old timestamp
    traces = receiver_app.test_client().get("/traces.json").json["traces"]
    assert traces and {t["event_type"] for t in traces} <= {CHECK_EVENT, None}  # nothing a receiver acts on
    assert not any(t["outcome"] == "processed" for t in traces)


@pytest.mark.parametrize(("mistake", "failures"), [
    ({"accept_all": True}, {3, 4, 5, 6}),
    ({"reserialise": True}, {6}),
    ({"fail_unknown": True}, {1, 2, 8}),
    ({"conflict": True}, {2}),
    ({"get_ok": True}, {7}),
])
def test_broken_receivers_get_exactly_their_failures(delivery_app, receiver, mistake, failures):
    def keys():
        with delivery_app.app_context():
            return signing_secrets(get_settings(*ENV))

    receiver.respond = _receiver_like(keys, **mistake)
    check = _check(delivery_app)
    assert _failed(check) == failures
    assert not check.passed
    for r in check.results:
        assert (r["fix"] is None) == r["passed"]  # every failure says what to fix
    assert all(r.headers.get("X-Qlar-Test") == "conformance" for r in receiver.requests)
    assert all(json.loads(r.body)["eventType"] == CHECK_EVENT for r in receiver.requests if r.method == "POST")


def test_check_is_audited_rate_limited_and_secret_free(delivery_app, receiver):
    receiver.respond = lambda r: (200, {}, 0)
    check = _check(delivery_app)
    with delivery_app.app_context():
        secret = secret_box().decrypt(get_settings(*ENV).secret_ciphertext)
        with pytest.raises(CheckTooSoon, match="wait"):
            check_receiver(get_settings(*ENV), "editor")
        entry = db.session.scalar(db.select(AuditEntry).filter_by(action="webhook.receiver_checked"))
    assert "failed rules 3, 4, 5, 6" in entry.details
    assert secret not in json.dumps(check.results) and secret not in entry.details


def test_check_from_the_card_and_the_cli(delivery_app, receiver):
    def keys():
        with delivery_app.app_context():
            return signing_secrets(get_settings(*ENV))

    receiver.respond = _receiver_like(keys, get_ok=True)
    web = delivery_app.test_client()
    login(web, "viewer")
    assert web.post("/agents/agent-123/production/webhook/check").status_code == 403
    login(web, "editor")
    html = web.post("/agents/agent-123/production/webhook/check", follow_redirects=True).get_data(as_text=True)
    assert "Receiver check: some required rules failed" in html
    assert "Answer methods other than POST with 405 Method Not Allowed." in html
    with delivery_app.app_context():  # let the next check run at once
        from qlar_console.engine.models import Endpoint

        db.session.execute(db.update(Endpoint).values(check_started_at=None))
        db.session.commit()
    result = delivery_app.test_cli_runner().invoke(args=["qlar", "check-receiver", *ENV, "--json"])
    assert result.exit_code == 1
    scorecard = json.loads(result.output)
    assert scorecard["passed"] is False and [r["number"] for r in scorecard["rules"] if not r["passed"]] == [7, 11]


@pytest.mark.parametrize(("status", "lead"), [
    (404, "Endpoint answered 404 to every probe: check the URL path."),
    (500, "Endpoint answered 500 to every probe: the receiver is failing"),
])
def test_one_answer_to_every_probe_is_diagnosed_once(delivery_app, receiver, status, lead):
    receiver.respond = lambda r: (status, {}, 0)
    web = delivery_app.test_client()
    login(web, "editor")
    html = web.post("/agents/agent-123/production/webhook/check", follow_redirects=True).get_data(as_text=True)
    assert lead in html  # the scorecard leads with the one cause ...
    assert "Compare the signature with HMAC-SHA256" not in html  # ... instead of eight unrelated fixes
    with delivery_app.app_context():
        from qlar_console.settings.models import ReceiverCheck

        assert db.session.scalar(db.select(ReceiverCheck.diagnosis)).startswith(lead)


def test_mixed_answers_get_no_single_diagnosis(delivery_app, receiver):
    def keys():
        with delivery_app.app_context():
            return signing_secrets(get_settings(*ENV))

    receiver.respond = _receiver_like(keys, get_ok=True)
    with delivery_app.app_context():
        assert check_receiver(get_settings(*ENV), "editor").diagnosis is None


def test_a_receiver_without_a_time_window_gets_advice_not_a_failure(delivery_app, receiver):
    """Verifying X-Qlar-Signature alone passes every required rule; rule 11 advises a webhook-timestamp check."""
    def keys():
        with delivery_app.app_context():
            return signing_secrets(get_settings(*ENV))

    receiver.respond = _receiver_like(keys)
    check = _check(delivery_app)
    assert check.passed and _failed(check) == set()
    stale = next(r for r in check.results if r["number"] == 11)
    assert (stale["required"], stale["passed"]) == (False, False) and stale["got"].startswith("HTTP 200")
    assert "refuse a webhook-timestamp more than 5 minutes from now" in stale["fix"]
    stamps = [int(r.headers["Webhook-Timestamp"]) for r in receiver.requests if "Webhook-Timestamp" in r.headers]
    assert [round((time.time() - stamp) / 60) for stamp in stamps].count(60) == 1  # one probe, signed an hour ago


def test_two_checks_sent_at_once_run_once(delivery_app, receiver):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    from qlar_console.settings.receiver_check import CheckTooSoon

    receiver.respond = lambda received: (200, {}, 0.2)  # slow enough that both are in flight together
    start = threading.Barrier(4)

    def one(_):
        start.wait()
        with delivery_app.app_context():
            try:
                check_receiver(get_settings(*ENV), "editor")
                return "ran"
            except CheckTooSoon as exc:
                return str(exc)

    with ThreadPoolExecutor(4) as pool:
        outcomes = list(pool.map(one, range(4)))
    assert outcomes.count("ran") == 1, outcomes
    assert all(o.startswith("A check ran 0 s ago: wait ") for o in outcomes if o != "ran")
    with delivery_app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(ReceiverCheck)) == 1


def test_a_slow_receiver_cannot_hold_the_check_past_its_deadline(delivery_app, receiver, monkeypatch):
    from qlar_console.settings import receiver_check

    monkeypatch.setattr(receiver_check, "CHECK_SECONDS", 2.0)  # 30 s in production; the rule, not the figure
    receiver.respond = lambda received: (200, {}, 0.8)  # each probe within QLAR_TIMEOUT_SECONDS (2 s)
    started = time.monotonic()
    check = _check(delivery_app)
    took = time.monotonic() - started
    assert took < 2.0 + 1.0, f"the check took {took:.1f} s"
    assert not check.passed
    cut = [r for r in check.results if r["got"].startswith("Not sent: the check's 2 s were used up")]
    assert cut and len(receiver.requests) <= 3
