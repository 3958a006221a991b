"""Several endpoints per agent · environment on the delivery pages (issue 23): the log names each row's endpoint
and filters by Endpoint, Search by the webhook-id finds the event at every endpoint, the event page names its
endpoint and links the other copies, Resend failed can be limited to one endpoint, the timeline shows one line per
endpoint, queue health names the endpoint, /metrics counts pending per endpoint, and purge removes every copy."""
import pytest
from apps import point_webhook
from helpers import login

from qlar_console.clock import utcnow
from qlar_console.engine.models import FAILED, Attempt, Endpoint, Event
from qlar_console.escalations import service as lifecycle
from qlar_console.escalations.models import Escalation
from qlar_console.escalations.purge import purge_synthetic
from qlar_console.extensions import db
from qlar_console.settings import endpoints

PAIR = ("agent-123", "production")


@pytest.fixture
def two_endpoints(app):
    """agent-123 · production with its primary webhook and a second endpoint; one escalation created (synthetic).
    Returns (escalation id, primary endpoint id, second endpoint id, primary row id, copy row id)."""
    from qlar_console.settings.service import get_settings

    with app.app_context():
        point_webhook(app, "https://example.com/hook")
        second = endpoints.add_endpoint(get_settings(*PAIR), endpoints.EndpointChange(
            url="https://example.com/hook2", description="CRM copy"), "test").id
        escalation_id = lifecycle.create_escalation(*PAIR, synthetic=True).id
        rows = list(db.session.scalars(db.select(Event).where(Event.escalation_id == escalation_id)))
        primary_row = next(r for r in rows if r.message_id is None)
        copy_row = next(r for r in rows if r.message_id is not None)
        assert copy_row.endpoint_id == second and copy_row.message_id == primary_row.id
        return escalation_id, primary_row.endpoint_id, second, primary_row.id, copy_row.id


def _fail(app, *event_ids):
    """Mark the rows failed, each with one failed try just now."""
    with app.app_context():
        for event_id in event_ids:
            event = db.session.get(Event, event_id)
            event.status, event.next_attempt_at, event.attempt_count, event.tries = FAILED, None, 1, 1
            db.session.add(Attempt(event_id=event_id, number=1, trigger="scheduled", started_at=utcnow(),
                                   duration_ms=3.0, url="https://example.com/x", response_status=500,
                                   error="HTTP 500"))
        db.session.commit()


def test_the_log_shows_each_endpoint_and_filters_by_it(client, two_endpoints):
    _, primary, second, primary_row, copy_row = two_endpoints
    login(client, "viewer")
    page = client.get("/deliveries").get_data(as_text=True)
    assert primary_row in page and copy_row in page
    assert ">primary</span>" in page and ">CRM copy</span>" in page  # each row's endpoint
    assert f'<option value="{second}"' in page and f'<option value="{primary}"' in page
    one = client.get("/deliveries", query_string={"endpoint": second}).get_data(as_text=True)
    assert copy_row in one and primary_row not in one
    assert f'<option value="{second}" selected' in one
    narrowed = client.get("/deliveries", query_string={"pair": "agent-123/staging"}).get_data(as_text=True)
    assert f'<option value="{second}"' not in narrowed  # the chosen pair's endpoints only
    both = client.get("/deliveries", query_string={"q": primary_row}).get_data(as_text=True)
    assert primary_row in both and copy_row in both  # the webhook-id finds the event at every endpoint
    for bad, message in (("nope", "not an endpoint id"), ("ep_0000", "Unknown endpoint")):
        response = client.get("/deliveries", query_string={"endpoint": bad})
        text = response.get_data(as_text=True)
        assert response.status_code == 400 and message in text
        assert 'id="filter-endpoint" name="endpoint" aria-invalid="true"' in text
    wrong_pair = client.get("/deliveries", query_string={"endpoint": second, "pair": "agent-123/staging"})
    assert wrong_pair.status_code == 400 and "is not one of" in wrong_pair.get_data(as_text=True)


def test_the_log_reads_endpoint_labels_once(app, client, two_endpoints):
    from sqlalchemy import event as sa_event

    login(client, "viewer")

    def count() -> int:
        statements = []
        with app.app_context():
            engine = db.engine
        listener = lambda *args: statements.append(args[2])  # noqa: E731
        sa_event.listen(engine, "before_cursor_execute", listener)
        try:
            assert client.get("/deliveries").status_code == 200
        finally:
            sa_event.remove(engine, "before_cursor_execute", listener)
        return len(statements)

    before = count()
    with app.app_context():
        for _ in range(3):
            lifecycle.create_escalation(*PAIR)
    assert count() == before  # more rows, more endpoints' rows: the same queries


