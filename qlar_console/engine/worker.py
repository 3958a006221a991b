"""The worker: one coordinator thread claims and records in batches; sender threads only send.

Embedded (default): threads of the web process, started on its first request (so a reloader's
parent never starts them) or by `flask qlar serve`. Standalone: `flask qlar worker`.

The coordinator is the only thread of a process that touches the outbox: each round it records the
tries the senders handed back (record.py) and claims due events (claim.py) in one transaction, and
hands them over (handoff.py), so writes never queue behind one another and SQLite's single writer is
never contended in-process. The senders (senders.py) sign and POST over kept-alive connections, each
endpoint holding at most `per_endpoint` of them, so one slow receiver cannot stall the others. New
work wakes the coordinator at once (wakeup.py); a short poll is only the fallback.
"""
import atexit
import logging
import os
import socket
import threading
import time
from datetime import timedelta

from flask import Flask

from ..clock import utcnow
from ..extensions import db
from . import claim as claims
from .alerter import Alerter
from .claim import Resolve
from .handoff import Handoff
from .health import HealthRules, expire_held
from .housekeeping import forget_worker, heartbeat, purge
from .record import Gone, Rules, record
from .retry import parse_duration, parse_schedule
from .send import Sender
from .senders import send_loop, try_once
from .wakeup import wakeup_for

log = logging.getLogger(__name__)

PURGE_EVERY_SECONDS = 3600
HEARTBEAT_EVERY_SECONDS = 5
MAX_QUEUED_PER_SENDER = 3  # claimed (queued or sending) per sender thread, so a sender never waits for the coordinator


