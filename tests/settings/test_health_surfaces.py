"""Endpoint health and alerts on every surface: the card (health badge, Resume now, Alerts fields), recent alerts,
the CLI, the API's settings document, /metrics and queue health. No real outage: the endpoint row is set directly."""
from datetime import timedelta

import pytest
from apps import point_webhook
from helpers import PAGE, api_token, assert_problem, login, page_version, save_form
from markupsafe import escape

from qlar_console.audit.models import AuditEntry
from qlar_console.clock import utcnow
from qlar_console.crypto import MASKED
from qlar_console.engine.models import PENDING, Alert, Event
from qlar_console.escalations.service import create_escalation
from qlar_console.extensions import db
from qlar_console.settings.alerting import health_view, primary_endpoint
from qlar_console.settings.service import SettingsChange, get_settings, save_settings

SETTINGS = "/api/v1/agents/agent-123/production/settings"
RESUME = "/api/v1/agents/agent-123/production/webhook/resume"
PAIR = ("agent-123", "production")
REASON = "Failing for 30 min (QLAR_PAUSE_AFTER) with no success."


def enable_and_hold(app, events: int = 2) -> None:
    """Enable the webhook and write `events` events that wait (as a paused endpoint holds them)."""
    with app.app_context():
        point_webhook(app, "https://example.com/hook")
        for _ in range(events):
            create_escalation(*PAIR)
        later = utcnow() + timedelta(hours=1)
        for event in db.session.scalars(db.select(Event).filter_by(status=PENDING)):
            event.next_attempt_at = later
        db.session.commit()


def pause(app, error: str = "HTTP 503 from the receiver") -> None:
    """Put the pair's endpoint in the paused state, as the engine does after QLAR_PAUSE_AFTER."""
    with app.app_context():
        now = utcnow()
        endpoint = primary_endpoint(get_settings(*PAIR))
        endpoint.health, endpoint.health_since, endpoint.failing_since = "paused", now - timedelta(minutes=1), \
            now - timedelta(minutes=31)
        endpoint.pause_reason, endpoint.next_probe_at = REASON, now + timedelta(minutes=5)
        endpoint.last_error, endpoint.last_error_at = error, now - timedelta(seconds=20)
        db.session.commit()


def health_of(app) -> str:
    with app.app_context():
        return health_view(get_settings(*PAIR)).state


def audited(app, action: str) -> AuditEntry | None:
    with app.app_context():
        return db.session.scalar(db.select(AuditEntry).filter_by(action=action).order_by(AuditEntry.id.desc()))


# The card: Alerts fields saved by Save, errors next to the field, roles


def test_alert_fields_are_saved_by_save_and_shown_again(app, client):
    login(client, "editor")
    html = client.get(PAGE).get_data(as_text=True)
    assert "<legend>Alerts</legend>" in html
    assert '<label for="alert_emails">Alert emails</label>' in html
    assert '<label for="alert_url">Alert webhook URL</label>' in html
    assert "A Slack or Teams incoming-webhook URL works as is" in html
    form = save_form(page_version(html), alert_emails="ops@x.example, oncall@y.example",
                     alert_url="https://hooks.example.com/services/T1/B2")

    saved = client.post(PAGE, data=form, follow_redirects=True).get_data(as_text=True)

    assert "Escalation settings saved" in saved
    assert 'value="ops@x.example, oncall@y.example"' in saved
    assert 'value="https://hooks.example.com/services/T1/B2"' in saved
    with app.app_context():
        view = health_view(get_settings(*PAIR))
        assert view.alert_emails == ["ops@x.example", "oncall@y.example"]
        assert view.alert_url == "https://hooks.example.com/services/T1/B2"
    assert "ops@x.example" in audited(app, "webhook.alerts_changed").details

    cleared = client.post(PAGE, data=save_form(page_version(saved), alert_emails="", alert_url=""),
                          follow_redirects=True)
    assert cleared.status_code == 200
    with app.app_context():
        view = health_view(get_settings(*PAIR))
        assert view.alert_emails == [] and view.alert_url is None


