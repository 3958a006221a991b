"""The receiver's webhook rules: verify the signature, validate, route by eventType, process each event once, trace."""
import json
import logging
from collections.abc import Mapping
from typing import NamedTuple

from werkzeug.datastructures import Headers

from ..crypto import redact
from ..signing import timestamp_problem, verify_qlar_signature, verify_standard_signature
from .faults import FaultTaken
from .seen import SeenEvents
from .store import KeyRing, Trace, TraceStore, utc_now_iso

log = logging.getLogger(__name__)

SIGNATURE_HEADER = "X-Qlar-Signature"
STANDARD_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
DEFAULT_TOLERANCE_SECONDS = 300.0
VALID = "signature valid"
MISSING_SIGNATURE = "rejected (401): missing signature"
SIGNATURE_MISMATCH = "rejected (401): signature mismatch"
BODY_EXCERPT_BYTES = 2048
HIDDEN_HEADERS = {"authorization", "cookie", "proxy-authorization"}
MAX_HEADER_CHARS = 1024


class Refusal(NamedTuple):
    """Why a request was refused with 401: the trace's verdict and the error answered and logged."""

    verdict: str
    error: str


def _text(value, limit: int = 64) -> str:
    """Untrusted payload text, shortened for a trace line."""
    return str(value)[:limit]


def on_created(payload: dict) -> str:
    """A new escalation: a real integration would open a helpdesk ticket."""
    escalation = payload["escalation"]
    urgency = _text(escalation.get("urgencyLevel") or "unknown")
    return f"would open a ticket for {_text(escalation['id'])} ({urgency} urgency)"


def on_claimed(payload: dict) -> str:
    """A supervisor claimed it: assign the ticket."""
    escalation = payload["escalation"]
    who = _text(escalation.get("claimedBy") or "the supervisor who claimed it")
    return f"would assign the ticket for {_text(escalation['id'])} to {who}"


def on_completed(payload: dict) -> str:
    """Resolved: close the ticket with the resolution notes."""
    return f"would close the ticket for {_text(payload['escalation']['id'])} with the resolution notes"


def on_released(payload: dict) -> str:
    """Ownership released: put the ticket back in the queue."""
    return f"would return the ticket for {_text(payload['escalation']['id'])} to the queue"


HANDLERS = {"created": on_created, "claimed": on_claimed, "completed": on_completed, "released": on_released}


def parse_event(body: bytes) -> tuple[dict | None, str | None]:
    """The event as a dict, or None and the reason it cannot be used (ignoring unknown fields)."""
    try:
        payload = json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None, "invalid JSON"
    if not isinstance(payload, dict):
        return None, "body must be a JSON object"
    escalation = payload.get("escalation")
    fields = (("eventType", payload.get("eventType")), ("timestamp", payload.get("timestamp")),
              ("escalation.id", escalation.get("id") if isinstance(escalation, dict) else None))
    for name, value in fields:
        if value is None or value == "":
            return None, f"missing {name}"
        if not isinstance(value, str):
            return None, f"{name} must be a string"
    return payload, None


def safe_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """Request headers for a trace: credentials hidden, anything key-like redacted, long values cut."""
    return {name: "[hidden]" if name.lower() in HIDDEN_HEADERS else redact(value)[:MAX_HEADER_CHARS]
            for name, value in headers.items()}


def body_excerpt(body: bytes) -> str:
    """The start of a verified body, as text, for the traces page."""
    text = body[:BODY_EXCERPT_BYTES].decode("utf-8", "replace")
    return redact(text) + ("…" if len(body) > BODY_EXCERPT_BYTES else "")


def signature_refusal(held: list[str], body: bytes, headers: Headers, tolerance_seconds: float,
                      now: float | None = None) -> Refusal | None:
    """Why the request is not signed by a held key in time (None: it is).

    With webhook-signature or webhook-timestamp the request is in the Standard Webhooks form: all three
    webhook-* headers, a timestamp within `tolerance_seconds` of now (past or future) and a v1 value from a
    held key. Otherwise X-Qlar-Signature must match; it signs only the body, whose timestamp is when the
    event happened, so no time window applies: the eventId de-duplication is its replay safety.
    """
    if "webhook-signature" in headers or "webhook-timestamp" in headers:
        missing = [name for name in STANDARD_HEADERS if not headers.get(name, "").strip()]
        if missing:
            return Refusal(MISSING_SIGNATURE, f"missing {', '.join(missing)}")
        stamp = headers["webhook-timestamp"].strip()
        problem = timestamp_problem(stamp, tolerance_seconds, now)
        if problem:
            return Refusal(f"rejected (401): timestamp outside the {tolerance_seconds:g} s window", problem)
        if not verify_standard_signature(held, headers["webhook-id"], stamp, body, headers["webhook-signature"]):
            return Refusal(SIGNATURE_MISMATCH, "webhook-signature mismatch")
        return None
    signature = headers.get(SIGNATURE_HEADER, "").strip()
    if not signature:
        return Refusal(MISSING_SIGNATURE, f"missing {SIGNATURE_HEADER}")
    if not verify_qlar_signature(held, body, signature):
        return Refusal(SIGNATURE_MISMATCH, "signature mismatch")
    return None


