"""/api/v1/…/endpoints (issue 23): list, add, read, replace with If-Match, remove, the key with `secrets`;
viewers cannot add, change or reveal; refusals name the field."""
from helpers import api_token

API = "/api/v1"
LIST = f"{API}/agents/agent-123/production/endpoints"


def test_add_read_replace_remove_an_endpoint(client, app):
    headers = api_token(app, "editor")
    added = client.post(LIST, json={"url": "https://example.com/crm", "eventTypes": ["completed"],
                                    "headers": {"X-Team": "crm"}, "description": "CRM"}, headers=headers)
    assert added.status_code == 201, added.get_json()
    doc = added.get_json()
    assert doc["id"].startswith("ep_") and doc["eventTypes"] == ["completed"] and doc["primary"] is False
    assert doc["headers"] == {"X-Team": "\u2022\u2022\u2022\u2022"}  # values only with the secrets scope
    listed = client.get(LIST, headers=headers).get_json()["endpoints"]
    assert [e["primary"] for e in listed] == [True, False] and listed[1]["id"] == doc["id"]

    url = f"{API}/endpoints/{doc['id']}"
    read = client.get(url, headers=headers)
    assert read.headers["ETag"] == '"1"'
    change = {**read.get_json(), "enabled": False, "eventTypes": []}
    assert client.put(url, json=change, headers=headers).status_code == 428
    assert client.put(url, json=change, headers={**headers, "If-Match": '"7"'}).status_code == 412
    replaced = client.put(url, json=change, headers={**headers, "If-Match": '"1"'})
    assert replaced.status_code == 200 and replaced.get_json()["enabled"] is False
    assert replaced.headers["ETag"] == '"2"'

    secrets = api_token(app, "admin", "read", "write", "secrets")
    first = client.post(f"{url}/secret", headers=secrets)
    assert first.status_code == 200 and first.get_json()["secret"].startswith("whsec_")
    assert first.headers["Cache-Control"] == "no-store"
    rotated = client.post(f"{url}/secret", json={"regenerate": True, "grace": "1h"}, headers=secrets).get_json()
    assert rotated["secret"] != first.get_json()["secret"]
    assert client.get(url, headers=secrets).get_json()["headers"] == {"X-Team": "crm"}

    assert client.post(f"{url}/secret", headers=headers).status_code == 403  # no secrets scope
    assert client.delete(url, headers=headers).status_code == 204
    assert client.get(url, headers=headers).status_code == 404


def test_refusals_name_the_field_and_the_primary_changes_only_through_settings(client, app):
    headers = api_token(app, "editor")
    reserved = client.post(LIST, json={"url": "https://example.com/x", "headers": {"X-Qlar-Test": "1"}},
                           headers=headers)
    assert reserved.status_code in (400, 422) and "X-Qlar-Test" in reserved.get_data(as_text=True)
    unknown = client.post(LIST, json={"url": "https://example.com/x", "eventTypes": ["deleted"]}, headers=headers)
    assert unknown.status_code in (400, 422)
    primary = client.get(LIST, headers=headers).get_json()["endpoints"][0]
    refused = client.delete(f"{API}/endpoints/{primary['id']}", headers=headers)
    assert refused.status_code == 409 and "primary endpoint" in refused.get_data(as_text=True)
    assert len(client.get(LIST, headers=headers).get_json()["endpoints"]) == 1


def test_a_viewer_cannot_add_change_or_reveal(client, app):
    editor = api_token(app, "editor")
    ep = client.post(LIST, json={"url": "https://example.com/crm"}, headers=editor).get_json()
    viewer = api_token(app, "viewer", "read")
    assert client.get(LIST, headers=viewer).status_code == 200
    assert client.post(LIST, json={"url": "https://example.com/v"}, headers=viewer).status_code == 403
    url = f"{API}/endpoints/{ep['id']}"
    changed = client.put(url, json={"url": "https://example.com/v"}, headers={**viewer, "If-Match": "*"})
    assert changed.status_code == 403
    assert client.delete(url, headers=viewer).status_code == 403
    assert client.post(f"{url}/secret", headers=viewer).status_code == 403