def test_a_save_without_the_alert_fields_keeps_them(app, client):
    login(client, "editor")
    version = page_version(client.get(PAGE).get_data(as_text=True))
    client.post(PAGE, data=save_form(version, alert_emails="ops@x.example"))
    client.post(PAGE, data=save_form(version + 1, url="https://example.com/other"))  # no alert fields posted
    with app.app_context():
        assert health_view(get_settings(*PAIR)).alert_emails == ["ops@x.example"]


@pytest.mark.parametrize("field, value, message, error_id", [
    ("alert_emails", "ops@x.example, not-an-address", "Alert emails: &#39;not-an-address&#39; is not an email address",
     "alert-emails-error"),
    ("alert_url", "http://hooks.example.com/x", "Alert webhook URL: Webhook URL must start with https://",
     "alert-url-error"),
])
def test_a_bad_recipient_is_refused_next_to_its_field_and_kept(app, client, field, value, message, error_id):
    login(client, "editor")
    version = page_version(client.get(PAGE).get_data(as_text=True))

    response = client.post(PAGE, data=save_form(version, **{field: value}))

    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert f'<p class="error" id="{error_id}" aria-live="polite">{message}' in html
    assert f'value="{escape(value)}"' in html  # the input is kept
    start = html.index(f'id="{field}"')
    tag = html[start:html.index(">", start)]
    assert "aria-invalid=true" in tag and error_id in tag
    with app.app_context():
        assert get_settings(*PAIR).version == version  # nothing saved
        view = health_view(get_settings(*PAIR))
        assert view.alert_emails == [] and view.alert_url is None


def test_a_viewer_sees_health_and_recipients_but_cannot_change_them(app, client):
    with app.app_context():
        settings = get_settings(*PAIR)
        save_settings(settings, SettingsChange.from_settings(settings, alert_emails="ops@x.example",
                                                             alert_url="https://hooks.example.com/a"),
                      expected_version=settings.version, actor="test")
    pause(app)
    login(client, "viewer")
    html = client.get(PAGE).get_data(as_text=True)
    assert 'name="alert_emails"' not in html and "Resume now" not in html
    assert "Webhook health and alerts" in html and ">Paused</strong>" in html and REASON in html
    assert "<dt>Alert emails</dt><dd>ops@x.example</dd>" in html
    assert "https://hooks.example.com/a" in html
    version = page_version(html)

    assert client.post(PAGE, data=save_form(version, alert_emails="evil@x.example")).status_code == 403
    assert client.post("/agents/agent-123/production/webhook/resume").status_code == 403
    with app.app_context():
        assert health_view(get_settings(*PAIR)).alert_emails == ["ops@x.example"]
    assert health_of(app) == "paused"


# The badge and Resume now, from the card, the CLI and the API


def test_the_card_shows_the_paused_badge_and_resume_now_ends_the_pause(app, client):
    enable_and_hold(app, events=2)
    pause(app)
    login(client, "editor")
    html = client.get(PAGE).get_data(as_text=True)
    badge = html[html.index('id="webhook-health"'):html.index("Resume now")]
    assert ">Paused</strong> since <time" in badge and REASON in badge
    assert "HTTP 503 from the receiver" in badge and "Next probe" in badge
    assert '<dd id="held-events">2 pending' in badge
    assert 'form="resume-form">Resume now</button>' in html
    assert 'id="resume-form" method="post"' in html and 'action="/agents/agent-123/production/webhook/resume"' in html

    done = client.post("/agents/agent-123/production/webhook/resume", follow_redirects=True)

    page = done.get_data(as_text=True)
    assert "Resumed: 2 held events are being delivered." in page
    assert ">Healthy</strong>" in page and "Resume now" not in page
    assert health_of(app) == "healthy"
    entry = audited(app, "webhook.resumed")
    assert entry.actor == "editor" and "2 held events" in entry.details
    with app.app_context():  # the held events are due again, none lost
        assert all(e.next_attempt_at <= utcnow() for e in db.session.scalars(db.select(Event)))

    again = client.post("/agents/agent-123/production/webhook/resume", follow_redirects=True).get_data(as_text=True)
    assert 'class="flash flash-error" role="alert">The webhook of agent-123 · production is not paused' in again


