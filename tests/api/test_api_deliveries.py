"""The deliveries API: the filtered, keyset-paged log, one event with its attempts, Resend, the receiver check."""
import re
import time

import pytest
from helpers import api_token, assert_problem, stored_secret

from qlar_console.audit.models import AuditEntry
from qlar_console.clock import utcnow
from qlar_console.engine.fanout import destinations
from qlar_console.engine.models import EVENT_TYPES, STATUSES, Event
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.settings.keys import signing_secrets
from qlar_console.settings.service import get_settings
from qlar_console.signing import verify_qlar_signature

ENV = ("agent-123", "production")
API = "/api/v1"
LOG = f"{API}/agents/agent-123/production/deliveries"
CHECK = f"{API}/agents/agent-123/production/webhook/check"


def _flow(app, environment: str = "production") -> str:
    """Create, claim and complete an escalation; its id."""
    with app.app_context():
        esc = lifecycle.create_escalation("agent-123", environment).id
        lifecycle.claim(esc, "supervisor-1")
        lifecycle.complete(esc, "Refund issued")
    return esc


def _insert(app, specs: list[tuple[str, str, str]]) -> list[str]:
    """Add events (environment, status, event type) directly, in this order after every existing one; their ids."""
    with app.app_context():
        esc = lifecycle.create_escalation("agent-123", "staging").id  # an escalation row for the foreign key
        base = db.session.scalar(db.select(db.func.max(Event.id)))
        ids = [f"{base}{i:03d}" for i in range(len(specs))]
        for i, (event_id, (environment, status, event_type)) in enumerate(zip(ids, specs, strict=True)):
            db.session.add(Event(id=event_id, escalation_id=esc, agent_id="agent-123", environment=environment,
                                 endpoint_id=destinations("agent-123", environment, event_type)[0],
                                 event_type=event_type, sequence=100 + i, body=b'{"x":1}', status=status,
                                 created_at=utcnow()))
        db.session.commit()
    return ids


def _wait_for(client, headers, event_id: str, predicate, timeout: float = 8.0) -> dict:
    """Poll the event through the API until predicate(event) holds; the event."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        event = client.get(f"{API}/events/{event_id}", headers=headers).get_json()
        if predicate(event):
            return event
        time.sleep(0.05)
    raise AssertionError(f"event {event_id} did not reach the expected state: {event}")


def _well_behaved(app):
    """A receiver that follows the guide: 405 for other methods, 401 unless the raw body's signature verifies."""

    def respond(received):
        if received.method != "POST":
            return 405, {}, 0
        with app.app_context():
            keys = signing_secrets(get_settings(*ENV))
        ok = verify_qlar_signature(keys, received.body, received.headers.get("X-Qlar-Signature"))
        return (200 if ok else 401), {}, 0

    return respond


def test_list_is_newest_first_with_summaries_of_this_pair_only(delivery_app, receiver):
    esc = _flow(delivery_app)
    _flow(delivery_app, "staging")  # no webhook there: skipped, and never listed under production
    with delivery_app.app_context():
        delivery_app.extensions["qlar_dispatcher"].drain()
    client = delivery_app.test_client()
    headers = api_token(delivery_app, "viewer", "read")
    response = client.get(LOG, headers=headers)
    assert response.status_code == 200 and "Link" not in response.headers
    page = response.get_json()
    assert page["next"] is None
    assert [e["eventType"] for e in page["items"]] == ["completed", "claimed", "created"]
    completed = page["items"][0]
    assert completed["id"].startswith("evt_") and completed["escalationId"] == esc and completed["sequence"] == 3
    assert completed["status"] == "succeeded" and completed["lastStatusCode"] == 200
    assert completed["tries"] == completed["attemptCount"] == 1
    assert completed["agentId"] == "agent-123" and completed["environment"] == "production"
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ", completed["createdAt"])
    assert completed["deliveredAt"].endswith("Z") and completed["nextAttemptAt"] is None
    staging = client.get(f"{API}/agents/agent-123/staging/deliveries", headers=headers).get_json()["items"]
    assert [e["status"] for e in staging] == ["skipped"] * 3 and {e["environment"] for e in staging} == {"staging"}
    assert not {e["id"] for e in staging} & {e["id"] for e in page["items"]}
    assert len(receiver.requests) == 3


