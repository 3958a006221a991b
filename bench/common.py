"""Shared bench plumbing: a scratch app, a backlog in bulk, the bench receiver, percentiles."""
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from pathlib import Path

import trustme
from cryptography.fernet import Fernet

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from qlar_console import create_app  # noqa: E402
from qlar_console.auth.models import User  # noqa: E402
from qlar_console.clock import utcnow  # noqa: E402
from qlar_console.engine.fanout import destinations  # noqa: E402
from qlar_console.engine.models import PENDING, Event  # noqa: E402
from qlar_console.engine.outbox import new_event_id  # noqa: E402
from qlar_console.escalations.events import event_body  # noqa: E402
from qlar_console.escalations.models import Escalation  # noqa: E402
from qlar_console.extensions import db  # noqa: E402
from qlar_console.settings.endpoints import EndpointChange, add_endpoint  # noqa: E402
from qlar_console.settings.service import SettingsChange, add_agent, get_settings, save_settings  # noqa: E402

MASTER_KEY = Fernet.generate_key().decode()
SCRATCH = Path(tempfile.mkdtemp(prefix="qlar-bench-"))
FLASK = str(Path(sys.executable).parent / "flask")
THREADS = 4  # the dispatcher's concurrency in every comparison


def figure(name: str, value) -> None:
    """Print one figure as `name: value`."""
    print(f"{name}: {value}", flush=True)


def percentile(values: list[float], share: float) -> float:
    """The value at `share` (0..1) of the sorted values."""
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(len(ordered) * share))]


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def rss_mb(pid: int) -> float:
    """A process's resident memory now (VmRSS), in MB."""
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def make_app(name: str, url: str | None = None, **config):
    """A fresh console on its own database (SQLite in the scratch folder unless url), agent-123 ready."""
    instance = SCRATCH / name
    instance.mkdir(exist_ok=True)
    app = create_app({"TESTING": True, "SECRET_KEY": "bench", "MASTER_KEY": MASTER_KEY, "INSTANCE_PATH": str(instance),
                      "SQLALCHEMY_DATABASE_URI": url or f"sqlite:///{instance / 'qlar.db'}", "WTF_CSRF_ENABLED": False,
                      "ALLOW_PRIVATE_TARGETS": True, **config})
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.drop_all()
        db.create_all()
        add_agent("agent-123", ["production"], "bench")
        user = User(username="editor", role="editor")
        user.set_password("bench password")
        db.session.add(user)
        db.session.commit()
    return app


def point_webhook(app, url: str) -> None:
    """Enable agent-123 · production's webhook at url."""
    with app.app_context():
        settings = get_settings("agent-123", "production")
        save_settings(settings, SettingsChange(webhook_enabled=True, webhook_url=url),
                      expected_version=settings.version, actor="bench")


def add_endpoints(app, url: str, count: int) -> None:
    """Give agent-123 · production `count` additional endpoints at url, each hearing every event type."""
    with app.app_context():
        settings = get_settings("agent-123", "production")
        for i in range(count):
            add_endpoint(settings, EndpointChange(url=url, description=f"bench {i + 2}"), actor="bench")


def backlog(app, count: int) -> None:
    """Insert `count` pending `created` events (one escalation each) in bulk, as Core inserts: a row at the
    primary endpoint and one at each additional endpoint (same body and webhook-id), as the outbox writes them."""
    now = utcnow()
    esc = Escalation(agent_id="agent-123", environment="production", status="Pending", urgency_level="high",
                     topic="refund", area="payment", reason="User is angry and demands immediate refund",
                     trigger_condition="Angry Customer Escalation", last_sequence=1)  # one template, renamed per row
    columns = ("agent_id", "environment", "status", "urgency_level", "topic", "area", "reason", "trigger_condition",
               "last_sequence")
    fixed = {c: getattr(esc, c) for c in columns} | {"created_at": now, "updated_at": now}
    escalations, events = [], []
    for i in range(count):
        esc.id, esc.thread_id = f"esc-b{i:07d}", f"t-{i}"
        event_id = new_event_id()
        escalations.append(fixed | {"id": esc.id, "thread_id": esc.thread_id})
        events.append(dict(id=event_id, escalation_id=esc.id, agent_id="agent-123", environment="production",
                           endpoint_id=None, message_id=None,
                           event_type="created", sequence=1, body=event_body(event_id, "created", esc, 1, now),
                           created_at=now, status=PENDING, tries=0, attempt_count=0, next_attempt_at=now))
    with app.app_context():
        primary, copies = destinations("agent-123", "production", "created")
        for event in events:
            event["endpoint_id"] = primary
        events += [event | {"id": new_event_id(), "endpoint_id": copy, "message_id": event["id"]}
                   for copy in copies for event in events]
        for start in range(0, count, 5000):
            db.session.execute(Escalation.__table__.insert(), escalations[start:start + 5000])
        for start in range(0, len(events), 5000):
            db.session.execute(Event.__table__.insert(), events[start:start + 5000])
        db.session.commit()
        if db.engine.dialect.name == "sqlite":  # start from a checkpointed file, as a backlog that built up slowly
            db.session.execute(db.text("PRAGMA wal_checkpoint(TRUNCATE)"))
            db.session.commit()


