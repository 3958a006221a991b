"""The Escalations page: the simulator's create form, Claim / Complete / Release, Run test flow, roles."""
import html
import json
import re

import pytest
from apps import PASSWORD, make_app, point_webhook
from helpers import login

from qlar_console.engine.models import Event
from qlar_console.escalations import service as lifecycle
from qlar_console.escalations.models import Escalation
from qlar_console.extensions import db
from qlar_console.settings.service import get_settings

STAGING = "/escalations?agent=agent-123&env=staging"
PRODUCTION = "/escalations?agent=agent-123&env=production"
POSTS = ("/escalations", "/escalations/test-flow", "/escalations/esc-x/claim",
         "/escalations/esc-x/complete", "/escalations/esc-x/release")


def _page(client, url=STAGING) -> str:
    response = client.get(url)
    assert response.status_code == 200
    return html.unescape(response.get_data(as_text=True))


def _flashes(page: str) -> list[str]:
    return re.findall(r'<p class="flash flash-\w+" role="\w+">(.*?)</p>', page)


def _events(app, escalation_id) -> list[Event]:
    with app.app_context():
        return list(db.session.scalars(
            db.select(Event).where(Event.escalation_id == escalation_id).order_by(Event.sequence)))


def _escalations(app) -> list[Escalation]:
    with app.app_context():
        return list(db.session.scalars(db.select(Escalation).order_by(Escalation.created_at)))


def _create(app, env="staging", claim_by=None) -> str:
    with app.app_context():
        escalation_id = lifecycle.create_escalation("agent-123", env).id
        if claim_by:
            lifecycle.claim(escalation_id, claim_by)
    return escalation_id


def _value(page: str, name: str) -> str:
    """The value of the text input `name` in the page."""
    return re.search(rf'<input [^>]*name="{name}"[^>]*value="([^"]*)"', page).group(1)


def _actions(page: str, escalation_id: str) -> set[str]:
    return set(re.findall(rf'action="/escalations/{escalation_id}/(claim|complete|release)"', page))


def test_anonymous_is_sent_tologin(client):
    for path in ("/escalations", STAGING):
        response = client.get(path)
        assert response.status_code == 302 and "/login" in response.headers["Location"]
    for path in POSTS:
        response = client.post(path, data={"agent": "agent-123", "env": "staging", "notes": "x"})
        assert response.status_code == 302 and "/login" in response.headers["Location"]


def test_page_shows_pair_switcher_webhook_line_and_prefilled_form(client, app):
    login(client)
    page = _page(client)
    assert '<h1 id="context-title">agent-123 · staging</h1>' in page
    assert "<title>Escalations · agent-123 · staging · qlar</title>" in page
    assert 'href="/escalations?agent=agent-123&env=production"' in page  # the switcher
    assert '<a href="/escalations" aria-current="page">Escalations</a>' in page  # the nav link, marked current
    assert "Webhook <span class=\"state state-off\">Disabled</span>" in page
    assert 'href="/agents/agent-123/staging/escalation">Escalation settings</a>' in page
    assert _value(page, "thread_id") == ""
    assert '<option selected value="high">high</option>' in page
    assert (_value(page, "topic"), _value(page, "area")) == ("refund", "payment")
    assert _value(page, "trigger_condition") == "Angry Customer Escalation"
    assert re.search(r">\s*User is angry and demands immediate refund</textarea>", page)
    assert ">Create escalation</button>" in page and ">Run test flow</button>" in page


def test_page_names_the_enabled_webhook_url_never_the_secret(client, app):
    point_webhook(app, "https://example.com/hooks/qlar", "staging")
    login(client)
    page = _page(client)
    assert 'Webhook <span class="state state-on">Enabled</span>: events are delivered to ' \
           "<code>https://example.com/hooks/qlar</code>" in page
    with app.app_context():
        from qlar_console.crypto import secret_box
        secret = secret_box().decrypt(get_settings("agent-123", "staging").secret_ciphertext)
    assert secret not in page and "whsec_" not in page


