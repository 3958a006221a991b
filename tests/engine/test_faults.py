"""Fault tests on PostgreSQL with real worker processes: nothing is lost, order holds, duplicates are bounded.

Each prints its figures (events, lost, duplicates, order violations, time to drain) at the end of the run.
"""
import random
import time
from collections import defaultdict
from pathlib import Path

import pytest
from apps import dispose, make_app, point_webhook, postgres_url
from sqlalchemy import func, select
from workers import start_worker, stop, wait_running

from qlar_console.engine.fanout import destinations
from qlar_console.engine.models import PENDING, Event
from qlar_console.escalations import simulate
from qlar_console.extensions import db

SCHEDULE = "300ms,300ms,500ms,1s,1s,2s,2s,2s,2s,2s"


@pytest.fixture
def pg_app(tmp_path, receiver):
    """Factory: an app on PostgreSQL whose agent-123 · production webhook points at the receiver."""
    apps = []

    def make(url=None):
        apps.append(_pg_app(tmp_path, receiver, url))
        return apps[-1]

    yield make
    for app in apps:
        dispose(app)


def _pg_app(tmp_path, receiver, url=None):
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=url or postgres_url(), CA_BUNDLE=str(receiver.ca_file),
                   ALLOW_PRIVATE_TARGETS=True, RETRY_SCHEDULE=SCHEDULE, TIMEOUT_SECONDS=2, LEASE_SECONDS=4,
                   SLOWDOWN_SECONDS=0.5)
    point_webhook(app, receiver.url)
    return app


def run_flows(app, count: int, seed: int = 1) -> list[str]:
    """Create `count` full flows now; returns their escalation ids."""
    rng = random.Random(seed)
    with app.app_context():
        return [simulate.run_flow("agent-123", "production", rng) for _ in range(count)]


def wait_drained(app, timeout: float) -> float:
    """Seconds until no event is pending (fails after timeout)."""
    started = time.monotonic()
    while True:
        with app.app_context():
            pending = db.session.scalar(select(func.count()).where(Event.status == PENDING))
            db.session.commit()
        if not pending:
            return time.monotonic() - started
        assert time.monotonic() - started < timeout, f"{pending} events still pending after {timeout}s"
        time.sleep(0.2)


def audit(app, receiver) -> dict:
    """Compare what the database wrote with what the receiver got: lost, duplicates, order violations."""
    with app.app_context():
        events = db.session.execute(select(Event.id, Event.escalation_id, Event.sequence)).all()
    arrivals = [r.headers["Webhook-Id"] for r in receiver.requests if r.path == "/webhook"]
    first_seen, order = {}, defaultdict(list)
    for event_id in arrivals:
        first_seen.setdefault(event_id, len(first_seen))
    by_id = {e.id: e for e in events}
    for event_id in sorted(first_seen, key=first_seen.get):
        if event_id in by_id:
            order[by_id[event_id].escalation_id].append(by_id[event_id].sequence)
    return {
        "events": len(events),
        "lost": len(set(by_id) - set(first_seen)),
        "duplicates": len(arrivals) - len(first_seen),
        "order_violations": sum(seqs != sorted(seqs) for seqs in order.values()),
    }


def test_three_workers_one_killed_lose_nothing(tmp_path, receiver, figure, pg_app):
    app = pg_app()
    workers = [start_worker(app, tmp_path / f"worker-{i}.log", threads=2) for i in range(3)]
    try:
        started = time.monotonic()
        run_flows(app, 120)
        receiver.wait_for(60, timeout=30)
        workers[0].kill()  # mid-run, with sends in flight
        drained = wait_drained(app, timeout=120)
        elapsed = time.monotonic() - started
    finally:
        for worker in workers:
            stop(worker)
    result = audit(app, receiver)
    figure("faults.kill_one_of_three", f"{result}, drained {drained:.1f}s after the last flow, {elapsed:.1f}s in all")
    assert result["lost"] == 0 and result["order_violations"] == 0
    assert result["duplicates"] <= 2  # at most what the killed worker's two threads had in flight


def test_receiver_down_for_a_while_then_back(tmp_path, receiver, figure, pg_app):
    from receiver import Receiver

    app = pg_app()
    port, ca = receiver.server.server_port, receiver.ca
    receiver.close()  # connection refused from now on
    workers = [start_worker(app, tmp_path / f"worker-{i}.log", threads=2) for i in range(2)]
    back = None
    try:
        run_flows(app, 20)
        time.sleep(2.5)  # several tries of the shortened schedule fail
        with app.app_context():
            failed_tries = db.session.scalar(select(func.sum(Event.attempt_count)))
        back = Receiver(tmp_path, port=port, ca=ca)
        drained = wait_drained(app, timeout=60)
    finally:
        for worker in workers:
            stop(worker)
        if back:
            back.close()
    result = audit(app, back)
    figure("faults.receiver_down", f"{result}, {failed_tries} failed tries while down, drained {drained:.1f}s after")
    assert failed_tries > 20
    assert result["lost"] == 0 and result["order_violations"] == 0


