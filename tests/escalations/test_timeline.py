"""An escalation's timeline: events in sequence order, every attempt under each, and Copy as cURL, whose command
replays the attempt's request byte for byte (run with curl against the test receiver)."""
import html
import os
import re
import subprocess
import time

import pytest
from helpers import login, stored_secret
from markupsafe import escape

from qlar_console.clock import utcnow
from qlar_console.deliveries.curl import curl_command, shell_quote
from qlar_console.engine.models import Attempt, Event
from qlar_console.escalations import service as lifecycle
from qlar_console.escalations.timeline import load_timeline
from qlar_console.extensions import db

PAIR = ("agent-123", "production")
REASON = "It's a €5 \"refund\" \\ now"  # a single quote, a non-ASCII character, JSON escapes (\" and \\) in the body
NOTES = "Refund issued; the customer said 'thanks' — ✓"
CURL = "/usr/bin/curl"
SHOTS = os.environ.get("QLAR_SCREENSHOTS")


def _wait_until(predicate, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        time.sleep(0.05)


def deliver_a_retried_lifecycle(delivery_app, receiver) -> str:
    """An escalation created (with REASON), claimed and completed through the dispatcher, whose first try got a
    500 and its retry a 200: four requests, three events delivered. Returns its id."""
    answers = iter([500])
    receiver.respond = lambda received: (next(answers, 200), {}, 0)
    delivery_app.extensions["qlar_dispatcher"].start()
    with delivery_app.app_context():
        escalation_id = lifecycle.create_escalation(*PAIR, reason=REASON).id
        lifecycle.claim(escalation_id, "supervisor-1")
        lifecycle.complete(escalation_id, NOTES)

    def all_delivered() -> bool:
        with delivery_app.app_context():
            statuses = db.session.scalars(db.select(Event.status).filter_by(escalation_id=escalation_id)).all()
            return statuses == ["succeeded"] * 3

    _wait_until(all_delivered)
    receiver.wait_for(4)
    return escalation_id


@pytest.fixture
def delivered(delivery_app, receiver) -> str:
    return deliver_a_retried_lifecycle(delivery_app, receiver)


def parse_timeline(page: str) -> list[dict]:
    """The events the page lists, in page order, each with its attempts (number, result, duration, error, curl)."""
    events = []
    for chunk in page.split('<li class="timeline-event"')[1:]:
        head = re.search(r'id="event-(evt_\w+)" data-status="(\w+)">.*?<span class="sequence">#(\d+)</span> (\w+)</h3>',
                         chunk, re.S)
        attempts = []
        for part in chunk.split('<li class="timeline-attempt">')[1:]:
            attempts.append({
                "number": int(re.search(r">Attempt (\d+)</span>", part).group(1)),
                "result": re.search(r'<span class="badge badge-\w+">([^<]+)</span>', part).group(1),
                "time": re.search(r"<dt>Time</dt><dd><time datetime=\"([^\"]+)\"", part).group(1),
                "trigger": re.search(r"<dt>Trigger</dt><dd>([^<]+)</dd>", part).group(1),
                "duration": re.search(r"<dt>Duration</dt><dd>([^<]+)</dd>", part).group(1),
                "error": html.unescape(re.search(r"<dt>Error</dt><dd[^>]*>([^<]*)</dd>", part).group(1)),
                "curl": html.unescape(re.search(r'<pre class="payload curl-command"[^>]*>(.*?)</pre>', part, re.S)
                                      .group(1)),
            })
        events.append({"id": head.group(1), "status": head.group(2), "sequence": int(head.group(3)),
                       "type": head.group(4), "attempts": attempts, "html": chunk})
    return events


def _attempts(app, escalation_id: str) -> dict[tuple[str, int], Attempt]:
    """The escalation's attempts by (event id, number), with each event's body."""
    with app.app_context():
        rows = db.session.execute(db.select(Attempt, Event.body).join(Event)
                                  .where(Event.escalation_id == escalation_id)).all()
        return {(a.event_id, a.number): (a, body) for a, body in rows}


def test_curl_command_quotes_any_text_for_the_shell():
    tricky = ["It's", "'", "''", "a\\b", "€5 \"x\" $HOME `id` $(id) !x *", "", "line\nbreak", "\t tab"]
    for text in tricky:
        out = subprocess.run(["bash", "-c", f"printf %s {shell_quote(text)}"], capture_output=True, check=True)
        assert out.stdout == text.encode()
    command = curl_command("https://h.example/[x]", {"A": "b", "Empty": ""}, b'{"a":1}')
    assert command.splitlines()[0] == "curl -sS --http1.1 -X POST --globoff 'https://h.example/[x]' \\"
    assert "-H 'Empty;'" in command and "-H 'Content-Type:'" in command and "-H 'Expect:'" in command
    assert command.endswith("--data-binary '{\"a\":1}'")
    assert curl_command("https://h/", {}, b"@file").endswith("--data-raw '@file'")  # not read from a file
    for body, headers in ((b"\x00", {}), (b"\xff", {}), (b"{}", {"X": "a\r\nInjected: 1"})):
        with pytest.raises(ValueError):
            curl_command("https://h/", headers, body)


def test_timeline_lists_events_in_sequence_with_every_attempt(delivery_app, delivered):
    client = delivery_app.test_client()
    login(client, "viewer")
    response = client.get(f"/escalations/{delivered}")
    assert response.status_code == 200
    page = response.get_data(as_text=True)
    assert f"Escalation <code>{delivered}</code>" in page and "Completed" in page and "agent-123 · production" in page
    assert str(escape(REASON)) in page and "supervisor-1" in page
    events = parse_timeline(page)
    assert [(e["sequence"], e["type"], e["status"]) for e in events] == [
        (1, "created", "succeeded"), (2, "claimed", "succeeded"), (3, "completed", "succeeded")]
    stored = _attempts(delivery_app, delivered)
    assert sum(len(e["attempts"]) for e in events) == len(stored) == 4
    created = events[0]
    assert [(a["number"], a["result"], a["trigger"]) for a in created["attempts"]] == [
        (1, "HTTP 500", "scheduled"), (2, "HTTP 200", "scheduled")]
    for event in events:
        assert f'href="/deliveries/{event["id"]}"' in event["html"]
        for shown in event["attempts"]:
            attempt, _ = stored[(event["id"], shown["number"])]
            assert shown["duration"] == f"{attempt.duration_ms:.1f} ms"
            assert shown["time"] == attempt.started_at.isoformat() + "Z"
            assert shown["error"] == (attempt.error or "—")
    assert [len(e["attempts"]) for e in events] == [2, 1, 1]


def test_copied_curl_replays_the_request_byte_for_byte(delivery_app, delivered, receiver):
    client = delivery_app.test_client()
    login(client, "viewer")
    events = parse_timeline(client.get(f"/escalations/{delivered}").get_data(as_text=True))
    stored = _attempts(delivery_app, delivered)
    originals = receiver.wait_for(4)  # the dispatcher's own requests
    env = {k: v for k, v in os.environ.items() if "proxy" not in k.lower()} | {"CURL_CA_BUNDLE": str(receiver.ca_file)}
    replayed = 0
    for event in events:
        for shown in event["attempts"]:
            attempt, body = stored[(event["id"], shown["number"])]
            command = shown["curl"]
            assert command.startswith("curl ")
            before = len(receiver.requests)
            run = subprocess.run(["bash", "-c", command.replace("curl ", f"{CURL} ", 1)], env=env,
                                 capture_output=True, timeout=15)
            assert run.returncode == 0, run.stderr
            got = receiver.wait_for(before + 1)[before]
            assert got.method == "POST" and got.path == "/webhook"
            assert got.body == body  # the event's exact bytes
            received = {k.lower(): v for k, v in got.headers.items()}
            for name, value in attempt.request_headers.items():  # every header as sent, signatures included
                assert received[name.lower()] == value, name
            # and curl added nothing the dispatcher's request lacked, nor changed what both send (Host, length…)
            original = next(r for r in originals
                            if r.headers["Webhook-Signature"] == attempt.request_headers["webhook-signature"])
            sent = {k.lower(): v for k, v in original.headers.items()}
            assert original.body == got.body
            assert set(received) <= set(sent), set(received) - set(sent)
            assert received == {k: sent[k] for k in received}
            replayed += 1
    assert replayed == 4
    assert [r.json["escalation"]["reason"] for r in receiver.requests[4:5]] == [REASON]


def test_the_key_is_never_on_the_page_nor_in_a_command(delivery_app, delivered):
    secret = stored_secret(delivery_app)
    assert secret.startswith("whsec_")
    client = delivery_app.test_client()
    login(client, "viewer")
    page = client.get(f"/escalations/{delivered}").get_data(as_text=True)
    with delivery_app.app_context():
        commands = [entry.curl for event in load_timeline(delivered).events for entry in event.attempts]
    assert len(commands) == 4 and all(commands)
    for text in [page, html.unescape(page), *commands]:
        assert secret not in text and secret.removeprefix("whsec_") not in text
    assert all("X-Qlar-Signature: sha256=" in c and "webhook-signature: v1," in c for c in commands)


def test_unknown_ids_anonymous_visitors_and_roles(app, client):
    with app.app_context():
        escalation_id = lifecycle.create_escalation(*PAIR).id
    assert client.get(f"/escalations/{escalation_id}").status_code == 302  # to the login page
    login(client, "viewer")
    assert client.get(f"/escalations/{escalation_id}").status_code == 200
    missing = client.get("/escalations/esc-000000000000")
    assert missing.status_code == 404
    assert "No escalation &#39;esc-000000000000&#39;." in missing.get_data(as_text=True)


def test_events_not_tried_say_so(app, client):
    with app.app_context():
        skipped = lifecycle.create_escalation("agent-123", "staging").id  # webhook off: recorded as skipped
        pending = lifecycle.create_escalation(*PAIR).id
        event = db.session.scalar(db.select(Event).filter_by(escalation_id=pending))
        event.status, event.next_attempt_at = "pending", utcnow()
        db.session.commit()
    login(client, "viewer")
    page = client.get(f"/escalations/{skipped}").get_data(as_text=True)
    assert "Never sent: the webhook was disabled or not saved when this event was written." in page
    assert "Copy as cURL</button>" not in page
    page = client.get(f"/escalations/{pending}").get_data(as_text=True)
    assert "Not tried yet: the dispatcher sends it when it is due." in page


def test_escalations_and_event_pages_link_to_the_timeline(app, client):
    with app.app_context():
        escalation_id = lifecycle.create_escalation(*PAIR).id
        event_id = db.session.scalar(db.select(Event.id).filter_by(escalation_id=escalation_id))
    login(client, "viewer")
    link = f'href="/escalations/{escalation_id}"'
    assert link in client.get("/escalations?agent=agent-123&env=production").get_data(as_text=True)
    assert link in client.get(f"/deliveries/{event_id}").get_data(as_text=True)
