"""The Escalation page's Additional endpoints (issue 23) through the test client: Add endpoint with its rules,
the input kept on a refusal, switch, Regenerate Key, Remove; viewers see the list and cannot change it."""
from apps import point_webhook
from helpers import login, served_receiver

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
    from qlar_console.settings.service import get_settings

    with app.app_context():
        point_webhook(app, "https://example.com/hook")
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


def _added(app, **change) -> str:
    with app.app_context():
        from qlar_console.settings.service import get_settings

        return endpoints.add_endpoint(get_settings("agent-123", "production"),
                                      endpoints.EndpointChange(url="https://example.com/crm", **change), "test").id


def _page_form(html: str, **changes) -> dict:
    import re

    data = {"version": re.search(r'name="version" value="(\d+)"', html).group(1), "url": "https://example.com/crm",
            "enabled": "y", "headers": "", "description": "", "alert_emails": "", "alert_url": ""}
    data.update(changes)
    return {k: v for k, v in data.items() if v is not None}


def test_the_endpoint_page_changes_its_fields_and_keeps_a_refused_input(client, app):
    ep_id = _added(app)
    login(client, "editor")
    url = f"{ADD}/{ep_id}"
    page = client.get(url).get_data(as_text=True)
    for label in ("Endpoint URL", "Event types", "Headers", "Description", "Secret Key", "Copy", "Regenerate Key",
                  "Alert emails", "Alert webhook URL", "Check receiver", "Remove", f"/deliveries?endpoint={ep_id}"):
        assert label in page
    assert "whsec_" not in page.replace("whsec_\u2022", "")
    assert f'href="{url}"' in client.get(PAGE).get_data(as_text=True)  # the list links to the page

    saved = client.post(url, data=_page_form(page, enabled=None, event_types=["released"], headers="X-Team: crm",
                                             description="CRM", alert_emails="ops@example.com"))
    assert saved.status_code == 302
    [ep] = additional(app)
    assert (ep.enabled, ep.event_types, ep.headers, ep.description, ep.alert_emails, ep.version) == (
        False, ["released"], {"X-Team": "crm"}, "CRM", ["ops@example.com"], 2)

    refused = client.post(url, data=_page_form(page, headers="X-Team: ops\nX-Qlar-Foo: 1", description="kept",
                                                version=str(ep.version)))
    html = refused.get_data(as_text=True)
    assert refused.status_code == 422
    assert "X-Qlar-Foo is set by qlar and cannot be a custom header." in html
    assert 'aria-invalid="true"' in html and "X-Qlar-Foo: 1" in html and 'value="kept"' in html
    assert additional(app)[0].headers == {"X-Team": "crm"}

    stale = client.post(url, data=_page_form(page, description="stale"))  # version 1: someone saved since
    assert stale.status_code == 409 and "after you loaded it" in stale.get_data(as_text=True)
    assert 'value="stale"' in stale.get_data(as_text=True) and additional(app)[0].description == "CRM"


def test_the_endpoint_page_reveals_regenerates_and_removes(client, app):
    ep_id = _added(app)
    login(client, "editor")
    url = f"{ADD}/{ep_id}"
    revealed = client.post(f"{url}/secret")
    assert revealed.status_code == 200 and revealed.json["secret"].startswith("whsec_")
    assert revealed.headers["Cache-Control"] == "no-store"
    asked = client.post(f"{url}/regenerate", data={"grace": "1h", "confirmed": "", "back": "endpoint"})
    assert asked.status_code == 200 and "Regenerate the secret key of endpoint" in asked.get_data(as_text=True)
    done = client.post(f"{url}/regenerate", data={"grace": "1h", "confirmed": "yes", "back": "endpoint"})
    assert done.status_code == 302 and done.headers["Location"].endswith(url)
    assert client.post(f"{url}/secret").json["secret"] != revealed.json["secret"]
    assert "Previous key still valid until" in client.get(url).get_data(as_text=True)
    resume = client.post(f"{url}/resume", data={"back": "endpoint"}, follow_redirects=True)
    assert "is not paused" in resume.get_data(as_text=True)
    assert client.post(f"{url}/remove").status_code == 302
    assert additional(app) == [] and client.get(url).status_code == 404


def test_a_viewer_reads_the_endpoint_page_but_cannot_change_or_reveal(client, app):
    ep_id = _added(app)
    login(client, "viewer")
    url = f"{ADD}/{ep_id}"
    page = client.get(url)
    html = page.get_data(as_text=True)
    assert page.status_code == 200 and "https://example.com/crm" in html
    assert "Copy" not in html and "Regenerate Key" not in html and ">Save<" not in html and "Remove" not in html
    assert client.post(url, data=_page_form(html, description="x")).status_code == 403
    for action in ("secret", "regenerate", "remove", "check", "resume"):
        assert client.post(f"{url}/{action}").status_code == 403
    [ep] = additional(app)
    assert ep.version == 1 and ep.description is None


def test_the_primary_and_another_pairs_endpoint_have_no_endpoint_page(client, app):
    from qlar_console.settings.alerting import primary_endpoint
    from qlar_console.settings.service import get_settings

    ep_id = _added(app)
    with app.app_context():
        primary = primary_endpoint(get_settings("agent-123", "production")).id
    login(client, "editor")
    assert client.get(f"{ADD}/{primary}").status_code == 404
    assert client.get(f"/agents/agent-123/staging/endpoints/{ep_id}").status_code == 404


def test_check_receiver_probes_the_endpoint_with_its_own_key(tmp_path):
    from apps import dispose, make_app

    from qlar_console.receiver.app import create_receiver_app, receiver_state
    from qlar_console.receiver.certs import ensure_local_ca
    from qlar_console.settings.keys import signing_secrets
    from qlar_console.settings.receiver_check import CheckTooSoon, check_endpoint
    from qlar_console.settings.service import get_settings

    certs = ensure_local_ca(tmp_path)
    app = make_app(tmp_path, ALLOW_PRIVATE_TARGETS=True, TIMEOUT_SECONDS=3)
    receiver_app = create_receiver_app([])
    try:
        with served_receiver(receiver_app, certs) as server:
            with app.app_context():
                ep = endpoints.add_endpoint(get_settings("agent-123", "production"), endpoints.EndpointChange(
                    url=f"https://127.0.0.1:{server.server_port}/webhook"), "test")
                receiver_state(receiver_app).set_keys(signing_secrets(ep))  # this endpoint's key, not the card's
                check = check_endpoint(ep, "editor")
                assert check.passed and check.url == ep.url
                try:
                    check_endpoint(ep, "editor")
                except CheckTooSoon:
                    pass
                else:
                    raise AssertionError("a second check within 10 s must wait")
    finally:
        dispose(app)