def pending(app) -> int:
    """How many events wait for delivery."""
    with app.app_context():
        count = db.session.scalar(db.select(db.func.count()).where(Event.status == PENDING))
        db.session.commit()
        return count


class BenchReceiver:
    """The bench receiver's processes (bench/receiver.py) and their arrival logs."""

    def __init__(self, delay_ms: float = 0, processes: int = 2):
        self.ca = trustme.CA()
        folder = Path(tempfile.mkdtemp(prefix="rx-", dir=SCRATCH))
        self.ca_file, cert, key = folder / "ca.pem", folder / "cert.pem", folder / "key.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        issued = self.ca.issue_cert("127.0.0.1")
        issued.cert_chain_pems[0].write_to_path(str(cert))
        issued.private_key_pem.write_to_path(str(key))
        self.port = free_port()
        self.log = folder / "arrivals"
        self._read: dict[Path, int] = {}  # bytes of each log already read into _seen
        self._seen: dict[tuple[str, str], float] = {}
        self.url = f"https://127.0.0.1:{self.port}/webhook"
        self.process = subprocess.Popen([sys.executable, str(ROOT / "bench" / "receiver.py"), str(self.port),
                                         str(cert), str(key), str(self.log), str(delay_ms), str(processes)],
                                        start_new_session=True)
        deadline = time.monotonic() + 10
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                assert time.monotonic() < deadline, "bench receiver did not start"
                time.sleep(0.05)

    def arrivals(self) -> dict[str, float]:
        """webhook-id -> first arrival (Unix time) at any endpoint, from every receiver process's log."""
        seen: dict[str, float] = {}
        for (event_id, _endpoint), at in self.deliveries().items():
            seen[event_id] = min(at, seen.get(event_id, at))
        return seen

    def deliveries(self) -> dict[tuple[str, str], float]:
        """(webhook-id, X-Qlar-Endpoint) -> first arrival (Unix time): one entry per event x endpoint.

        Each call reads only what the logs gained since the last (a bench polls while the dispatcher runs,
        and must not take its CPU re-reading every earlier arrival)."""
        for path in self.log.parent.glob(self.log.name + ".*"):
            with open(path, "rb") as log:
                log.seek(self._read.get(path, 0))
                text = log.read()
            whole = text[:text.rfind(b"\n") + 1]  # whole lines: the last may be half written
            self._read[path] = self._read.get(path, 0) + len(whole)
            for line in whole.decode().splitlines():
                event_id, endpoint, at = line.split()
                self._seen.setdefault((event_id, endpoint), float(at))
        return dict(self._seen)

    def close(self) -> None:
        os.killpg(self.process.pid, signal.SIGTERM)
        self.process.wait(timeout=10)


@contextmanager
def bench_receiver(delay_ms: float = 0, processes: int = 2):
    """A running bench receiver for the block."""
    receiver = BenchReceiver(delay_ms, processes)
    try:
        yield receiver
    finally:
        receiver.close()


def cli_env(instance: str, url: str, ca_bundle: str = "", **env) -> dict:
    """The environment of a `flask ...` child on that instance folder and database; extra settings as QLAR_*."""
    return {**os.environ, "FLASK_APP": "app.py", "QLAR_INSTANCE_PATH": str(instance), "DATABASE_URL": url,
            "QLAR_SECRET_KEY": "bench", "QLAR_MASTER_KEY": MASTER_KEY, "QLAR_CA_BUNDLE": ca_bundle,
            "QLAR_ALLOW_PRIVATE_TARGETS": "1", **{f"QLAR_{k}": str(v) for k, v in env.items()}}


def app_env(app, **env) -> dict:
    """cli_env for a bench app's instance, database and CA bundle."""
    return cli_env(app.instance_path, app.config["SQLALCHEMY_DATABASE_URI"], app.config["CA_BUNDLE"] or "", **env)


def run_cli(env: dict, *args: str, timeout: float = 600) -> str:
    """Run `flask ARGS...` to completion in the checkout; returns its output (stdout and stderr), fails loudly."""
    done = subprocess.run([FLASK, *args], cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                          text=True, timeout=timeout)
    assert done.returncode == 0, f"flask {' '.join(args)} exited {done.returncode}:\n{done.stdout}"
    return done.stdout


def worker_process(app, threads: int, log: Path, **env) -> subprocess.Popen:
    """A `flask qlar worker` on the app's database; returns once it runs."""
    out = open(log, "wb")  # noqa: SIM115 - the child keeps it
    process = subprocess.Popen([FLASK, "qlar", "worker", "--threads", str(threads)], cwd=ROOT, env=app_env(app, **env),
                               stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while b"Worker running" not in log.read_bytes():
        assert process.poll() is None and time.monotonic() < deadline, log.read_text()
        time.sleep(0.05)
    return process
