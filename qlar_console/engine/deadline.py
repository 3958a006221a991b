"""The whole-try deadline of send.py: a watchdog thread per Sender cuts the socket of a try that outlives it.

A socket timeout bounds each recv, not the try: a receiver that drips its answer one byte at a time would
hold a sender for minutes. `Watchdog.arm()` starts a try's clock on the calling thread; the urllib3
connection classes below tell the armed try which socket they use (a dup of its descriptor, made once per
socket and closed with the connection, so a descriptor number the sender has since closed and reused is never
touched); at the deadline the watchdog shuts that socket down, which ends whatever connect, TLS handshake,
send or read blocks on it.
"""
import heapq
import itertools
import logging
import socket
import threading
import time

from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool

log = logging.getLogger(__name__)

SLACK = 0.05  # the watchdog wakes up to this late, so at most ~20 times a second whatever the try rate
IDLE_EXIT = 30.0  # a watchdog with nothing armed for this long ends; the next try starts it again
COMPACT_AT = 1024  # heap entries (nearly all of tries that ended) before they are dropped in one pass

_current = threading.local()  # .armed: the Try of this thread's send in progress, if any


class Try:
    """One armed try: its deadline and the socket to shut down when it passes."""

    __slots__ = ("expires", "expired", "done", "conn", "_sock", "_lock")

    def __init__(self, expires: float):
        self.expires = expires
        self.expired = False  # set (once) by the watchdog when the deadline passed during the try
        self.conn = None  # the urllib3 connection in use, closed after a cut so it never serves again
        self._sock: socket.socket | None = None  # the connection's dup of the socket in use
        self.done = False  # ended: the watchdog leaves it alone
        self._lock = threading.Lock()

    def left(self) -> float:
        """Seconds until the deadline (negative once it passed)."""
        return self.expires - time.monotonic()

    def watch(self, conn, spare: socket.socket) -> None:
        """Called by the connection on the sending thread: `spare` (its dup of the socket in use) is what to cut."""
        with self._lock:
            self.conn, self._sock = conn, spare
            if self.expired:  # the deadline passed before this socket existed (during connect)
                _shut(spare)

    def forget(self, spare: socket.socket | None) -> None:
        """Called by the connection on the sending thread before it closes `spare`: never cut it from now on."""
        with self._lock:
            if self._sock is spare:
                self._sock = None

    def cut(self) -> None:
        """Called by the watchdog at the deadline: shut the socket down unless the try already ended."""
        with self._lock:
            if self.done:
                return
            self.expired = True
            if self._sock is not None:
                _shut(self._sock)

    def finish(self) -> bool:
        """End the try (the watchdog no longer touches it); True when it was cut."""
        with self._lock:
            self.done = True
            self._sock = None
        if self.expired and self.conn is not None:
            self.conn.close()  # even if urllib3 already put it back in the pool: it reconnects before reuse
        self.conn = None
        return self.expired


def _shut(sock: socket.socket) -> None:
    """Shut a socket down both ways; the blocked call on it returns or raises in the sending thread."""
    try:
        sock.shutdown(socket.SHUT_RDWR)
    except OSError:  # not connected (yet), or the peer already went away: nothing blocks on it
        pass


