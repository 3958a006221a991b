"""Synthetic traffic is marked: what the simulator (CLI and API job) and Run test flow send carries
X-Qlar-Synthetic: true and "synthetic": true, through the real dispatcher to a real HTTPS receiver; real transitions
(page, CLI, API) carry neither; a Resend keeps the marks; the bodies validate against the published schema. Then the
Traffic filter of Deliveries (page, API, CLI) and the Synthetic badges."""
import re
import time

import pytest
from helpers import api_token, assert_problem, login
from jsonschema import Draft202012Validator, FormatChecker

from qlar_console.engine.models import Event
from qlar_console.escalations import service
from qlar_console.extensions import db

PAIR = "/api/v1/agents/agent-123/production"
ABSENT = "absent"


def marks(received) -> tuple[str | None, object]:
    """(the X-Qlar-Synthetic header, the body's "synthetic") of a request the receiver got; None / ABSENT: missing."""
    header = next((value for name, value in received.headers.items() if name.lower() == "x-qlar-synthetic"), None)
    return header, received.json.get("synthetic", ABSENT)


def deliver(app, receiver, count: int) -> list:
    """Deliver what is due (inline) until the receiver has `count` requests."""
    deadline = time.monotonic() + 10
    while len(receiver.requests) < count and time.monotonic() < deadline:
        app.extensions["qlar_dispatcher"].drain()
        time.sleep(0.02)
    return receiver.wait_for(count, timeout=1)


def assert_valid(app, bodies: list[dict]) -> None:
    """Every body validates against the event catalog's published schema (/api/v1/schemas/events.json)."""
    schema = app.test_client().get("/api/v1/schemas/events.json").json
    validator = Draft202012Validator(schema, format_checker=FormatChecker())
    for body in bodies:
        assert not list(validator.iter_errors(body)), body


def test_flask_qlar_simulate_marks_every_event(delivery_app, receiver):
    result = delivery_app.test_cli_runner().invoke(
        args=["qlar", "simulate", "agent-123", "production", "--flows", "2", "--seed", "3", "--wait", "20"])

    assert result.exit_code == 0, result.output
    assert len(receiver.requests) >= 6
    assert {marks(r) for r in receiver.requests} == {("true", True)}
    assert_valid(delivery_app, [r.json for r in receiver.requests])
    with delivery_app.app_context():
        assert set(db.session.scalars(db.select(Event.synthetic))) == {True}


def test_the_api_simulate_job_marks_every_event(delivery_app, receiver):
    delivery_app.extensions["qlar_dispatcher"].start()
    client, headers = delivery_app.test_client(), api_token(delivery_app, "editor")
    started = client.post(f"{PAIR}/simulate", json={"flows": 2, "waitSeconds": 20}, headers=headers)
    assert started.status_code == 202, started.data
    deadline = time.monotonic() + 30
    while client.get(started.headers["Location"], headers=headers).json["status"] not in ("finished", "failed"):
        assert time.monotonic() < deadline, "the job did not finish"
        time.sleep(0.1)

    assert client.get(started.headers["Location"], headers=headers).json["status"] == "finished"
    assert len(receiver.requests) >= 6
    assert {marks(r) for r in receiver.requests} == {("true", True)}
    assert_valid(delivery_app, [r.json for r in receiver.requests])


def test_run_test_flow_marks_its_three_events_and_a_resend_keeps_the_marks(delivery_app, receiver):
    client = delivery_app.test_client()
    login(client, "editor")
    assert client.post("/escalations/test-flow", data={"agent": "agent-123", "env": "production"}).status_code == 302

    sent = deliver(delivery_app, receiver, 3)
    assert [r.json["eventType"] for r in sent] == ["created", "claimed", "completed"]
    assert [marks(r) for r in sent] == [("true", True)] * 3
    assert_valid(delivery_app, [r.json for r in sent])

    event_id = sent[0].json["eventId"]
    assert client.post(f"/deliveries/{event_id}/resend").status_code == 302
    again = deliver(delivery_app, receiver, 4)[3]
    assert again.json["eventId"] == event_id and again.body == sent[0].body  # the same frozen bytes
    assert marks(again) == ("true", True)


def test_real_transitions_carry_neither_mark(delivery_app, receiver):
    page = delivery_app.test_client()
    login(page, "editor")
    page.post("/escalations", data={"agent": "agent-123", "env": "production", "topic": "refund", "area": "payment",
                                    "urgency_level": "high", "reason": "Angry", "trigger_condition": "Angry"})
    with delivery_app.app_context():
        from_page = db.session.scalar(db.select(Event.escalation_id))
    page.post(f"/escalations/{from_page}/claim")
    page.post(f"/escalations/{from_page}/complete", data={"notes": "Refunded"})

    cli = delivery_app.test_cli_runner()
    from_cli = cli.invoke(args=["qlar", "escalation", "create", "agent-123", "production"]).output.strip()
    assert cli.invoke(args=["qlar", "escalation", "claim", from_cli, "--by", "sam"]).exit_code == 0
    assert cli.invoke(args=["qlar", "escalation", "complete", from_cli, "--notes", "Done"]).exit_code == 0

    api, headers = delivery_app.test_client(), api_token(delivery_app, "editor")
    from_api = api.post(f"{PAIR}/escalations", json={}, headers=headers).json["id"]
    assert api.post(f"/api/v1/escalations/{from_api}/claim", json={}, headers=headers).status_code == 200
    assert api.post(f"/api/v1/escalations/{from_api}/complete", json={"notes": "Done"},
                    headers=headers).status_code == 200

    sent = deliver(delivery_app, receiver, 9)
    assert {r.json["escalation"]["id"] for r in sent} == {from_page, from_cli, from_api}
    assert {marks(r) for r in sent} == {(None, ABSENT)}
    assert_valid(delivery_app, [r.json for r in sent])
    with delivery_app.app_context():
        assert set(db.session.scalars(db.select(Event.synthetic))) == {False}


