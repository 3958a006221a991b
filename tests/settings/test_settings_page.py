"""The Escalation page through Flask's test client: save, conflicts, roles, secrets never exposed."""
import logging

import pytest
from apps import PASSWORD
from helpers import PAGE, login, page_version, save_form, stored_secret

from qlar_console.audit.models import AuditEntry
from qlar_console.clock import utcnow
from qlar_console.crypto import secret_box
from qlar_console.extensions import db
from qlar_console.settings.keys import signing_secrets
from qlar_console.settings.service import get_settings


def test_anonymous_is_sent_to_login(client):
    response = client.get(PAGE)
    assert response.status_code == 302
    assert response.headers["Location"].startswith("/login?next=")


def test_wrong_password_is_refused(client, auth):
    response = auth.login("editor", "not the password")
    assert "Invalid username or password." in response.get_data(as_text=True)
    assert client.get(PAGE).status_code == 302


def test_login_follows_next_only_on_this_site(client):
    response = client.post("/login?next=https://evil.example/", data={"username": "editor", "password": PASSWORD})
    assert response.headers["Location"] == "/"


def test_page_names_agent_and_environment_with_switcher(client, auth):
    auth.login("editor")
    html = client.get(PAGE).get_data(as_text=True)
    assert "agent-123 · production" in html
    assert 'href="/agents/agent-123/staging/escalation"' in html
    assert "Webhook Notifications" in html


def test_save_enables_webhook_and_persists(client, auth, app):
    auth.login("editor")
    version = page_version(client.get(PAGE).get_data(as_text=True))
    response = client.post(PAGE, data=save_form(version), follow_redirects=True)
    html = response.get_data(as_text=True)
    assert "Escalation settings saved" in html
    assert 'value="https://example.com/hooks/qlar"' in html
    assert "checked" in html.split('id="webhook_enabled"')[1].split(">")[0]
    assert page_version(html) == version + 1
    assert stored_secret(app).startswith("whsec_")


def test_http_url_is_refused_and_input_kept(client, auth, app):
    auth.login("editor")
    version = page_version(client.get(PAGE).get_data(as_text=True))
    response = client.post(PAGE, data=save_form(version, url="http://example.com/hook"))
    html = response.get_data(as_text=True)
    assert response.status_code == 422
    assert "Webhook URL must start with https://" in html
    assert 'value="http://example.com/hook"' in html
    with app.app_context():
        assert get_settings("agent-123", "production").webhook_url is None


def test_private_host_saves_with_visible_warning(client, auth):
    auth.login("editor")
    version = page_version(client.get(PAGE).get_data(as_text=True))
    html = client.post(PAGE, data=save_form(version, url="https://127.0.0.1:8443/webhook"),
                       follow_redirects=True).get_data(as_text=True)
    assert "Escalation settings saved" in html
    assert "not reach it from the internet" in html


def test_stale_save_is_refused_naming_who_saved_and_keeping_input(app):
    first, second = app.test_client(), app.test_client()
    for c, name in ((first, "editor"), (second, "editor2")):
        login(c, name)
    version = page_version(second.get(PAGE).get_data(as_text=True))
    assert first.post(PAGE, data=save_form(version, url="https://first.example.com/")).status_code == 302
    response = second.post(PAGE, data=save_form(version, url="https://second.example.com/"))
    html = response.get_data(as_text=True)
    assert response.status_code == 409
    assert "editor saved these settings at" in html
    assert 'value="https://second.example.com/"' in html
    with app.app_context():
        assert get_settings("agent-123", "production").webhook_url == "https://first.example.com/"
    # Saving again, having seen the conflict, goes through.
    assert second.post(PAGE, data=save_form(page_version(html), url="https://second.example.com/")).status_code == 302


def test_viewer_sees_no_card_and_cannot_post(client, auth):
    auth.login("viewer")
    html = client.get(PAGE).get_data(as_text=True)
    assert "Webhook Notifications" not in html
    assert "cannot change webhook settings" in html
    base = "/agents/agent-123/production/webhook"
    for url, data in [(PAGE, save_form(1)), (f"{base}/secret", {}), (f"{base}/regenerate", {"confirmed": "yes"}),
                      (f"{base}/revoke-previous", {})]:
        assert client.post(url, data=data).status_code == 403, url


def test_unknown_agent_is_404(client, auth):
    auth.login("editor")
    assert client.get("/agents/agent-999/production/escalation").status_code == 404


def test_copy_returns_key_uncached_and_audited(client, auth, app):
    auth.login("editor")
    response = client.post("/agents/agent-123/production/webhook/secret")
    assert response.status_code == 200
    assert response.headers["Cache-Control"] == "no-store"
    assert response.json["secret"] == stored_secret(app)
    with app.app_context():
        actions = db.session.scalars(db.select(AuditEntry.action)).all()
    assert "webhook.secret_revealed" in actions