@pytest.mark.parametrize(("query", "expected"), [
    ("status=failed", [("production", "failed", "claimed"), ("production", "failed", "created")]),
    ("eventType=claimed", [("production", "failed", "claimed"), ("production", "succeeded", "claimed")]),
    ("status=succeeded&eventType=claimed", [("production", "succeeded", "claimed")]),
    ("status=cancelled", []),
    ("", [("production", *s) for s in (("failed", "claimed"), ("succeeded", "claimed"),
                                       ("failed", "created"), ("skipped", "created"))]),
])
def test_filters(app, query, expected):
    specs = [("production", "skipped", "created"), ("production", "failed", "created"),
             ("staging", "failed", "claimed"), ("production", "succeeded", "claimed"),
             ("production", "failed", "claimed"), ("staging", "failed", "created")]
    ids = dict(zip(_insert(app, specs), specs, strict=True))
    response = app.test_client().get(f"{LOG}?{query}", headers=api_token(app, "viewer", "read"))
    assert response.status_code == 200
    assert [ids[e["id"]] for e in response.get_json()["items"]] == expected


def test_paging_follows_next_until_exhausted(app):
    specs = [("production" if i % 3 else "staging", "failed" if i % 2 else "pending", "created") for i in range(40)]
    ids = _insert(app, specs)
    wanted = [i for i, s in zip(ids, specs, strict=True) if s[:2] == ("production", "failed")][::-1]
    assert len(wanted) == 13
    client = app.test_client()
    headers = api_token(app, "viewer", "read")
    url, seen, pages = f"{LOG}?status=failed&limit=5", [], 0
    while url:
        response = client.get(url, headers=headers)
        assert response.status_code == 200
        page = response.get_json()
        seen += [e["id"] for e in page["items"]]
        pages += 1
        url = page["next"]
        if url:
            assert response.headers["Link"] == f'<{url}>; rel="next"'
            assert url.startswith("http://localhost/api/v1/agents/agent-123/production/deliveries?")
            assert "status=failed" in url and "limit=5" in url and f"before={seen[-1]}" in url
        else:
            assert "Link" not in response.headers
    assert seen == wanted and len(set(seen)) == len(seen) and pages == 3


def test_default_page_is_50_and_limit_100_is_allowed(app):
    _insert(app, [("production", "skipped", "created")] * 120)
    client = app.test_client()
    headers = api_token(app, "viewer", "read")
    first = client.get(LOG, headers=headers).get_json()
    assert len(first["items"]) == 50 and "limit=" not in first["next"]
    widest = client.get(f"{LOG}?limit=100", headers=headers).get_json()
    assert len(widest["items"]) == 100 and widest["items"][:50] == first["items"]


def test_event_detail_has_body_and_every_attempt(delivery_app, receiver):
    answers = iter([500])
    receiver.respond = lambda r: (next(answers, 200), {"X-Receiver": "test"}, 0)
    delivery_app.extensions["qlar_dispatcher"].start()
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
    client = delivery_app.test_client()
    headers = api_token(delivery_app, "viewer", "read")
    (summary,) = client.get(LOG, headers=headers).get_json()["items"]
    event = _wait_for(client, headers, summary["id"], lambda e: e["status"] == "succeeded")
    sent = receiver.wait_for(2)
    assert event["body"].encode() == sent[0].body == sent[1].body  # the frozen bytes, exactly as sent
    assert event["tries"] == event["attemptCount"] == 2 and event["lastStatusCode"] == 200
    first, second = event["attempts"]
    assert [first["number"], second["number"]] == [1, 2]
    assert [first["statusCode"], second["statusCode"]] == [500, 200]
    assert first["trigger"] == second["trigger"] == "scheduled"
    assert first["url"] == receiver.url and first["error"] is None
    assert first["responseExcerpt"] == "status 500" and first["responseHeaders"]["X-Receiver"] == "test"
    assert first["nextAttemptAt"].endswith("Z") and second["nextAttemptAt"] is None
    assert isinstance(first["durationMs"], float) and first["at"].endswith("Z")
    assert first["requestHeaders"]["webhook-id"] == event["id"]
    assert second["requestHeaders"]["X-Qlar-Signature"] == sent[1].headers["X-Qlar-Signature"]
    secret = stored_secret(delivery_app)
    text = client.get(f"{API}/events/{event['id']}", headers=headers).get_data(as_text=True)
    assert secret not in text and secret.removeprefix("whsec_") not in text


