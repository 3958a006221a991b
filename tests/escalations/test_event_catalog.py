"""The event catalog: every body the dispatcher delivers validates against the published JSON Schema, and the
schema requires exactly what the code always sends; the schema's route is public and cacheable; the Event types
page shows each type with its fields and a real example, passes axe and fits 390 px."""
import copy
import json
import random

import pytest
from helpers import PAGE
from jsonschema import Draft202012Validator, FormatChecker

from qlar_console.engine.models import EVENT_TYPES, Event
from qlar_console.escalations import catalog, service, simulate
from qlar_console.extensions import db

SCHEMA_URL = "/api/v1/schemas/events.json"
VALIDATOR = Draft202012Validator(catalog.event_schema(), format_checker=FormatChecker())


def errors(document: dict) -> list[str]:
    """The schema's complaints about a document (none: it is valid)."""
    return [f"{'/'.join(map(str, e.absolute_path))}: {e.message}" for e in VALIDATOR.iter_errors(document)]


def dotted_keys(document: dict) -> set[str]:
    """The document's field names as the catalog names them: envelope names and escalation.NAME."""
    return set(document) | {f"escalation.{name}" for name in document.get("escalation", {})}


def keywords(node) -> set[str]:
    """Every key used anywhere in a JSON document."""
    if isinstance(node, dict):
        return set(node).union(*(keywords(value) for value in node.values()))
    if isinstance(node, list):
        return set().union(*(keywords(value) for value in node))
    return set()


def declared_keys() -> set[str]:
    """Every field the schema describes."""
    schema = catalog.event_schema()
    return set(schema["properties"]) | {f"escalation.{name}" for name in schema["$defs"]["escalation"]["properties"]}


def run_every_flow(app) -> int:
    """Each template's full flow, a released-then-reclaimed flow, fields at their limits and simulate flows;
    returns how many events they emitted."""
    with app.app_context():
        for template in service.TEMPLATES:
            esc = service.create_escalation("agent-123", "production", template).id
            service.claim(esc, "supervisor-1")
            service.complete(esc, "Refund issued.")
        esc = service.create_escalation("agent-123", "production").id
        service.claim(esc, "first")
        service.release(esc)
        service.claim(esc, "second")
        service.release(esc)
        service.claim(esc, "third")
        service.complete(esc, "Handled after two hand-overs.")
        limits = service.FIELD_MAX_LENGTH
        esc = service.create_escalation(
            "agent-123", "production", threadId="t" * limits["threadId"], urgencyLevel="critical",
            topic="Rückerstattung 払い戻し", area="a" * limits["area"], reason="r" * limits["reason"],
            triggerCondition="Negative sentiment").id
        service.claim(esc, "s" * limits["claimedBy"])
        service.complete(esc, "n" * limits["resolutionNotes"])
        service.create_escalation("agent-123", "production")  # left Pending
        rng = random.Random(7)
        flows = [simulate.run_flow("agent-123", "production", rng) for _ in range(25)]
        assert len(flows) == 25
        return db.session.scalar(db.select(db.func.count()).select_from(Event))


@pytest.fixture
def delivered(delivery_app, receiver) -> list[dict]:
    """The documents the dispatcher delivered to a real receiver for every flow (bodies as received)."""
    count = run_every_flow(delivery_app)
    with delivery_app.app_context():
        delivery_app.extensions["qlar_dispatcher"].drain()
    got = receiver.wait_for(count)
    assert len(got) == count
    return [json.loads(r.body) for r in got]


def test_the_schema_is_draft_2020_12_and_open_to_additions():
    schema = catalog.event_schema()
    assert schema["$schema"] == "https://json-schema.org/draft/2020-12/schema"
    Draft202012Validator.check_schema(schema)
    assert not keywords(schema) & {"additionalProperties", "unevaluatedProperties"}  # receivers tolerate additions
    assert set(schema["$defs"]) >= set(EVENT_TYPES)


def test_every_delivered_body_validates_and_the_schema_requires_what_the_code_sends(delivered):
    by_type: dict[str, list[dict]] = {}
    for document in delivered:
        assert not errors(document), (document, errors(document))
        by_type.setdefault(document["eventType"], []).append(document)
    assert set(by_type) == set(EVENT_TYPES)  # each type was produced, and none the catalog lacks
    assert sum(d["eventType"] == "released" for d in delivered) >= 2
    for event_type, documents in by_type.items():
        always = set.intersection(*(dotted_keys(d) for d in documents))
        ever = set.union(*(dotted_keys(d) for d in documents))
        # A field the code always sends must be required, and a required one always sent.
        assert always == catalog.required_fields(event_type), event_type
        assert ever <= declared_keys(), f"{event_type}: fields the schema lacks: {ever - declared_keys()}"


def test_the_catalog_examples_are_what_the_code_makes():
    bodies = catalog.example_bodies()
    assert set(bodies) == set(EVENT_TYPES)
    for event_type, body in bodies.items():
        document = json.loads(body)
        assert not errors(document)
        assert dotted_keys(document) == catalog.required_fields(event_type)
        assert catalog.event_schema()["$defs"][event_type]["examples"] == [document]


@pytest.mark.parametrize("event_type", EVENT_TYPES)
def test_the_schema_refuses_what_a_receiver_could_not_use_and_tolerates_additions(event_type):
    document = catalog.example(event_type)
    for name in catalog.required_fields(event_type):
        broken = copy.deepcopy(document)
        parent, _, leaf = name.rpartition(".")
        del (broken[parent] if parent else broken)[leaf]
        assert errors(broken), f"{name} dropped from {event_type} still validates"
    wrong_status = copy.deepcopy(document)
    wrong_status["escalation"]["status"] = "Completed" if event_type != "completed" else "Pending"
    assert errors(wrong_status)
    added = {**copy.deepcopy(document), "newField": {"any": 1}}
    added["escalation"]["priorityScore"] = 0.9
    assert not errors(added)
    assert not errors({**document, "eventType": "reassigned"})  # a future type: the envelope still holds


def test_the_schema_route_is_public_typed_and_cacheable(client):
    response = client.get(SCHEMA_URL)
    assert response.status_code == 200
    assert response.mimetype == "application/schema+json"
    assert response.json == catalog.event_schema()
    assert "public" in response.headers["Cache-Control"] and "max-age" in response.headers["Cache-Control"]
    again = client.get(SCHEMA_URL, headers={"If-None-Match": response.headers["ETag"]})
    assert again.status_code == 304


def test_the_openapi_document_refers_to_the_schema(client):
    document = client.get("/api/v1/openapi.json").json
    operation = document["paths"][SCHEMA_URL]["get"]
    assert "application/schema+json" in operation["responses"]["200"]["content"]
    webhook = document["webhooks"]["escalationEvent"]["post"]
    assert webhook["requestBody"]["content"]["application/json"]["schema"] == {"$ref": SCHEMA_URL}


def test_the_page_needs_a_login_and_the_card_links_to_it(client, auth):
    assert client.get("/event-types").status_code == 302
    auth.login("editor")
    assert 'href="/event-types">Event types</a>' in client.get(PAGE).text
    html = client.get("/event-types").text
    for event_type in EVENT_TYPES:
        assert f'id="type-{event_type}"' in html and catalog.MEANINGS[event_type][0] in html
    assert "escalation.resolutionNotes" in html and "The whole schema (JSON)" in html
    assert "supervisor-2" in html and f'href="{SCHEMA_URL}"' in html
