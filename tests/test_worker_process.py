"""A standalone `flask qlar worker` killed mid-send loses nothing: the lease expires and it is sent again."""
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

from conftest import MASTER_KEY

from qlar_console.deliveries.models import Event
from qlar_console.escalations.service import create_escalation
from qlar_console.extensions import db

ROOT = Path(__file__).resolve().parent.parent


def _worker(app, tmp_path, receiver) -> subprocess.Popen:
    env = {
        **os.environ,
        "FLASK_APP": "app.py",
        "QLAR_INSTANCE_PATH": str(tmp_path),
        "DATABASE_URL": app.config["SQLALCHEMY_DATABASE_URI"],
        "QLAR_SECRET_KEY": "test-secret-key",
        "QLAR_MASTER_KEY": MASTER_KEY,
        "QLAR_CA_BUNDLE": str(receiver.ca_file),
        "QLAR_ALLOW_PRIVATE_TARGETS": "1",
        "QLAR_TIMEOUT_SECONDS": "3",
        "QLAR_LEASE_SECONDS": "4",
        "QLAR_RETRY_SCHEDULE": "200ms",
    }
    flask = Path(sys.executable).parent / "flask"
    return subprocess.Popen([str(flask), "qlar", "worker", "--threads", "1"], cwd=ROOT, env=env,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT)


def test_killed_worker_mid_send_is_resent_after_lease_expiry(delivery_app, receiver, tmp_path):
    killed = threading.Event()

    def respond(received):
        if len(receiver.requests) == 1:
            killed.wait(5)  # hold the first request open until its worker is dead
        return 200, {}, 0

    receiver.respond = respond
    worker = _worker(delivery_app, tmp_path, receiver)
    try:
        output = b""
        while b"Worker running" not in output:
            line = worker.stdout.readline()
            assert line, f"worker exited before starting: {output.decode()}"
            output += line
        with delivery_app.app_context():
            create_escalation("agent-123", "production")
        receiver.wait_for(1, timeout=10)
        worker.send_signal(signal.SIGKILL)  # mid-send: the receiver is still answering
        worker.wait(timeout=5)
    finally:
        killed.set()
        if worker.poll() is None:
            worker.kill()
            worker.wait()
        worker.stdout.close()
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
