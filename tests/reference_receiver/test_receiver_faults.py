"""Faults on command in the reference receiver: the JSON API, the page's Faults form, and each fault driven
through the real dispatcher over HTTPS (retries on the schedule, timeout slow-down, 410 switch-off, reset)."""
import html
import json
import threading
import time

import pytest
import requests
from apps import dispose, make_app, point_webhook
from helpers import served_receiver

from qlar_console.crypto import generate_secret
from qlar_console.engine.models import Event
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.receiver import create_receiver_app, ensure_local_ca, receiver_state
from qlar_console.receiver.faults import Fault, FaultScript, parse_fault
from qlar_console.settings.keys import signing_secrets
from qlar_console.settings.service import get_settings
from qlar_console.signing import qlar_signature

KEY = generate_secret()
ENV = ("agent-123", "production")


def _event(event_id: str = "evt_0001") -> bytes:
    return json.dumps({"eventId": event_id, "eventType": "created", "timestamp": "2026-05-19T10:15:00Z",
                       "escalation": {"id": "esc-001"}, "sequence": 1}).encode()


def _post_event(client, event_id: str = "evt_0001"):
    body = _event(event_id)
    return client.post("/webhook", data=body, headers={"Content-Type": "application/json",
                                                       "X-Qlar-Signature": qlar_signature(KEY, body)})


def _traces(client) -> list[dict]:
    return client.get("/traces.json").get_json()["traces"][::-1]  # oldest first


@pytest.fixture
def rapp():
    return create_receiver_app([KEY])


@pytest.fixture
def rclient(rapp):
    return rapp.test_client()


# --- the JSON API ------------------------------------------------------------------------------------------


def test_set_get_and_clear(rclient):
    assert rclient.get("/faults").get_json() == {"fault": None}
    response = rclient.post("/faults", json={"status": 500, "count": 2})
    assert response.status_code == 200
    expected = {"status": 500, "count": 2, "delayMs": 0, "reset": False, "remaining": 2,
                "description": "The next 2 requests to /webhook are answered 500, without being processed."}
    assert response.get_json() == {"fault": expected}
    assert rclient.get("/faults").get_json() == {"fault": expected}
    assert rclient.delete("/faults").get_json() == {"fault": None}
    assert rclient.get("/faults").get_json() == {"fault": None}
    assert _post_event(rclient).status_code == 200


@pytest.mark.parametrize(("document", "field", "message"), [
    ({"status": 99}, "status", "status must be a whole number from 200 to 599 (1xx is not a final answer), not 99."),
    ({"status": 600}, "status", "status must be a whole number from 200 to 599"),
    ({"status": "500"}, "status", "not '500'."),
    ({"status": True}, "status", "not True."),
    ({"status": 500, "count": 0}, "count", "count must be a whole number from 1 to 1000, not 0."),
    ({"status": 500, "count": 1001}, "count", "from 1 to 1000, not 1001."),
    ({"status": 500, "count": 1.5}, "count", "not 1.5."),
    ({"delayMs": -1}, "delayMs", "delayMs must be a whole number from 0 to 120000, not -1."),
    ({"delayMs": 120001}, "delayMs", "not 120001."),
    ({"reset": "yes"}, "reset", "reset must be true or false, not 'yes'."),
    ({"status": 500, "reset": True}, "status", "status and reset cannot go together"),
    ({}, "status", 'A fault needs status, delayMs or reset, such as {"status": 500, "count": 2}.'),
    ({"delayMs": 0, "reset": False}, "status", "A fault needs status, delayMs or reset"),
    ({"stauts": 500}, "stauts", "Unknown field 'stauts': a fault has status, count, delayMs, reset."),
    ([500], None, 'The fault must be a JSON object such as {"status": 500, "count": 2}.'),
])
def test_a_bad_fault_is_a_400_naming_the_field_and_changes_nothing(rclient, document, field, message):
    rclient.post("/faults", json={"status": 503})
    response = rclient.post("/faults", json=document)
    assert response.status_code == 400
    body = response.get_json()
    assert message in body["error"] and body["field"] == field
    assert rclient.get("/faults").get_json()["fault"]["status"] == 503


def test_faults_take_only_json(rclient):
    """A cross-site form can send neither JSON nor DELETE without a preflight the receiver never answers."""
    for kwargs in ({"data": {"status": "500"}}, {"data": '{"status": 500}', "content_type": "text/plain"}):
        response = rclient.post("/faults", **kwargs)
        assert response.status_code == 415 and "Content-Type: application/json" in response.get_json()["error"]
    response = rclient.post("/faults", data="{not json", content_type="application/json")
    assert response.status_code == 400 and "must be a JSON object" in response.get_json()["error"]
    assert rclient.get("/faults").get_json() == {"fault": None}
    response = rclient.put("/faults", json={"status": 500})
    assert response.status_code == 405 and response.headers["Allow"] == "DELETE, GET, HEAD, POST"