def test_default_pair_is_the_first_with_its_webhook_enabled(client, app):
    login(client, "viewer")
    assert '<h1 id="context-title">agent-123 · production</h1>' in _page(client, "/escalations")  # none: the first
    point_webhook(app, "https://example.com/hooks/qlar", "staging")
    assert '<h1 id="context-title">agent-123 · staging</h1>' in _page(client, "/escalations")
    response = client.get("/escalations?agent=agent-123")  # half a pair: completed the same way
    assert response.status_code == 302 and response.headers["Location"].endswith(STAGING)


@pytest.mark.parametrize("query", ["agent=agent-9&env=staging", "agent=agent-123&env=qa", "env=qa"])
def test_unknown_pair_is_404(client, query):
    login(client, "viewer")
    assert client.get(f"/escalations?{query}").status_code == 404


def test_create_with_edited_fields_freezes_them_in_the_event_body(client, app):
    login(client)
    form = {"agent": "agent-123", "env": "staging", "thread_id": "thread-qa-1", "urgency_level": "critical",
            "topic": "billing", "area": "invoices", "reason": "Charged twice", "trigger_condition": "Sensitive Topic"}
    response = client.post("/escalations", data=form, follow_redirects=True)
    [escalation] = _escalations(app)
    assert response.request.path == "/escalations" and response.request.args["env"] == "staging"
    assert f"Escalation {escalation.id} created." in _flashes(html.unescape(response.get_data(as_text=True)))
    [event] = _events(app, escalation.id)
    assert event.event_type == "created" and event.sequence == 1 and event.status == "skipped"
    assert json.loads(event.body)["escalation"] == {
        "id": escalation.id, "threadId": "thread-qa-1", "status": "Pending", "urgencyLevel": "critical",
        "topic": "billing", "area": "invoices", "reason": "Charged twice", "triggerCondition": "Sensitive Topic",
    }


def test_create_with_empty_thread_id_generates_one(client, app):
    login(client)
    client.post("/escalations", data={"agent": "agent-123", "env": "staging", "thread_id": "",
                                      "urgency_level": "high", "topic": "refund", "area": "payment",
                                      "reason": "Angry", "trigger_condition": "Angry Customer Escalation"})
    [escalation] = _escalations(app)
    assert re.fullmatch(r"thread-[0-9a-f]{8}", escalation.thread_id)


@pytest.mark.parametrize(("change", "message"), [
    ({"topic": ""}, "Enter a topic."),
    ({"urgency_level": "apocalyptic"}, "Not a valid choice."),
    ({"area": "x" * 121}, "Field cannot be longer than 120 characters."),
])
def test_create_rejects_bad_fields_next_to_the_field_and_keeps_input(client, app, change, message):
    login(client)
    form = {"agent": "agent-123", "env": "staging", "thread_id": "thread-kept", "urgency_level": "low",
            "topic": "billing", "area": "invoices", "reason": "Kept reason", "trigger_condition": "Sensitive Topic"}
    response = client.post("/escalations", data={**form, **change})
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422 and message in page
    assert _value(page, "thread_id") == "thread-kept" and re.search(r">\s*Kept reason</textarea>", page)
    assert 'aria-invalid="true"' in page
    assert _escalations(app) == []


def test_create_for_an_unknown_pair_is_a_flash_not_a_500(client, app):
    login(client)
    response = client.post("/escalations", data={"agent": "agent-9", "env": "staging", "urgency_level": "high",
                                                 "topic": "kept-topic", "area": "a", "reason": "r",
                                                 "trigger_condition": "t"})
    page = html.unescape(response.get_data(as_text=True))
    assert response.status_code == 422
    assert "No agent 'agent-9' with environment 'staging'." in _flashes(page)
    assert _value(page, "topic") == "kept-topic" and _escalations(app) == []


