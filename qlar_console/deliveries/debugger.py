"""The signature debugger: which key (if any) a receiver's computed signature matches, and why not.

It compares a pasted signature with what the current and the previous key produce over the raw body,
then over the usual mistakes (re-serialised JSON, the wrong key form), and never reveals a key.
"""
import base64
import hashlib
import hmac
import json
from dataclasses import dataclass
from datetime import datetime

from ..clock import utcnow
from ..crypto import SECRET_PREFIX
from ..signing import qlar_signature, standard_signature


@dataclass(frozen=True)
class Verdict:
    """What the debugger concluded: the matched key ("current", "previous" or None), whether that key
    validates now, and advice."""

    match: str | None
    message: str
    valid_now: bool = False


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M:%S UTC")


def _matched(name: str, stops_at: datetime | None, now: datetime, case_note: str) -> Verdict:
    """The verdict for a signature made with key `name`: valid only while that key still validates."""
    if stops_at is None:
        return Verdict(name, f"Matches the {name} key over the raw body: this signature is valid.{case_note}", True)
    if stops_at > now:
        return Verdict(name, f"Matches the {name} key over the raw body: valid now, but only until {_when(stops_at)} "
                             "(the grace period). Put the current key in your receiver before then." + case_note, True)
    return Verdict(name, f"Matches the {name} key, which stopped validating at {_when(stops_at)}: Regenerate Key "
                         "replaced it, so a receiver holding it answers 401. Copy the current key into your receiver.")


def _reserialisations(body: bytes) -> dict[str, bytes]:
    """The bytes a receiver gets if it parses the JSON and serialises it again in a common way."""
    try:
        document = json.loads(body)
    except ValueError:
        return {}
    variants = {
        "json.dumps defaults (spaces after , and :)": json.dumps(document),
        "sorted keys": json.dumps(document, sort_keys=True),
        "compact, sorted keys": json.dumps(document, sort_keys=True, separators=(",", ":")),
        "pretty-printed": json.dumps(document, indent=2),
        "ASCII-escaped": json.dumps(document, separators=(",", ":")),
    }
    return {name: text.encode() for name, text in variants.items() if text.encode() != body}


def _normalise(signature: str) -> tuple[str, str]:
    """("qlar", hex) for sha256=/bare hex, ("v1", base64) for Standard Webhooks values."""
    value = signature.strip().strip('"')
    if value.startswith("v1,"):
        return "v1", value[3:].strip()
    return "qlar", value.removeprefix("sha256=").strip()


def diagnose(signature: str, body: bytes, keys: dict, msg_id: str, timestamp: str | None,
             now: datetime | None = None) -> Verdict:
    """Say whether `signature` matches the current or previous key over these bytes (and whether that key
    validates now), or what differs. `keys` maps a name to a (secret, stops_at) pair, stops_at None for never."""
    now = now or utcnow()
    stops = {name: key.stops_at for name, key in keys.items()}
    keys = {name: key.secret for name, key in keys.items()}
    if not signature.strip():
        return Verdict(None, "Paste the signature your receiver computed (sha256=… or v1,…).")
    kind, value = _normalise(signature)

    def signs(key: str, data: bytes) -> bool:
        if kind == "v1":
            if timestamp is None:
                return False
            expected = standard_signature(key, msg_id, int(timestamp), data)[3:]
            return hmac.compare_digest(expected.encode(), value.encode())
        return hmac.compare_digest(qlar_signature(key, data)[7:].encode(), value.lower().encode())

    for name, key in keys.items():
        if signs(key, body):
            case_note = (" It is in upper-case hex: qlar sends lower-case, so compare the hex case-insensitively "
                         "or lower-case yours." if kind == "qlar" and value != value.lower() else "")
            return _matched(name, stops[name], now, case_note)
    for name, key in keys.items():
        for variant, data in _reserialisations(body).items():
            if signs(key, data):
                return Verdict(None, f"Your signature matches the body after re-serialising the JSON ({variant}) "
                                     f"with the {name} key: verify the raw bytes instead.")
    if kind == "qlar":
        for name, key in keys.items():
            raw_key = base64.b64decode(key.removeprefix(SECRET_PREFIX))
            wrong_forms = {
                "the key without its whsec_ prefix": key.removeprefix(SECRET_PREFIX).encode(),
                "the base64-decoded key (that is the Standard Webhooks form)": raw_key,
            }
            for form, wrong_key in wrong_forms.items():
                if hmac.compare_digest(hmac.new(wrong_key, body, hashlib.sha256).hexdigest().encode(),
                                       value.lower().encode()):  # bytes: a pasted non-ASCII value is no TypeError
                    return Verdict(None, f"Your signature was made with {form} of the {name} key: "
                                         "X-Qlar-Signature uses the whole whsec_… string exactly as copied.")
    elif timestamp is None:
        return Verdict(None, "This attempt sent no webhook-timestamp, so a v1 signature cannot be checked.")
    return Verdict(None, "Matches neither the current nor the previous key. Check that your receiver holds the "
                         "key from Copy (Regenerate Key replaces it), and that it signs the raw body bytes"
                         + (" as id.timestamp.body with the base64-decoded key." if kind == "v1" else "."))