def test_each_request_uses_one_and_the_retry_after_the_faults_is_processed(rclient):
    rclient.post("/faults", json={"status": 500, "count": 2})
    answers = [_post_event(rclient) for _ in range(3)]  # the same event, as a sender's retries
    assert [r.status_code for r in answers] == [500, 500, 200]
    assert "status 500 (fault 1 of 2); the event was not processed." in answers[0].get_json()["fault"]
    assert answers[2].get_json() == {"status": "processed"}
    traces = _traces(rclient)
    assert [t["fault"] for t in traces] == ["status 500 (fault 1 of 2)", "status 500 (fault 2 of 2)", None]
    assert [t["outcome"] for t in traces] == ["not processed (fault)", "not processed (fault)", "processed"]
    assert {t["verdict"] for t in traces} == {"signature valid"} and traces[0]["event_id"] == "evt_0001"
    assert rclient.get("/faults").get_json() == {"fault": None}


def test_a_fault_answers_unsigned_requests_too_and_traces_their_verdict(rclient):
    rclient.post("/faults", json={"status": 503})
    response = rclient.post("/webhook", data=_event(), content_type="application/json")
    assert response.status_code == 503
    [trace] = _traces(rclient)
    assert trace["verdict"] == "rejected (401): missing signature" and trace["body_excerpt"] is None
    assert trace["fault"] == "status 503 (fault 1 of 1)"


def test_a_delay_alone_answers_normally_after_it(rclient):
    rclient.post("/faults", json={"delayMs": 300})
    started = time.monotonic()
    response = _post_event(rclient)
    assert time.monotonic() - started >= 0.3
    assert response.status_code == 200 and response.get_json() == {"status": "processed"}
    [trace] = _traces(rclient)
    assert trace["fault"] == "delay 300 ms (fault 1 of 1)" and trace["outcome"] == "processed"


def test_a_reset_without_the_https_server_answers_500_saying_why(rclient):
    rclient.post("/faults", json={"reset": True})
    response = _post_event(rclient)
    assert response.status_code == 500 and "cannot drop a connection" in response.get_json()["error"]
    [trace] = _traces(rclient)
    assert trace["fault"] == "connection reset (fault 1 of 1)" and trace["status"] == 0


