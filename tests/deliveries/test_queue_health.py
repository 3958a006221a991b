"""The queue-health panel at the top of Deliveries."""
import time
from datetime import datetime

from helpers import login

from qlar_console.deliveries.stats import queue_health
from qlar_console.escalations.service import create_escalation


def _page(app) -> str:
    client = app.test_client()
    login(client, "viewer")
    return client.get("/deliveries").get_data(as_text=True)


def test_backlog_without_a_worker_is_visible(delivery_app, receiver):
    with delivery_app.app_context():
        create_escalation("agent-123", "production")
        health = queue_health([5, 300], 15, now=datetime(2030, 1, 1))
    assert health.pending == 1 and health.oldest_pending_age.total_seconds() > 0
    assert health.retry_times[1:] == [datetime(2030, 1, 1, 0, 0, 5), datetime(2030, 1, 1, 0, 5, 5)]
    html = _page(delivery_app)
    assert "Queue health" in html and "no worker alive" in html


def test_running_worker_shows_heartbeat_and_drains(delivery_app, receiver):
    dispatcher = delivery_app.extensions["qlar_dispatcher"]
    dispatcher.start()
    deadline = time.monotonic() + 5
    while "alive:" not in (html := _page(delivery_app)) and time.monotonic() < deadline:
        time.sleep(0.1)
    assert f"alive: {dispatcher.process_id}" in html
    dispatcher.stop()
    assert "no worker alive" in _page(delivery_app)  # a clean stop removes the heartbeat
