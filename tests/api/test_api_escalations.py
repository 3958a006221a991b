"""The API's escalation lifecycle: the page's rules over JSON, with problems for every refusal."""
import html
import json
import re
import time

import pytest
from helpers import api_token, assert_problem, login

from qlar_console.audit.models import AuditEntry
from qlar_console.engine.models import Event
from qlar_console.escalations.models import Escalation, SimulationJob
from qlar_console.escalations.service import FIELD_MAX_LENGTH, NOTES_REQUIRED
from qlar_console.extensions import db

PAIR = "/api/v1/agents/agent-123/production"
TEMPLATE = {"urgencyLevel": "high", "topic": "refund", "area": "payment",
            "reason": "User is angry and demands immediate refund", "triggerCondition": "Angry Customer Escalation"}


def create(client, headers, **fields) -> dict:
    response = client.post(f"{PAIR}/escalations", json=fields, headers=headers)
    assert response.status_code == 201, response.data
    return response.json


def act(client, headers, escalation_id: str, action: str, body: dict | None = None):
    return client.post(f"/api/v1/escalations/{escalation_id}/{action}", json=body, headers=headers)


def event_types(app, escalation_id: str) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(
            db.select(Event.event_type).filter_by(escalation_id=escalation_id).order_by(Event.sequence)))


def counts(app) -> tuple[int, int]:
    """How many escalations and simulate jobs exist."""
    with app.app_context():
        return (db.session.scalar(db.select(db.func.count()).select_from(Escalation)),
                db.session.scalar(db.select(db.func.count()).select_from(SimulationJob)))


def test_create_from_the_template_answers_201_where_to_read_it(app, client):
    headers = api_token(app, "editor")

    response = client.post(f"{PAIR}/escalations", headers=headers)

    assert response.status_code == 201
    document = response.json
    assert re.fullmatch(r"esc-[0-9a-f]{12}", document["id"])
    assert response.headers["Location"].endswith(f"/api/v1/escalations/{document['id']}")
    assert {k: document[k] for k in TEMPLATE} == TEMPLATE
    assert re.fullmatch(r"thread-[0-9a-f]{8}", document["threadId"])
    assert (document["agentId"], document["environment"], document["status"]) == ("agent-123", "production", "Pending")
    assert document["claimedBy"] is None and document["resolutionNotes"] is None
    assert document["createdAt"].endswith("Z")
    [event] = document["events"]
    assert (event["eventType"], event["sequence"], event["status"]) == ("created", 1, "skipped")  # webhook off
    assert event["id"].startswith("evt_")

    read = client.get(response.headers["Location"], headers=api_token(app, "viewer", "read"))
    assert read.status_code == 200 and read.json == document
    login(client, "viewer")
    assert document["id"] in client.get("/escalations?agent=agent-123&env=production").get_data(as_text=True)
    with app.app_context():
        entry = db.session.scalar(db.select(AuditEntry).filter_by(action="api.call").order_by(AuditEntry.id))
        assert entry.actor == "editor" and entry.via == "API token 'test-editor'"
        assert entry.details == f"POST {PAIR}/escalations -> 201"


def test_given_fields_override_the_template_and_are_frozen_in_the_event(app, client):
    headers = api_token(app, "editor")
    fields = {"threadId": "thread-qa-1", "urgencyLevel": "critical", "topic": "billing", "area": "invoices",
              "reason": "Charged twice", "triggerCondition": "Sensitive Topic"}

    document = create(client, headers, template="angry-customer", **fields)

    assert {k: document[k] for k in fields} == fields
    with app.app_context():
        body = json.loads(db.session.scalar(db.select(Event.body).filter_by(escalation_id=document["id"])))
    assert body["escalation"] == {"id": document["id"], "status": "Pending", **fields}
    partial = create(client, headers, topic="  late delivery  ", area="")  # blank: the template's
    assert (partial["topic"], partial["area"], partial["urgencyLevel"]) == ("late delivery", "payment", "high")


