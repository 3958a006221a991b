"""An additional endpoint's custom headers: "Name: value" lines (or a mapping, or pairs), each checked.

qlar's own headers (signatures, X-Qlar-*, Content-Type, ...) cannot be set; endpoints._apply turns a refusal
into the endpoint's error.
"""
import re

from .. import errors

MAX_HEADERS, MAX_HEADER_BYTES = 20, 4096
RESERVED_HEADERS = ("host", "content-length", "content-type", "user-agent", "transfer-encoding", "connection")
RESERVED_PREFIXES = ("x-qlar-", "webhook-")
TOKEN = re.compile(r"^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$")  # RFC 9110 field-name


class HeadersError(errors.DomainError):
    """A custom header was refused: the message names it (field headers)."""


def parse_headers(value) -> dict[str, str]:
    """Custom headers from "Name: value" lines (or a mapping, or pairs), checked: each error names the header."""
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = []
        for item in value:
            if isinstance(item, str):
                pairs += _lines(item)
            elif isinstance(item, (list, tuple)) and len(item) == 2:
                pairs.append((str(item[0]), str(item[1])))
            else:
                raise HeadersError("Headers: give each header as 'Name: value'.", "headers")
    else:
        pairs = _lines(str(value or ""))
    headers: dict[str, str] = {}
    for name, raw in pairs:
        name, text = str(name).strip(), str(raw).strip() if raw is not None else ""
        shown = name[:60] or "(empty)"
        if not TOKEN.match(name):
            raise HeadersError(f"Headers: {shown!r} is not a valid header name.", "headers")
        lower = name.lower()
        if lower in RESERVED_HEADERS or lower.startswith(RESERVED_PREFIXES):
            raise HeadersError(f"Headers: {name} is set by qlar and cannot be a custom header.", "headers")
        if any(ord(c) < 32 or ord(c) == 127 for c in text):
            raise HeadersError(f"Headers: the value of {name} has a control character.", "headers")
        if not text.isascii():
            raise HeadersError(f"Headers: the value of {name} must be printable ASCII.", "headers")
        if lower in {h.lower() for h in headers}:
            raise HeadersError(f"Headers: {name} is given twice.", "headers")
        headers[name] = text
    if len(headers) > MAX_HEADERS:
        raise HeadersError(f"Headers: at most {MAX_HEADERS} headers, not {len(headers)}.", "headers")
    size = sum(len(k.encode()) + len(v.encode()) + 4 for k, v in headers.items())
    if size > MAX_HEADER_BYTES:
        raise HeadersError(f"Headers: at most {MAX_HEADER_BYTES // 1024} KiB in all, not {size} bytes.", "headers")
    return headers


def _lines(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        if not line.strip():
            continue
        if ":" not in line:
            raise HeadersError(f"Headers: {line.strip()[:60]!r} is not 'Name: value'.", "headers")
        name, value = line.split(":", 1)
        pairs.append((name, value))
    return pairs
