"""The signature debugger: current key, previous key, re-serialised JSON, wrong key forms, neither."""
import base64
import hashlib
import hmac
import json
from datetime import datetime, timedelta

import pytest
from helpers import login

from qlar_console.crypto import generate_secret, secret_box
from qlar_console.deliveries.debugger import diagnose
from qlar_console.engine.models import Event
from qlar_console.escalations.service import create_escalation
from qlar_console.extensions import db
from qlar_console.settings.keys import DebugKey, regenerate_secret
from qlar_console.settings.service import get_settings
from qlar_console.signing import qlar_signature, standard_signature

CURRENT, PREVIOUS = generate_secret(), generate_secret()
NOW = datetime(2026, 11, 30, 12, 0, 0)
KEYS = {"current": DebugKey(CURRENT, None), "previous": DebugKey(PREVIOUS, NOW + timedelta(hours=1))}
BODY = json.dumps({"eventId": "evt_1", "eventType": "created", "escalation": {"id": "esc-1", "reason": "angry \u00e9"}},
                  ensure_ascii=False, separators=(",", ":")).encode()


def check(signature: str, timestamp: str | None = "1700000000"):
    return diagnose(signature, BODY, KEYS, "evt_1", timestamp, now=NOW)


def test_current_key_matches():
    verdict = check(qlar_signature(CURRENT, BODY))
    assert verdict.match == "current" and "Matches the current key" in verdict.message


def test_previous_key_in_grace_is_valid_until_it_ends():
    verdict = check(qlar_signature(PREVIOUS, BODY))
    assert verdict.match == "previous" and verdict.valid_now
    assert "valid now, but only until 2026-11-30 13:00:00 UTC" in verdict.message


def test_previous_key_after_regenerate_without_grace_is_not_valid():
    keys = {**KEYS, "previous": DebugKey(PREVIOUS, NOW)}  # Regenerate Key with no grace period, just now
    verdict = diagnose(qlar_signature(PREVIOUS, BODY), BODY, keys, "evt_1", None, now=NOW)
    assert verdict.match == "previous" and not verdict.valid_now
    assert "stopped validating at 2026-11-30 12:00:00 UTC" in verdict.message and "valid." not in verdict.message


def test_standard_webhooks_signature_is_understood():
    assert check(standard_signature(CURRENT, "evt_1", 1700000000, BODY)).match == "current"


@pytest.mark.parametrize("dump", [
    lambda d: json.dumps(d),
    lambda d: json.dumps(d, sort_keys=True),
    lambda d: json.dumps(d, indent=2),
])
def test_reserialised_json_is_explained(dump):
    reserialised = dump(json.loads(BODY)).encode()
    verdict = check(qlar_signature(CURRENT, reserialised))
    assert verdict.match is None
    assert "matches the body after re-serialising the JSON" in verdict.message
    assert "verify the raw bytes instead" in verdict.message


def test_key_without_prefix_or_decoded_is_explained():
    no_prefix = hmac.new(CURRENT.removeprefix("whsec_").encode(), BODY, hashlib.sha256).hexdigest()
    assert "without its whsec_ prefix" in check(no_prefix).message
    decoded = base64.b64decode(CURRENT.removeprefix("whsec_"))
    assert "base64-decoded key" in check("sha256=" + hmac.new(decoded, BODY, hashlib.sha256).hexdigest()).message


def test_wrong_key_matches_neither_and_shows_no_key():
    verdict = check(qlar_signature(generate_secret(), BODY))
    assert verdict.match is None and verdict.message.startswith("Matches neither the current nor the previous key")
    assert CURRENT not in verdict.message and PREVIOUS not in verdict.message


def test_upper_case_hex_is_flagged():
    verdict = check(qlar_signature(CURRENT, BODY).upper().replace("SHA256=", "sha256="))
    assert verdict.match == "current" and "upper-case hex" in verdict.message


def test_empty_input_asks_for_a_signature():
    assert check("  ").message.startswith("Paste the signature")


def test_debugger_on_attempt_page_after_regenerate(delivery_app, receiver):
    """After Regenerate Key, a receiver still on the old key is told it holds the previous key."""
    receiver.respond = lambda r: (401, {}, 0)
    with delivery_app.app_context():
        old = secret_box().decrypt(get_settings("agent-123", "production").secret_ciphertext)
        regenerate_secret(get_settings("agent-123", "production"), "editor")
        create_escalation("agent-123", "production")
        delivery_app.extensions["qlar_dispatcher"].drain(limit=1)
        event = db.session.scalars(db.select(Event)).one()
        event_id, body = event.id, event.body
    client = delivery_app.test_client()
    login(client, "viewer")
    page = client.get(f"/deliveries/{event_id}").get_data(as_text=True)
    assert "Signature debugger" in page
    html = client.post(f"/deliveries/{event_id}/attempts/1/debug",
                       data={"signature": qlar_signature(old, body)}).get_data(as_text=True)
    assert "Matches the previous key, which stopped validating at" in html
    assert "verdict-bad" in html and "this signature is valid" not in html  # the 401 case, in red
    assert old not in html
    assert client.post(f"/deliveries/{event_id}/attempts/9/debug", data={"signature": "x"}).status_code == 404