class Watchdog:
    """One lazily started daemon thread per Sender holding a heap of armed deadlines."""

    def __init__(self, name: str = "qlar-deadline"):
        self.name = name
        self._heap: list[tuple[float, int, Try]] = []
        self._cond = threading.Condition(threading.Lock())
        self._order = itertools.count()
        self._running = False
        self._compact_at = COMPACT_AT

    def arm(self, seconds: float) -> Try:
        """Start the clock of one try on the calling thread; always pair it with disarm()."""
        armed = Try(time.monotonic() + seconds)
        with self._cond:
            heapq.heappush(self._heap, (armed.expires, next(self._order), armed))
            if len(self._heap) > self._compact_at:  # ended tries wait for their deadline: drop them in one pass
                self._heap = [entry for entry in self._heap if not entry[2].done]
                heapq.heapify(self._heap)
                self._compact_at = max(COMPACT_AT, 2 * len(self._heap))  # amortised O(1) per try
            if not self._running:
                self._running = True
                threading.Thread(target=self._run, name=self.name, daemon=True).start()
            elif self._heap[0][2] is armed:  # earlier than what the watchdog sleeps towards
                self._cond.notify()
        _current.armed = armed
        return armed

    def disarm(self, armed: Try) -> bool:
        """Stop the clock of the calling thread's try; True when its deadline passed and it was cut."""
        _current.armed = None
        return armed.finish()

    def _run(self) -> None:
        with self._cond:
            while True:
                if not self._heap:
                    if not self._cond.wait(IDLE_EXIT) and not self._heap:
                        self._running = False
                        return
                    continue
                now = time.monotonic()
                due = []
                while self._heap and self._heap[0][0] <= now:
                    due.append(heapq.heappop(self._heap)[2])  # most ended long ago: cut() skips them
                if not due:
                    self._cond.wait(self._heap[0][0] - now + SLACK)
                    continue
                self._cond.release()
                try:
                    for armed in due:
                        armed.cut()
                except Exception:  # never let the watchdog die: every later try would go unbounded
                    log.exception("cutting a try at its deadline failed")
                finally:
                    self._cond.acquire()


class _TimedConnection:
    """urllib3 connection mixin: tells the thread's armed try which socket it uses, connects within its time.

    Each socket gets one dup (`_spare`), made when it connects and closed when the connection closes (or
    connects again), so a kept-alive connection costs its tries no system call."""

    _spare: socket.socket | None = None
    _spare_fd = -1  # the descriptor number the spare duplicates

    def _new_conn(self):
        armed = getattr(_current, "armed", None)
        if armed is not None:  # the connect timeout is at most the time left
            left = max(armed.left(), 0.001)
            self.timeout = left if self.timeout is None else min(self.timeout, left)
        sock = super()._new_conn()
        self._drop_spare(armed)
        self._spare, self._spare_fd = socket.fromfd(sock.fileno(), sock.family, sock.type), sock.fileno()
        if armed is not None:
            armed.watch(self, self._spare)  # before the TLS handshake, which a receiver can drip too
        return sock

    def request(self, *args, **kwargs):
        armed = getattr(_current, "armed", None)
        sock = self.sock
        if armed is not None and sock is not None:  # a kept-alive connection from the pool
            if self._spare is None or sock.fileno() != self._spare_fd:  # not connected by _new_conn
                self._drop_spare(armed)
                self._spare, self._spare_fd = socket.fromfd(sock.fileno(), sock.family, sock.type), sock.fileno()
            armed.watch(self, self._spare)  # the same socket since wrapped in TLS: the same descriptor
        return super().request(*args, **kwargs)

    def close(self):
        self._drop_spare(getattr(_current, "armed", None))
        super().close()

    def _drop_spare(self, armed: Try | None) -> None:
        """Close the spare (the try watching it lets go first, so the watchdog never shuts a closed one)."""
        spare, self._spare, self._spare_fd = self._spare, None, -1
        if spare is not None:
            if armed is not None:
                armed.forget(spare)
            spare.close()


class TimedHTTPConnection(_TimedConnection, HTTPConnection):
    """Plain HTTP connection under the whole-try deadline."""


class TimedHTTPSConnection(_TimedConnection, HTTPSConnection):
    """HTTPS connection under the whole-try deadline."""


class TimedHTTPConnectionPool(HTTPConnectionPool):
    """Pool of TimedHTTPConnection."""

    ConnectionCls = TimedHTTPConnection


class TimedHTTPSConnectionPool(HTTPSConnectionPool):
    """Pool of TimedHTTPSConnection."""

    ConnectionCls = TimedHTTPSConnection


POOL_CLASSES = {"http": TimedHTTPConnectionPool, "https": TimedHTTPSConnectionPool}
