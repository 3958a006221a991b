"""The event ids the receiver already processed, kept in a small SQLite file so de-duplication survives restarts.

For X-Qlar-Signature, which signs only the frozen body, this is the replay safety: a body captured and
posted again (even after a restart) is answered as a duplicate, never processed twice. Ids are kept for
`retention_seconds`, which must outlast the sender's retry schedule (the default one spans about 28 hours).
"""
import logging
import os
import sqlite3
import threading
import time
import weakref
from pathlib import Path

from .store import InvalidReceiverSetting

log = logging.getLogger(__name__)

DEFAULT_SEEN_DAYS = 7.0
MEMORY = ":memory:"
PURGE_EVERY_SECONDS = 60.0

SCHEMA = "CREATE TABLE IF NOT EXISTS seen_events (event_id TEXT PRIMARY KEY, seen_at REAL NOT NULL)"


def _create_private(path: Path) -> None:
    """Create the database file readable by its owner only (0600), if it does not exist yet."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        pass


class SeenEvents:
    """Processed event ids, atomically claimed; on disk when `path` is given, else in memory (lost at exit)."""

    def __init__(self, path: str | Path | None = None, retention_seconds: float = DEFAULT_SEEN_DAYS * 86400,
                 clock=time.time):
        self.path = Path(path) if path else None
        self.retention_seconds = float(retention_seconds)
        self.clock = clock
        self._lock = threading.Lock()
        self._purged_at = float("-inf")
        try:
            self._db = self._open()
        except (OSError, sqlite3.Error) as exc:
            raise InvalidReceiverSetting(f"Cannot keep processed event ids in {self.path}: "
                                         f"{getattr(exc, 'strerror', None) or exc}.") from None
        weakref.finalize(self, self._db.close)  # a receiver app dropped without close() leaves no open file

    def _open(self) -> sqlite3.Connection:
        if self.path:
            _create_private(self.path)
        connection = sqlite3.connect(str(self.path or MEMORY), timeout=10, isolation_level=None,
                                     check_same_thread=False)
        if self.path:  # WAL: a commit survives a crash of the process without an fsync per request
            connection.execute("PRAGMA journal_mode=WAL")
            connection.execute("PRAGMA synchronous=NORMAL")
        connection.execute(SCHEMA)
        return connection

    @property
    def durable(self) -> bool:
        """True when the ids outlive the process."""
        return self.path is not None

    def claim(self, event_id: str) -> bool:
        """Atomically mark an id as processed; False when it already was (within the retention)."""
        now = self.clock()
        with self._lock:
            self._purge(now)
            inserted = self._db.execute(
                "INSERT INTO seen_events (event_id, seen_at) VALUES (?, ?) ON CONFLICT (event_id) DO UPDATE "
                "SET seen_at = excluded.seen_at WHERE seen_events.seen_at <= ?",
                (event_id, now, now - self.retention_seconds)).rowcount
        return inserted == 1

    def release(self, event_id: str) -> None:
        """Forget an id whose processing failed, so the sender's retry is processed."""
        with self._lock:
            self._db.execute("DELETE FROM seen_events WHERE event_id = ?", (event_id,))

    def count(self) -> int:
        """How many ids are held (expired ones included until the next purge)."""
        with self._lock:
            return self._db.execute("SELECT count(*) FROM seen_events").fetchone()[0]

    def close(self) -> None:
        """Close the database connection."""
        with self._lock:
            self._db.close()

    def _purge(self, now: float) -> None:
        """Drop ids past the retention, at most once a minute (the caller holds the lock)."""
        if now - self._purged_at < PURGE_EVERY_SECONDS:
            return
        self._purged_at = now
        dropped = self._db.execute("DELETE FROM seen_events WHERE seen_at <= ?",
                                   (now - self.retention_seconds,)).rowcount
        if dropped:
            log.info("receiver forgot %d processed event ids older than %g s", dropped, self.retention_seconds)
