"""Webhook signatures, the one implementation the dispatcher and the receiver share.

Two header forms sign the same raw body bytes:
- X-Qlar-Signature: "sha256=" + hex HMAC-SHA256(key = the whsec_ secret string as copied, msg = body);
- Standard Webhooks: webhook-signature "v1," + base64 HMAC-SHA256(key = base64-decoded part after
  whsec_, msg = "{webhook-id}.{webhook-timestamp}.{body}").
During a rotation grace period both keys sign: comma-separated (X-Qlar) or space-separated (v1) values.

The dispatcher (engine/request.py) signs each try afresh; the reference receiver (receiver/webhook.py)
verifies with the verify_* functions and refuses a webhook-timestamp outside its window (timestamp_problem).
"""
import base64
import hashlib
import hmac
import time

from .crypto import SECRET_PREFIX

MAX_TIMESTAMP_DIGITS = 12  # Unix seconds until the year 33658; longer is not a timestamp


def qlar_signature(secret: str, body: bytes) -> str:
    """X-Qlar-Signature value for one key."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signature(secret: str, msg_id: str, timestamp: int | str, body: bytes) -> str:
    """Standard Webhooks v1 signature for one key."""
    key = base64.b64decode(secret.removeprefix(SECRET_PREFIX))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signature_headers(secrets: list[str], msg_id: str, timestamp: int, body: bytes) -> dict[str, str]:
    """The signing headers of one attempt; secrets are in order, current key first."""
    return {
        "X-Qlar-Signature": ",".join(qlar_signature(s, body) for s in secrets),
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": " ".join(standard_signature(s, msg_id, timestamp, body) for s in secrets),
    }


def verify_qlar_signature(secrets: list[str], body: bytes, header: str | None) -> bool:
    """True when any value of an X-Qlar-Signature header matches any key, compared in constant time."""
    if not header:
        return False
    offered = [value.strip() for value in header.split(",") if value.strip()]
    expected = [qlar_signature(s, body) for s in secrets]
    return any(hmac.compare_digest(o.encode(), e.encode()) for o in offered for e in expected)


def verify_standard_signature(secrets: list[str], msg_id: str, timestamp: str, body: bytes,
                              header: str | None) -> bool:
    """True when any v1 value of a webhook-signature header matches any key over id.timestamp.body (constant time).

    `timestamp` is the webhook-timestamp header's text, as signed; values of other versions are ignored.
    """
    if not header:
        return False
    offered = [value for value in header.split() if value.startswith("v1,")]
    expected = [standard_signature(s, msg_id, timestamp, body) for s in secrets]
    return any(hmac.compare_digest(o.encode(), e.encode()) for o in offered for e in expected)


def timestamp_problem(header: str | None, tolerance_seconds: float, now: float | None = None) -> str | None:
    """Why a webhook-timestamp is refused (not Unix seconds, or more than `tolerance_seconds` from now), else None."""
    text = (header or "").strip()
    if not (text.isascii() and text.isdigit() and len(text) <= MAX_TIMESTAMP_DIGITS):
        return "webhook-timestamp is not a Unix time in seconds"
    offset = int(text) - int(time.time() if now is None else now)  # whole seconds, as the header counts
    if abs(offset) <= tolerance_seconds:
        return None
    where = f"{-offset} s old" if offset < 0 else f"{offset} s in the future"
    return f"webhook-timestamp is {where}, more than the {tolerance_seconds:g} s allowed: a possible replay"
