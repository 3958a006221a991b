"""The pages' figures: the settings page and the deliveries log against /healthz (group pages)."""
import time

from common import backlog, figure, make_app, percentile

from qlar_console.clock import utcnow
from qlar_console.engine.models import Attempt, DailyOutcome, Event
from qlar_console.extensions import db


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


def page_figures() -> None:
    """The settings page and the deliveries log, each against /healthz."""
    settings_app = make_app("pages")
    settings_ratio = page_ratio(settings_app, "/agents/agent-123/production/escalation", "/healthz", 300)
    figure("settings_page_ratio", f"{settings_ratio:.2f}")
    small, large = seeded_log_app("log-small", 1_000), seeded_log_app("log-large", 1_000_000)
    small_p50 = page_ratio(small, "/deliveries", "/healthz", 30)
    large_p50 = page_ratio(large, "/deliveries", "/healthz", 30)
    figure("log_page_ratio", f"{large_p50 / small_p50:.2f}")
