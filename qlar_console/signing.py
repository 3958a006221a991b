"""Webhook signatures, the one implementation the dispatcher and the receiver share.

Two header forms sign the same raw body bytes:
- X-Qlar-Signature: "sha256=" + hex HMAC-SHA256(key = the whsec_ secret string as copied, msg = body);
- Standard Webhooks: webhook-signature "v1," + base64 HMAC-SHA256(key = base64-decoded part after
  whsec_, msg = "{webhook-id}.{webhook-timestamp}.{body}").
During a rotation grace period both keys sign: comma-separated (X-Qlar) or space-separated (v1) values.
"""
import base64
import hashlib
import hmac

from .crypto import SECRET_PREFIX


def qlar_signature(secret: str, body: bytes) -> str:
    """X-Qlar-Signature value for one key."""
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def standard_signature(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
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
