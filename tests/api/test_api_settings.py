"""The API's settings endpoints and its ground rules: tokens, scopes, roles, problems, ETags, rate limits."""
import logging
from datetime import timedelta

import pytest
from apps import dispose, make_app
from helpers import PAGE, api_token, assert_problem, login, page_version, save_form, stored_secret
from markupsafe import escape

from qlar_console.audit.models import AuditEntry
from qlar_console.auth.models import ApiToken, User
from qlar_console.auth.tokens import revoke_token
from qlar_console.clock import utcnow
from qlar_console.extensions import db

SETTINGS = "/api/v1/agents/agent-123/production/settings"
WEBHOOK = "/api/v1/agents/agent-123/production/webhook"


def enable(client, headers, url="https://example.com/hooks/qlar", path=SETTINGS):
    """Enable the webhook through the API: read, change, send back with the ETag."""
    read = client.get(path, headers=headers)
    document = {**read.json, "webhook": {"enabled": True, "url": url}}
    return client.put(path, json=document, headers={**headers, "If-Match": read.headers["ETag"]})


def test_put_saves_like_the_page_and_the_etag_tracks_the_version(app, client):
    headers = api_token(app, "editor")
    read = client.get(SETTINGS, headers=headers)
    assert read.status_code == 200 and read.headers["ETag"] == '"1"'
    assert read.json["webhook"] == {"enabled": False, "url": None, "urlWarning": None, "secretSet": False,
                                    "secretCreatedAt": None, "previousKeyExpiresAt": None, "disabledReason": None}

    saved = enable(client, headers)

    assert saved.status_code == 200 and saved.headers["ETag"] == '"2"'
    assert saved.json["webhook"]["enabled"] and saved.json["webhook"]["secretSet"]
    assert saved.json["savedBy"] == "editor" and saved.json["savedAt"].endswith("Z")
    login(client, "editor")
    assert "https://example.com/hooks/qlar" in client.get(PAGE).get_data(as_text=True)
    with app.app_context():
        entry = db.session.scalar(db.select(AuditEntry).filter_by(action="settings.saved"))
        assert entry.actor == "editor" and entry.via == "API token 'test-editor'"


def test_the_settings_document_never_holds_the_key(app, client):
    headers = api_token(app, "editor")
    enable(client, headers)
    secret = stored_secret(app)
    for response in (client.get(SETTINGS, headers=headers), client.post(f"{WEBHOOK}/regenerate", headers=headers)):
        assert response.status_code == 200
        assert secret not in response.get_data(as_text=True) and "whsec_" not in response.get_data(as_text=True)


def test_a_stale_etag_is_refused_with_412_naming_who_saved(app, client):
    alice, bob = api_token(app, "editor"), api_token(app, "editor2")
    stale = client.get(SETTINGS, headers=alice)
    enable(client, bob)

    document = {**stale.json, "defaultUrgency": "low"}
    refused = client.put(SETTINGS, json=document, headers={**alice, "If-Match": stale.headers["ETag"]})

    body = assert_problem(refused, 412, "precondition-failed")
    assert "editor2 saved these settings at" in body["detail"] and '"2"' in body["detail"]
    assert client.get(SETTINGS, headers=alice).json["defaultUrgency"] == "high"


def test_without_if_match_a_put_is_refused_with_428_and_star_overwrites(app, client):
    headers = api_token(app, "editor")
    document = {**client.get(SETTINGS, headers=headers).json, "claimTimeoutMinutes": 45}

    assert_problem(client.put(SETTINGS, json=document, headers=headers), 428, "precondition-required")
    saved = client.put(SETTINGS, json=document, headers={**headers, "If-Match": "*"})
    assert saved.status_code == 200 and saved.json["claimTimeoutMinutes"] == 45


def test_export_from_staging_imports_into_production(app, client):
    headers = api_token(app, "editor")
    enable(client, headers, url="https://staging.example.com/qlar", path=SETTINGS.replace("production", "staging"))
    exported = client.get(SETTINGS.replace("production", "staging"), headers=headers).json

    imported = client.put(SETTINGS, json=exported, headers={**headers, "If-Match": "*"})

    assert imported.status_code == 200
    assert imported.json["environment"] == "production"
    assert imported.json["webhook"]["url"] == "https://staging.example.com/qlar"
    assert stored_secret(app, "production") != stored_secret(app, "staging")  # keys are never copied