@pytest.mark.parametrize("workers_count", [1, 2])
def test_throughput_with_workers(tmp_path, receiver, figure, workers_count, pg_app):
    app = pg_app()
    run_flows(app, 60)
    started = time.monotonic()  # the workers start together; start-up time counts against each run alike
    workers = [start_worker(app, tmp_path / f"worker-{i}.log", threads=4, wait=False) for i in range(workers_count)]
    try:
        for worker in workers:
            wait_running(worker)
        wait_drained(app, timeout=120)
        drained = time.monotonic() - started
    finally:
        for worker in workers:
            stop(worker)
    result = audit(app, receiver)
    figure(f"faults.throughput_{workers_count}_worker", f"{result['events'] / drained:.0f} events/s "
           f"({result['events']} events in {drained:.1f}s, 4 threads each, receiver in the test process)")
    assert result["lost"] == 0 and result["order_violations"] == 0 and result["duplicates"] == 0


@pytest.fixture
def throwaway_postgres():
    """A private PostgreSQL cluster (initdb/pg_ctl from the Debian packages) on a free port; yields (url, restart)."""
    import shutil
    import socket
    import subprocess
    import tempfile

    postgres_url()  # same skip/fail rule as the other PostgreSQL tests
    versions = sorted(Path("/usr/lib/postgresql").glob("*/bin/pg_ctl"))
    if not versions or not shutil.which("runuser"):
        pytest.fail("initdb/pg_ctl (Debian's postgresql package) and runuser are needed for the restart test")
    bin_dir = versions[-1].parent
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    home = Path(tempfile.mkdtemp(prefix="qlar-pg-"))
    shutil.chown(home, "postgres")
    data = home / "data"

    def pg(*args):
        subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True, timeout=60)

    pg(str(bin_dir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres")
    options = f"-p {port} -k {home} -c listen_addresses=127.0.0.1 -c fsync=off"
    ctl = [str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(home / "log"), "-o", options, "-w"]
    pg(*ctl, "start")
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/postgres", lambda: pg(*ctl, "-m", "fast", "restart")
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", *ctl, "-m", "immediate", "stop"], capture_output=True)
        shutil.rmtree(home, ignore_errors=True)


def test_postgres_restart_while_sending(tmp_path, receiver, figure, pg_app, throwaway_postgres):
    url, restart = throwaway_postgres
    app = pg_app(url)
    receiver.respond = lambda r: (200, {}, 0.05)  # slow enough that sends are in flight at the restart
    run_flows(app, 40)
    workers = [start_worker(app, tmp_path / f"worker-{i}.log", threads=2) for i in range(2)]
    try:
        receiver.wait_for(20, timeout=30)
        restarted = time.monotonic()
        restart()
        restart_seconds = time.monotonic() - restarted
        drained = wait_drained(app, timeout=90)
        assert all(worker.poll() is None for worker in workers), "a worker died with the database"
    finally:
        for worker in workers:
            stop(worker)
    result = audit(app, receiver)
    figure("faults.postgres_restart", f"{result}, restart took {restart_seconds:.1f}s, drained {drained:.1f}s after")
    assert result["lost"] == 0 and result["order_violations"] == 0
    assert result["duplicates"] <= 4  # sent but not recorded when the database went away: resent after the lease


def _rss_mib(pid: int) -> float:
    status = Path(f"/proc/{pid}/status").read_text()
    return int(next(line for line in status.splitlines() if line.startswith("VmRSS:")).split()[1]) / 1024


def test_ten_thousand_pending_keep_worker_memory_bounded(tmp_path, receiver, figure, pg_app):
    import json

    from qlar_console.clock import utcnow
    from qlar_console.engine.outbox import new_event_id
    from qlar_console.escalations.models import Escalation

    app = pg_app()
    now, count = utcnow(), 10_000
    escalations, events = [], []
    for i in range(count):
        esc_id, event_id = f"esc-bulk{i:05d}", new_event_id()
        escalations.append(dict(id=esc_id, agent_id="agent-123", environment="production", thread_id=f"t-{i}",
                                status="Pending", urgency_level="high", topic="refund", area="payment", reason="bulk",
                                trigger_condition="Angry Customer Escalation", last_sequence=1, created_at=now,
                                updated_at=now))
        body = json.dumps({"eventId": event_id, "eventType": "created", "escalation": {"id": esc_id}, "sequence": 1})
        events.append(dict(id=event_id, escalation_id=esc_id, agent_id="agent-123", environment="production",
                           event_type="created", sequence=1, body=body.encode(), created_at=now,
                           status=PENDING,
                           tries=0, attempt_count=0, next_attempt_at=now))
    with app.app_context():
        for event in events:
            event["endpoint_id"] = destinations("agent-123", "production", "created")[0]
        db.session.execute(db.insert(Escalation), escalations)
        db.session.execute(db.insert(Event), events)
        db.session.commit()
    worker = start_worker(app, tmp_path / "worker.log", threads=4)
    try:
        receiver.wait_for(100, timeout=60)
        early = _rss_mib(worker.pid)
        receiver.wait_for(400, timeout=120)
        later = _rss_mib(worker.pid)
    finally:
        stop(worker)
    figure("faults.memory_10k_pending", f"worker RSS {early:.0f} MiB after 100 sends, {later:.0f} MiB after 400 "
           f"(of {count} pending)")
    assert later - early < 15  # works in small batches: memory does not grow with the backlog
    assert later < 300
