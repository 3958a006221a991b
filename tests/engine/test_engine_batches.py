"""The batched engine's edges: endpoint limits inside a batch, escalations straddling a batch, a worker
killed mid-batch, 410 inside a batch, and a stopped worker that must never block a producer."""
import signal
import threading
import time
from collections import defaultdict

import pytest
from apps import point_webhook
from receiver import Receiver
from workers import start_worker, stop

from qlar_console.audit.models import AuditEntry
from qlar_console.engine.models import Attempt, Event
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.settings.service import get_settings

ENV = ("agent-123", "production")


def _statuses(app) -> dict[str, int]:
    with app.app_context():
        rows = db.session.execute(db.select(Event.status, db.func.count()).group_by(Event.status)).all()
        db.session.commit()
    return dict(rows)


def _wait_until(predicate, timeout=15.0):
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def _order_by_escalation(received) -> dict[str, list[int]]:
    seen = defaultdict(list)
    for r in received:
        if r.json["sequence"] not in seen[r.json["escalation"]["id"]]:
            seen[r.json["escalation"]["id"]].append(r.json["sequence"])
    return seen


def test_a_slow_endpoint_over_its_limit_does_not_hold_up_another(delivery_app, receiver, tmp_path):
    """One endpoint answering slowly keeps its share of the senders; the other endpoint's events flow past it."""
    (tmp_path / "fast").mkdir()
    fast = Receiver(tmp_path / "fast", ca=receiver.ca)
    try:
        receiver.respond = lambda r: (200, {}, 0.6)
        point_webhook(delivery_app, fast.url, "staging")
        delivery_app.config["ENDPOINT_CONCURRENCY"] = 1
        dispatcher = delivery_app.extensions["qlar_dispatcher"]
        with delivery_app.app_context():
            for _ in range(4):
                lifecycle.create_escalation(*ENV)
            for _ in range(6):
                lifecycle.create_escalation("agent-123", "staging")
        dispatcher.start(threads=2)
        fast.wait_for(6, timeout=10)
        slow = [r.at for r in receiver.wait_for(4, timeout=10)]
        # the slow endpoint held one sender at a time: each of its requests came after the last one's answer
        assert all(later - earlier >= 0.6 * 0.95 for earlier, later in zip(slow, slow[1:], strict=False)), slow
        assert fast.requests[-1].at < slow[-1]  # the other endpoint's six flowed past the slow one's four
    finally:
        fast.close()


def test_events_of_one_escalation_straddling_a_batch_keep_their_order(delivery_app, receiver):
    """A batch never holds two events of one escalation: each escalation arrives in sequence order."""
    with delivery_app.app_context():
        for _ in range(5):
            esc = lifecycle.create_escalation(*ENV).id
            lifecycle.claim(esc, "qa")
            lifecycle.release(esc)
            lifecycle.claim(esc, "qa2")
            lifecycle.complete(esc, "done")
    tries = delivery_app.extensions["qlar_dispatcher"].drain(limit=100)
    assert _statuses(delivery_app) == {"succeeded": 25}
    with delivery_app.app_context():
        failed = db.session.scalar(db.select(db.func.count()).where(Attempt.response_status.is_(None)))
    # one try per event, and another only after a try that got no answer (a loaded machine may time one out)
    assert tries == 25 + failed, (tries, failed)
    orders = _order_by_escalation(receiver.requests)
    assert len(orders) == 5 and all(seq == [1, 2, 3, 4, 5] for seq in orders.values())


