"""The reference receiver: signature, validation, routing, idempotency, traces, key form, CLI, local CA, HTTPS."""
import json
import logging
import re
import socket
import stat
import threading
import time
from datetime import timedelta

import pytest
import requests
from flask import Flask
from helpers import served_receiver

from qlar_console.crypto import generate_secret
from qlar_console.receiver import certs, create_receiver_app, ensure_local_ca, receiver_state
from qlar_console.receiver.cli import read_key_file, receiver_command
from qlar_console.receiver.store import Trace, TraceStore
from qlar_console.signing import qlar_signature, signature_headers

KEY = generate_secret()
OTHER_KEY = generate_secret()


def event(**changes) -> dict:
    """A contract-shaped event; keyword arguments replace top-level fields."""
    body = {
        "eventId": "evt_0001", "eventType": "created", "timestamp": "2026-05-19T10:15:00Z",
        "agentId": "agent-123", "environment": "production",
        "escalation": {"id": "esc-001", "threadId": "thread-abc", "status": "Pending", "urgencyLevel": "high",
                       "topic": "refund", "area": "payment", "reason": "User is angry and demands immediate refund",
                       "triggerCondition": "Angry Customer Escalation"},
        "sequence": 1,
    }
    body.update(changes)
    return body


def post(client, payload, key=KEY, signature=None, **headers):
    """POST a body (dict -> JSON bytes) signed with `key` unless `signature` is given ("" sends none)."""
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    sig = qlar_signature(key, body) if signature is None else signature
    if sig:
        headers["X-Qlar-Signature"] = sig
    return client.post("/webhook", data=body, headers={"Content-Type": "application/json", **headers})


def traces(client) -> list[dict]:
    return client.get("/traces.json").get_json()["traces"]


@pytest.fixture
def rapp():
    return create_receiver_app([KEY])


@pytest.fixture
def rclient(rapp):
    return rapp.test_client()


@pytest.mark.parametrize("method", ["GET", "PUT", "DELETE", "PATCH", "OPTIONS"])
def test_other_methods_are_405(rclient, method):
    response = rclient.open("/webhook", method=method)
    assert response.status_code == 405
    assert response.headers["Allow"] == "POST"
    assert "use POST" in response.get_json()["error"]


def test_missing_signature_is_401(rclient):
    response = post(rclient, event(), signature="")
    assert response.status_code == 401
    assert response.get_json() == {"error": "missing X-Qlar-Signature"}
    [trace] = traces(rclient)
    assert trace["verdict"] == "rejected (401): missing signature"
    assert (trace["status"], trace["body_excerpt"]) == (401, None)


def test_wrong_key_is_401_and_logged_without_body_or_key(rclient, caplog):
    caplog.set_level(logging.INFO)
    response = post(rclient, event(), key=OTHER_KEY)
    assert response.status_code == 401
    assert response.get_json() == {"error": "signature mismatch"}
    assert traces(rclient)[0]["verdict"] == "rejected (401): signature mismatch"
    assert "signature mismatch" in caplog.text
    for leak in (KEY, OTHER_KEY, "demands immediate refund"):
        assert leak not in caplog.text


def test_tampered_body_is_401(rclient):
    body = json.dumps(event()).encode()
    signature = qlar_signature(KEY, body)
    tampered = body.replace(b'"high"', b'"low"')
    assert post(rclient, body, signature=signature).status_code == 200
    assert post(rclient, tampered, signature=signature).get_json() == {"error": "signature mismatch"}


def test_raw_bytes_are_verified_not_reserialised_json(rclient):
    body = b'{ "eventType":"created",  "timestamp":"2026-05-19T10:15:00Z", "escalation":{"id":"esc-9"} }'
    assert post(rclient, body).get_json() == {"status": "processed"}


def test_grace_period_headers_verify_with_the_new_key_alone(rclient):
    body = json.dumps(event()).encode()
    headers = signature_headers([KEY, OTHER_KEY], "evt_0001", 1_700_000_000, body)
    assert post(rclient, body, signature=headers["X-Qlar-Signature"]).status_code == 200


def test_invalid_json_is_400(rclient):
    response = post(rclient, b'{"eventType": "created",')
    assert response.status_code == 400
    assert response.get_json() == {"error": "invalid JSON"}
    assert traces(rclient)[0]["verdict"] == "rejected (400): invalid JSON"