def test_a_failing_badge_shows_since_and_the_last_error(app, client):
    with app.app_context():
        endpoint = primary_endpoint(get_settings(*PAIR))
        endpoint.health, endpoint.health_since = "failing", utcnow() - timedelta(minutes=3)
        endpoint.last_error, endpoint.last_error_at = "Timed out after 15 s", utcnow()
        db.session.commit()
    login(client, "editor")
    html = client.get(PAGE).get_data(as_text=True)
    badge = html[html.index('id="webhook-health"'):html.index('id="webhook_enabled"')]
    assert ">Failing</strong> since <time" in badge and "Timed out after 15 s" in badge
    assert "Resume now" not in badge


def test_resume_needs_the_csrf_token(tmp_path):
    from apps import PASSWORD, make_app

    client = make_app(tmp_path, WTF_CSRF_ENABLED=True).test_client()
    token = client.get("/login").get_data(as_text=True).split('name="csrf_token" type="hidden" value="')[1]
    client.post("/login", data={"username": "editor", "password": PASSWORD, "csrf_token": token.split('"')[0]})
    assert client.post("/agents/agent-123/production/webhook/resume").status_code == 400


def test_cli_resume_ends_a_pause_and_refuses_when_not_paused(app, runner):
    enable_and_hold(app, events=3)
    pause(app)

    result = runner.invoke(args=["qlar", "webhook", "resume", *PAIR])

    assert result.exit_code == 0, result.output
    assert result.output.strip() == "Resumed: 3 held events are being delivered."
    assert health_of(app) == "healthy" and audited(app, "webhook.resumed").actor == "cli"
    refused = runner.invoke(args=["qlar", "webhook", "resume", *PAIR])
    assert refused.exit_code == 1
    assert refused.output.strip() == "Error: The webhook of agent-123 · production is not paused (it is healthy)."
    assert runner.invoke(args=["qlar", "webhook", "resume", "agent-404", "production"]).exit_code == 1


def test_cli_sets_clears_and_shows_recipients_and_health(app, runner):
    result = runner.invoke(args=["qlar", "webhook", "set", *PAIR, "--alert-email", "a@x.example,b@y.example",
                                 "--alert-url", "https://hooks.example.com/t"])
    assert result.exit_code == 0, result.output
    assert "Alert emails: a@x.example, b@y.example" in result.output
    assert "Alert webhook URL: https://hooks.example.com/t" in result.output

    pause(app)
    shown = runner.invoke(args=["qlar", "webhook", "show", *PAIR]).output
    assert "Health: paused since " in shown and f" UTC ({REASON})" in shown
    assert "Last error: HTTP 503 from the receiver" in shown
    assert "Alert emails: a@x.example, b@y.example" in shown
    assert "Alert webhook URL: https://hooks.example.com/t" in shown
    assert "whsec_" not in shown.replace(MASKED, "")  # masked

    cleared = runner.invoke(args=["qlar", "webhook", "set", *PAIR, "--alert-email", "", "--alert-url", ""])
    assert "Alert emails: (none)" in cleared.output and "Alert webhook URL: (none)" in cleared.output
    bad = runner.invoke(args=["qlar", "webhook", "set", *PAIR, "--alert-url", "http://hooks.example.com/t"])
    assert bad.exit_code == 1 and "Alert webhook URL: Webhook URL must start with https://" in bad.output
    bad = runner.invoke(args=["qlar", "webhook", "set", *PAIR, "--alert-email", "nobody"])
    assert bad.exit_code == 1 and len(bad.output.strip().splitlines()) == 1
    assert "Health: healthy" in runner.invoke(args=["qlar", "webhook", "show", "agent-123", "staging"]).output


