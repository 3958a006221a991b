"""Commit-to-arrival latency of the embedded dispatcher (group latency)."""
import time

from common import THREADS, bench_receiver, figure, make_app, percentile, point_webhook

from qlar_console.engine.models import Event
from qlar_console.escalations.service import create_escalation
from qlar_console.extensions import db


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


def latency_figures() -> None:
    """Commit-to-arrival latency at 20 events/s."""
    with bench_receiver() as receiver:
        p50, p99 = latency(receiver, rate=20, count=200)
    figure("latency_p50_ms", f"{p50:.1f}")
    figure("latency_p99_ms", f"{p99:.1f}")