def test_regenerate_needs_confirmation_then_replaces_key(client, auth, app):
    auth.login("editor")
    old = client.post("/agents/agent-123/production/webhook/secret").json["secret"]
    unconfirmed = client.post("/agents/agent-123/production/webhook/regenerate", data={"grace": "none"})
    assert "Regenerate the secret key of agent-123 · production?" in unconfirmed.get_data(as_text=True)
    assert stored_secret(app) == old
    client.post("/agents/agent-123/production/webhook/regenerate", data={"grace": "none", "confirmed": "yes"})
    assert stored_secret(app) != old
    with app.app_context():
        settings = get_settings("agent-123", "production")
        assert not settings.previous_secret_active(utcnow())
        assert signing_secrets(settings) == [secret_box().decrypt(settings.secret_ciphertext)]


def test_regenerate_with_grace_keeps_previous_until_revoked(client, auth, app):
    auth.login("editor")
    old = client.post("/agents/agent-123/production/webhook/secret").json["secret"]
    client.post("/agents/agent-123/production/webhook/regenerate", data={"grace": "1h", "confirmed": "yes"})
    html = client.get(PAGE).get_data(as_text=True)
    assert "Revoke previous key now" in html
    with app.app_context():
        assert signing_secrets(get_settings("agent-123", "production"))[1] == old
    client.post("/agents/agent-123/production/webhook/revoke-previous")
    with app.app_context():
        assert signing_secrets(get_settings("agent-123", "production")) == [stored_secret(app)]
    assert "Revoke previous key now" not in client.get(PAGE).get_data(as_text=True)


def test_secret_never_in_html_logs_or_database_file(client, auth, app, caplog, tmp_path):
    caplog.set_level(logging.DEBUG)
    auth.login("editor")
    version = page_version(client.get(PAGE).get_data(as_text=True))
    client.post(PAGE, data=save_form(version))
    secret = client.post("/agents/agent-123/production/webhook/secret").json["secret"]
    logging.getLogger("qlar_console.test").warning("someone pasted %s into a log", secret)
    pages = [client.get(p).get_data(as_text=True) for p in (PAGE, "/", "/audit")]
    assert all(secret not in html for html in pages)
    assert all("whsec_" not in html or "whsec_\u2022" in html for html in pages)
    assert secret not in caplog.text and "whsec_[redacted]" in caplog.text
    with app.app_context():
        if db.engine.dialect.name == "sqlite":  # the database file's bytes
            db.engine.dispose()
            raw = (tmp_path / "qlar.db").read_bytes()
        else:  # every row of every table, as PostgreSQL returns it
            raw = repr([db.session.execute(table.select()).all() for table in db.metadata.sorted_tables]).encode()
    assert b"gAAAAA" in raw  # the Fernet ciphertext is there...
    assert secret.encode() not in raw and secret[6:].encode() not in raw  # ...the plaintext is not


def test_security_headers_and_cookie_flags(client):
    response = client.get("/login")
    csp = response.headers["Content-Security-Policy"]
    assert "script-src 'self'" in csp and "frame-ancestors 'none'" in csp
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["X-Frame-Options"] == "DENY"
    assert response.headers["Referrer-Policy"] == "same-origin"
    cookie = response.headers["Set-Cookie"]
    assert "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "<script>" not in response.get_data(as_text=True)


@pytest.fixture
def csrf_client(tmp_path):
    from apps import make_app

    return make_app(tmp_path, WTF_CSRF_ENABLED=True).test_client()


@pytest.mark.parametrize("url", [PAGE, "/agents/agent-123/production/webhook/secret", "/logout", "/login"])
def test_post_without_csrf_token_is_refused(csrf_client, url):
    login_page = csrf_client.get("/login").get_data(as_text=True)
    token = login_page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    csrf_client.post("/login", data={"username": "editor", "password": "correct horse battery", "csrf_token": token})
    response = csrf_client.post(url, data=save_form(1))
    assert response.status_code == 400
    assert "security token" in response.get_data(as_text=True)


def test_copy_with_csrf_header_works(csrf_client):
    login_page = csrf_client.get("/login").get_data(as_text=True)
    token = login_page.split('name="csrf_token" type="hidden" value="')[1].split('"')[0]
    csrf_client.post("/login", data={"username": "editor", "password": "correct horse battery", "csrf_token": token})
    page = csrf_client.get(PAGE).get_data(as_text=True)
    token = page.split('name="csrf-token" content="')[1].split('"')[0]
    response = csrf_client.post("/agents/agent-123/production/webhook/secret", headers={"X-CSRFToken": token})
    assert response.status_code == 200 and response.json["secret"].startswith("whsec_")


def test_audit_log_lists_changes_without_secrets(client, auth):
    auth.login("editor")
    version = page_version(client.get(PAGE).get_data(as_text=True))
    client.post(PAGE, data=save_form(version))
    client.post("/agents/agent-123/production/webhook/regenerate", data={"grace": "none", "confirmed": "yes"})
    html = client.get("/audit").get_data(as_text=True)
    for action in ("settings.saved", "webhook.secret_regenerated", "user.login"):
        assert action in html
