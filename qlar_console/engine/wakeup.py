"""Waking workers the moment there is new work, so the happy path never waits for a poll.

SQLite (one machine): a datagram on an abstract Unix socket named after the database.
PostgreSQL (any number of machines): LISTEN/NOTIFY on one channel; the NOTIFY is sent in the
transaction that writes the work (outbox._announce), so it costs no extra connection.
Wake-ups are fire-and-forget: a producer never waits for a slow, stopped or absent worker (the
datagram is sent non-blocking and dropped when the worker's queue is full), and every worker
still polls now and then, so a lost wake-up only costs a little latency.
"""
import hashlib
import logging
import socket
import threading
from collections.abc import Callable

from sqlalchemy import make_url

log = logging.getLogger(__name__)

CHANNEL = "qlar_events"


class SocketWakeup:
    """Wake-ups between processes on one machine sharing a SQLite file."""

    def __init__(self, database_uri: str):
        digest = hashlib.sha256(database_uri.encode()).hexdigest()[:24]
        self.address = "\0qlar-dispatch-" + digest

    def notify(self) -> None:
        """Tell the listening worker, if any, that there is new work; never blocks."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            sock.setblocking(False)
            try:
                sock.sendto(b"1", self.address)
            except OSError:
                pass  # nobody listening, or its queue is full (stopped, slow): the poll picks the work up

    def listen(self, on_wake: Callable[[], None], stop: threading.Event) -> None:
        """Call on_wake for every notification until stop is set (one listener per machine and database)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(self.address)
            except OSError:
                log.info("another worker already listens for wake-ups on this database; polling instead")
                return
            sock.settimeout(0.5)
            while not stop.is_set():
                try:
                    sock.recv(64)
                except TimeoutError:
                    continue
                on_wake()


class PostgresWakeup:
    """Wake-ups through PostgreSQL LISTEN/NOTIFY, across machines."""

    def __init__(self, database_uri: str):
        url = make_url(database_uri).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)

    def notify(self) -> None:
        """Nothing to do: the NOTIFY was sent in the transaction that wrote the work."""

    def listen(self, on_wake: Callable[[], None], stop: threading.Event) -> None:
        """LISTEN until stop is set, reconnecting with backoff when the database goes away."""
        import psycopg  # here, not at the top: a SQLite worker never loads the PostgreSQL driver (~10 MB)

        backoff = 0.5
        while not stop.is_set():
            try:
                with psycopg.connect(self.dsn, autocommit=True, connect_timeout=5) as connection:
                    connection.execute(f"LISTEN {CHANNEL}")
                    backoff = 0.5
                    on_wake()  # catch up on anything written while we were not listening
                    while not stop.is_set():
                        for _ in connection.notifies(timeout=0.5):
                            on_wake()
            except psycopg.Error as exc:
                log.warning("LISTEN connection lost (%s); retrying in %.1fs", exc.__class__.__name__, backoff)
                stop.wait(backoff)
                backoff = min(backoff * 2, 10.0)


def wakeup_for(database_uri: str) -> SocketWakeup | PostgresWakeup:
    """The wake-up channel that suits the database."""
    if database_uri.startswith("postgresql"):
        return PostgresWakeup(database_uri)
    return SocketWakeup(database_uri)