def _without(path: str) -> dict:
    body = event()
    if path == "escalation.id":
        del body["escalation"]["id"]
    else:
        del body[path]
    return body


@pytest.mark.parametrize("field", ["eventType", "timestamp", "escalation.id"])
def test_missing_required_field_is_400_naming_it(rclient, field):
    response = post(rclient, _without(field))
    assert response.status_code == 400
    assert response.get_json() == {"error": f"missing {field}"}
    assert traces(rclient)[0]["verdict"] == f"rejected (400): missing {field}"


@pytest.mark.parametrize("event_type", ["created", "claimed", "completed", "released"])
def test_the_four_events_are_routed(rclient, event_type):
    assert post(rclient, event(eventType=event_type)).get_json() == {"status": "processed"}
    [trace] = traces(rclient)
    assert (trace["verdict"], trace["outcome"], trace["event_type"]) == ("signature valid", "processed", event_type)
    assert trace["action"].startswith("would ") and "esc-001" in trace["action"]


def test_unknown_event_type_is_logged_and_skipped(rclient, caplog):
    caplog.set_level(logging.INFO)
    response = post(rclient, event(eventType="reassigned"))
    assert response.status_code == 200
    assert response.get_json() == {"status": "skipped"}
    [trace] = traces(rclient)
    assert (trace["verdict"], trace["outcome"], trace["event_type"]) == ("signature valid", "skipped", "reassigned")
    assert "unknown eventType 'reassigned'" in caplog.text
    assert KEY not in caplog.text and "demands immediate refund" not in caplog.text


def test_duplicate_event_id_is_processed_once(rclient):
    assert post(rclient, event()).get_json() == {"status": "processed"}
    assert post(rclient, event()).get_json() == {"status": "duplicate"}
    newest, oldest = traces(rclient)
    assert (newest["outcome"], newest["status"], newest["action"]) == ("duplicate", 200, None)
    assert oldest["outcome"] == "processed"