def test_api_resume_returns_the_document_and_409_when_not_paused(app, client):
    headers = api_token(app, "editor")
    enable_and_hold(app, events=1)
    pause(app)

    resumed = client.post(RESUME, headers=headers)

    assert resumed.status_code == 200 and resumed.headers["ETag"]
    assert resumed.json["health"] == "healthy" and resumed.json["healthDetail"]["pauseReason"] is None
    entry = audited(app, "webhook.resumed")
    assert entry.actor == "editor" and entry.via == "API token 'test-editor'" and "1 held events" in entry.details
    body = assert_problem(client.post(RESUME, headers=headers), 409, "conflict")
    assert "is not paused" in body["detail"]
    assert_problem(client.post(RESUME, headers=api_token(app, "editor2", "read")), 403, "forbidden-scope")


# The API's settings document


def test_the_document_carries_health_detail_and_alerts(app, client):
    headers = api_token(app, "editor")
    assert client.get(SETTINGS, headers=headers).json["health"] == "healthy"
    enable_and_hold(app, events=2)
    pause(app)

    document = client.get(SETTINGS, headers=headers).json

    assert document["health"] == "paused"
    detail = document["healthDetail"]
    assert detail["state"] == "paused" and detail["pauseReason"] == REASON and detail["pending"] == 2
    assert detail["lastError"] == "HTTP 503 from the receiver"
    assert detail["since"].endswith("Z") and detail["nextProbeAt"].endswith("Z") and detail["lastErrorAt"]
    assert document["alerts"] == {"emails": [], "url": None}


def test_put_with_alerts_changes_them_and_without_keeps_them(app, client):
    headers = api_token(app, "editor")
    read = client.get(SETTINGS, headers=headers)
    changed = {**read.json, "alerts": {"emails": ["ops@x.example"], "url": "https://hooks.example.com/z"}}

    saved = client.put(SETTINGS, json=changed, headers={**headers, "If-Match": read.headers["ETag"]})

    assert saved.status_code == 200, saved.json
    assert saved.json["alerts"] == {"emails": ["ops@x.example"], "url": "https://hooks.example.com/z"}
    without = {k: v for k, v in saved.json.items() if k != "alerts"} | {"defaultUrgency": "low"}
    kept = client.put(SETTINGS, json=without, headers={**headers, "If-Match": saved.headers["ETag"]})
    assert kept.status_code == 200 and kept.json["alerts"]["emails"] == ["ops@x.example"]
    only_url = {**kept.json, "alerts": {"url": None}}
    cleared = client.put(SETTINGS, json=only_url, headers={**headers, "If-Match": kept.headers["ETag"]})
    assert cleared.json["alerts"] == {"emails": ["ops@x.example"], "url": None}  # emails left out: kept
    emptied = client.put(SETTINGS, json={**cleared.json, "alerts": {"emails": [], "url": ""}},
                         headers={**headers, "If-Match": cleared.headers["ETag"]})
    assert emptied.json["alerts"] == {"emails": [], "url": None}


@pytest.mark.parametrize("alerts, pointer, message", [
    ({"emails": ["ops@x.example", "nope"]}, "#/alerts/emails", "Alert emails: 'nope' is not an email address"),
    ({"url": "http://hooks.example.com/z"}, "#/alerts/url", "Alert webhook URL: Webhook URL must start with https://"),
    ({"emails": "ops@x.example"}, "#/alerts/emails", "Not a valid list."),
    ({"colour": "red"}, "#/alerts/colour", "Unknown field."),
])
def test_a_bad_recipient_in_the_api_is_a_422_with_its_pointer(app, client, alerts, pointer, message):
    headers = api_token(app, "editor")
    document = {**client.get(SETTINGS, headers=headers).json, "alerts": alerts}

    body = assert_problem(client.put(SETTINGS, json=document, headers={**headers, "If-Match": "*"}),
                          422, "validation-error")

    assert any(e["pointer"] == pointer and message in e["detail"] for e in body["errors"]), body["errors"]
    assert client.get(SETTINGS, headers=headers).json["version"] == 1


