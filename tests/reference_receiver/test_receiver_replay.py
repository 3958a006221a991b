"""The reference receiver's replay safety: Standard Webhooks signature and time window, durable de-duplication."""
import json
import logging
import stat
import time
from datetime import UTC, datetime, timedelta

import pytest
import requests
from apps import dispose, make_app, point_webhook
from flask import Flask
from helpers import served_receiver
from standardwebhooks.webhooks import Webhook

from qlar_console.crypto import generate_secret
from qlar_console.engine.models import SUCCEEDED, Event
from qlar_console.engine.outbox import freeze, rfc3339
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.receiver import (
    InvalidReceiverSetting,
    SeenEvents,
    create_receiver_app,
    ensure_local_ca,
    receiver_options,
    receiver_state,
)
from qlar_console.receiver.cli import receiver_command
from qlar_console.settings.keys import signing_secrets
from qlar_console.settings.service import get_settings
from qlar_console.signing import qlar_signature, signature_headers

KEY = generate_secret()
OTHER_KEY = generate_secret()
HOUR = 3600
SECRET_TEXT = "demands immediate refund"


def _body(event_id: str = "evt_0001") -> bytes:
    return json.dumps({
        "eventId": event_id, "eventType": "created", "timestamp": "2026-05-19T10:15:00Z",
        "agentId": "agent-123", "environment": "production",
        "escalation": {"id": "esc-001", "status": "Pending", "reason": f"User {SECRET_TEXT}"}, "sequence": 1,
    }).encode()


def _post(client, body: bytes, headers: dict):
    return client.post("/webhook", data=body, headers={"Content-Type": "application/json", **headers})


def _signed(body: bytes, stamp: int, keys=(KEY,), event_id: str = "evt_0001") -> dict:
    """Both header forms, as the dispatcher sends them, signed for `stamp`."""
    return signature_headers(list(keys), event_id, stamp, body)


@pytest.fixture
def rclient():
    return create_receiver_app([KEY]).test_client()


def _verdict(client) -> str:
    return client.get("/traces.json").get_json()["traces"][0]["verdict"]


def test_a_request_signed_an_hour_ago_is_refused(rclient, caplog):
    caplog.set_level(logging.INFO)
    body = _body()
    response = _post(rclient, body, _signed(body, int(time.time()) - HOUR))
    assert response.status_code == 401
    assert response.get_json()["error"].startswith("webhook-timestamp is 3600 s old, more than the 300 s allowed")
    assert _verdict(rclient) == "rejected (401): timestamp outside the 300 s window"
    assert "webhook 'evt_0001' rejected: webhook-timestamp is 3600 s old" in caplog.text


def test_a_timestamp_from_the_future_is_refused(rclient):
    body = _body()
    response = _post(rclient, body, _signed(body, int(time.time()) + HOUR))
    assert response.status_code == 401 and "3600 s in the future" in response.get_json()["error"]


def test_within_the_window_both_ways_is_accepted_and_a_signed_retry_is_a_duplicate(rclient):
    body = _body()
    assert _post(rclient, body, _signed(body, int(time.time()) - 250)).get_json() == {"status": "processed"}
    retry = _post(rclient, body, _signed(body, int(time.time()) + 250))  # the same event, signed afresh
    assert (retry.status_code, retry.get_json()) == (200, {"status": "duplicate"})


def test_the_window_is_configurable():
    client = create_receiver_app([KEY], tolerance_seconds=10).test_client()
    body = _body()
    assert _post(client, body, _signed(body, int(time.time()) - 60)).status_code == 401
    assert _verdict(client) == "rejected (401): timestamp outside the 10 s window"


def test_timestamp_zero_with_a_garbage_v1_signature_is_refused(rclient):
    body = _body()
    headers = {"X-Qlar-Signature": qlar_signature(KEY, body),  # copied from a log: valid for the body
               "webhook-id": "evt_0001", "webhook-timestamp": "0", "webhook-signature": "v1,Z2FyYmFnZQ=="}
    response = _post(rclient, body, headers)
    assert response.status_code == 401
    assert "webhook-timestamp is" in response.get_json()["error"]
    headers["webhook-timestamp"] = str(int(time.time()))  # fresh, but the signature is still garbage
    response = _post(rclient, body, headers)
    assert (response.status_code, response.get_json()) == (401, {"error": "webhook-signature mismatch"})
    assert _verdict(rclient) == "rejected (401): signature mismatch"


