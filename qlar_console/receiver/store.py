"""The receiver's in-memory state: held keys and request/response traces (processed event ids: seen.py)."""
import base64
import binascii
import hashlib
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime

from ..crypto import SECRET_PREFIX
from ..errors import DomainError

DEFAULT_RETENTION_SECONDS = 3600.0
DEFAULT_TRACE_CAPACITY = 1000
TRACE_PAGE_SIZE = 20


class InvalidReceiverKey(DomainError):
    """A key that is not whsec_ followed by base64, as the console's Secret Key field shows it."""


class InvalidReceiverSetting(DomainError):
    """A QLAR_RECEIVER_* setting the receiver cannot run with."""


def check_key(secret: str) -> str:
    """Return the key with surrounding whitespace removed, or raise InvalidReceiverKey saying why."""
    secret = (secret or "").strip()
    message = "The key must be whsec_ followed by base64, exactly as the console's Secret Key field copies it."
    if not secret.startswith(SECRET_PREFIX) or len(secret) == len(SECRET_PREFIX):
        raise InvalidReceiverKey(message)
    try:
        base64.b64decode(secret.removeprefix(SECRET_PREFIX), validate=True)
    except (binascii.Error, ValueError):
        raise InvalidReceiverKey(message) from None
    return secret


def fingerprint(secret: str) -> str:
    """A short, non-reversible name for a key: sha256: + the first 8 hex digits of its SHA-256."""
    return "sha256:" + hashlib.sha256(secret.encode()).hexdigest()[:8]


class KeyRing:
    """The keys the receiver verifies with (normally one), replaceable while requests are served."""

    def __init__(self, keys: list[str] | None = None):
        self._lock = threading.Lock()
        self._keys: tuple[str, ...] = ()
        self.set_keys(keys or [])

    def set_keys(self, keys: list[str]) -> None:
        """Replace every held key at once; all are checked before any is replaced."""
        checked = tuple(check_key(k) for k in keys)
        with self._lock:
            self._keys = checked

    def keys(self) -> list[str]:
        """The held keys, for verification only: never display or log them."""
        with self._lock:
            return list(self._keys)

    def fingerprints(self) -> list[str]:
        """The fingerprints of the held keys, safe to show."""
        return [fingerprint(k) for k in self.keys()]


@dataclass
class Trace:
    """One request the receiver answered, as shown on the traces page and in /traces.json."""

    received_at: str
    method: str
    path: str
    verdict: str
    status: int
    outcome: str | None = None
    action: str | None = None
    event_type: str | None = None
    event_id: str | None = None
    escalation_id: str | None = None
    sequence: int | str | None = None
    request_headers: dict[str, str] = field(default_factory=dict)
    body_excerpt: str | None = None
    response_body: str = ""
    fault: str | None = None  # the injected fault that shaped the answer (faults.py), e.g. "status 500 (fault 1 of 2)"
    id: int = 0

    def to_dict(self) -> dict:
        """The trace as plain JSON-ready data."""
        return asdict(self)


@dataclass(frozen=True)
class TracePage:
    """One page of the traces page: newest first, where it sits in the whole list, and the cursors either side."""

    traces: list[Trace]
    total: int
    start: int  # 0-based position of the first trace shown among all live traces, newest first
    newer_after: int | None  # page on with ?after= (None: this is the newest page)
    older_before: int | None  # page on with ?before= (None: nothing older)


def utc_now_iso() -> str:
    """The current UTC time, ISO 8601 with milliseconds and a Z."""
    return datetime.now(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class TraceStore:
    """Thread-safe, in-memory traces: newest first, dropped after `retention_seconds` or beyond `capacity`."""

    def __init__(self, retention_seconds: float = DEFAULT_RETENTION_SECONDS,
                 capacity: int = DEFAULT_TRACE_CAPACITY, clock=time.monotonic):
        self.retention_seconds = float(retention_seconds)
        self.capacity = capacity
        self.clock = clock
        self._lock = threading.Lock()
        self._items: deque[tuple[float, Trace]] = deque()
        self._next_id = 1

    def add(self, trace: Trace) -> Trace:
        """Keep a trace (numbering it) and drop what expired or overflows."""
        with self._lock:
            trace.id = self._next_id
            self._next_id += 1
            self._items.append((self.clock(), trace))
            while len(self._items) > self.capacity:
                self._items.popleft()
            self._expire()
        return trace

    def list(self) -> list[Trace]:
        """The live traces, newest first."""
        with self._lock:
            self._expire()
            return [trace for _, trace in reversed(self._items)]

    def page(self, before: int | None = None, after: int | None = None, limit: int = TRACE_PAGE_SIZE) -> TracePage:
        """A page of live traces, keyset on the trace number: older than `before`, newer than `after`, or the newest."""
        live = self.list()
        if after is not None:
            newer = sum(1 for trace in live if trace.id > after)
            start = max(0, newer - limit)
        elif before is not None:
            start = next((i for i, trace in enumerate(live) if trace.id < before), len(live))
        else:
            start = 0
        shown = live[start:start + limit]
        return TracePage(
            shown, len(live), start,
            shown[0].id if start > 0 and shown else None,
            shown[-1].id if start + len(shown) < len(live) and shown else None,
        )

    def _expire(self) -> None:
        cutoff = self.clock() - self.retention_seconds
        while self._items and self._items[0][0] <= cutoff:
            self._items.popleft()