# --- the Traffic filter and the badges --------------------------------------------------------------------------

@pytest.fixture
def mixed(app):
    """agent-123 · production: one real escalation (3 events) and one synthetic (3 events); returns their ids."""
    with app.app_context():
        real = service.create_escalation("agent-123", "production").id
        synthetic = service.create_escalation("agent-123", "production", synthetic=True).id
        for escalation_id in (real, synthetic):
            service.claim(escalation_id, "sam")
            service.complete(escalation_id, "Done")
    return {"real": real, "synthetic": synthetic}


def listed(html: str) -> set[str]:
    """The escalation ids of the Deliveries page's rows."""
    return set(re.findall(r'<td class="escalation"[^>]*><a href="[^"]*"><code>(esc-[0-9a-f]+)</code>', html))


@pytest.mark.parametrize("traffic, expected", [("", {"real", "synthetic"}), ("none", {"real"}),
                                               ("only", {"synthetic"})])
def test_deliveries_traffic_filter(client, mixed, traffic, expected):
    login(client, "viewer")
    html = client.get("/deliveries", query_string={"synthetic": traffic}).get_data(as_text=True)

    assert listed(html) == {mixed[name] for name in expected}
    assert html.count('<span class="badge badge-synthetic">Synthetic</span>') == (3 if "synthetic" in expected else 0)
    assert '<label for="filter-traffic">Traffic</label>' in html
    chosen = {"": "All", "none": "Real only", "only": "Synthetic only"}[traffic]
    assert re.search(rf'<option value="{traffic}" selected>{chosen}</option>', html)
    if traffic:  # links to other pages keep it
        assert "Clear filters" in html


def test_traffic_filter_is_kept_by_paging_and_refuses_unknown_values(client, mixed):
    login(client, "viewer")
    page = client.get("/deliveries?synthetic=only&status=skipped").get_data(as_text=True)
    assert "skipped (3)" in page  # the counts follow the filter
    with client.application.test_request_context():
        from qlar_console.deliveries.log_query import Filters
        assert Filters(synthetic=True).as_args() == {"synthetic": "only"}
        assert Filters(synthetic=False).as_args() == {"synthetic": "none"}
    refused = client.get("/deliveries?synthetic=maybe")
    assert refused.status_code == 400
    assert "Unknown traffic &#39;maybe&#39;: choose All, Real only or Synthetic only." in refused.get_data(as_text=True)


def test_event_page_and_escalations_page_show_the_badge(app, client, mixed):
    login(client, "viewer")
    with app.app_context():
        events = {e.escalation_id: e.id for e in db.session.scalars(db.select(Event).filter_by(sequence=1))}
    synthetic = client.get(f"/deliveries/{events[mixed['synthetic']]}").get_data(as_text=True)
    real = client.get(f"/deliveries/{events[mixed['real']]}").get_data(as_text=True)
    assert '<span class="badge badge-synthetic">Synthetic</span>' in synthetic and "X-Qlar-Synthetic: true" in synthetic
    assert "badge-synthetic" not in real and "<dt>Traffic</dt><dd>Real</dd>" in real

    escalations = client.get("/escalations?agent=agent-123&env=production").get_data(as_text=True)
    assert escalations.count('class="badge badge-synthetic"') == 1


@pytest.mark.parametrize("value, expected", [("true", {"synthetic"}), ("false", {"real"}),
                                             (None, {"real", "synthetic"})])
def test_api_deliveries_synthetic_parameter(app, client, mixed, value, expected):
    headers = api_token(app, "viewer", "read")
    query = {"limit": 2} | ({"synthetic": value} if value else {})
    first = client.get(f"{PAIR}/deliveries", query_string=query, headers=headers)
    assert first.status_code == 200, first.data
    items = list(first.json["items"])
    if value:
        assert f"synthetic={value}" in first.json["next"]  # the next page keeps the filter
    while first.json["next"]:
        first = client.get(first.json["next"], headers=headers)
        items += first.json["items"]
    assert {item["escalationId"] for item in items} == {mixed[name] for name in expected}
    assert all(item["synthetic"] == (item["escalationId"] == mixed["synthetic"]) for item in items)


def test_api_refuses_a_synthetic_value_that_is_not_a_boolean(app, client):
    response = client.get(f"{PAIR}/deliveries?synthetic=yes", headers=api_token(app, "viewer", "read"))
    body = assert_problem(response, 422, "validation-error")
    assert body["errors"] == [{"detail": "Not a valid boolean.", "parameter": "synthetic"}]
    spec = client.get("/api/v1/openapi.json").json
    parameters = spec["paths"]["/api/v1/agents/{agent_id}/{env}/deliveries"]["get"]["parameters"]
    synthetic = next(p for p in parameters if p["name"] == "synthetic")
    assert synthetic["in"] == "query" and synthetic["schema"]["type"] == "boolean"


def test_cli_deliveries_synthetic_and_real(runner, mixed):
    both = runner.invoke(args=["qlar", "deliveries"]).output.splitlines()
    synthetic = runner.invoke(args=["qlar", "deliveries", "--synthetic"]).output.splitlines()
    real = runner.invoke(args=["qlar", "deliveries", "--real"]).output.splitlines()
    assert len(both) == 6 and len(synthetic) == 3 and len(real) == 3
    assert all("[synthetic]" in line for line in synthetic) and not any("[synthetic]" in line for line in real)