@pytest.mark.parametrize("stamp", ["soon", "-5", "1.5e9", "9" * 40, "１７００"])
def test_a_timestamp_that_is_not_unix_seconds_is_refused(rclient, stamp):
    body = _body()
    headers = _signed(body, int(time.time()))
    headers["webhook-timestamp"] = stamp
    response = _post(rclient, body, headers)
    assert (response.status_code, response.get_json()) == (
        401, {"error": "webhook-timestamp is not a Unix time in seconds"})


@pytest.mark.parametrize("dropped", ["webhook-id", "webhook-signature", "webhook-timestamp"])
def test_an_incomplete_standard_webhooks_set_is_refused(rclient, dropped):
    body = _body()
    headers = _signed(body, int(time.time()))
    del headers[dropped]  # the X-Qlar-Signature left would pass alone: a half-stripped webhook-* set does not
    assert _post(rclient, body, headers).get_json() == {"error": f"missing {dropped}"}


def test_grace_period_v1_values_verify_with_the_old_key_alone():
    client = create_receiver_app([OTHER_KEY]).test_client()
    body = _body()
    headers = _signed(body, int(time.time()), keys=(KEY, OTHER_KEY))
    assert len(headers["webhook-signature"].split(" ")) == 2
    assert _post(client, body, headers).get_json() == {"status": "processed"}


def test_the_standardwebhooks_library_signs_what_the_receiver_accepts(rclient):
    body = _body()
    now = datetime.now(UTC)
    signature = Webhook(KEY).sign("msg_independent", now, body.decode())
    headers = {"webhook-id": "msg_independent", "webhook-timestamp": str(int(now.timestamp())),
               "webhook-signature": signature}
    assert _post(rclient, body, headers).get_json() == {"status": "processed"}
    old = now - timedelta(hours=1)
    headers.update({"webhook-timestamp": str(int(old.timestamp())),
                    "webhook-signature": Webhook(KEY).sign("msg_independent", old, body.decode())})
    assert _post(rclient, body, headers).status_code == 401


def test_refusals_are_logged_with_their_reason_never_the_body_or_a_key(rclient, caplog):
    caplog.set_level(logging.DEBUG)
    body = _body()
    stale = _signed(body, int(time.time()) - HOUR)
    wrong = _signed(body, int(time.time()), keys=(OTHER_KEY,))
    assert _post(rclient, body, stale).status_code == 401
    assert _post(rclient, body, wrong).status_code == 401
    assert _post(rclient, body, {}).status_code == 401
    assert rclient.post("/webhook", data=b"x" * (1024 * 1024 + 1)).status_code == 413
    lines = [r.getMessage() for r in caplog.records if r.levelno >= logging.WARNING]
    assert any("webhook-timestamp is 3600 s old" in line for line in lines)
    assert any("webhook-signature mismatch" in line and "checked against 1 key(s)" in line for line in lines)
    assert any("missing X-Qlar-Signature" in line for line in lines)
    assert any("refused with 413" in line for line in lines)
    for leak in (KEY, OTHER_KEY, KEY.removeprefix("whsec_"), OTHER_KEY.removeprefix("whsec_"), SECRET_TEXT,
                 stale["webhook-signature"], wrong["webhook-signature"], stale["X-Qlar-Signature"]):
        assert leak not in caplog.text


def test_a_replay_after_a_restart_is_a_duplicate(tmp_path):
    """X-Qlar-Signature has no time window: the processed eventId, kept on disk, answers the replay."""
    paths = ensure_local_ca(tmp_path)
    store = tmp_path / "receiver-events.db"
    body = _body("evt_replayed")
    captured = {"Content-Type": "application/json", "X-Qlar-Signature": qlar_signature(KEY, body)}
    answers = []
    for _ in range(2):  # the receiver, then a new receiver app on the same store (a restart)
        app = create_receiver_app([KEY], seen_path=store)
        try:
            with served_receiver(app, paths) as server:
                response = requests.post(f"https://127.0.0.1:{server.server_port}/webhook", data=body,
                                         headers=captured, timeout=5, verify=str(paths.ca_cert))
            answers.append((response.status_code, response.json()))
        finally:
            receiver_state(app).seen.close()
    assert answers == [(200, {"status": "processed"}), (200, {"status": "duplicate"})]
    assert stat.S_IMODE(store.stat().st_mode) == 0o600


def test_processed_ids_are_forgotten_after_the_retention(tmp_path):
    now = [1_000_000.0]
    seen = SeenEvents(tmp_path / "seen.db", retention_seconds=7 * 86400, clock=lambda: now[0])
    assert seen.claim("evt_a") and seen.claim("evt_b") and not seen.claim("evt_a")
    now[0] += 7 * 86400 - 1
    assert not seen.claim("evt_a")  # still within the retention
    now[0] += 2
    assert seen.claim("evt_a")  # processed again: the sender gave up on it long ago
    now[0] += 60
    seen.claim("evt_c")
    assert seen.count() == 2  # a claim purges (at most once a minute): evt_b is gone
    seen.release("evt_a")
    assert seen.claim("evt_a")  # a failed handler lets the retry through
    seen.close()