def test_a_flow_through_the_api_reaches_the_receiver_in_order(delivery_app, receiver):
    delivery_app.extensions["qlar_dispatcher"].start()
    client, headers = delivery_app.test_client(), api_token(delivery_app, "editor")

    escalation_id = create(client, headers)["id"]
    claimed = act(client, headers, escalation_id, "claim")
    completed = act(client, headers, escalation_id, "complete", {"notes": "Refund issued"})

    assert claimed.status_code == 200 and claimed.json["status"] == "Claimed" and claimed.json["claimedBy"] == "editor"
    assert completed.status_code == 200 and completed.json["status"] == "Completed"
    assert completed.json["resolutionNotes"] == "Refund issued"
    bodies = [r.json for r in receiver.wait_for(3)]
    assert [(b["eventType"], b["sequence"]) for b in bodies] == [("created", 1), ("claimed", 2), ("completed", 3)]
    assert {b["escalation"]["id"] for b in bodies} == {escalation_id}
    assert bodies[1]["escalation"]["claimedBy"] == "editor"
    assert bodies[2]["escalation"]["resolutionNotes"] == "Refund issued"
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        events = client.get(f"/api/v1/escalations/{escalation_id}", headers=headers).json["events"]
        if all(e["status"] == "succeeded" for e in events):
            break
        time.sleep(0.05)
    assert [(e["eventType"], e["status"]) for e in events] == [
        ("created", "succeeded"), ("claimed", "succeeded"), ("completed", "succeeded")]
    assert [e["id"] for e in events] == [b["eventId"] for b in bodies]


def test_claim_for_someone_else_then_release(app, client):
    headers = api_token(app, "editor")
    escalation_id = create(client, headers)["id"]

    claimed = act(client, headers, escalation_id, "claim", {"by": "supervisor-7"})
    released = act(client, headers, escalation_id, "release")

    assert claimed.status_code == 200 and claimed.json["claimedBy"] == "supervisor-7"
    assert released.status_code == 200
    assert released.json["status"] == "Pending" and released.json["claimedBy"] is None
    assert [(e["eventType"], e["sequence"]) for e in released.json["events"]] == [
        ("created", 1), ("claimed", 2), ("released", 3)]


@pytest.mark.parametrize(("claims", "action", "body", "message"), [
    (0, "complete", {"notes": "crafted"}, "Cannot complete escalation {id}: it is Pending, and only a Claimed "
                                          "escalation can be completed."),
    (0, "release", None, "Cannot release escalation {id}: it is Pending, and only a Claimed escalation can be "
                         "released."),
    (1, "claim", {"by": "supervisor-2"}, "Cannot claim escalation {id}: it is Claimed, and only a Pending "
                                         "escalation can be claimed."),
])
def test_an_invalid_transition_is_409_with_the_services_message_and_emits_nothing(app, client, claims, action, body,
                                                                                   message):
    headers = api_token(app, "editor")
    escalation_id = create(client, headers)["id"]
    if claims:
        act(client, headers, escalation_id, "claim")
    before = event_types(app, escalation_id)

    refused = act(client, headers, escalation_id, action, body)

    assert assert_problem(refused, 409, "conflict")["detail"] == message.format(id=escalation_id)
    assert event_types(app, escalation_id) == before
    assert client.get(f"/api/v1/escalations/{escalation_id}", headers=headers).json["claimedBy"] == (
        "editor" if claims else None)


@pytest.mark.parametrize("body", [{}, {"notes": "   "}, {"notes": None}])
def test_complete_without_notes_is_422_with_the_services_message(app, client, body):
    headers = api_token(app, "editor")
    escalation_id = create(client, headers)["id"]
    act(client, headers, escalation_id, "claim")

    refused = assert_problem(act(client, headers, escalation_id, "complete", body), 422, "validation-error")

    assert refused["errors"] == [{"detail": NOTES_REQUIRED, "pointer": "#/notes"}]
    assert NOTES_REQUIRED == "Resolution notes are required to complete an escalation."
    assert event_types(app, escalation_id) == ["created", "claimed"]


def test_unknown_ids_and_pairs_are_404(app, client):
    headers = api_token(app, "editor")
    for method, path, body in [
        ("get", "/api/v1/escalations/esc-nope", None),
        ("post", "/api/v1/escalations/esc-nope/claim", None),
        ("post", "/api/v1/escalations/esc-nope/complete", {"notes": "x"}),
        ("post", "/api/v1/escalations/esc-nope/release", None),
        ("get", "/api/v1/jobs/job-nope", None),
        ("post", "/api/v1/agents/agent-9/production/escalations", {}),
        ("post", "/api/v1/agents/agent-123/qa/simulate", {"flows": 1}),
    ]:
        body = assert_problem(getattr(client, method)(path, json=body, headers=headers), 404, "not-found")
        assert body["detail"] in ("No escalation 'esc-nope'.", "No simulate job 'job-nope'.",
                                  "No agent 'agent-9' with environment 'production'.",
                                  "No agent 'agent-123' with environment 'qa'."), body["detail"]
    assert counts(app) == (0, 0)