def test_buttons_follow_allowed_actions(client, app):
    pending = _create(app)
    claimed = _create(app, claim_by="editor2")
    completed = _create(app, claim_by="editor2")
    with app.app_context():
        lifecycle.complete(completed, "done")
    login(client)
    page = _page(client)
    assert _actions(page, pending) == {"claim"}
    assert _actions(page, claimed) == {"complete", "release"}
    assert _actions(page, completed) == set()
    assert f'<label for="notes-{claimed}">Resolution notes</label>' in page
    rows = re.findall(r'<code id="label-(esc-[0-9a-f]+)">', page)
    assert rows == [completed, claimed, pending]  # newest first


def test_claim_complete_release_through_the_buttons(client, app):
    escalation_id = _create(app)
    login(client)
    response = client.post(f"/escalations/{escalation_id}/claim", follow_redirects=True)
    assert response.request.path == "/escalations" and response.request.args["env"] == "staging"
    page = html.unescape(response.get_data(as_text=True))
    assert f"Escalation {escalation_id} claimed by editor." in _flashes(page)
    assert "<td>editor</td>" in page
    client.post(f"/escalations/{escalation_id}/release")
    client.post(f"/escalations/{escalation_id}/claim")
    page = html.unescape(client.post(f"/escalations/{escalation_id}/complete", data={"notes": "Refunded"},
                                     follow_redirects=True).get_data(as_text=True))
    assert f"Escalation {escalation_id} completed." in _flashes(page)
    events = _events(app, escalation_id)
    assert [(e.event_type, e.sequence) for e in events] == [
        ("created", 1), ("claimed", 2), ("released", 3), ("claimed", 4), ("completed", 5)]
    assert json.loads(events[-1].body)["escalation"]["resolutionNotes"] == "Refunded"
    assert json.loads(events[1].body)["escalation"]["claimedBy"] == "editor"
    for event in events:
        assert f'href="/deliveries/{event.id}"' in page
    assert f"{events[0].event_type}: skipped" in page


def test_complete_without_notes_shows_the_service_error(client, app):
    escalation_id = _create(app, claim_by="editor")
    login(client)
    response = client.post(f"/escalations/{escalation_id}/complete", data={"notes": "  "}, follow_redirects=True)
    page = html.unescape(response.get_data(as_text=True))
    assert "Resolution notes are required to complete an escalation." in _flashes(page)
    assert len(_events(app, escalation_id)) == 2


@pytest.mark.parametrize("action", ["complete", "release"])
def test_invalid_transition_shows_error_and_emits_nothing(client, app, action):
    escalation_id = _create(app)
    login(client)
    response = client.post(f"/escalations/{escalation_id}/{action}", data={"notes": "crafted"},
                           follow_redirects=True)
    page = html.unescape(response.get_data(as_text=True))
    verb = {"complete": "completed", "release": "released"}[action]
    assert (f"Cannot {action} escalation {escalation_id}: it is Pending, and only a Claimed escalation "
            f"can be {verb}.") in _flashes(page)
    assert [e.event_type for e in _events(app, escalation_id)] == ["created"]
    [escalation] = _escalations(app)
    assert escalation.status == "Pending" and escalation.resolution_notes is None


def test_unknown_escalation_is_a_flash_not_a_500(client):
    login(client)
    for action in ("claim", "complete", "release"):
        response = client.post(f"/escalations/esc-nope/{action}", data={"notes": "x"}, follow_redirects=True)
        assert response.status_code == 200
        assert "No escalation 'esc-nope'." in _flashes(html.unescape(response.get_data(as_text=True)))


