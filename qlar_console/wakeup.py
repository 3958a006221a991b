"""Waking dispatchers the moment there is new work, so the happy path never waits for a poll.

SQLite (one machine): a datagram on an abstract Unix socket named after the database.
PostgreSQL (any number of machines): LISTEN/NOTIFY on one channel.
Either way a worker still polls now and then, so a lost wake-up only costs a little latency.
"""
import hashlib
import logging
import socket
import threading
from collections.abc import Callable

import psycopg
from flask import Flask
from sqlalchemy import make_url, text

from .extensions import db

log = logging.getLogger(__name__)

CHANNEL = "qlar_events"


class SocketWakeup:
    """Wake-ups between processes on one machine sharing a SQLite file."""

    def __init__(self, app: Flask):
        digest = hashlib.sha256(app.config["SQLALCHEMY_DATABASE_URI"].encode()).hexdigest()[:24]
        self.address = "\0qlar-dispatch-" + digest

    def notify(self) -> None:
        """Tell the listening dispatcher, if any, that there is new work."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.sendto(b"1", self.address)
            except OSError:
                pass  # nobody listening: the workers' poll picks the work up

    def listen(self, on_wake: Callable[[], None], stop: threading.Event) -> None:
        """Call on_wake for every notification until stop is set (one listener per machine and database)."""
        with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(self.address)
            except OSError:
                log.info("another dispatcher already listens for wake-ups on this database; polling instead")
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

    def __init__(self, app: Flask):
        self.app = app
        url = make_url(app.config["SQLALCHEMY_DATABASE_URI"]).set(drivername="postgresql")
        self.dsn = url.render_as_string(hide_password=False)

    def notify(self) -> None:
        """NOTIFY every listening dispatcher (through the app's connection pool)."""
        try:
            with self.app.app_context(), db.engine.connect() as connection:
                connection.execute(text(f"NOTIFY {CHANNEL}"))
                connection.commit()
        except Exception:  # a wake-up is an optimisation: the poll still finds the work
            log.warning("could not NOTIFY the dispatchers", exc_info=True)

    def listen(self, on_wake: Callable[[], None], stop: threading.Event) -> None:
        """LISTEN until stop is set, reconnecting with backoff when the database goes away."""
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


def wakeup_for(app: Flask) -> SocketWakeup | PostgresWakeup:
    """The wake-up channel that suits the app's database."""
    if app.config["SQLALCHEMY_DATABASE_URI"].startswith("postgresql"):
        return PostgresWakeup(app)
    return SocketWakeup(app)
