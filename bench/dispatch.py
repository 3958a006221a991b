"""The dispatcher's throughput figures: against a bare requests loop, draining backlogs small and large, after an
outage, and fanned out to several endpoints (groups dispatch, drain, outage, fanout)."""
import itertools
import subprocess
import threading
import time
from datetime import timedelta

import requests
from common import (
    FLASK,
    ROOT,
    SCRATCH,
    THREADS,
    add_endpoints,
    app_env,
    backlog,
    bench_receiver,
    figure,
    free_port,
    make_app,
    point_webhook,
    worker_process,
)
from sqlalchemy import func, update

from qlar_console.clock import utcnow
from qlar_console.engine.models import Event
from qlar_console.extensions import db
from qlar_console.settings.alerting import primary_endpoint
from qlar_console.settings.service import get_settings
from qlar_console.signing import signature_headers

RUNS = itertools.count()  # a fresh scratch app per measurement
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


def dispatch_figures() -> None:
    """The bare loop, the receiver's headroom, and the dispatcher at 1, 2 and THREADS threads. The ratio is of
    the medians of 3 runs of each, taken in turns: one run of either ranges +-20 % here, as the pace drifts."""
    with bench_receiver() as receiver:
        bare = bare_per_s(receiver, THREADS, 2000)
        headroom = bare_per_s(receiver, THREADS * 2, 2000)
        figure("receiver_headroom", f"{headroom / bare:.2f} (bare loop at {THREADS * 2} threads / at {THREADS}: "
               "above 1 means the receiver was not the limit)")
        dispatch_per_s(receiver, THREADS, 200)  # warm-up, dropped: the process's first deliveries cost more
        for threads in (1, 2):
            figure(f"dispatch_per_s_{threads}t", f"{dispatch_per_s(receiver, threads, 2000):.0f}")
        bares, rates = [bare], []
        for turn in range(3):
            rates.append(dispatch_per_s(receiver, THREADS, 2000))
            if turn < 2:
                bares.append(bare_per_s(receiver, THREADS, 2000))
    bare, rate = sorted(bares)[1], sorted(rates)[1]
    figure("bare_per_s", f"{bare:.0f}")
    figure(f"dispatch_per_s_{THREADS}t", f"{rate:.0f}")
    figure("dispatch_per_s", f"{rate:.0f}")  # same threads as the bare loop
    figure("dispatch_ratio", f"{rate / bare:.2f}")


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


def arrival_rate(receiver, ids: set[str]) -> float:
    """Deliveries/s of these webhook-ids at the receiver in the steady state (the middle 80 % of arrivals)."""
    times = sorted(at for event_id, at in receiver.arrivals().items() if event_id in ids)
    low, high = int(len(times) * 0.1), int(len(times) * 0.9)
    return (high - low) / (times[high] - times[low])


def drained_by(receiver, app, process: subprocess.Popen, count: int) -> float:
    """Wait until the process delivered the app's `count` events; their steady-state arrival rate."""
    with app.app_context():
        ids = set(db.session.scalars(db.select(Event.id)).all())
        db.session.commit()
    deadline = time.monotonic() + 600
    while len([key for key in receiver.arrivals() if key in ids]) < count:
        assert process.poll() is None and time.monotonic() < deadline, "the dispatcher stopped delivering"
        time.sleep(0.5)
    return arrival_rate(receiver, ids)


def independent_figures() -> None:
    """Issue 24: the dispatcher in its own process at its default settings (4 senders, no
    QLAR_ENDPOINT_CONCURRENCY), draining a backlog to the bench receiver, against the bare loop: as
    `flask qlar worker` (external) and as `flask qlar serve` (embedded in the console); with the receiver
    answering at once (the CPU is the limit) and after 20 ms (the network is). Target: 0.8 or more."""
    for delay_ms, count, bare_count in ((0, 3000, 2000), (20, 1500, 800)):
        suffix = f"_{delay_ms}ms" if delay_ms else ""
        with bench_receiver(delay_ms=delay_ms) as receiver:
            before = bare_per_s(receiver, THREADS, bare_count)
            rates = {mode: independent_rate(receiver, mode, count) for mode in ("external", "embedded")}
            bare = (before + bare_per_s(receiver, THREADS, bare_count)) / 2  # before and after: the pace drifts
        figure(f"independent_bare_per_s{suffix}", f"{bare:.0f}")
        for mode, rate in rates.items():
            figure(f"independent_{mode}_per_s{suffix}", f"{rate:.0f}")
            figure(f"independent_{mode}_ratio{suffix}", f"{rate / bare:.2f}")


def independent_rate(receiver, mode: str, count: int) -> float:
    """Deliveries/s of a `flask qlar worker` (external) or `flask qlar serve` (embedded) child at its default
    settings, draining `count` events."""
    app = make_app(f"independent-{mode}-{next(RUNS)}", CA_BUNDLE=str(receiver.ca_file))
    point_webhook(app, receiver.url)
    backlog(app, count)
    log = SCRATCH / f"independent-{mode}.log"
    if mode == "external":
        process = worker_process(app, THREADS, log)
    else:
        process = subprocess.Popen([FLASK, "qlar", "serve", "--port", str(free_port())], cwd=ROOT,
                                   env=app_env(app), stdout=open(log, "wb"), stderr=subprocess.STDOUT)  # noqa: SIM115
    try:
        return drained_by(receiver, app, process, count)
    finally:
        process.terminate()
        process.wait(timeout=30)