def test_resend_queues_a_new_try_that_arrives(delivery_app, receiver):
    with delivery_app.app_context():
        lifecycle.create_escalation(*ENV)
        delivery_app.extensions["qlar_dispatcher"].drain()
    client = delivery_app.test_client()
    headers = api_token(delivery_app, "editor", "read", "write")
    (summary,) = client.get(LOG, headers=headers).get_json()["items"]
    assert summary["status"] == "succeeded"
    response = client.post(f"{API}/events/{summary['id']}/resend", headers=headers)
    assert response.status_code == 202
    queued = response.get_json()
    assert queued["id"] == summary["id"] and queued["status"] == "pending" and queued["tries"] == 0
    assert queued["resendRequestedBy"] == "editor" and "body" not in queued
    delivery_app.extensions["qlar_dispatcher"].start()
    first, again = receiver.wait_for(2)
    assert again.headers["Webhook-Id"] == summary["id"] and again.body == first.body
    event = _wait_for(client, headers, summary["id"], lambda e: e["status"] == "succeeded")
    assert [a["trigger"] for a in event["attempts"]] == ["scheduled", "manual"]
    assert event["attemptCount"] == 2 and event["resendRequestedBy"] is None
    with delivery_app.app_context():
        entry = db.session.scalar(db.select(AuditEntry).filter_by(action="event.resent"))
        assert (entry.actor, entry.details, entry.via) == ("editor", summary["id"], "API token 'test-editor'")


def test_check_reports_the_failures_then_429_with_retry_after(delivery_app, receiver):
    headers = api_token(delivery_app, "editor", "write")
    client = delivery_app.test_client()
    response = client.post(CHECK, headers=headers)  # the test receiver answers 200 to anything
    assert response.status_code == 200
    check = response.get_json()
    assert check["passed"] is False and check["url"] == receiver.url and check["ranBy"] == "editor"
    assert check["agentId"] == "agent-123" and check["environment"] == "production" and check["ranAt"].endswith("Z")
    assert [r["number"] for r in check["rules"]] == [1, 2, 3, 4, 5, 6, 7, 8, 10, 11]  # 9: no expired key to try
    for rule in check["rules"]:
        assert set(rule) == {"number", "rule", "required", "passed", "sent", "got", "fix"}
        assert (rule["fix"] is None) == rule["passed"]
    assert {r["number"] for r in check["rules"] if r["required"] and not r["passed"]} == {3, 4, 5, 6, 7}
    again = client.post(CHECK, headers=headers)
    problem = assert_problem(again, 429, "rate-limited")
    assert re.fullmatch(r"A check ran \d+ s ago: wait \d+ s before the next one\.", problem["detail"])
    assert 1 <= int(again.headers["Retry-After"]) <= 10


def test_check_passes_against_a_receiver_that_follows_the_guide(delivery_app, receiver):
    receiver.respond = _well_behaved(delivery_app)
    response = delivery_app.test_client().post(CHECK, headers=api_token(delivery_app, "editor", "write"))
    assert response.status_code == 200
    check = response.get_json()
    assert check["passed"] is True and all(r["passed"] for r in check["rules"] if r["required"])
    with delivery_app.app_context():
        entry = db.session.scalar(db.select(AuditEntry).filter_by(action="webhook.receiver_checked"))
        assert entry.actor == "editor" and entry.via == "API token 'test-editor'"


def test_check_without_a_saved_url_is_409(app):
    response = app.test_client().post(CHECK, headers=api_token(app, "editor", "write"))
    problem = assert_problem(response, 409, "conflict")
    assert problem["detail"] == "Save the webhook with its URL first: the check probes the saved endpoint."


def test_tokens_scopes_and_roles(app):
    client = app.test_client()
    (event_id,) = _insert(app, [("production", "failed", "created")])
    resend = f"{API}/events/{event_id}/resend"
    for method, path in (("get", LOG), ("get", f"{API}/events/{event_id}"), ("post", resend), ("post", CHECK)):
        response = getattr(client, method)(path)
        assert_problem(response, 401, "unauthorized")
        assert response.headers["WWW-Authenticate"].startswith("Bearer")
    assert "invalid_token" in client.get(LOG, headers={"Authorization": "Bearer nope"}).headers["WWW-Authenticate"]
    read_only = api_token(app, "editor", "read")
    assert_problem(client.post(resend, headers=read_only), 403, "forbidden-scope")
    assert_problem(client.post(CHECK, headers=read_only), 403, "forbidden-scope")
    viewer = api_token(app, "viewer", "read", "write")
    assert_problem(client.post(resend, headers=viewer), 403, "forbidden-role")
    assert_problem(client.post(CHECK, headers=viewer), 403, "forbidden-role")
    assert client.get(LOG, headers=viewer).status_code == 200
    with app.app_context():
        assert db.session.get(Event, event_id).status == "failed"  # nothing was resent


