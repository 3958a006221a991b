"""The dispatcher: worker threads that claim due events under a lease and deliver them signed.

Embedded (default): threads of the web process, started on its first request (so a reloader's
parent never starts them) or by `flask qlar serve`. Standalone: `flask qlar worker`.
New events wake the workers at once: in-process through an Event, across processes through the
database's wake-up channel (wakeup.py); a short poll is only the fallback.
"""
import atexit
import logging
import os
import socket
import threading
import time
from collections import Counter
from contextlib import nullcontext
from datetime import timedelta

from flask import Flask

from .deliveries import service as deliveries
from .deliveries.policy import parse_duration, parse_schedule
from .deliveries.sender import Sender
from .wakeup import wakeup_for

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 3600
HEARTBEAT_EVERY_SECONDS = 5


class Dispatcher:
    """Delivers the outbox; one per app, kept in app.extensions["qlar_dispatcher"]."""

    def __init__(self, app: Flask | None = None):
        self.app: Flask | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._claim_lock = threading.Lock()  # claims take turns within a process (and guard _inflight)
        self._inflight: Counter = Counter()  # (agent, environment) -> sends in progress in this process
        if app is not None:
            self.init_app(app)

    def init_app(self, app: Flask) -> None:
        """Read the delivery settings (failing fast on bad ones) and register the embedded start."""
        cfg = app.config
        self.schedule = parse_schedule(cfg["RETRY_SCHEDULE"])
        self.timeout = float(cfg["TIMEOUT_SECONDS"])
        self.lease = float(cfg["LEASE_SECONDS"])
        self.slowdown = parse_duration(f"{cfg['SLOWDOWN_SECONDS']}s")
        self.poll = float(cfg["POLL_SECONDS"])
        if self.lease <= self.timeout:
            raise RuntimeError(
                f"QLAR_LEASE_SECONDS ({self.lease:g}) must be longer than QLAR_TIMEOUT_SECONDS ({self.timeout:g})."
            )
        self.sender = Sender(timeout=self.timeout, extra_cas=deliveries.trusted_cas(app),
                             allow_private=bool(cfg["ALLOW_PRIVATE_TARGETS"]))
        self.wakeup = wakeup_for(app)
        # SQLite has one writer at a time, and a waiting writer sleeps in steps of up to 100 ms: the
        # threads take turns in-process instead. PostgreSQL takes concurrent writes as they come.
        sqlite = cfg["SQLALCHEMY_DATABASE_URI"].startswith("sqlite")
        self._record_lock = self._claim_lock if sqlite else nullcontext()
        self.app = app
        self.endpoint_limit = self._endpoint_limit(int(cfg["DISPATCHER_THREADS"]))
        app.extensions["qlar_dispatcher"] = self
        if cfg["WORKER"] == "embedded" and not app.testing:
            app.before_request(self._start_embedded)

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return any(t.is_alive() for t in self._threads)

    def start(self, threads: int | None = None) -> None:
        """Start the worker threads (once; a second call does nothing)."""
        with self._lock:
            if self._threads:
                return
            self._stop.clear()
            count = self.thread_count = threads or int(self.app.config["DISPATCHER_THREADS"])
            self.endpoint_limit = self._endpoint_limit(count)
            self._threads = [threading.Thread(target=self._work, args=(i,), name=f"qlar-dispatcher-{i}", daemon=True)
                             for i in range(count)]
            self._threads.append(threading.Thread(
                target=self.wakeup.listen, args=(self._wake.set, self._stop), name="qlar-dispatcher-wake", daemon=True))
            for thread in self._threads:
                thread.start()
            atexit.register(self.stop)
        log.info("dispatcher started with %d worker threads", count)

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking work, let in-flight sends finish (up to the timeout), and join the threads."""
        self.request_stop()
        for thread in self._threads:
            thread.join(timeout if timeout is not None else self.timeout + 1)
        self._threads = []

    def _endpoint_limit(self, threads: int) -> int:
        """How many threads one endpoint may hold: QLAR_ENDPOINT_CONCURRENCY, else half (at least one)."""
        return int(self.app.config["ENDPOINT_CONCURRENCY"] or max(1, threads // 2))

    def _start_embedded(self) -> None:
        if not self._threads:
            self.start()

    # -- waking ------------------------------------------------------------------------------

    def notify(self) -> None:
        """New work: wake this process's workers at once, and other processes' through the database's channel."""
        self._wake.set()
        self.wakeup.notify()

    def request_stop(self) -> None:
        """Ask the workers to stop after their current send (a signal handler may call this)."""
        self._stop.set()
        self._wake.set()

    # -- work --------------------------------------------------------------------------------

    @property
    def process_id(self) -> str:
        """This dispatcher process's name in heartbeats and leases: host:pid."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def _work(self, index: int) -> None:
        worker_id = f"{self.process_id}:{index}"
        last_purge = last_beat = 0.0
        failures = 0
        while not self._stop.is_set():
            try:
                with self.app.app_context():
                    if index == 0:
                        last_purge, last_beat = self._housekeeping(last_purge, last_beat)
                    if self.run_one(worker_id):
                        failures = 0
                        continue
                    wait = deliveries.seconds_until_next_due(self.poll)
            except Exception:  # a lost database must not kill the worker: back off and retry
                failures += 1
                wait = min(30.0, 0.5 * 2**failures)
                log.exception("dispatcher worker %s failed; retrying in %.1fs", worker_id, wait)
            self._wake.wait(wait)
            self._wake.clear()
        if index == 0:
            try:
                with self.app.app_context():
                    deliveries.forget_worker(self.process_id)
            except Exception:  # stopping anyway; the stale heartbeat simply ages out
                log.warning("could not remove the heartbeat of %s", self.process_id)

    def _housekeeping(self, last_purge: float, last_beat: float) -> tuple[float, float]:
        """Thread 0's periodic chores: the heartbeat and the trace purge."""
        now = time.monotonic()
        if now - last_beat >= HEARTBEAT_EVERY_SECONDS:
            deliveries.heartbeat(self.process_id, self.thread_count)
            last_beat = now
        if now - last_purge >= PURGE_EVERY_SECONDS:
            deliveries.purge()
            last_purge = now
        return last_purge, last_beat

    def run_one(self, worker_id: str = "inline") -> bool:
        """Claim one due event and deliver it; False when nothing is due (needs an app context).

        No endpoint gets more than `endpoint_limit` of this process's threads, so one slow receiver
        cannot hold up the others' events.
        """
        with self._claim_lock:
            busy = [pair for pair, count in self._inflight.items() if count >= self.endpoint_limit]
            work = deliveries.claim_next(worker_id, timedelta(seconds=self.lease), skip_endpoints=busy)
            if work is None:
                return False
            self._inflight[work.endpoint] += 1
        try:
            finished = deliveries.deliver(work, worker_id, self.sender, self.schedule, self.slowdown,
                                          self._record_lock)
        finally:
            with self._claim_lock:
                self._inflight[work.endpoint] -= 1
        if finished:  # a later event of the same escalation may wait for this one: this process takes it up
            self._wake.set()
        return True

    def drain(self, limit: int = 1000) -> int:
        """Deliver everything due now, inline (tests and the CLI); returns how many tries were made."""
        count = 0
        while count < limit and self.run_one():
            count += 1
        return count