@pytest.mark.parametrize("field, value, pointer", [
    ("url", "http://example.com/hook", "#/webhook/url"),
    ("url", "https://user:pw@example.com/hook", "#/webhook/url"),
    ("url", "", "#/webhook/url"),
    ("claimTimeoutMinutes", 0, "#/claimTimeoutMinutes"),
])
def test_rule_violations_get_the_pages_messages(app, client, field, value, pointer):
    headers = api_token(app, "editor")
    document = {**client.get(SETTINGS, headers=headers).json, "webhook": {"enabled": True, "url": "https://ok.example"}}
    if field == "url":
        document["webhook"]["url"] = value
    else:
        document[field] = value

    body = assert_problem(client.put(SETTINGS, json=document, headers={**headers, "If-Match": "*"}),
                          422, "validation-error")

    login(client, "editor")
    form = save_form(page_version(client.get(PAGE).get_data(as_text=True)),
                     url=document["webhook"]["url"], claim_timeout_minutes=str(document["claimTimeoutMinutes"]))
    page = client.post(PAGE, data=form).get_data(as_text=True)
    [error] = body["errors"]
    assert error["pointer"] == pointer
    assert str(escape(error["detail"])) in page
    assert client.get(SETTINGS, headers=headers).json["version"] == 1  # nothing was saved


@pytest.mark.parametrize("document, pointer", [
    ({"defaultUrgency": 3}, "#/defaultUrgency"),
    ({"claimTimeoutMinutes": "30"}, "#/claimTimeoutMinutes"),
    ({"webhook": {"enabled": "yes", "url": None}}, "#/webhook/enabled"),
    ({"colour": "blue"}, "#/colour"),
    ({"triggerConditions": "Sensitive Topic"}, "#/triggerConditions"),
])
def test_wrong_types_and_unknown_fields_are_refused_field_by_field(app, client, document, pointer):
    headers = api_token(app, "editor")
    sent = {**client.get(SETTINGS, headers=headers).json, **document}

    body = assert_problem(client.put(SETTINGS, json=sent, headers={**headers, "If-Match": "*"}),
                          422, "validation-error")

    assert pointer in [e["pointer"] for e in body["errors"]]


def test_a_body_that_is_not_json_is_a_problem_not_a_crash(app, client):
    headers = {**api_token(app, "editor"), "If-Match": "*"}
    assert_problem(client.put(SETTINGS, data="{", headers=headers, content_type="application/json"),
                   400, "bad-request")
    assert client.put(SETTINGS, data="x=1", headers=headers).status_code == 422  # no JSON body: fields missing


def test_copy_needs_the_secrets_scope_is_audited_and_never_cached(app, client):
    assert_problem(client.post(f"{WEBHOOK}/secret", headers=api_token(app, "editor")), 403, "forbidden-scope")
    headers = api_token(app, "editor2", "read", "write", "secrets")
    enable(client, headers)

    revealed = client.post(f"{WEBHOOK}/secret", headers=headers)

    assert revealed.status_code == 200 and revealed.headers["Cache-Control"] == "no-store"
    assert revealed.json["secret"] == stored_secret(app)
    with app.app_context():
        entry = db.session.scalar(db.select(AuditEntry).filter_by(action="webhook.secret_revealed"))
        assert entry.actor == "editor2" and "via API" in entry.details and stored_secret(app) not in entry.details


def test_regenerate_with_grace_keeps_the_previous_key_and_refuses_unknown_periods(app, client):
    headers = api_token(app, "editor")
    enable(client, headers)
    before = stored_secret(app)

    regenerated = client.post(f"{WEBHOOK}/regenerate", json={"grace": "1h"}, headers=headers)

    assert regenerated.status_code == 200 and regenerated.json["webhook"]["previousKeyExpiresAt"]
    assert stored_secret(app) != before
    body = assert_problem(client.post(f"{WEBHOOK}/regenerate", json={"grace": "2h"}, headers=headers),
                          422, "validation-error")
    assert body["errors"] == [{"detail": "Grace period must be one of: none, 1h, 24h.", "pointer": "#/grace"}]