def test_script_is_thread_safe_and_counts_exactly():
    script = FaultScript()
    script.set(parse_fault({"status": 500, "count": 500}))
    taken = []
    threads = [threading.Thread(target=lambda: taken.extend(script.take() for _ in range(100))) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    numbers = sorted(t.number for t in taken if t)
    assert numbers == list(range(1, 501)) and taken.count(None) == 300 and script.current() is None


@pytest.mark.parametrize(("fault", "effect", "sentence"), [
    (Fault(status=503, delay_ms=3000), "status 503 after 3000 ms",
     "The next request to /webhook is answered 503 after 3000 ms, without being processed."),
    (Fault(reset=True, count=3), "connection reset",
     "The next 3 requests to /webhook have their connection dropped, without an answer."),
    (Fault(delay_ms=20000), "delay 20000 ms", "The next request to /webhook is answered normally after 20000 ms."),
])
def test_descriptions(fault, effect, sentence):
    script = FaultScript()
    script.set(fault)
    assert fault.effect() == effect and script.current()["description"] == sentence


# --- the page's Faults form ---------------------------------------------------------------------------------


def _form(rapp, **fields) -> dict:
    return {"token": receiver_state(rapp).form_token, "status": "", "count": "1", "delay_ms": "0", **fields}


def test_the_page_shows_no_fault_then_the_script_in_force(rapp, rclient):
    page = rclient.get("/").get_data(as_text=True)
    assert '<h2 id="faults-title">Faults</h2>' in page and "No fault: requests are answered normally." in page
    assert "Clear faults" not in page
    response = rclient.post("/faults/form", data=_form(rapp, status="503", count="2"))
    assert response.status_code == 303 and response.headers["Location"] == "/?faults=set"
    page = html.unescape(rclient.get(response.headers["Location"]).get_data(as_text=True))
    assert "Fault set. The next 2 requests to /webhook are answered 503, without being processed." in page
    assert "(2 of 2 left)" in page and "Clear faults" in page
    _post_event(rclient)
    page = html.unescape(rclient.get("/").get_data(as_text=True))
    assert "(1 of 2 left)" in page and "fault: status 503 (fault 1 of 2)" in page
    response = rclient.post("/faults/clear", data={"token": receiver_state(rapp).form_token})
    assert response.status_code == 303 and response.headers["Location"] == "/?faults=cleared"
    page = rclient.get(response.headers["Location"]).get_data(as_text=True)
    assert "Faults cleared: requests are answered normally." in page and "No fault:" in page
    assert rclient.get("/faults").get_json() == {"fault": None}


def test_the_form_sets_delay_and_reset(rapp, rclient):
    rclient.post("/faults/form", data=_form(rapp, delay_ms="2500", reset="y", count="3"))
    assert rclient.get("/faults").get_json()["fault"] | {"description": ""} == {
        "status": None, "count": 3, "delayMs": 2500, "reset": True, "remaining": 3, "description": ""}


@pytest.mark.parametrize(("fields", "message", "invalid"), [
    ({"status": "500", "count": "abc"}, "count must be a whole number from 1 to 1000, not 'abc'.", "fault-count"),
    ({"status": "500", "delay_ms": "999999"}, "delayMs must be a whole number from 0 to 120000", "fault-delay"),
    ({}, "A fault needs status, delayMs or reset", "fault-status"),
    ({"status": "410", "reset": "y"}, "status and reset cannot go together", "fault-status"),
])
def test_a_bad_form_is_a_400_next_to_the_field_keeping_what_was_typed(rapp, rclient, fields, message, invalid):
    response = rclient.post("/faults/form", data=_form(rapp, **fields))
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 400 and message in page and 'id="fault-error" class="error" role="alert"' in page
    assert f'id="{invalid}"' in page and page.count('aria-invalid="true"') == 1
    if "count" in fields:
        assert f'value="{fields["count"]}"' in page
    assert rclient.get("/faults").get_json() == {"fault": None}


@pytest.mark.parametrize("path", ["/faults/form", "/faults/clear"])
def test_the_forms_need_the_form_token(rapp, rclient, path):
    rclient.post("/faults", json={"status": 500})
    response = rclient.post(path, data=_form(rapp, token="wrong", status="503"))
    assert response.status_code == 400 and "without its security token" in response.get_data(as_text=True)
    assert rclient.get("/faults").get_json()["fault"]["status"] == 500






# --- over HTTPS: the real server and the real dispatcher ----------------------------------------------------


@pytest.fixture
def stack(tmp_path):
    """(console app, receiver app): the console's agent-123 · production webhook points at the reference receiver
    over HTTPS, its local CA trusted; short retries, a 0.5 s timeout and a 1 s slow-down."""
    certs = ensure_local_ca(tmp_path)  # before the app: the dispatcher trusts instance/ca/ca.pem by itself
    app = make_app(tmp_path, ALLOW_PRIVATE_TARGETS=True, RETRY_SCHEDULE="200ms,200ms", TIMEOUT_SECONDS=0.5,
                   SLOWDOWN_SECONDS=1, LEASE_SECONDS=3)
    receiver_app = create_receiver_app([])
    receiver_app.config["CA_FILE"] = str(certs.ca_cert)  # for the tests' own requests
    with served_receiver(receiver_app, certs) as server:
        with app.app_context():
            point_webhook(app, f"https://127.0.0.1:{server.server_port}/webhook")
            receiver_state(receiver_app).set_keys(signing_secrets(get_settings(*ENV)))
        receiver_app.config["BASE_URL"] = f"https://127.0.0.1:{server.server_port}"
        yield app, receiver_app
        dispose(app)


def _session(receiver_app) -> requests.Session:
    session = requests.Session()
    session.trust_env = False  # REQUESTS_CA_BUNDLE would replace the local CA
    session.verify = receiver_app.config["CA_FILE"]
    return session


def _set_fault(receiver_app, document: dict) -> None:
    with _session(receiver_app) as session:
        response = session.post(receiver_app.config["BASE_URL"] + "/faults", json=document, timeout=5)
    assert response.status_code == 200, response.text


def _event_and_attempts(app) -> Event:
    with app.app_context():
        event = db.session.scalar(db.select(Event))
        event.attempts  # noqa: B018 - load before the context closes
        return event


def _wait_until(predicate, timeout: float = 8.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_reset_drops_the_connection_and_the_server_keeps_serving(stack):
    _, receiver_app = stack
    base, session = receiver_app.config["BASE_URL"], _session(receiver_app)
    _set_fault(receiver_app, {"reset": True, "count": 2})
    assert session.get(base + "/faults", timeout=5).ok  # a kept-alive connection, then dropped under it
    for _ in range(2):
        with pytest.raises(requests.ConnectionError, match="without response|reset by peer|aborted"):
            session.post(base + "/webhook", data=b"{}", timeout=5)
    response = session.post(base + "/webhook", data=b"{}", timeout=5)  # a new connection, answered again
    assert response.status_code == 401
    session.close()
    with _session(receiver_app) as other:
        assert other.get(base + "/faults", timeout=5).json() == {"fault": None}
    traces = _traces(receiver_app.test_client())
    assert [(t["status"], t["fault"]) for t in traces] == [
        (0, "connection reset (fault 1 of 2)"), (0, "connection reset (fault 2 of 2)"), (401, None)]


def test_500s_are_retried_on_the_schedule_until_the_third_try_succeeds(stack):
    app, receiver_app = stack
    _set_fault(receiver_app, {"status": 500, "count": 2})
    app.extensions["qlar_dispatcher"].start()
    with app.app_context():
        lifecycle.create_escalation(*ENV)
    _wait_until(lambda: _event_and_attempts(app).status == "succeeded")
    attempts = _event_and_attempts(app).attempts
    assert [a.response_status for a in attempts] == [500, 500, 200]
    for before, after in zip(attempts, attempts[1:], strict=False):
        ended = before.started_at.timestamp() + before.duration_ms / 1000
        assert 0.16 <= before.next_attempt_at.timestamp() - ended <= 0.24  # 200ms ± 20% jitter
        assert after.started_at >= before.next_attempt_at
        assert (after.started_at - before.started_at).total_seconds() < 1.5
    traces = _traces(receiver_app.test_client())
    assert [t["fault"] for t in traces] == ["status 500 (fault 1 of 2)", "status 500 (fault 2 of 2)", None]
    assert [t["outcome"] for t in traces][-1] == "processed" and len({t["event_id"] for t in traces}) == 1


def test_a_delay_past_the_timeout_is_a_timeout_and_slows_down(stack):
    app, receiver_app = stack
    _set_fault(receiver_app, {"delayMs": 1200})
    dispatcher = app.extensions["qlar_dispatcher"]
    with app.app_context():
        lifecycle.create_escalation(*ENV)
        dispatcher.drain(limit=1)
    event = _event_and_attempts(app)
    [attempt] = event.attempts
    assert attempt.response_status is None and attempt.error.startswith("Timed out after 0.5s")
    assert (attempt.next_attempt_at - attempt.started_at).total_seconds() >= 1  # SLOWDOWN_SECONDS, not 200ms
    assert event.status == "pending"
    # processed, but the answer came too late (on a loaded machine the receiver may read it after the cut)
    _wait_until(lambda: _traces(receiver_app.test_client()), timeout=3)
    [trace] = _traces(receiver_app.test_client())
    assert trace["fault"] == "delay 1200 ms (fault 1 of 1)" and trace["outcome"] == "processed"
    _wait_until(lambda: dispatcher.drain(limit=1) == 1, timeout=3)  # tried again once due
    assert _event_and_attempts(app).status == "succeeded"
    assert _traces(receiver_app.test_client())[-1]["outcome"] == "duplicate"  # the lost answer's retry


def test_410_switches_the_webhook_off(stack):
    app, receiver_app = stack
    _set_fault(receiver_app, {"status": 410})
    with app.app_context():
        lifecycle.create_escalation(*ENV)
        app.extensions["qlar_dispatcher"].drain(limit=5)
        settings = get_settings(*ENV)
        assert not settings.webhook_enabled and "410" in settings.disabled_reason
    event = _event_and_attempts(app)
    assert event.status == "failed" and [a.response_status for a in event.attempts] == [410]
    assert [t["fault"] for t in _traces(receiver_app.test_client())] == ["status 410 (fault 1 of 1)"]


def test_a_reset_is_a_connection_error_and_is_retried(stack):
    app, receiver_app = stack
    _set_fault(receiver_app, {"reset": True})
    dispatcher = app.extensions["qlar_dispatcher"]
    with app.app_context():
        lifecycle.create_escalation(*ENV)
        dispatcher.drain(limit=1)
    [attempt] = _event_and_attempts(app).attempts
    assert attempt.response_status is None and attempt.error.startswith("Connection failed")
    assert attempt.next_attempt_at is not None and _event_and_attempts(app).status == "pending"
    _wait_until(lambda: dispatcher.drain(limit=1) == 1, timeout=3)
    event = _event_and_attempts(app)
    assert event.status == "succeeded" and [a.response_status for a in event.attempts] == [None, 200]
    assert [t["outcome"] for t in _traces(receiver_app.test_client())] == ["not processed (fault)", "processed"]
