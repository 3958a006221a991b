"""`make bench`: the dispatcher against a bare requests loop and against itself, as same-run ratios.

Prints each figure as `name: value`. Nothing here is a test; the targets live in issue 6 and the README.
`python run.py [GROUP...]` runs only the named groups (see GROUPS), in that order; all by default.
"""
import itertools
import os
import sys
import threading
import time
from datetime import timedelta
from pathlib import Path

import requests
from common import (
    SCRATCH,
    add_endpoints,
    backlog,
    bench_receiver,
    figure,
    make_app,
    pending,
    percentile,
    point_webhook,
    worker_process,
)
from soak import simulate_figures, soak_figures
from sqlalchemy import create_engine, func, text, update

from qlar_console.api.body import MAX_DEPTH, too_deep
from qlar_console.clock import utcnow
from qlar_console.engine.models import Attempt, DailyOutcome, Event
from qlar_console.escalations.service import create_escalation
from qlar_console.extensions import db
from qlar_console.settings.alerting import primary_endpoint
from qlar_console.settings.service import get_settings
from qlar_console.signing import signature_headers

RUNS = itertools.count()  # a fresh scratch app per measurement
THREADS = 4  # the dispatcher's concurrency in every comparison
SECRET = "whsec_" + "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY="


def bare_per_s(receiver, threads: int, count: int) -> float:
    """POSTs/s of plain requests.Session loops (one per thread), each body signed, same receiver."""
    body = b'{"eventId":"evt_bare","eventType":"created","escalation":{"id":"esc-1"}}'
    per_thread = count // threads

    def loop():
        session = requests.Session()
        for i in range(per_thread):
            headers = {"Content-Type": "application/json",
                       **signature_headers([SECRET], f"evt_bare{i}", int(time.time()), body)}
            session.post(receiver.url, data=body, headers=headers, verify=str(receiver.ca_file), timeout=15)

    workers = [threading.Thread(target=loop) for _ in range(threads)]
    started = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per_thread * threads / (time.perf_counter() - started)


def dispatch_per_s(receiver, threads: int, backlog_size: int, deliveries: int | None = None, *,
                   held: bool = False, endpoints: int = 1) -> float:
    """Deliveries/s of the embedded dispatcher (SQLite, `threads` senders, equal endpoint concurrency) making the
    first `deliveries` (default: all) of a backlog of `backlog_size` events at each of `endpoints` endpoints of
    the pair, counted as arrivals (webhook-id x X-Qlar-Endpoint) at the receiver.

    held: the backlog built up while the endpoint was paused (hold_backlog); the clock includes the probe
    that recovers it."""
    deliveries = deliveries or backlog_size * endpoints
    app = make_app(f"dispatch-{threads}t-{backlog_size}-{next(RUNS)}", CA_BUNDLE=str(receiver.ca_file),
                   DISPATCHER_THREADS=threads, ENDPOINT_CONCURRENCY=threads)
    point_webhook(app, receiver.url)
    add_endpoints(app, receiver.url, endpoints - 1)
    backlog(app, backlog_size)
    if held:
        hold_backlog(app)
    dispatcher = app.extensions["qlar_dispatcher"]
    earlier = set(receiver.deliveries())
    started = time.time()
    dispatcher.start()
    while True:  # look rarely (reading the arrival logs would take the dispatcher's CPU); time by the stamps
        time.sleep(0.25)
        arrived = sorted(at for key, at in receiver.deliveries().items() if key not in earlier)
        if len(arrived) >= deliveries:
            break
    dispatcher.stop()
    return deliveries / (arrived[deliveries - 1] - started)


def hold_backlog(app) -> None:
    """Leave agent-123 · production as an outage leaves it: paused with its probe due, alerts sent, and half
    of its events due later (each failed probe pushes its event back; probes use none of their tries)."""
    with app.app_context():
        endpoint = primary_endpoint(get_settings("agent-123", "production"))
        now = utcnow()
        endpoint.health, endpoint.health_since, endpoint.failing_since = "paused", now, now
        endpoint.next_probe_at, endpoint.probe_delay, endpoint.last_error = now, 300.0, "HTTP 503"
        endpoint.failing_alerted = endpoint.paused_alerted = True
        db.session.execute(update(Event).where(Event.sequence == 1, func.substr(Event.escalation_id, -1).in_(
            list("02468"))).values(next_attempt_at=now + timedelta(hours=1)))
        db.session.commit()