def test_no_revoked_expired_or_unknown_token_gets_in(app, client):
    missing = assert_problem(client.get(SETTINGS), 401, "unauthorized")
    assert "Bearer" in missing["detail"]
    assert client.get(SETTINGS).headers["WWW-Authenticate"].startswith("Bearer")
    assert_problem(client.get(SETTINGS, headers={"Authorization": "Bearer qlar_tok_nope"}), 401, "unauthorized")
    assert_problem(client.get(SETTINGS, headers={"Authorization": "Basic abc"}), 401, "unauthorized")

    revoked, expired = api_token(app, "editor"), api_token(app, "editor2", expires_in_days=1)
    with app.app_context():
        revoke_token(db.session.scalar(db.select(ApiToken).filter_by(name="test-editor")).id, "test")
        db.session.scalar(db.select(ApiToken).filter_by(name="test-editor2")).expires_at = utcnow() - timedelta(1)
        db.session.commit()

    assert "revoked" in assert_problem(client.get(SETTINGS, headers=revoked), 401, "unauthorized")["detail"]
    assert "expired" in assert_problem(client.get(SETTINGS, headers=expired), 401, "unauthorized")["detail"]


def test_scopes_and_roles_both_apply(app, client):
    reader = api_token(app, "editor", "read")
    document = client.get(SETTINGS, headers=reader).json
    assert_problem(client.put(SETTINGS, json=document, headers={**reader, "If-Match": "*"}), 403, "forbidden-scope")

    viewer = api_token(app, "viewer", "read", "write")
    assert client.get(SETTINGS, headers=viewer).status_code == 200
    body = assert_problem(client.put(SETTINGS, json=document, headers={**viewer, "If-Match": "*"}),
                          403, "forbidden-role")
    assert "viewer" in body["detail"]

    demoted = api_token(app, "editor2", "read", "write")
    with app.app_context():
        db.session.scalar(db.select(User).filter_by(username="editor2")).role = "viewer"
        db.session.commit()
    assert_problem(client.put(SETTINGS, json=document, headers={**demoted, "If-Match": "*"}), 403, "forbidden-role")
    with app.app_context():  # refusals are audited too, as the token's user
        refused = db.session.scalars(db.select(AuditEntry.details).filter_by(action="api.call", actor="editor2"))
        assert f"PUT {SETTINGS} -> 403" in list(refused)


def test_a_session_cookie_does_not_authenticate_the_api(app, client):
    login(client, "admin")
    assert client.get(PAGE).status_code == 200
    assert_problem(client.get(SETTINGS), 401, "unauthorized")


def test_the_api_needs_no_csrf_token_while_the_pages_do(tmp_path):
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    headers = api_token(app, "editor")
    assert enable(client, headers).status_code == 200
    assert client.post("/login", data={"username": "editor", "password": "x"}).status_code == 400


def test_every_call_is_audited_as_the_tokens_user(app, client):
    headers = api_token(app, "editor2", "read")
    client.get(SETTINGS, headers=headers)
    with app.app_context():
        entry = db.session.scalar(db.select(AuditEntry).filter_by(action="api.call"))
        token = db.session.scalar(db.select(ApiToken).filter_by(name="test-editor2"))
        assert (entry.actor, entry.via) == ("editor2", "API token 'test-editor2'")
        assert entry.details == f"GET {SETTINGS} -> 200"
        assert token.last_used_at is not None
        first_use = token.last_used_at
    client.get(SETTINGS, headers=headers)  # within the minute: the row is not rewritten
    with app.app_context():
        assert db.session.scalar(db.select(ApiToken.last_used_at).filter_by(name="test-editor2")) == first_use
        assert db.session.scalar(db.select(db.func.count()).select_from(AuditEntry).filter_by(action="api.call")) == 2


