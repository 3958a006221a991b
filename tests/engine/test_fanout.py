"""Several endpoints per agent · environment (issue 23), through the real dispatcher and two independent HTTPS
receivers: one transition reaches both, each signed with its own key; filters, custom headers, isolation."""
import time

import pytest
from apps import dispose
from helpers import stored_secret
from sqlalchemy import select
from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from engine.test_outage import PAIR, Switch, events, flow, outage_app
from qlar_console.engine.models import Attempt, Event
from qlar_console.engine.senders import HIDDEN
from qlar_console.extensions import db
from qlar_console.settings import endpoints
from qlar_console.settings.alerting import primary_endpoint
from qlar_console.settings.service import get_settings


@pytest.fixture
def second(tmp_path, receiver):
    """A second, independent HTTPS receiver (its certificate from the same test CA)."""
    from receiver import Receiver

    server = Receiver(tmp_path, ca=receiver.ca)
    yield server
    server.close()


def add(app, url: str, **change) -> tuple[str, str]:
    """Add an endpoint to agent-123 · production; (its id, its key)."""
    with app.app_context():
        ep = endpoints.add_endpoint(get_settings(*PAIR), endpoints.EndpointChange(url=url, **change), "test")
        return ep.id, endpoints.reveal_endpoint_secret(ep, "test")


def primary(app) -> tuple[str, str]:
    with app.app_context():
        return primary_endpoint(get_settings(*PAIR)).id, stored_secret(app)


def verify(key: str, received) -> None:
    Webhook(key).verify(received.body, {k.lower(): v for k, v in received.headers.items()})


def test_one_transition_reaches_both_endpoints_with_the_same_bytes_and_id_each_signed_with_its_own_key(
        tmp_path, receiver, second, database_url):
    app = outage_app(tmp_path, receiver, None, None, database_url)
    first_id, first_key = primary(app)
    second_id, second_key = add(app, second.url)
    dispatcher = app.extensions["qlar_dispatcher"]
    try:
        dispatcher.start()
        flow(app, steps=())
        [a], [b] = receiver.wait_for(1), second.wait_for(1)
    finally:
        dispatcher.stop()
        dispose(app)
    assert a.body == b.body and a.headers["Webhook-Id"] == b.headers["Webhook-Id"]
    assert a.headers["Webhook-Id"] == a.json["eventId"]
    assert (a.headers["X-Qlar-Endpoint"], b.headers["X-Qlar-Endpoint"]) == (first_id, second_id)
    verify(first_key, a)
    verify(second_key, b)
    for key, received in ((second_key, a), (first_key, b)):  # each signature is valid only with its own key
        with pytest.raises(WebhookVerificationError):
            verify(key, received)


def test_an_endpoint_hears_only_its_event_types_and_gets_its_custom_headers(tmp_path, receiver, second):
    app = outage_app(tmp_path, receiver, None, None)
    add(app, second.url, event_types=["completed"], headers="X-Team: crm\nAuthorization: Bearer t0ken")
    dispatcher = app.extensions["qlar_dispatcher"]
    try:
        dispatcher.start()
        flow(app)  # created, claimed, completed
        receiver.wait_for(3)
        [only] = second.wait_for(1)
        time.sleep(0.5)
        assert len(second.requests) == 1
    finally:
        dispatcher.stop()
    assert only.json["eventType"] == "completed"
    assert (only.headers["X-Team"], only.headers["Authorization"]) == ("crm", "Bearer t0ken")
    assert "X-Team" not in receiver.requests[0].headers  # the primary has no custom headers
    with app.app_context():  # the attempt log keeps the names of custom headers, never their values
        [attempt] = db.session.scalars(select(Attempt).join(Event).where(Event.message_id.is_not(None)))
        assert attempt.request_headers["Authorization"] == HIDDEN
    dispose(app)


@pytest.mark.parametrize("line", ["Host: evil", "Content-Type: text/plain", "User-Agent: x", "Connection: close",
                                  "Transfer-Encoding: chunked", "Content-Length: 1", "X-Qlar-Event: x",
                                  "webhook-id: x", "Webhook-Signature: x", "Bad Name: x", "X-Ok: a\x07b"])
def test_reserved_and_malformed_headers_are_refused_naming_the_header(tmp_path, receiver, line):
    app = outage_app(tmp_path, receiver, None, None)
    with app.app_context(), pytest.raises(endpoints.EndpointError) as refused:
        endpoints.add_endpoint(get_settings(*PAIR), endpoints.EndpointChange(
            url="https://example.com/hook", headers=f"X-Fine: 1\n{line}"), "test")
    assert refused.value.field == "headers"
    assert line.split(":")[0].strip() in str(refused.value)
    with app.app_context():
        assert endpoints.additional_endpoints(get_settings(*PAIR)) == []  # nothing saved
    dispose(app)


def test_an_endpoint_answering_503_never_delays_the_other(tmp_path, receiver, second, database_url):
    app = outage_app(tmp_path, receiver, None, None, database_url, schedule="1s,1s,1s")
    Switch(second).down = True
    add(app, second.url)
    dispatcher = app.extensions["qlar_dispatcher"]
    try:
        dispatcher.start()
        started = time.monotonic()
        ids = [flow(app) for _ in range(4)]
        got = receiver.wait_for(12, timeout=15)
        took = time.monotonic() - started
    finally:
        dispatcher.stop()
    for esc in ids:  # in order per escalation at the healthy endpoint
        sequence = [r.json["sequence"] for r in got if r.json["escalation"]["id"] == esc]
        assert sequence == [1, 2, 3]
    assert took < 5, took  # no retry wait of the failing endpoint on the healthy one's path
    with app.app_context():
        rows = [e for e in events(app) if e.message_id]
        assert rows and {e.status for e in rows} == {"pending"}  # the failing endpoint's events wait their turn
    dispose(app)


def test_regenerate_on_one_endpoint_leaves_the_others_keys_alone(tmp_path, receiver, second):
    app = outage_app(tmp_path, receiver, None, None)
    _, primary_key = primary(app)
    one, one_key = add(app, second.url)
    two, two_key = add(app, "https://example.com/two")
    with app.app_context():
        endpoints.regenerate_endpoint_secret(endpoints.get_endpoint(one), "test", "none")
        new_key = endpoints.reveal_endpoint_secret(endpoints.get_endpoint(one), "test")
        assert new_key != one_key
        assert endpoints.reveal_endpoint_secret(endpoints.get_endpoint(two), "test") == two_key
    assert stored_secret(app) == primary_key
    dispose(app)