def test_concurrent_retries_of_one_event_are_processed_once(rapp):
    state = receiver_state(rapp)
    body = json.dumps(event()).encode()
    headers = {"X-Qlar-Signature": qlar_signature(KEY, body)}
    results = []
    threads = [threading.Thread(target=lambda: results.append(state.receive(body, headers)[1]["status"]))
               for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert sorted(results) == ["duplicate"] * 15 + ["processed"]


def test_unknown_fields_are_ignored(rclient):
    body = event(futureField={"nested": [1, 2]}, sequence=7)
    body["escalation"]["newThing"] = True
    assert post(rclient, body).get_json() == {"status": "processed"}
    assert traces(rclient)[0]["sequence"] == 7


def test_traces_page_shows_verdicts_newest_first_and_never_the_key(rclient):
    post(rclient, event(eventId="evt_a", sequence=1))
    post(rclient, event(eventId="evt_b", eventType="claimed", sequence=2), key=OTHER_KEY,
         **{"webhook-id": "evt_b"})  # unverified rows show the header's event id
    page = rclient.get("/")
    html = page.get_data(as_text=True)
    assert "<title>qlar reference receiver</title>" in html
    assert "signature valid" in html and "rejected (401): signature mismatch" in html
    assert html.index("rejected (401): signature mismatch") < html.index("signature valid")
    assert "'unsafe-inline'" not in page.headers["Content-Security-Policy"]
    assert not re.search(r"<script(?![^>]*\bsrc=)", html) and "style=" not in html  # no inline script
    listed = traces(rclient)
    assert [t["event_id"] for t in listed] == ["evt_b", "evt_a"]
    assert all(re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z", t["received_at"]) for t in listed)
    assert listed[1]["body_excerpt"].startswith('{"eventId": "evt_a"') and listed[0]["body_excerpt"] is None
    assert listed[1]["response_body"] == '{"status": "processed"}'
    assert listed[1]["request_headers"]["X-Qlar-Signature"].startswith("sha256=")
    for text in (html, rclient.get("/traces.json").get_data(as_text=True)):
        for secret in (KEY, OTHER_KEY, KEY.removeprefix("whsec_")):
            assert secret not in text


def test_credentials_in_request_headers_are_hidden(rclient):
    post(rclient, event(), Authorization="Bearer s3cr3t", **{"Proxy-Authorization": "Basic eDp5"})
    headers = traces(rclient)[0]["request_headers"]
    assert headers["Authorization"] == "[hidden]" and headers["Proxy-Authorization"] == "[hidden]"


def test_traces_expire_after_retention(monkeypatch):
    app = create_receiver_app([KEY], retention_seconds=0.5)
    now = [1000.0]
    receiver_state(app).traces.clock = lambda: now[0]
    client = app.test_client()
    post(client, event())
    assert len(traces(client)) == 1
    now[0] += 0.6
    assert traces(client) == []
    assert "Requests (0)" in client.get("/").get_data(as_text=True)


def test_traces_are_capped():
    store = TraceStore(retention_seconds=60, capacity=3)
    for n in range(5):
        store.add(Trace(received_at="t", method="POST", path="/webhook", verdict="signature valid", status=200,
                        event_id=f"evt_{n}"))
    assert [t.event_id for t in store.list()] == ["evt_4", "evt_3", "evt_2"]


def _token(client) -> str:
    return re.search(r'name="token" value="([^"]+)"', client.get("/").get_data(as_text=True)).group(1)


@pytest.mark.parametrize("data", [{}, {"token": "forged"}])
def test_key_form_without_valid_token_is_400(rclient, data):
    response = rclient.post("/secret", data={**data, "secret": OTHER_KEY})
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)
    assert post(rclient, event()).status_code == 200  # the key is unchanged


@pytest.mark.parametrize("bad", ["", "nope", "whsec_", "whsec_not base64!", "sk_" + KEY[6:]],
                         ids=["empty", "nope", "prefix only", "not base64", "other prefix"])
def test_key_form_refuses_a_malformed_key(rclient, bad):
    response = rclient.post("/secret", data={"token": _token(rclient), "secret": bad})
    assert response.status_code == 400
    assert "The key must be whsec_ followed by base64" in response.get_data(as_text=True)
    assert post(rclient, event()).status_code == 200


def test_key_form_replaces_the_key(rclient):
    response = rclient.post("/secret", data={"token": _token(rclient), "secret": f"  {OTHER_KEY}\n"})
    assert response.status_code == 303
    html = rclient.get(response.headers["Location"]).get_data(as_text=True)
    assert "Key replaced" in html and OTHER_KEY not in html
    assert post(rclient, event(eventId="evt_new"), key=OTHER_KEY).get_json() == {"status": "processed"}
    assert post(rclient, event(eventId="evt_old"), key=KEY).get_json() == {"error": "signature mismatch"}


def test_set_keys_on_a_running_app(rapp):
    client = rapp.test_client()
    receiver_state(rapp).set_keys([OTHER_KEY])
    assert post(client, event(), key=KEY).status_code == 401
    assert post(client, event(), key=OTHER_KEY).status_code == 200
    assert client.get("/traces.json").get_json()["key_fingerprints"] == [receiver_state(rapp).keys.fingerprints()[0]]


def test_without_a_key_everything_is_401():
    client = create_receiver_app().test_client()
    assert post(client, event()).get_json() == {"error": "signature mismatch"}
    assert "No key is set" in client.get("/").get_data(as_text=True)


def test_key_file_is_read_and_stripped(tmp_path):
    path = tmp_path / "key"
    path.write_text(f"\n  {KEY}  \n")
    assert read_key_file(path) == KEY


@pytest.fixture
def cli_runner(tmp_path):
    """A bare Flask app's CLI runner: the command only needs current_app.instance_path."""
    return Flask(__name__, instance_path=str(tmp_path / "instance")).test_cli_runner()


@pytest.mark.parametrize("content, message", [
    (None, "Cannot read the key file"),
    ("not-a-key", "does not hold a usable key"),
])
def test_cli_refuses_a_bad_key_file(cli_runner, tmp_path, content, message):
    path = tmp_path / "key"
    if content is not None:
        path.write_text(content)
    result = cli_runner.invoke(receiver_command, ["--secret-file", str(path)])
    assert result.exit_code == 1
    assert message in result.output and "Traceback" not in result.output


def test_cli_serves_with_the_key_file(cli_runner, tmp_path, monkeypatch):
    (tmp_path / "key").write_text(KEY + "\n")
    served = {}

    class FakeServer:
        server_port = 8443

        def serve_forever(self):
            raise KeyboardInterrupt

        def server_close(self):
            served["closed"] = True

    def fake_make_server(app, host, port, paths):
        served.update(app=app, host=host, port=port, paths=paths)
        return FakeServer()

    monkeypatch.setattr("qlar_console.receiver.cli.make_receiver_server", fake_make_server)
    result = cli_runner.invoke(receiver_command, ["--secret-file", str(tmp_path / "key"), "--port", "8443"])
    assert result.exit_code == 0, result.output
    assert "POST https://127.0.0.1:8443/webhook" in result.output and "Receiver stopped." in result.output
    assert KEY not in result.output and served["closed"]
    assert served["paths"].ca_cert == tmp_path / "instance" / "ca" / "ca.pem"
    assert post(served["app"].test_client(), event()).status_code == 200


def test_cli_reports_a_busy_port(cli_runner):
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        result = cli_runner.invoke(receiver_command, ["--port", str(busy.getsockname()[1])])
    assert result.exit_code == 1
    assert "Cannot listen on 127.0.0.1:" in result.output


def _mode(path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_local_ca_is_created_once_with_private_keys(tmp_path, monkeypatch):
    paths = ensure_local_ca(tmp_path)
    assert paths.ca_cert == tmp_path / "ca" / "ca.pem" and paths.cert == tmp_path / "ca" / "receiver.pem"
    assert _mode(paths.ca_key) == 0o600 and _mode(paths.key) == 0o600
    before = {p: p.read_bytes() for p in (paths.ca_cert, paths.ca_key, paths.cert, paths.key)}
    ensure_local_ca(tmp_path)
    assert {p: p.read_bytes() for p in before} == before

    monkeypatch.setattr(certs, "MIN_REMAINING", timedelta(days=500))  # the server cert now "expires soon"
    ensure_local_ca(tmp_path)
    assert paths.ca_cert.read_bytes() == before[paths.ca_cert]
    assert paths.cert.read_bytes() != before[paths.cert]


def test_a_damaged_server_key_is_reissued(tmp_path):
    paths = ensure_local_ca(tmp_path)
    paths.key.write_text("garbage")
    paths.key.chmod(0o644)
    ensure_local_ca(tmp_path)
    assert _mode(paths.key) == 0o600
    certs.ssl_context(paths)  # the new pair loads


def test_over_real_https_with_the_local_ca(tmp_path):
    paths = ensure_local_ca(tmp_path)
    app = create_receiver_app([KEY])
    with served_receiver(app, paths) as server, requests.Session() as session:
        base = f"https://127.0.0.1:{server.server_port}"
        ca = str(paths.ca_cert)  # per request: REQUESTS_CA_BUNDLE would override session.verify
        body = json.dumps(event()).encode()
        headers = {"Content-Type": "application/json",
                   **signature_headers([KEY], "evt_0001", int(time.time()), body)}
        response = session.post(f"{base}/webhook", data=body, headers=headers, timeout=5, verify=ca)
        assert (response.status_code, response.json()) == (200, {"status": "processed"})
        assert session.get(f"{base}/webhook", timeout=5, verify=ca).status_code == 405
        page = session.get(f"{base}/", timeout=5, verify=ca)
        assert "signature valid" in page.text and KEY not in page.text
        by_name = session.get(f"https://localhost:{server.server_port}/traces.json", timeout=5, verify=ca)
        assert by_name.json()["traces"][0]["outcome"] == "processed"
        with pytest.raises(requests.exceptions.SSLError):
            session.get(f"{base}/", timeout=5, verify=True)  # trusted only through the local CA


def test_the_receiver_keeps_the_connection_alive_across_posts(tmp_path):
    paths = ensure_local_ca(tmp_path)
    with served_receiver(create_receiver_app([KEY]), paths) as server:
        accepted = []
        get_request = server.get_request
        server.get_request = lambda: accepted.append(1) or get_request()  # before any client connects
        with requests.Session() as session:
            for number in (1, 2):
                body = json.dumps(event(eventId=f"evt_{number}", sequence=number)).encode()
                headers = {"Content-Type": "application/json",
                           **signature_headers([KEY], f"evt_{number}", int(time.time()), body)}
                response = session.post(f"https://127.0.0.1:{server.server_port}/webhook", data=body,
                                        headers=headers, timeout=5, verify=str(paths.ca_cert))
                assert (response.status_code, response.json()) == (200, {"status": "processed"})
                assert response.headers["Content-Length"] and "Connection" not in response.headers
        assert len(accepted) == 1  # one TCP connection and TLS handshake for both