def test_unknown_paths_and_methods_are_problems(app, client):
    headers = api_token(app, "editor")
    assert_problem(client.get("/api/v1/nothing-here", headers=headers), 404, "not-found")
    not_allowed = assert_problem(client.delete(SETTINGS, headers=headers), 405, "method-not-allowed")
    assert not_allowed["instance"] == SETTINGS
    assert_problem(client.get("/api/v1/agents/agent-123/qa/settings", headers=headers), 404, "not-found")
    assert_problem(client.get("/api/v1/agents/agent%00123/qa/settings", headers=headers), 404, "not-found")
    assert client.get("/agents/agent%00123/production/escalation").status_code == 404  # pages too (PostgreSQL)


def test_rate_limit_per_token_answers_429_with_retry_after(tmp_path):
    app = make_app(tmp_path, API_RATE_LIMIT="3 per minute")
    client = app.test_client()
    busy, other = api_token(app, "editor"), api_token(app, "editor2")
    statuses = [client.get(SETTINGS, headers=busy).status_code for _ in range(4)]

    assert statuses == [200, 200, 200, 429]
    limited = client.get(SETTINGS, headers=busy)
    body = assert_problem(limited, 429, "rate-limited")
    assert 1 <= int(limited.headers["Retry-After"]) <= 60 and "3 per 1 minute" in body["detail"]
    assert client.get(SETTINGS, headers=other).status_code == 200


def test_the_token_limit_holds_however_the_header_is_written(tmp_path):
    app = make_app(tmp_path, API_RATE_LIMIT="3 per minute")
    client = app.test_client()
    token = api_token(app, "editor")["Authorization"].split()[1]
    assert [client.get(SETTINGS, headers={"Authorization": f"Bearer {token}"}).status_code
            for _ in range(4)] == [200, 200, 200, 429]
    for written in (f"bearer {token}", f"BEARER {token}", f"Bearer  {token}", f"Bearer {token} ", f" Bearer {token}"):
        assert client.get(SETTINGS, headers={"Authorization": written}).status_code == 429, written
    dispose(app)


def test_unknown_tokens_count_against_the_address(tmp_path):
    app = make_app(tmp_path, API_RATE_LIMIT="3 per minute")
    client = app.test_client()
    statuses = [client.get(SETTINGS, headers={"Authorization": f"Bearer qlar_tok_guess{n}"}).status_code
                for n in range(4)]
    assert statuses == [401, 401, 401, 429]  # a new guess per call is still one caller
    assert client.get(SETTINGS, headers=api_token(app, "editor")).status_code == 200  # a real token has its own
    dispose(app)


def test_tokens_never_reach_the_logs(app, client, caplog):
    caplog.set_level(logging.DEBUG)
    headers = api_token(app, "editor")
    plaintext = headers["Authorization"].split()[1]
    logging.getLogger("qlar_console").warning("a script sent %s", plaintext)
    client.get(SETTINGS, headers=headers)
    assert plaintext not in caplog.text and "qlar_tok_[redacted]" in caplog.text
    with app.app_context():
        assert plaintext not in " ".join(e.details for e in db.session.scalars(db.select(AuditEntry)))


def test_the_openapi_document_and_its_reference_page_are_served_locally(app, client):
    spec = client.get("/api/v1/openapi.json")
    assert spec.status_code == 200 and spec.json["openapi"] == "3.1.0"
    public = "/api/v1/schemas/events.json"  # holds no data: no token (tests/escalations/test_event_catalog.py)
    assert spec.json["paths"][public]["get"]["security"] == []
    operations = [op for url, path in spec.json["paths"].items() if url != public
                  for op in path.values() if isinstance(op, dict)]
    assert operations and all(op["security"] == [{"bearer": []}] for op in operations)
    assert all("401" in op["responses"] and "default" in op["responses"] for op in operations)

    page = client.get("/api/v1/docs").get_data(as_text=True)
    assert "/static/vendor/swagger-ui/swagger-ui-bundle.js" in page and "/api/v1/openapi.json" in page
    assert "http://" not in page and "https://" not in page
    with client.get("/static/vendor/swagger-ui/swagger-ui-bundle.js") as bundle:
        assert bundle.status_code == 200
