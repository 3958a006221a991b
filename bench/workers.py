"""The worker process's figures: two workers against one on PostgreSQL, and a worker's peak memory (groups pg,
rss)."""
import os
import time
from pathlib import Path

from common import SCRATCH, THREADS, backlog, bench_receiver, figure, make_app, pending, point_webhook, worker_process
from sqlalchemy import create_engine, text

from qlar_console.engine.models import Event
from qlar_console.extensions import db


def pg_scale_ratio(receiver_delay_ms: float) -> str:
    """Events/s with 2 worker processes over 1, on PostgreSQL, receiver answering after a delay."""
    base = os.environ.get("QLAR_BENCH_DATABASE_URL") or os.environ.get("QLAR_TEST_DATABASE_URL") \
        or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    try:
        admin = create_engine(base, isolation_level="AUTOCOMMIT")
        with admin.connect() as connection:
            connection.execute(text("DROP DATABASE IF EXISTS qlar_bench WITH (FORCE)"))
            connection.execute(text("CREATE DATABASE qlar_bench"))
        admin.dispose()
    except Exception as exc:
        return f"skipped (PostgreSQL not reachable at {base.split('@')[-1]}: {exc.__class__.__name__})"
    url = base.rsplit("/", 1)[0] + "/qlar_bench"
    rates = []
    with bench_receiver(delay_ms=receiver_delay_ms) as receiver:
        for workers in (1, 2):
            app = make_app(f"pg{workers}", url=url, CA_BUNDLE=str(receiver.ca_file))
            point_webhook(app, receiver.url)
            backlog(app, 600 * workers)
            procs = [worker_process(app, THREADS, SCRATCH / f"pg-worker-{workers}-{i}.log") for i in range(workers)]
            while pending(app):
                time.sleep(0.05)
            for proc in procs:
                proc.terminate()
                proc.wait(timeout=30)
            with app.app_context():
                ids = set(db.session.scalars(db.select(Event.id)).all())
                db.engine.dispose()
            times = sorted(at for event_id, at in receiver.arrivals().items() if event_id in ids)
            low, high = int(len(times) * 0.1), int(len(times) * 0.9)  # steady state: without start-up and tail
            rates.append((high - low) / (times[high] - times[low]))
            figure(f"pg_events_per_s_{workers}_worker", f"{rates[-1]:.0f}")
    return f"{rates[1] / rates[0]:.2f}"


def worker_rss_mb(count: int) -> float:
    """Peak RSS (VmHWM) of a worker process draining `count` pending deliveries (SQLite)."""
    with bench_receiver() as receiver:
        app = make_app("rss", CA_BUNDLE=str(receiver.ca_file))
        point_webhook(app, receiver.url)
        backlog(app, count)
        proc = worker_process(app, THREADS, SCRATCH / "rss-worker.log")
        while pending(app):
            time.sleep(0.2)
        status = Path(f"/proc/{proc.pid}/status").read_text()
        proc.terminate()
        proc.wait(timeout=30)
    return int(next(line for line in status.splitlines() if line.startswith("VmHWM:")).split()[1]) / 1024


def pg_figures() -> None:
    """Two workers against one on PostgreSQL."""
    figure("pg_scale_ratio", pg_scale_ratio(receiver_delay_ms=20))


def rss_figures() -> None:
    """A worker's peak memory."""
    figure("worker_rss_mb", f"{worker_rss_mb(10_000):.0f}")