def receive(keys: KeyRing, seen: SeenEvents, traces: TraceStore, body: bytes, headers: Mapping[str, str],
            method: str = "POST", path: str = "/webhook", *,
            tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS, fault: FaultTaken | None = None) -> tuple[int, dict]:
    """Answer one webhook request (status, JSON body) and keep its trace.

    A `fault` with a status or a reset replaces the answer (status 0: drop the connection) and is traced;
    a delay alone leaves the answer as it is (the caller waits).
    """
    headers = Headers(headers)  # names are case-insensitive, whatever mapping came in
    trace = Trace(received_at=utc_now_iso(), method=method, path=path, verdict="", status=0,
                  event_type=headers.get("X-Qlar-Event"), event_id=headers.get("webhook-id"),
                  request_headers=safe_headers(headers), fault=fault.describe() if fault else None)
    if fault and (fault.fault.status or fault.fault.reset):
        status, answer = _faulty_answer(keys, body, headers, trace, tolerance_seconds, fault)
    else:
        status, answer = _answer(keys, seen, body, headers, trace, tolerance_seconds)
    trace.status = status
    trace.response_body = json.dumps(answer) if status else ""
    traces.add(trace)
    return status, answer


def _note_event(trace: Trace, payload: dict, headers: Headers) -> tuple[str, str | None]:
    """Copy a valid event's type, id, escalation and sequence onto its trace; returns (eventType, event id)."""
    event_type = payload["eventType"]
    event_id = payload.get("eventId") if isinstance(payload.get("eventId"), str) else headers.get("webhook-id")
    sequence = payload.get("sequence")
    trace.event_type, trace.event_id = event_type, event_id
    trace.escalation_id = payload["escalation"]["id"]
    trace.sequence = sequence if isinstance(sequence, int | str) and not isinstance(sequence, bool) else None
    return event_type, event_id


def _faulty_answer(keys: KeyRing, body: bytes, headers: Headers, trace: Trace, tolerance_seconds: float,
                   fault: FaultTaken) -> tuple[int, dict]:
    """An injected answer (status 0: the connection is dropped); the trace still says whether the request was
    signed right, but the event is not processed, so the sender's retry is."""
    refusal = signature_refusal(keys.keys(), body, headers, tolerance_seconds)
    trace.verdict = refusal.verdict if refusal else VALID
    if not refusal:
        trace.body_excerpt = body_excerpt(body)
        payload, problem = parse_event(body)
        if not problem:
            _note_event(trace, payload, headers)
    trace.outcome = "not processed (fault)"
    log.info("webhook %r answered by a fault: %s", _text(headers.get("webhook-id") or "(no webhook-id)"),
             fault.describe())
    if fault.fault.reset:
        return 0, {}
    return fault.fault.status, {"fault": f"Fault injected by the reference receiver: {fault.describe()}; "
                                         "the event was not processed."}


def _answer(keys: KeyRing, seen: SeenEvents, body: bytes, headers: Headers, trace: Trace,
            tolerance_seconds: float) -> tuple[int, dict]:
    ref = repr(_text(headers.get("webhook-id") or "(no webhook-id)"))
    held = keys.keys()
    refusal = signature_refusal(held, body, headers, tolerance_seconds)
    if refusal:  # the reason only: never the body or a key
        if refusal.verdict == SIGNATURE_MISMATCH:
            why = "no key is set on the receiver" if not held else f"checked against {len(held)} key(s)"
            log.warning("webhook %s rejected: %s (%d body bytes; %s)", ref, refusal.error, len(body), why)
        else:
            log.warning("webhook %s rejected: %s", ref, refusal.error)
        trace.verdict = refusal.verdict
        return 401, {"error": refusal.error}

    trace.body_excerpt = body_excerpt(body)
    payload, problem = parse_event(body)
    if problem:
        log.warning("webhook %s rejected: %s", ref, problem)
        trace.verdict = f"rejected (400): {problem}"
        return 400, {"error": problem}

    trace.verdict = VALID
    event_type, event_id = _note_event(trace, payload, headers)

    handler = HANDLERS.get(event_type)
    if handler is None:
        log.info("webhook %s skipped: unknown eventType %r", ref, _text(event_type))
        trace.outcome = "skipped"
        return 200, {"status": "skipped"}
    if event_id and not seen.claim(event_id):
        log.info("webhook %s: event %r already processed", ref, _text(event_id))
        trace.outcome = "duplicate"
        return 200, {"status": "duplicate"}
    try:
        trace.action = handler(payload)
    except Exception:
        if event_id:
            seen.release(event_id)  # let the sender's retry be processed
        log.exception("webhook %s: the %s handler failed", ref, event_type)
        trace.outcome = "failed"
        return 500, {"error": "processing failed"}
    trace.outcome = "processed"
    return 200, {"status": "processed"}