def test_a_410_inside_a_batch_switches_the_webhook_off_once(delivery_app, receiver):
    """Every event of a batch answered 410 fails without retries; the webhook is switched off once, audited once."""
    receiver.respond = lambda r: (410, {}, 0)
    with delivery_app.app_context():
        version = get_settings(*ENV).version
        for _ in range(4):
            lifecycle.create_escalation(*ENV)
    delivery_app.extensions["qlar_dispatcher"].drain(limit=100)
    assert _statuses(delivery_app) == {"failed": 4}
    assert len(receiver.requests) == 4
    with delivery_app.app_context():
        settings = get_settings(*ENV)
        assert not settings.webhook_enabled and "410 Gone" in settings.disabled_reason
        assert settings.version == version + 1
        assert db.session.scalar(db.select(db.func.count()).where(AuditEntry.action == "webhook.disabled")) == 1
        lifecycle.create_escalation(*ENV)
    assert delivery_app.extensions["qlar_dispatcher"].drain(limit=10) == 0  # switched off: nothing more is sent
    assert len(receiver.requests) == 4


@pytest.mark.long(20)
def test_a_worker_killed_mid_batch_loses_nothing_and_keeps_order(delivery_app, receiver, tmp_path):
    """SIGKILL while a batch is in flight: its leases expire, another worker sends them, order holds."""
    receiver.respond = lambda r: (200, {}, 0.3)
    with delivery_app.app_context():
        for _ in range(6):
            esc = lifecycle.create_escalation(*ENV).id
            lifecycle.claim(esc, "qa")
            lifecycle.complete(esc, "done")
    first = start_worker(delivery_app, tmp_path / "first.log", threads=4, ENDPOINT_CONCURRENCY=4)
    try:
        receiver.wait_for(2)
        first.send_signal(signal.SIGKILL)
    finally:
        stop(first)
    second = start_worker(delivery_app, tmp_path / "second.log", threads=4, ENDPOINT_CONCURRENCY=4)
    try:
        receiver.respond = lambda r: (200, {}, 0)
        _wait_until(lambda: _statuses(delivery_app) == {"succeeded": 18}, timeout=30)
    finally:
        second.terminate()
        stop(second)
    orders = _order_by_escalation(receiver.requests)
    assert all(seq == [1, 2, 3] for seq in orders.values()) and len(orders) == 6


def _stop_outside_a_write(worker, app) -> None:
    """SIGSTOP the worker, again until it is not caught inside a write transaction (its heartbeat): on SQLite a
    process stopped there holds the file's lock, which is SQLite's nature, not the wake-up channel under test."""
    for _ in range(50):
        worker.send_signal(signal.SIGSTOP)
        with app.app_context():
            if db.engine.dialect.name != "sqlite":
                return
            with db.engine.connect() as connection:
                try:
                    connection.exec_driver_sql("PRAGMA busy_timeout = 200")
                    connection.exec_driver_sql("BEGIN IMMEDIATE")
                    connection.exec_driver_sql("ROLLBACK")
                    return
                except Exception:  # locked by the stopped worker: let it finish the write, stop it again
                    connection.rollback()
        worker.send_signal(signal.SIGCONT)
        time.sleep(0.05)
    raise AssertionError("the worker held the database's write lock at every stop")


def test_a_stopped_worker_never_blocks_a_producer(delivery_app, receiver, tmp_path):
    """With the worker process stopped (SIGSTOP), transitions still commit; once resumed it catches up."""
    worker = start_worker(delivery_app, tmp_path / "worker.log", threads=2)
    try:
        _stop_outside_a_write(worker, delivery_app)
        done = threading.Event()

        def produce():
            with delivery_app.app_context():
                for _ in range(100):  # far more wake-ups than a stopped listener's socket queue holds
                    lifecycle.create_escalation(*ENV)
            done.set()

        threading.Thread(target=produce, daemon=True).start()
        assert done.wait(60), "a transition hung waiting for the stopped worker"
        assert _statuses(delivery_app) == {"pending": 100}
        worker.send_signal(signal.SIGCONT)
        _wait_until(lambda: _statuses(delivery_app) == {"succeeded": 100}, timeout=30)
    finally:
        worker.send_signal(signal.SIGCONT)
        worker.terminate()
        stop(worker)
