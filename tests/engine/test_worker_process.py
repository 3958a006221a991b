"""A standalone `flask qlar worker`: killed mid-send it loses nothing (the lease expires and it is sent again),
and its process loads none of the web console."""
import os
import signal
import subprocess
import sys
import threading
import time

from workers import ROOT, start_worker, stop

from qlar_console.engine.models import Event
from qlar_console.escalations.service import create_escalation
from qlar_console.extensions import db


def test_killed_worker_mid_send_is_resent_after_lease_expiry(delivery_app, receiver, tmp_path):
    killed = threading.Event()

    def respond(received):
        if len(receiver.requests) == 1:
            killed.wait(5)  # hold the first request open until its worker is dead
        return 200, {}, 0

    receiver.respond = respond
    delivery_app.config.update(TIMEOUT_SECONDS=3, LEASE_SECONDS=4)  # the worker's settings
    worker = start_worker(delivery_app, tmp_path / "worker.log")
    try:
        with delivery_app.app_context():
            create_escalation("agent-123", "production")
        receiver.wait_for(1, timeout=10)
        worker.send_signal(signal.SIGKILL)  # mid-send: the receiver is still answering
        worker.wait(timeout=5)
    finally:
        killed.set()
        stop(worker)
    with delivery_app.app_context():
        event = db.session.scalars(db.select(Event)).one()
        assert event.status == "pending" and event.lease_owner is not None and event.attempt_count == 0
    started = time.monotonic()
    delivery_app.extensions["qlar_dispatcher"].start()
    first, second = receiver.wait_for(2, timeout=10)
    waited = time.monotonic() - started
    assert first.headers["Webhook-Id"] == second.headers["Webhook-Id"] and first.body == second.body
    assert waited < 8  # the lease (4s) expired, then the waiting dispatcher took it up
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        with delivery_app.app_context():
            if db.session.get(Event, event.id).status == "succeeded":
                break
        time.sleep(0.05)
    with delivery_app.app_context():
        assert db.session.get(Event, event.id).status == "succeeded"


def test_the_worker_process_loads_none_of_the_web_console(tmp_path):
    """`python -m qlar_console.worker` (what `flask qlar worker` becomes) imports the engine's needs only."""
    web_only = ["wtforms", "flask_wtf", "flask_smorest", "alembic", "prometheus_client", "flask_login",
                "marshmallow", "flask_limiter", "psycopg"]  # psycopg too: the database here is SQLite
    script = ("import sys, qlar_console.worker as w; w.create_worker_app(); "
              f"print(sorted(m for m in {web_only!r} if m in sys.modules))")
    env = {**os.environ, "QLAR_INSTANCE_PATH": str(tmp_path), "QLAR_SECRET_KEY": "k", "QLAR_ENV": "development",
           "DATABASE_URL": f"sqlite:///{tmp_path / 'qlar.db'}"}
    out = subprocess.run([sys.executable, "-c", script], env=env, capture_output=True, text=True, timeout=60,
                         cwd=ROOT, check=True)
    assert out.stdout.strip() == "[]", out.stdout + out.stderr