def test_the_openapi_document_describes_health_alerts_and_resume(client):
    spec = client.get("/api/v1/openapi.json").json
    settings = spec["components"]["schemas"]["Settings"]["properties"]
    assert settings["health"]["readOnly"] and settings["health"]["enum"] == ["healthy", "failing", "paused"]
    assert settings["healthDetail"]["readOnly"]
    assert "/api/v1/agents/{agent_id}/{env}/webhook/resume" in spec["paths"]
    assert "409" in spec["paths"]["/api/v1/agents/{agent_id}/{env}/webhook/resume"]["post"]["responses"]


# /metrics, queue health, recent alerts


def test_metrics_count_endpoints_by_health(app, client):
    pause(app)
    text = client.get("/metrics").get_data(as_text=True)
    assert 'qlar_endpoints{state="paused"} 1.0' in text
    assert 'qlar_endpoints{state="failing"} 0.0' in text


def test_queue_health_lists_the_paused_endpoint(app, client):
    login(client, "viewer")
    assert "all healthy" in client.get("/deliveries").get_data(as_text=True)
    pause(app)

    html = client.get("/deliveries").get_data(as_text=True)

    table = html[html.index("Endpoints failing or paused"):html.index("</table>", html.index("Endpoints failing"))]
    assert "agent-123 · production" in table and ">Paused</strong>" in table
    assert REASON in table and "HTTP 503 from the receiver" in table and "<time" in table
    assert 'href="/agents/agent-123/production/escalation"' in table


def test_recent_alerts_are_listed_with_their_own_state(app, client):
    login(client, "viewer")
    assert "No alerts yet." in client.get(PAGE).get_data(as_text=True)
    with app.app_context():
        endpoint = primary_endpoint(get_settings(*PAIR))
        db.session.flush()  # the endpoint row first: the alerts' foreign key points at it
        now = utcnow()
        rows = [("endpoint.failing", "email", "ops@x.example", "sent", 1, None),
                ("endpoint.paused", "webhook", "https://hooks.example.com/p", "pending", 2, "HTTP 500 from the hook"),
                ("delivery.failed", "email", "ops@x.example", "failed", 8, "SMTP 550 mailbox unavailable"),
                ("endpoint.recovered", "none", None, "skipped", 0, "No alert emails or alert webhook URL set.")]
        for index, (kind, channel, target, status, tries, error) in enumerate(rows):
            db.session.add(Alert(alert_id=f"alr_{index}", endpoint_id=endpoint.id, agent_id=PAIR[0],
                                 environment=PAIR[1], type=kind, channel=channel, target=target,
                                 subject=f"qlar webhook {kind}", body=b"{}", status=status, tries=tries,
                                 created_at=now - timedelta(minutes=10 - index), last_error=error,
                                 sent_at=now if status == "sent" else None,
                                 next_attempt_at=now + timedelta(minutes=1) if status == "pending" else None))
        db.session.commit()

    html = client.get(PAGE).get_data(as_text=True)

    section = html[html.index('id="recent-alerts"'):]
    assert "Recent alerts" in section and "No alerts yet." not in section
    order = [section.index(kind) for kind in ("endpoint.recovered", "delivery.failed", "endpoint.paused",
                                              "endpoint.failing")]
    assert order == sorted(order)  # newest first
    assert ">sent</span> <time" in section
    assert ">pending</span> try 3, next at <time" in section and "HTTP 500 from the hook" in section
    assert ">failed</span> after 8 tries" in section and "SMTP 550 mailbox unavailable" in section
    assert "not sent: no recipient" in section
    assert "https://hooks.example.com/p" in section and "Webhook" in section and "Email" in section


def test_no_secret_in_any_page_or_body_that_shows_health(app, client, runner):
    enable_and_hold(app, events=1)
    pause(app)
    headers = api_token(app, "editor")
    bodies = [client.get(SETTINGS, headers=headers).get_data(as_text=True)]
    for user in ("editor", "viewer", "admin"):
        login(client, user)
        bodies += [client.get(PAGE).get_data(as_text=True), client.get("/deliveries").get_data(as_text=True)]
    bodies.append(client.post(RESUME, headers=headers).get_data(as_text=True))
    bodies.append(client.get("/metrics").get_data(as_text=True))
    for body in bodies:
        assert "whsec_" not in body.replace(MASKED, "")
