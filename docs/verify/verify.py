"""Verify qlar webhooks in Python: a complete receiver using only the standard library (Python 3.10+).

Run:  QLAR_WEBHOOK_SECRET=whsec_... PORT=8000 python3 verify.py
Plain HTTP: put it behind your HTTPS proxy (qlar only delivers to https:// URLs).

It applies the same policy as qlar's reference receiver (qlar_console/receiver/webhook.py: signature_refusal,
then parse_event and _answer): verify the raw body in constant time (Standard Webhooks headers when present,
with a 300 s timestamp window, else X-Qlar-Signature), answer 401 on mismatch, parse JSON only after that,
skip unknown event types with 2xx, and process each eventId once.
"""
import base64
import hashlib
import hmac
import json
import os
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

SECRET = os.environ["QLAR_WEBHOOK_SECRET"]  # the whole whsec_... string, from your secret manager
TOLERANCE_SECONDS = 300  # refuse a webhook-timestamp further than this from now (a replay)
MAX_BODY_BYTES = 1024 * 1024
SEEN: set[str] = set()  # processed eventIds, in memory for this sample: keep them in your database instead
SEEN_LOCK = threading.Lock()


def qlar_signature_ok(body: bytes, header: str) -> bool:
    """X-Qlar-Signature: sha256=<hex HMAC-SHA256 of the raw body, key = the whsec_ string>; comma-separated."""
    expected = "sha256=" + hmac.new(SECRET.encode(), body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(v.strip().encode(), expected.encode()) for v in header.split(","))


def standard_signature_ok(body: bytes, msg_id: str, stamp: str, header: str) -> bool:
    """webhook-signature: v1,<base64 HMAC-SHA256 of id.timestamp.body, key = base64 after whsec_>; space-separated."""
    key = base64.b64decode(SECRET.removeprefix("whsec_"))
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    expected = "v1," + base64.b64encode(digest).decode()
    return any(hmac.compare_digest(v.encode(), expected.encode()) for v in header.split() if v.startswith("v1,"))


def refusal(body: bytes, headers) -> str | None:
    """Why the request is not signed with our key (None when it is); mirrors signature_refusal."""
    if headers.get("webhook-signature") is not None or headers.get("webhook-timestamp") is not None:
        msg_id, stamp, signature = (headers.get(n, "").strip() for n in
                                    ("webhook-id", "webhook-timestamp", "webhook-signature"))
        if not (msg_id and stamp and signature):
            return "missing webhook-id, webhook-timestamp or webhook-signature"
        if not (stamp.isascii() and stamp.isdigit() and len(stamp) <= 12):
            return "webhook-timestamp is not a Unix time in seconds"
        if abs(int(stamp) - int(time.time())) > TOLERANCE_SECONDS:
            return "webhook-timestamp outside the allowed window"
        return None if standard_signature_ok(body, msg_id, stamp, signature) else "signature mismatch"
    signature = headers.get("X-Qlar-Signature", "").strip()
    if not signature:
        return "missing signature"
    return None if qlar_signature_ok(body, signature) else "signature mismatch"


def parse_event(body: bytes) -> dict | None:
    """The event, or None without the required eventType, timestamp and escalation.id (unknown fields are fine)."""
    try:
        event = json.loads(body)
    except ValueError:
        return None
    if not (isinstance(event, dict) and isinstance(event.get("escalation"), dict)):
        return None
    required = (event.get("eventType"), event.get("timestamp"), event["escalation"].get("id"))
    return event if all(isinstance(value, str) and value for value in required) else None


def handle(event: dict) -> None:
    """Your work goes here: keep it quick (queue anything slow) so qlar gets its 2xx in time."""
    print(f"{event['eventType']} {event.get('eventId')} escalation {event['escalation'].get('id')}", flush=True)


HANDLED_TYPES = {"created", "claimed", "completed", "released"}


class Handler(BaseHTTPRequestHandler):
    """POST only: verify, then parse, then process once."""

    def answer(self, status: int, document: dict) -> None:
        data = json.dumps(document).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        if status == 405:
            self.send_header("Allow", "POST")
        self.end_headers()
        self.wfile.write(data)

    def not_allowed(self) -> None:
        self.answer(405, {"error": "method not allowed"})

    do_GET = do_PUT = do_PATCH = do_DELETE = do_HEAD = do_OPTIONS = not_allowed

    def do_POST(self) -> None:
        length = int(self.headers.get("Content-Length") or 0)
        if length > MAX_BODY_BYTES:
            return self.answer(413, {"error": "body too large"})
        body = self.rfile.read(length)  # the raw bytes, exactly as signed: never re-serialise before verifying
        problem = refusal(body, self.headers)
        if problem:
            return self.answer(401, {"error": problem})
        event = parse_event(body)  # only now: the bytes are ours
        if event is None:
            return self.answer(400, {"error": "not a qlar event"})
        if event["eventType"] not in HANDLED_TYPES:
            return self.answer(200, {"status": "skipped"})  # new event types may appear: ignore them
        event_id = event.get("eventId") or self.headers.get("webhook-id")
        with SEEN_LOCK:
            if event_id in SEEN:
                return self.answer(200, {"status": "duplicate"})  # a retry of an event already processed
            SEEN.add(event_id)
        try:
            handle(event)
        except Exception:
            with SEEN_LOCK:
                SEEN.discard(event_id)  # let qlar's retry be processed
            return self.answer(500, {"error": "processing failed"})
        self.answer(200, {"status": "processed"})


if __name__ == "__main__":
    server = ThreadingHTTPServer((os.environ.get("HOST", "0.0.0.0"), int(os.environ.get("PORT", "8000"))), Handler)
    print(f"listening on {server.server_address[0]}:{server.server_address[1]}", flush=True)
    server.serve_forever()