def test_run_test_flow_creates_claims_and_completes(client, app):
    login(client)
    response = client.post("/escalations/test-flow", data={"agent": "agent-123", "env": "staging"},
                           follow_redirects=True)
    [escalation] = _escalations(app)
    page = html.unescape(response.get_data(as_text=True))
    assert f"Test flow ran: {escalation.id} created, claimed and completed." in _flashes(page)
    assert escalation.status == "Completed" and escalation.claimed_by == "editor"
    assert escalation.resolution_notes == "Resolved by the qlar console test flow"
    events = _events(app, escalation.id)
    assert [(e.event_type, e.sequence) for e in events] == [("created", 1), ("claimed", 2), ("completed", 3)]


def test_run_test_flow_for_an_unknown_pair_is_a_flash(client, app):
    login(client)
    response = client.post("/escalations/test-flow", data={"agent": "agent-9", "env": "qa"}, follow_redirects=True)
    assert response.status_code == 200
    assert "No agent 'agent-9' with environment 'qa'." in _flashes(html.unescape(response.get_data(as_text=True)))
    assert _escalations(app) == []


def test_test_flow_reaches_the_receiver_in_order_and_rows_show_succeeded(delivery_app, receiver):
    client = delivery_app.test_client()
    login(client)
    client.post("/escalations/test-flow", data={"agent": "agent-123", "env": "production"})
    with delivery_app.app_context():
        delivery_app.extensions["qlar_dispatcher"].drain()
    bodies = [r.json for r in receiver.wait_for(3)]
    assert [(b["eventType"], b["sequence"]) for b in bodies] == [("created", 1), ("claimed", 2), ("completed", 3)]
    page = _page(client, "/escalations")  # production has the enabled webhook: the default
    assert '<h1 id="context-title">agent-123 · production</h1>' in page
    for event_type in ("created", "claimed", "completed"):
        assert f"{event_type}: succeeded (200)" in page
    assert f"<code>{receiver.url}</code>" in page


def test_retrying_delivery_reads_pending_retrying_with_its_code(delivery_app, receiver):
    receiver.respond = lambda received: (401, {}, 0)
    escalation_id = _create(delivery_app, env="production")
    with delivery_app.app_context():
        assert delivery_app.extensions["qlar_dispatcher"].drain(limit=1) == 1
    client = delivery_app.test_client()
    login(client, "viewer")
    page = _page(client, PRODUCTION)
    [event] = _events(delivery_app, escalation_id)
    assert f'<a href="/deliveries/{event.id}" class="delivery-pending"' in page
    assert "created: pending — retrying (401)" in page


def test_viewer_sees_the_list_without_forms_and_gets_403_on_posts(client, app):
    pending = _create(app)
    claimed = _create(app, claim_by="editor")
    login(client, "viewer")
    page = _page(client)
    assert pending in page and claimed in page
    assert "Create escalation" not in page and "Run test flow" not in page
    assert not _actions(page, pending) and not _actions(page, claimed)
    assert "Your role (viewer) can watch escalations but not create or change them" in page
    for path in POSTS + (f"/escalations/{pending}/claim", f"/escalations/{claimed}/complete",
                         f"/escalations/{claimed}/release"):
        assert client.post(path, data={"agent": "agent-123", "env": "staging", "notes": "x"}).status_code == 403
    assert len(_escalations(app)) == 2
    assert [e.event_type for e in _events(app, claimed)] == ["created", "claimed"]


def test_forms_carry_csrf_tokens_and_posts_without_one_are_refused(tmp_path):
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    escalation_id = _create(app)
    client = app.test_client()
    page = client.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    client.post("/login", data={"username": "editor", "password": PASSWORD, "csrf_token": token})
    page = _page(client)
    assert page.count('name="csrf_token"') == 5  # logout, create, test flow, simulate, claim
    assert client.post(f"/escalations/{escalation_id}/claim").status_code == 400
    token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
    response = client.post(f"/escalations/{escalation_id}/claim", data={"csrf_token": token})
    assert response.status_code == 302
    assert [e.event_type for e in _events(app, escalation_id)] == ["created", "claimed"]