@pytest.mark.parametrize(("method", "path", "detail"), [
    ("get", f"{API}/agents/agent-999/production/deliveries", "No agent 'agent-999' with environment 'production'."),
    ("get", f"{API}/agents/agent-123/qa/deliveries", "No agent 'agent-123' with environment 'qa'."),
    ("get", f"{API}/events/evt_0123abc", "No event 'evt_0123abc'."),
    ("get", f"{API}/events/not-an-event", "No event 'not-an-event'."),
    ("post", f"{API}/events/evt_0123abc/resend", "No event 'evt_0123abc'."),
    ("post", f"{API}/events/1%20OR%201=1/resend", "No event '1 OR 1=1'."),
    ("post", f"{API}/agents/agent-999/production/webhook/check", "No agent 'agent-999' with environment 'production'."),
])
def test_unknown_is_404(app, method, path, detail):
    response = getattr(app.test_client(), method)(path, headers=api_token(app, "editor", "read", "write"))
    assert assert_problem(response, 404, "not-found")["detail"] == detail


@pytest.mark.parametrize(("query", "parameter", "detail"), [
    ("status=bogus", "status", "Unknown status 'bogus': choose one of pending, succeeded, failed, skipped, cancelled."),
    ("eventType=deleted", "eventType",
     "Unknown event type 'deleted': choose one of created, claimed, completed, released."),
    ("before=1%20OR%201=1", "before", "'1 OR 1=1' is not an event id (evt_…): follow the Older link to page back."),
    ("status=failed&before=evt_zz", "before",
     "'evt_zz' is not an event id (evt_…): follow the Older link to page back."),
    ("limit=0", "limit", "Must be greater than or equal to 1 and less than or equal to 100."),
    ("limit=101", "limit", "Must be greater than or equal to 1 and less than or equal to 100."),
    ("limit=-1", "limit", "Must be greater than or equal to 1 and less than or equal to 100."),
    ("limit=ten", "limit", "Not a valid integer."),
    ("limit=2.5", "limit", "Not a valid integer."),
    ("limit=", "limit", "Not a valid integer."),
    ("event_type=claimed", "event_type", "Unknown field."),  # the page's name, not the API's
    ("status=", "status", "Give a value, or leave the parameter out."),  # the page's "Any" is no parameter here
    ("eventType=", "eventType", "Give a value, or leave the parameter out."),
    ("before=", "before", "Give a value, or leave the parameter out."),
])
def test_invalid_query_is_422_naming_the_parameter(app, query, parameter, detail):
    response = app.test_client().get(f"{LOG}?{query}", headers=api_token(app, "viewer", "read"))
    problem = assert_problem(response, 422, "validation-error")
    assert problem["errors"] == [{"detail": detail, "parameter": parameter}]


def test_openapi_documents_the_parameters_and_responses(app):
    spec = app.test_client().get(f"{API}/openapi.json").get_json()
    operation = spec["paths"]["/api/v1/agents/{agent_id}/{env}/deliveries"]["get"]
    parameters = {p["name"]: p["schema"] for p in operation["parameters"]}
    assert parameters["status"]["enum"] == list(STATUSES)
    assert parameters["eventType"]["enum"] == list(EVENT_TYPES)
    assert parameters["before"]["pattern"] == "^evt_[0-9a-f]{1,36}$"
    limit = parameters["limit"]
    assert (limit["type"], limit["minimum"], limit["maximum"], limit["default"]) == ("integer", 1, 100, 50)
    assert "Link" in operation["responses"]["200"]["headers"] and "422" in operation["responses"]
    check = spec["paths"]["/api/v1/agents/{agent_id}/{env}/webhook/check"]["post"]
    assert {"200", "401", "403", "404", "409", "429"} <= set(check["responses"])
    assert spec["paths"]["/api/v1/events/{event_id}/resend"]["post"]["security"] == [{"bearer": []}]
    assert "202" in spec["paths"]["/api/v1/events/{event_id}/resend"]["post"]["responses"]


def test_behind_a_trusted_proxy_next_links_are_the_public_ones(tmp_path):
    from apps import dispose, make_app

    app = make_app(tmp_path, TRUSTED_PROXIES=1)
    _insert(app, [("production", "failed", "created")] * 3)
    client = app.test_client()
    forwarded = {**api_token(app, "viewer", "read"), "X-Forwarded-Proto": "https", "X-Forwarded-Host":
                 "console.example.com", "X-Forwarded-Prefix": "/qlar", "X-Forwarded-For": "203.0.113.9"}
    page = client.get(f"{LOG}?limit=2", headers=forwarded).get_json()
    assert page["next"].startswith("https://console.example.com/qlar/api/v1/agents/agent-123/production/deliveries?")
    (tmp_path / "direct").mkdir()
    direct = make_app(tmp_path / "direct")  # no proxy trusted: the same headers change nothing
    _insert(direct, [("production", "failed", "created")] * 3)
    page = direct.test_client().get(f"{LOG}?limit=2", headers={**forwarded, **api_token(direct, "viewer", "read")})
    assert page.get_json()["next"].startswith("http://localhost/api/v1/")
    dispose(app), dispose(direct)