@pytest.mark.parametrize(("action", "body", "pointer", "detail"), [
    ("create", {"topic": "x" * 121}, "#/topic", "Topic cannot be longer than 120 characters."),
    ("create", {"reason": "x" * 2001}, "#/reason", "Reason cannot be longer than 2000 characters."),
    ("create", {"threadId": "t" * 121}, "#/threadId", "Thread ID cannot be longer than 120 characters."),
    ("create", {"urgencyLevel": "apocalyptic"}, "#/urgencyLevel",
     "Urgency level must be one of: low, medium, high, critical."),
    ("create", {"template": "calm-customer"}, "#/template", "Unknown template 'calm-customer'; known: angry-customer."),
    ("create", {"topic": 5}, "#/topic", "Not a valid string."),
    ("create", {"topic": None}, "#/topic", "Field may not be null."),
    ("create", {"topic": "a\u0000b"}, "#/topic", "Topic contains a character that cannot be stored (NUL or a lone "
                                                 "surrogate)."),
    ("create", {"priority": "high"}, "#/priority", "Unknown field."),
    ("create", {"status": "Completed", "priority": "high"}, "#/priority", "Unknown field."),  # status: ignored
    ("claim", {"by": "x" * 81}, "#/by", "Claimed by cannot be longer than 80 characters."),
    ("claim", {"by": ""}, "#/by", "Say who claims the escalation."),
    ("claim", {"by": ["editor"]}, "#/by", "Not a valid string."),
    ("complete", {"notes": "x" * 2001}, "#/notes", "Resolution notes cannot be longer than 2000 characters."),
    ("complete", {"notes": "ok", "by": "x"}, "#/by", "Unknown field."),
    ("simulate", {}, "#/flows", "Missing data for required field."),
    ("simulate", {"flows": "3"}, "#/flows", "Not a valid integer."),
    ("simulate", {"flows": True}, "#/flows", "Not a valid integer."),
    ("simulate", {"flows": 2.5}, "#/flows", "Not a valid integer."),
    ("simulate", {"flows": 0}, "#/flows", "Flows must be between 1 and 10000."),
    ("simulate", {"flows": 10001}, "#/flows", "Flows must be between 1 and 10000."),
    ("simulate", {"flows": 1, "rate": 0}, "#/rate",
     "Rate must be more than 0 and at most 1000 flows per second (or none: as fast as possible)."),
    ("simulate", {"flows": 1, "rate": 1000.5}, "#/rate",
     "Rate must be more than 0 and at most 1000 flows per second (or none: as fast as possible)."),
    ("simulate", {"flows": 1, "rate": "fast"}, "#/rate", "Not a valid number."),
    ("simulate", {"flows": 1, "waitSeconds": 601}, "#/waitSeconds", "Wait must be between 0 and 600 seconds."),
    ("simulate", {"flows": 1, "waitSeconds": -1}, "#/waitSeconds", "Wait must be between 0 and 600 seconds."),
    ("simulate", {"flows": 1, "seed": 7}, "#/seed", "Unknown field."),
])
def test_bad_bodies_are_422_field_by_field_and_change_nothing(app, client, action, body, pointer, detail):
    headers = api_token(app, "editor")
    escalation_id = create(client, headers)["id"]
    if action == "complete":
        act(client, headers, escalation_id, "claim")
    path = {"create": f"{PAIR}/escalations", "simulate": f"{PAIR}/simulate"}.get(
        action, f"/api/v1/escalations/{escalation_id}/{action}")
    before = event_types(app, escalation_id)

    refused = assert_problem(client.post(path, json=body, headers=headers), 422, "validation-error")

    assert {"detail": detail, "pointer": pointer} in refused["errors"], refused["errors"]
    assert counts(app) == (1, 0) and event_types(app, escalation_id) == before


