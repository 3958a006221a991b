"""The Escalation page's Additional endpoints (issue 23) through the test client: Add endpoint with its rules,
the input kept on a refusal, switch, Regenerate Key, Remove; viewers see the list and cannot change it."""
from helpers import login

from qlar_console.engine.models import Endpoint
from qlar_console.extensions import db
from qlar_console.settings import endpoints

PAGE = "/agents/agent-123/production/escalation"
ADD = "/agents/agent-123/production/endpoints"


def additional(app) -> list[Endpoint]:
    with app.app_context():
        return [db.session.merge(ep) for ep in db.session.scalars(db.select(Endpoint).where(~Endpoint.is_primary))]


def test_add_endpoint_then_it_is_listed_and_can_be_switched_regenerated_and_removed(client, app):
    login(client, "editor")
    response = client.post(ADD, data={"url": "https://example.com/crm", "event_types": ["completed", "claimed"],
                                      "headers": "X-Team: crm", "description": "CRM"})
    assert response.status_code == 302
    [ep] = additional(app)
    assert (ep.url, ep.event_types, ep.headers, ep.description) == (
        "https://example.com/crm", ["claimed", "completed"], {"X-Team": "crm"}, "CRM")
    page = client.get(PAGE).get_data(as_text=True)
    assert "Additional endpoints" in page and "https://example.com/crm" in page and "claimed, completed" in page
    assert "whsec_" not in page.replace("whsec_\u2022", "")  # no key is ever rendered

    with app.app_context():
        key = endpoints.reveal_endpoint_secret(endpoints.get_endpoint(ep.id), "test")
    assert client.post(f"{ADD}/{ep.id}/disable").status_code == 302
    assert client.post(f"{ADD}/{ep.id}/regenerate", data={"grace": "1h"}).status_code == 302
    with app.app_context():
        changed = endpoints.get_endpoint(ep.id)
        assert not changed.enabled and endpoints.reveal_endpoint_secret(changed, "test") != key
    assert client.post(f"{ADD}/{ep.id}/remove").status_code == 302
    assert additional(app) == []


def test_a_refused_endpoint_names_the_header_and_keeps_the_input(client, app):
    login(client, "editor")
    response = client.post(ADD, data={"url": "https://example.com/crm", "headers": "X-Team: crm\nHost: evil",
                                      "description": "kept"})
    assert response.status_code == 422
    page = response.get_data(as_text=True)
    assert "Host is set by qlar and cannot be a custom header." in page
    assert "X-Team: crm" in page and 'value="kept"' in page and 'value="https://example.com/crm"' in page
    refused = client.post(ADD, data={"url": "http://example.com/crm"})
    assert refused.status_code == 422 and "https" in refused.get_data(as_text=True)
    assert additional(app) == []


def test_a_viewer_sees_the_endpoints_but_cannot_add_change_or_remove(client, app):
    with app.app_context():
        from qlar_console.settings.service import get_settings

        ep_id = endpoints.add_endpoint(get_settings("agent-123", "production"),
                                       endpoints.EndpointChange(url="https://example.com/crm"), "test").id
    login(client, "viewer")
    page = client.get(PAGE).get_data(as_text=True)
    assert "https://example.com/crm" in page and "Add endpoint" not in page
    assert client.post(ADD, data={"url": "https://example.com/other"}).status_code == 403
    for action in ("disable", "regenerate", "remove"):
        assert client.post(f"{ADD}/{ep_id}/{action}").status_code == 403
    [ep] = additional(app)
    assert ep.enabled and ep.id == ep_id


def test_the_log_filters_by_endpoint_and_search_finds_the_event_at_every_endpoint(client, app):
    from qlar_console.engine.models import Event
    from qlar_console.escalations import service as lifecycle
    from qlar_console.settings.service import SettingsChange, get_settings, save_settings

    with app.app_context():
        settings = get_settings("agent-123", "production")
        save_settings(settings, SettingsChange(webhook_enabled=True, webhook_url="https://example.com/hook"),
                      expected_version=settings.version, actor="test")
        ep_id = endpoints.add_endpoint(get_settings("agent-123", "production"),
                                       endpoints.EndpointChange(url="https://example.com/crm"), "test").id
        lifecycle.create_escalation("agent-123", "production")
        rows = list(db.session.scalars(db.select(Event).order_by(Event.id)))
        primary_row, copy_row = sorted(rows, key=lambda e: e.message_id is not None)
        assert copy_row.message_id == primary_row.id and copy_row.body == primary_row.body
    login(client, "viewer")
    both = client.get("/deliveries", query_string={"q": primary_row.id}).get_data(as_text=True)
    assert primary_row.id in both and copy_row.id in both
    one = client.get("/deliveries", query_string={"endpoint": ep_id}).get_data(as_text=True)
    assert copy_row.id in one and primary_row.id not in one
    bad = client.get("/deliveries", query_string={"endpoint": "nope"})
    assert bad.status_code == 400 and "not an endpoint id" in bad.get_data(as_text=True)
    detail = client.get(f"/deliveries/{copy_row.id}").get_data(as_text=True)
    assert ep_id in detail and primary_row.id in detail  # its endpoint and its webhook-id