def latency(receiver, rate: float, count: int) -> tuple[float, float]:
    """p50/p99 ms from a transition's commit to its arrival, at `rate` events/s, embedded SQLite."""
    app = make_app("latency", CA_BUNDLE=str(receiver.ca_file), DISPATCHER_THREADS=THREADS)
    point_webhook(app, receiver.url)
    dispatcher = app.extensions["qlar_dispatcher"]
    dispatcher.start()
    committed = {}
    started = time.monotonic()
    with app.app_context():
        for i in range(count):
            time.sleep(max(0.0, started + i / rate - time.monotonic()))
            escalation = create_escalation("agent-123", "production")
            committed[escalation.id] = time.time()
        time.sleep(1)
        ids = dict(db.session.execute(db.select(Event.id, Event.escalation_id)).all())
    dispatcher.stop()
    arrivals = receiver.arrivals()
    latencies = [(arrivals[event_id] - committed[esc]) * 1000 for event_id, esc in ids.items() if event_id in arrivals]
    return percentile(latencies, 0.5), percentile(latencies, 0.99)


def page_ratio(app, path: str, baseline: str, rounds: int) -> float:
    """p50 time of GET path over p50 of GET baseline, logged in, Flask test client.

    The two are timed in turns, one request each, so a drift of the machine's speed during the run weighs on
    both alike (timed one after the other, the ratio of the same code varied from 4 to 7 between runs).
    """
    client = app.test_client()
    client.post("/login", data={"username": "editor", "password": "bench password"})

    def timed(url):
        started = time.perf_counter()
        assert client.get(url).status_code == 200
        return time.perf_counter() - started

    for _ in range(rounds // 10):  # warm up templates and caches
        timed(path), timed(baseline)
    pages, baselines = [], []
    for _ in range(rounds):
        pages.append(timed(path))
        baselines.append(timed(baseline))
    return percentile(pages, 0.5) / percentile(baselines, 0.5)


def seeded_log_app(name: str, attempts: int):
    """An app whose log holds `attempts` attempts (ten per finished event), inserted in bulk."""
    app = make_app(name)
    backlog(app, attempts // 10)
    now = utcnow()
    with app.app_context():
        ids = db.session.scalars(db.select(Event.id)).all()
        db.session.execute(db.update(Event).values(status="succeeded", attempt_count=10, next_attempt_at=None))
        db.session.add(DailyOutcome(day=now.date(), outcome="succeeded", count=len(ids)))  # as the dispatcher counts
        for start in range(0, len(ids), 2000):
            db.session.execute(db.insert(Attempt), [
                dict(event_id=event_id, number=n, trigger="scheduled", url="https://example.com/hook",
                     request_headers={}, response_status=500 if n < 10 else 200, duration_ms=12.5, started_at=now)
                for event_id in ids[start:start + 2000] for n in range(1, 11)])
        db.session.commit()
    return app


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


def dispatch_figures() -> None:
    """The bare loop, the receiver's headroom, and the dispatcher at 1, 2 and THREADS threads."""
    with bench_receiver() as receiver:
        bare = bare_per_s(receiver, THREADS, 2000)
        figure("bare_per_s", f"{bare:.0f}")
        headroom = bare_per_s(receiver, THREADS * 2, 2000)
        figure("receiver_headroom", f"{headroom / bare:.2f} (bare loop at {THREADS * 2} threads / at {THREADS}: "
               "above 1 means the receiver was not the limit)")
        dispatch_per_s(receiver, THREADS, 200)  # warm-up, dropped: the process's first deliveries cost more
        rates = {}
        for threads in (1, 2, THREADS):
            rates[threads] = dispatch_per_s(receiver, threads, 2000)
            figure(f"dispatch_per_s_{threads}t", f"{rates[threads]:.0f}")
    figure("dispatch_per_s", f"{rates[THREADS]:.0f}")  # the THREADS run above: same threads as the bare loop
    figure("dispatch_ratio", f"{rates[THREADS] / bare:.2f}")


def latency_figures() -> None:
    """Commit-to-arrival latency at 20 events/s."""
    with bench_receiver() as receiver:
        p50, p99 = latency(receiver, rate=20, count=200)
    figure("latency_p50_ms", f"{p50:.1f}")
    figure("latency_p99_ms", f"{p99:.1f}")


def drain_figures() -> None:
    """The first 1,000 deliveries from a 100,000 backlog against from a 1,000 backlog."""
    with bench_receiver() as receiver:
        dispatch_per_s(receiver, THREADS, 200)  # warm-up, dropped: the process's first deliveries cost more
        small = dispatch_per_s(receiver, THREADS, 1_000)
        large = dispatch_per_s(receiver, THREADS, 100_000, deliveries=1_000)
    figure("drain_1k_per_s", f"{small:.0f}")
    figure("drain_100k_per_s", f"{large:.0f}")
    figure("drain_100k_ratio", f"{large / small:.2f}")


def outage_figures() -> None:
    """A 10,000-event backlog drained after an outage (paused, then the probe succeeds) against the same backlog
    drained normally (issue 22: outage_drain_ratio, target at least 0.9)."""
    normal, after = [], []
    with bench_receiver() as receiver:
        dispatch_per_s(receiver, THREADS, 200)  # warm-up, dropped
        for _ in range(3):  # in turns, the median of each: one run of either ranges +-15 % here
            normal.append(dispatch_per_s(receiver, THREADS, 10_000))
            after.append(dispatch_per_s(receiver, THREADS, 10_000, held=True))
    normal_rate, after_rate = sorted(normal)[1], sorted(after)[1]
    figure("drain_10k_per_s", f"{normal_rate:.0f}")
    figure("outage_drain_per_s", f"{after_rate:.0f}")
    figure("outage_drain_ratio", f"{after_rate / normal_rate:.2f}")


def fanout_figures() -> None:
    """Deliveries/s with 3 endpoints per pair against 1 endpoint, the same 3,000 deliveries each (issue 23:
    fanout_ratio, target at least 0.9 per delivery)."""
    one, three = [], []
    with bench_receiver() as receiver:
        dispatch_per_s(receiver, THREADS, 200)  # warm-up, dropped
        for _ in range(3):  # in turns, the median of each
            one.append(dispatch_per_s(receiver, THREADS, 3_000))
            three.append(dispatch_per_s(receiver, THREADS, 1_000, endpoints=3))
    one_rate, three_rate = sorted(one)[1], sorted(three)[1]
    figure("fanout_1_endpoint_per_s", f"{one_rate:.0f}")
    figure("fanout_3_endpoints_per_s", f"{three_rate:.0f}")
    figure("fanout_ratio", f"{three_rate / one_rate:.2f}")


def body_scan_figures() -> None:
    """The API's depth scan of a 1 MiB body: the slowest of the shapes that cost most, best of 5 each (issue 25:
    body_scan_1mib_ms, target at most 50)."""
    size = 1024 * 1024
    shapes = [b'"' + b'\\"' * (size // 2 - 1), b'"' * size, b'"",' * (size // 3), b"[]" * (size // 2),
              b'["' + b"a" * (size - 4) + b'"]']
    best = []
    for body in shapes:
        runs = []
        for _ in range(5):
            started = time.perf_counter()
            too_deep(body, MAX_DEPTH)
            runs.append(time.perf_counter() - started)
        best.append(min(runs))
    figure("body_scan_1mib_ms", f"{max(best) * 1000:.1f}")


def page_figures() -> None:
    """The settings page and the deliveries log, each against /healthz."""
    settings_app = make_app("pages")
    settings_ratio = page_ratio(settings_app, "/agents/agent-123/production/escalation", "/healthz", 300)
    figure("settings_page_ratio", f"{settings_ratio:.2f}")
    small, large = seeded_log_app("log-small", 1_000), seeded_log_app("log-large", 1_000_000)
    small_p50 = page_ratio(small, "/deliveries", "/healthz", 30)
    large_p50 = page_ratio(large, "/deliveries", "/healthz", 30)
    figure("log_page_ratio", f"{large_p50 / small_p50:.2f}")


def pg_figures() -> None:
    """Two workers against one on PostgreSQL."""
    figure("pg_scale_ratio", pg_scale_ratio(receiver_delay_ms=20))


def rss_figures() -> None:
    """A worker's peak memory."""
    figure("worker_rss_mb", f"{worker_rss_mb(10_000):.0f}")


GROUPS = {"dispatch": dispatch_figures, "latency": latency_figures, "drain": drain_figures,
          "outage": outage_figures, "fanout": fanout_figures, "body": body_scan_figures, "pages": page_figures,
          "pg": pg_figures, "rss": rss_figures, "simulate": simulate_figures, "soak": soak_figures}


def main(names: list[str]) -> None:
    """Run the named groups (all when none are named) and say how long it took."""
    unknown = [name for name in names if name not in GROUPS]
    if unknown:
        sys.exit(f"unknown group {', '.join(unknown)}; the groups are {', '.join(GROUPS)}")
    started = time.monotonic()
    for name in names or GROUPS:
        GROUPS[name]()
    print(f"(bench took {time.monotonic() - started:.0f}s; scratch data in {SCRATCH})")


if __name__ == "__main__":
    main(sys.argv[1:])