def test_an_unusable_store_path_is_a_clear_error(tmp_path):
    (tmp_path / "file").write_text("")
    with pytest.raises(InvalidReceiverSetting, match="Cannot keep processed event ids in"):
        SeenEvents(tmp_path / "file" / "seen.db")


def _console(tmp_path, **config) -> Flask:
    app = Flask(__name__, instance_path=str(tmp_path / "instance"))
    app.config.update(config)
    return app


def test_options_come_from_the_qlar_receiver_settings(tmp_path, caplog):
    options = receiver_options(_console(tmp_path))
    assert options == {"tolerance_seconds": 300, "seen_path": tmp_path / "instance" / "receiver-events.db",
                       "seen_days": 7}
    options = receiver_options(_console(tmp_path, RECEIVER_TOLERANCE_SECONDS=60, RECEIVER_DEDUPE_DAYS=0.5,
                                        RECEIVER_DEDUPE_DB=str(tmp_path / "elsewhere.db"),
                                        RETRY_SCHEDULE="5s,5m,30m,2h,5h,10h,10h"))
    assert options == {"tolerance_seconds": 60, "seen_path": tmp_path / "elsewhere.db", "seen_days": 0.5}
    assert "QLAR_RECEIVER_DEDUPE_DAYS=0.5 is shorter than the retry schedule (1.1 days)" in caplog.text


@pytest.mark.parametrize(("name", "value"), [
    ("RECEIVER_TOLERANCE_SECONDS", "soon"), ("RECEIVER_TOLERANCE_SECONDS", 0), ("RECEIVER_DEDUPE_DAYS", -1),
    ("RECEIVER_DEDUPE_DAYS", True), ("RECEIVER_TOLERANCE_SECONDS", float("inf")),
])
def test_a_bad_setting_stops_the_cli_with_one_line(tmp_path, name, value):
    result = _console(tmp_path, **{name: value}).test_cli_runner().invoke(receiver_command, ["--port", "0"])
    assert result.exit_code == 1 and "Traceback" not in result.output
    assert f"QLAR_{name} must be a positive number" in result.output


def test_a_retry_of_an_hours_old_event_signed_afresh_is_accepted(tmp_path):
    """The real dispatcher -> the reference receiver: the body is 5 hours old, each try is signed at send time."""
    certs = ensure_local_ca(tmp_path)  # before the app: the dispatcher trusts instance/ca/ca.pem by itself
    app = make_app(tmp_path, ALLOW_PRIVATE_TARGETS=True, RETRY_SCHEDULE="300ms,300ms,300ms,300ms",
                   TIMEOUT_SECONDS=3, LEASE_SECONDS=5)
    receiver_app = create_receiver_app([], seen_path=tmp_path / "receiver-events.db")  # no key yet: tries get 401
    client = receiver_app.test_client()
    with served_receiver(receiver_app, certs) as server:
        try:
            with app.app_context():
                point_webhook(app, f"https://127.0.0.1:{server.server_port}/webhook")
                lifecycle.create_escalation("agent-123", "production")
                event = db.session.scalar(db.select(Event))
                hours_ago = event.created_at - timedelta(hours=5)  # as if it had been failing since then
                document = json.loads(event.body) | {"timestamp": rfc3339(hours_ago)}
                event.body, event.created_at, event.next_attempt_at = freeze(document), hours_ago, hours_ago
                db.session.commit()
                keys, event_id = signing_secrets(get_settings("agent-123", "production")), event.id
            app.extensions["qlar_dispatcher"].start()
            _wait(lambda: any(t["status"] == 401 for t in _traces(client)))
            receiver_state(receiver_app).set_keys(keys)
            _wait(lambda: any(t["outcome"] == "processed" for t in _traces(client)))
            accepted = next(t for t in _traces(client) if t["outcome"] == "processed")
            assert accepted["event_id"] == event_id
            assert abs(int(accepted["request_headers"]["Webhook-Timestamp"]) - time.time()) < 60  # signed afresh
            assert json.loads(accepted["body_excerpt"])["timestamp"] == document["timestamp"]  # the body is not
            with app.app_context():
                _wait(lambda: db.session.get(Event, event_id, populate_existing=True).status == SUCCEEDED)
        finally:
            dispose(app)


def _traces(client) -> list[dict]:
    return client.get("/traces.json").get_json()["traces"]


def _wait(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)
