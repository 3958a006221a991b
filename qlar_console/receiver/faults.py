"""Faults on command: the script the reference receiver answers POST /webhook with, and dropping a connection.

A fault replaces the answer to the next `count` requests to /webhook, whatever they carry: the body is
read and the signature checked for the trace, but the event is not processed, so the sender's retry
is. `status` answers that HTTP status; `reset` drops the connection without any answer; `delayMs`
waits before answering (alone, the request is then processed and answered normally). When the count
is used up the receiver answers normally again.
"""
import logging
import socket
import struct
import threading
from dataclasses import dataclass

from ..errors import DomainError

log = logging.getLogger(__name__)

FIELDS = ("status", "count", "delayMs", "reset")
MAX_COUNT = 1000
MAX_DELAY_MS = 120_000
DROP_CONNECTION = "qlar.drop_connection"  # environ key: a callable the receiver's HTTPS handler puts there
EXAMPLE = '{"status": 500, "count": 2}'


class InvalidFault(DomainError):
    """A fault document the receiver cannot follow; the message names the field."""


@dataclass(frozen=True)
class Fault:
    """One fault: what to do with each of the next `count` requests."""

    status: int | None = None
    count: int = 1
    delay_ms: int = 0
    reset: bool = False

    def effect(self) -> str:
        """What each faulty request gets, e.g. "status 500 after 3000 ms" or "connection reset"."""
        what = "connection reset" if self.reset else f"status {self.status}" if self.status else "delay"
        if self.delay_ms and (self.reset or self.status):
            return f"{what} after {self.delay_ms} ms"
        return f"delay {self.delay_ms} ms" if what == "delay" else what

    def to_dict(self) -> dict:
        """The fault as the JSON document that sets it."""
        return {"status": self.status, "count": self.count, "delayMs": self.delay_ms, "reset": self.reset}


@dataclass(frozen=True)
class FaultTaken:
    """The fault one request gets: which of the script's `count` requests it is (1-based)."""

    fault: Fault
    number: int

    def describe(self) -> str:
        """The trace's line, e.g. "status 500 (fault 1 of 2)"."""
        return f"{self.fault.effect()} (fault {self.number} of {self.fault.count})"


def parse_fault(document) -> Fault:
    """The fault a JSON document asks for, or InvalidFault saying which field is wrong (nothing is changed)."""
    if not isinstance(document, dict):
        raise InvalidFault(f"The fault must be a JSON object such as {EXAMPLE}.")
    unknown = sorted(set(document) - set(FIELDS))
    if unknown:
        raise InvalidFault(f"Unknown field {unknown[0]!r}: a fault has {', '.join(FIELDS)}.", unknown[0])
    status = _whole(document, "status", 200, 599, None, " (1xx is not a final answer)")
    count = _whole(document, "count", 1, MAX_COUNT, 1)
    delay_ms = _whole(document, "delayMs", 0, MAX_DELAY_MS, 0)
    reset = document.get("reset", False)
    if reset is None:
        reset = False
    if not isinstance(reset, bool):
        raise InvalidFault(f"reset must be true or false, not {reset!r}.", "reset")
    if reset and status is not None:
        raise InvalidFault("status and reset cannot go together: a reset connection gets no answer.", "status")
    if status is None and not reset and not delay_ms:
        raise InvalidFault(f"A fault needs status, delayMs or reset, such as {EXAMPLE}.", "status")
    return Fault(status, count, delay_ms, reset)


def _whole(document: dict, name: str, low: int, high: int, default: int | None, why: str = "") -> int | None:
    """A whole-number field within [low, high], `default` when absent or null."""
    value = document.get(name)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise InvalidFault(f"{name} must be a whole number from {low} to {high}{why}, not {value!r}.", name)
    return value


class FaultScript:
    """The fault in force and how many requests it still applies to; thread-safe."""

    def __init__(self):
        self._lock = threading.Lock()
        self._fault: Fault | None = None
        self._remaining = 0

    def set(self, fault: Fault) -> None:
        """Put `fault` in force for its next `count` requests, replacing any other."""
        with self._lock:
            self._fault, self._remaining = fault, fault.count
        log.info("fault set: %s for the next %d request(s)", fault.effect(), fault.count)

    def clear(self) -> None:
        """No fault: requests are answered normally."""
        with self._lock:
            self._fault, self._remaining = None, 0
        log.info("faults cleared")

    def take(self) -> FaultTaken | None:
        """The fault for the request arriving now (using one of the count), or None to answer normally."""
        with self._lock:
            if self._fault is None:
                return None
            taken = FaultTaken(self._fault, self._fault.count - self._remaining + 1)
            self._remaining -= 1
            if not self._remaining:
                self._fault = None
            return taken

    def current(self) -> dict | None:
        """The script in force as JSON-ready data (with `remaining` and a sentence), None when there is none."""
        with self._lock:
            fault, remaining = self._fault, self._remaining
        if fault is None:
            return None
        return fault.to_dict() | {"remaining": remaining, "description": describe_script(fault, remaining)}


def describe_script(fault: Fault, remaining: int) -> str:
    """The script in force as a sentence, e.g. "The next 2 requests to /webhook are answered 500."."""
    who = "The next request to /webhook" if remaining == 1 else f"The next {remaining} requests to /webhook"
    be = "is" if remaining == 1 else "are"
    after = f" after {fault.delay_ms} ms" if fault.delay_ms else ""
    if fault.reset:
        return f"{who} {'has its' if remaining == 1 else 'have their'} connection dropped{after}, without an answer."
    if fault.status:
        return f"{who} {be} answered {fault.status}{after}, without being processed."
    return f"{who} {be} answered normally{after}."


def drop_connection(environ: dict) -> bool:
    """Drop the request's connection without an answer, through the receiver's HTTPS handler.

    False when the server cannot (e.g. Flask's test client): the caller answers instead.
    """
    drop = environ.get(DROP_CONNECTION)
    if drop is None:
        return False
    drop()
    return True


def abort_socket(sock: socket.socket) -> None:
    """Shut a connected socket both ways so the peer sees it end at once; its close then sends a TCP reset."""
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # the peer may have gone already
        pass