def test_event_detail_names_the_endpoint_and_links_the_other_copies(client, two_endpoints):
    _, primary, second, primary_row, copy_row = two_endpoints
    login(client, "viewer")
    detail = client.get(f"/deliveries/{copy_row}").get_data(as_text=True)
    assert second in detail and "CRM copy" in detail and primary_row in detail  # endpoint and webhook-id
    assert "At the other endpoints" in detail and f'href="/deliveries/{primary_row}"' in detail
    detail = client.get(f"/deliveries/{primary_row}").get_data(as_text=True)
    assert primary in detail and ">primary</a>" in detail and f'href="/deliveries/{copy_row}"' in detail


def test_resend_failed_limited_to_one_endpoint_requeues_only_its_rows(app, client, two_endpoints):
    _, _, second, primary_row, copy_row = two_endpoints
    _fail(app, primary_row, copy_row)
    login(client, "editor")
    preview = client.get("/deliveries/resend-failed", query_string={
        "pair": "agent-123/production", "window": "1h", "endpoint": second}).get_data(as_text=True)
    assert "1 failed event" in preview and second in preview
    everywhere = client.get("/deliveries/resend-failed", query_string={
        "pair": "agent-123/production", "window": "1h"}).get_data(as_text=True)
    assert "2 failed events" in everywhere
    response = client.post("/deliveries/resend-failed", data={"pair": "agent-123/production", "window": "1h",
                                                              "endpoint": second})
    assert response.status_code == 302
    with app.app_context():
        assert db.session.get(Event, copy_row).status == "pending"
        assert db.session.get(Event, primary_row).status == FAILED
    bad = client.get("/deliveries/resend-failed", query_string={
        "pair": "agent-123/staging", "window": "1h", "endpoint": second})
    assert bad.status_code == 400 and "is not an endpoint of" in bad.get_data(as_text=True)


def test_resend_of_one_row_queues_only_that_endpoint(app, client, two_endpoints):
    _, _, _, primary_row, copy_row = two_endpoints
    _fail(app, primary_row, copy_row)
    login(client, "editor")
    assert client.post(f"/deliveries/{copy_row}/resend").status_code == 302
    with app.app_context():
        assert db.session.get(Event, copy_row).status == "pending"
        assert db.session.get(Event, primary_row).status == FAILED


def test_the_timeline_shows_one_line_per_endpoint(app, client, two_endpoints):
    escalation_id, primary, second, primary_row, copy_row = two_endpoints
    _fail(app, copy_row)
    login(client, "viewer")
    page = client.get(f"/escalations/{escalation_id}").get_data(as_text=True)
    assert page.count('<li class="timeline-event"') == 1  # one event, delivered to two endpoints
    assert f'data-endpoint="{primary}"' in page and f'data-endpoint="{second}"' in page
    assert "Endpoint primary" in page and "Endpoint CRM copy" in page
    assert f'href="/deliveries/{copy_row}"' in page and "HTTP 500" in page


def test_queue_health_and_metrics_name_the_endpoint(app, client, two_endpoints):
    _, _, second, _, _ = two_endpoints
    with app.app_context():
        ep = db.session.get(Endpoint, second)
        ep.health, ep.health_since, ep.last_error = "failing", utcnow(), "HTTP 503"
        db.session.commit()
    login(client, "viewer")
    page = client.get("/deliveries").get_data(as_text=True)
    table = page.split('<table class="unhealthy">')[1].split("</table>")[0]
    assert "CRM copy" in table and second in table
    metrics = client.get("/metrics").get_data(as_text=True)
    assert f'qlar_endpoint_queue_depth{{endpoint="{second}"}} 1.0' in metrics


def test_purge_removes_the_escalations_rows_at_every_endpoint(app, two_endpoints):
    escalation_id, _, _, primary_row, copy_row = two_endpoints
    _fail(app, primary_row, copy_row)
    with app.app_context():
        done = purge_synthetic(*PAIR, "admin")
        assert (done.escalations, done.events, done.attempts) == (1, 2, 2)
        assert db.session.get(Escalation, escalation_id) is None
        assert db.session.scalar(db.select(db.func.count()).select_from(Event)) == 0
        assert db.session.scalar(db.select(db.func.count()).select_from(Attempt)) == 0