@pytest.mark.parametrize("field", ["topic", "area", "triggerCondition", "threadId", "reason"])
def test_a_field_at_its_limit_is_taken(app, client, field):
    document = create(client, api_token(app, "editor"), **{field: "x" * FIELD_MAX_LENGTH[field]})
    assert document[field] == "x" * FIELD_MAX_LENGTH[field]


def test_the_page_and_the_api_refuse_over_long_notes_with_one_message(app, client):
    headers = api_token(app, "editor")
    escalation_id = create(client, headers)["id"]
    act(client, headers, escalation_id, "claim")
    notes = "x" * (FIELD_MAX_LENGTH["resolutionNotes"] + 1)

    api = assert_problem(act(client, headers, escalation_id, "complete", {"notes": notes}), 422, "validation-error")
    login(client, "editor")
    page = client.post(f"/escalations/{escalation_id}/complete", data={"notes": notes}, follow_redirects=True)

    message = "Resolution notes cannot be longer than 2000 characters."
    assert api["errors"] == [{"detail": message, "pointer": "#/notes"}]
    assert message in html.unescape(page.get_data(as_text=True))
    assert 'name="notes" required maxlength="2000"' in page.get_data(as_text=True)
    assert event_types(app, escalation_id) == ["created", "claimed"]


def test_the_openapi_document_states_the_services_limits(client):
    spec = client.get("/api/v1/openapi.json").json
    schemas = spec["components"]["schemas"]
    for field in ("threadId", "topic", "area", "reason", "triggerCondition"):
        assert schemas["Escalation"]["properties"][field]["maxLength"] == FIELD_MAX_LENGTH[field]
    assert schemas["Escalation"]["properties"]["template"]["enum"] == ["angry-customer"]
    assert schemas["Escalation"]["properties"]["urgencyLevel"]["enum"] == ["low", "medium", "high", "critical", ""]
    assert schemas["Claim"]["properties"]["by"]["maxLength"] == FIELD_MAX_LENGTH["claimedBy"]
    assert schemas["Complete"]["required"] == ["notes"]
    simulate = schemas["Simulate"]["properties"]
    assert (simulate["flows"]["minimum"], simulate["flows"]["maximum"]) == (1, 10000)
    assert (simulate["rate"]["exclusiveMinimum"], simulate["rate"]["maximum"]) == (0, 1000)
    assert (simulate["waitSeconds"]["minimum"], simulate["waitSeconds"]["maximum"]) == (0, 600)
    assert schemas["Job"]["properties"]["status"]["enum"] == [
        "running", "delivering", "finished", "failed", "cancelled"]
    responses = spec["paths"]["/api/v1/escalations/{escalation_id}/claim"]["post"]["responses"]
    assert {"200", "401", "403", "404", "409", "422"} <= set(responses)


def test_tokens_scopes_and_roles_apply_to_every_endpoint(app, client):
    editor = api_token(app, "editor")
    escalation_id = create(client, editor)["id"]
    reader = api_token(app, "editor", "read")
    viewer_writer = api_token(app, "viewer", "read", "write")
    writes = [(f"{PAIR}/escalations", {}), (f"/api/v1/escalations/{escalation_id}/claim", {}),
              (f"/api/v1/escalations/{escalation_id}/complete", {"notes": "x"}),
              (f"/api/v1/escalations/{escalation_id}/release", None), (f"{PAIR}/simulate", {"flows": 1})]

    for path, body in writes:
        unauthorized = assert_problem(client.post(path, json=body), 401, "unauthorized")
        assert "Bearer" in unauthorized["detail"]
        assert client.post(path, json=body).headers["WWW-Authenticate"].startswith("Bearer")
        assert_problem(client.post(path, json=body, headers={"Authorization": "Bearer qlar_tok_nope"}),
                       401, "unauthorized")
        scope = assert_problem(client.post(path, json=body, headers=reader), 403, "forbidden-scope")
        assert "'write' scope" in scope["detail"]
        role = assert_problem(client.post(path, json=body, headers=viewer_writer), 403, "forbidden-role")
        assert role["detail"] == "viewer is a viewer; this call needs the editor role."
    for path in (f"/api/v1/escalations/{escalation_id}", "/api/v1/jobs/job-nope"):
        assert_problem(client.get(path), 401, "unauthorized")
    assert client.get(f"/api/v1/escalations/{escalation_id}", headers=viewer_writer).status_code == 200

    assert counts(app) == (1, 0) and event_types(app, escalation_id) == ["created"]