class Dispatcher:
    """Delivers the outbox; one per app, kept in app.extensions["qlar_dispatcher"]."""

    def __init__(self):
        self.app: Flask | None = None
        self._coordinator: threading.Thread | None = None
        self._threads: list[threading.Thread] = []
        self._stop = threading.Event()
        self._wake = threading.Event()
        self._lock = threading.Lock()
        self._handoff: Handoff | None = None  # claimed work on its way through the senders (while started)
        self._alert_wake = threading.Event()
        self.thread_count = 0

    def init_app(self, app: Flask, *, resolve: Resolve, on_gone: Gone) -> None:
        """Read the delivery settings (failing fast on bad ones); `resolve` reads endpoints, `on_gone` handles 410."""
        cfg = app.config
        try:
            self.schedule = parse_schedule(cfg["RETRY_SCHEDULE"])
        except ValueError as exc:
            raise RuntimeError(f"QLAR_RETRY_SCHEDULE={cfg['RETRY_SCHEDULE']!r}: {exc}") from None
        self.timeout = float(cfg["TIMEOUT_SECONDS"])
        self.lease = float(cfg["LEASE_SECONDS"])
        self.slowdown = parse_duration(f"{cfg['SLOWDOWN_SECONDS']}s")
        self.poll = float(cfg["POLL_SECONDS"])
        if self.lease <= self.timeout:
            raise RuntimeError(
                f"QLAR_LEASE_SECONDS ({self.lease:g}) must be longer than QLAR_TIMEOUT_SECONDS ({self.timeout:g})."
            )
        self.resolve = resolve
        try:
            health = HealthRules(pause_after=parse_duration(str(cfg["PAUSE_AFTER"])),
                                 probe_max=float(cfg["PROBE_MAX_SECONDS"]))
            alert_schedule = parse_schedule(cfg["ALERT_RETRY_SCHEDULE"])
        except ValueError as exc:
            raise RuntimeError(f"QLAR_PAUSE_AFTER or QLAR_ALERT_RETRY_SCHEDULE: {exc}") from None
        self.rules = Rules(self.schedule, self.slowdown, on_gone, health)
        self.sender = Sender(timeout=self.timeout, extra_cas=list(cfg["TRUSTED_CAS"]),
                             allow_private=bool(cfg["ALLOW_PRIVATE_TARGETS"]))
        try:
            self.alerter = Alerter(smtp_url=cfg["SMTP_URL"], mail_from=cfg["MAIL_FROM"], sender=self.sender,
                                   resolve=resolve, schedule=alert_schedule, timeout=self.timeout,
                                   extra_cas=list(cfg["TRUSTED_CAS"]))
        except ValueError as exc:
            raise RuntimeError(str(exc)) from None
        self.wakeup = wakeup_for(cfg["SQLALCHEMY_DATABASE_URI"])
        self.app = app
        self.per_endpoint = self._endpoint_limit(int(cfg["DISPATCHER_THREADS"]))
        # A queued event waits behind at most (queued - 1) sends of its endpoint, each within the timeout: it must
        # be sent before its lease runs out, or another worker would send it too.
        self.queued = max(1, min(MAX_QUEUED_PER_SENDER, int(self.lease // self.timeout) - 1))
        app.extensions["qlar_dispatcher"] = self
        if cfg["WORKER"] == "embedded" and not app.testing:
            app.before_request(self.start)

    def _endpoint_limit(self, threads: int) -> int:
        """How many sends one endpoint may hold: QLAR_ENDPOINT_CONCURRENCY, else half the threads (at least 1)."""
        return int(self.app.config["ENDPOINT_CONCURRENCY"] or max(1, threads // 2))

    # -- lifecycle ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        return self._coordinator is not None and self._coordinator.is_alive()

    @property
    def process_id(self) -> str:
        """This worker process's name in heartbeats and leases: host:pid."""
        return f"{socket.gethostname()}:{os.getpid()}"

    def start(self, threads: int | None = None) -> None:
        """Start the coordinator, the sender threads and the wake-up listener (once; a second call does nothing)."""
        if self._coordinator:  # the embedded hook calls this on every request: no lock once started
            return
        with self._lock:
            if self._coordinator:
                return
            self._stop.clear()
            count = self.thread_count = threads or int(self.app.config["DISPATCHER_THREADS"])
            self.per_endpoint = self._endpoint_limit(count)
            self._handoff = handoff = Handoff(count, self.per_endpoint, count * self.queued,
                                              borrow=not self.app.config["ENDPOINT_CONCURRENCY"])
            self._threads = [threading.Thread(target=send_loop, name=f"qlar-sender-{i}", daemon=True,
                                              args=(handoff, self.sender, self._stop, self.poll, self._wake.set))
                             for i in range(count)]
            self._threads.append(threading.Thread(target=self.wakeup.listen, args=(self._wake.set, self._stop),
                                                  name="qlar-wakeup", daemon=True))
            self._threads.append(threading.Thread(target=self.alerter.run, name="qlar-alerts", daemon=True,
                                                  args=(self.app, self._stop, self._alert_wake, self.poll)))
            self._coordinator = threading.Thread(target=self._coordinate, name="qlar-coordinator", daemon=True)
            for thread in (*self._threads, self._coordinator):
                thread.start()
            atexit.register(self.stop)
        log.info("dispatcher started with %d sender threads", count)

    def stop(self, timeout: float | None = None) -> None:
        """Stop taking work, let in-flight sends finish and be recorded (up to the timeout), join the threads."""
        self.request_stop()
        if self._coordinator:
            self._coordinator.join(timeout if timeout is not None else self.timeout + 5)
        for thread in self._threads:
            thread.join(1)
        self._coordinator, self._threads = None, []

    def request_stop(self) -> None:
        """Ask the worker to stop after its current sends (a signal handler may call this)."""
        self._stop.set()
        self._wake.set()
        self._alert_wake.set()
        if self._handoff:
            self._handoff.wake_all()

    def notify(self) -> None:
        """New work: wake this process's coordinator at once, and other processes' through the wake-up channel."""
        self._wake.set()
        self.wakeup.notify()

    # -- the coordinator -----------------------------------------------------------------------

    def _coordinate(self) -> None:
        owner = f"{self.process_id}:{id(self) % 65536:04x}"  # two dispatchers in one process lease apart
        handoff = self._handoff
        last_purge = last_beat = 0.0
        failures = 0
        while True:
            stopping = self._stop.is_set()
            self._wake.clear()
            try:
                with self.app.app_context():
                    last_purge, last_beat = self._housekeeping(last_purge, last_beat)
                    looked = utcnow()
                    self._round(owner, handoff, stopping)
                    if stopping:
                        claims.unused([work.event_id for work in handoff.take_queued()], owner)
                        if not handoff.unfinished():
                            break
                    idle = not (stopping or handoff.unfinished())
                    wait = claims.seconds_until_next_due(self.poll, looked) if idle else self.poll
                failures = 0
            except Exception:  # a lost database must not kill the worker: back off and retry
                failures += 1
                wait = min(30.0, 0.5 * 2**failures)
                log.exception("dispatcher %s failed; retrying in %.1fs", owner, wait)
                if stopping and failures > 3:
                    break
            self._wake.wait(wait)  # the senders wake it when they run short of work or have enough to record
        self._shut_down(owner)

    def _round(self, owner: str, handoff: Handoff, stopping: bool) -> None:
        """Record the tries handed back and claim what the senders have room for, in one transaction (recorded
        first, so a later event of an escalation just delivered may be claimed at once)."""
        room, claimed, wide = (0, None, None) if stopping else handoff.room()
        claims.unused([work.event_id for work in handoff.take_returned()], owner)
        done = handoff.take_done(claiming=room > 0)
        try:
            if done and record(done, owner, self.rules, commit=False):
                self._alert_wake.set()
            works = claims.claim(owner, timedelta(seconds=self.lease), self.resolve, room,
                                 per_endpoint=self.per_endpoint * self.queued, in_flight=claimed,
                                 wide=wide) if room > 0 else []
            if room <= 0 and done:  # else claim() commits, the recorded tries with its leases
                db.session.commit()
        except Exception:
            db.session.rollback()
            handoff.give_back_done(done)  # kept for the next round
            raise
        handoff.queue(works)

    def _housekeeping(self, last_purge: float, last_beat: float) -> tuple[float, float]:
        """The periodic chores: the heartbeat and the trace purge."""
        now = time.monotonic()
        if now - last_beat >= HEARTBEAT_EVERY_SECONDS:
            heartbeat(self.process_id, self.thread_count)
            last_beat = now
        if now - last_purge >= PURGE_EVERY_SECONDS:
            if expire_held(self.app.config["TRACE_RETENTION_DAYS"], utcnow(), self.resolve):
                self._alert_wake.set()
            purge(self.app.config["TRACE_RETENTION_DAYS"])
            last_purge = now
        return last_purge, last_beat

    def _shut_down(self, owner: str) -> None:
        """Remove the heartbeat: this worker is gone."""
        try:
            with self.app.app_context():
                forget_worker(self.process_id)
        except Exception:  # stopping anyway; the stale heartbeat ages out (unsent leases expire)
            log.warning("could not remove the heartbeat of %s", self.process_id)
        self._handoff.take_queued()

    def send_alerts(self) -> int:
        """Send the alerts due now, inline in this thread (tests and the CLI); returns how many were tried."""
        with self.app.app_context():
            return self.alerter.send_due()

    def drain(self, limit: int = 1000) -> int:
        """Deliver what is due now, inline in this thread (tests and the CLI); returns how many tries were made."""
        count, owner = 0, f"{self.process_id}:{id(self) % 65536:04x}:inline"
        with self.app.app_context():
            while count < limit:
                works = claims.claim(owner, timedelta(seconds=self.lease), self.resolve, min(64, limit - count))
                if not works:
                    break
                record([try_once(work, self.sender) for work in works], owner, self.rules)
                count += len(works)
        return count
