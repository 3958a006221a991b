"""The second factor: enrolment with a QR code or the typed key, the code step at login, recovery codes (once),
turning it off, QLAR_REQUIRE_2FA=admin, and the secret kept encrypted and never shown again."""
import re
from datetime import UTC, datetime, timedelta

import pyotp
import pytest
from apps import PASSWORD, dispose, make_app
from helpers import login

from qlar_console.audit.models import AuditEntry
from qlar_console.auth.service import find_user
from qlar_console.auth.totp import TwoFactorError, enrol, matching_step
from qlar_console.extensions import db


def code(secret: str, steps_ahead: int = 0) -> str:
    """The code the user's app shows (steps_ahead: for the next 30-second window, as after a wait)."""
    return pyotp.TOTP(secret).at(datetime.now(UTC) + timedelta(seconds=30 * steps_ahead))


def enrol_through_pages(client) -> tuple[str, list[str]]:
    """Open the set-up page, read the key as a user would type it, confirm; returns it and the recovery codes."""
    page = client.get("/account/2fa")
    assert page.status_code == 200 and page.headers["Cache-Control"] == "no-store"
    html = page.get_data(as_text=True)
    assert 'src="data:image/svg+xml' in html  # the QR code, inline: no request leaves the page
    secret = re.search(r'id="totp-key">([A-Z2-7 ]+)<', html).group(1).replace(" ", "")
    response = client.post("/account/2fa", data={"code": code(secret)})
    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    codes = re.findall(r"<li><code>([a-z0-9-]+)</code></li>", response.get_data(as_text=True))
    assert len(codes) == 10 and len(set(codes)) == 10
    return secret, codes


def audit_actions(app) -> list[str]:
    with app.app_context():
        return list(db.session.scalars(db.select(AuditEntry.action).order_by(AuditEntry.id)))


def password_step(client, username="admin"):
    return client.post("/login", data={"username": username, "password": PASSWORD})


def test_enrolment_stores_the_secret_encrypted_and_never_shows_it_again(client, app):
    login(client, "admin")
    secret, codes = enrol_through_pages(client)
    with app.app_context():
        user = find_user("admin")
        assert user.totp_secret_ciphertext.startswith("gAAAAA") and secret not in user.totp_secret_ciphertext
        assert len(user.recovery_code_hashes) == 10 and not set(codes) & set(user.recovery_code_hashes)
        raw = repr(db.session.execute(db.text("select * from users")).all()) + repr(
            db.session.execute(db.text("select * from audit_entries")).all())
        assert secret not in raw and not any(c in raw or c.replace("-", "") in raw for c in codes)
    account = client.get("/account").get_data(as_text=True)
    assert "On</span> since" in account and secret not in account
    assert client.get("/account/2fa").status_code == 302  # no second set-up page while it is on
    assert "user.2fa_enabled" in audit_actions(app)


def test_a_wrong_code_does_not_enrol(client, app):
    login(client, "admin")
    client.get("/account/2fa")
    response = client.post("/account/2fa", data={"code": "000000"})
    assert response.status_code == 422
    assert "That code is not right" in response.get_data(as_text=True)
    with app.app_context():
        assert not find_user("admin").has_2fa


def test_an_enrolled_admin_cannot_log_in_without_the_code(client, app):
    login(client, "admin")
    secret, _ = enrol_through_pages(client)
    client.post("/logout")
    response = password_step(client)
    assert response.status_code == 302 and response.headers["Location"].startswith("/login/code")
    assert client.get("/deliveries").status_code == 302  # the password alone signs nobody in
    response = client.post("/login/code", data={"code": "123456"})
    assert response.status_code == 422 and "That code is not right" in response.get_data(as_text=True)
    assert client.get("/deliveries").status_code == 302
    with app.app_context():
        failed = db.session.scalar(db.select(AuditEntry).filter_by(action="user.login_failed"))
        assert failed.actor == "admin" and failed.details.startswith("wrong authentication code")
    response = client.post("/login/code", data={"code": code(secret, 1)})  # the app's next code
    assert response.status_code == 302
    assert client.get("/deliveries").status_code == 200


def test_a_code_works_once(client, app):
    login(client, "admin")
    secret, _ = enrol_through_pages(client)
    with app.app_context():
        used = pyotp.TOTP(secret).generate_otp(find_user("admin").totp_last_step)  # the code enrolment used
    client.post("/logout")
    password_step(client)
    assert client.post("/login/code", data={"code": used}).status_code == 422  # replayed


def test_a_recovery_code_logs_in_once(client, app):
    login(client, "admin")
    _, codes = enrol_through_pages(client)
    client.post("/logout")
    password_step(client)
    response = client.post("/login/code", data={"code": codes[3].upper().replace("-", " ")}, follow_redirects=True)
    assert "You used a recovery code: 9 left." in response.get_data(as_text=True)
    client.post("/logout")
    password_step(client)
    assert client.post("/login/code", data={"code": codes[3]}).status_code == 422
    assert "user.2fa_recovery_used" in audit_actions(app)


def test_the_code_step_needs_the_password_step_first(client):
    response = client.post("/login/code", data={"code": "123456"})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_the_code_step_expires_after_five_minutes(client, app):
    login(client, "admin")
    secret, _ = enrol_through_pages(client)
    client.post("/logout")
    password_step(client)
    with client.session_transaction() as session:
        user_id, version, at = session["_qlar_2fa_pending"]
        session["_qlar_2fa_pending"] = [user_id, version, at - 301]
    response = client.post("/login/code", data={"code": code(secret, 1)})
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")
    assert client.get("/deliveries").status_code == 302


def test_wrong_codes_are_throttled(client, app):
    login(client, "admin")
    enrol_through_pages(client)
    client.post("/logout")
    password_step(client)
    for _ in range(20):
        client.post("/login/code", data={"code": "000000"})
    response = client.post("/login/code", data={"code": "000000"})
    assert response.status_code == 429 and "Too many attempts" in response.get_data(as_text=True)


def test_turning_it_off_needs_a_code(client, app):
    login(client, "admin")
    secret, _ = enrol_through_pages(client)
    response = client.post("/account/2fa/disable", data={"code": "000000"})
    assert response.status_code == 422 and "That code is not right" in response.get_data(as_text=True)
    response = client.post("/account/2fa/disable", data={"code": code(secret, 1)}, follow_redirects=True)
    assert "Two-factor authentication is off." in response.get_data(as_text=True)
    with app.app_context():
        user = find_user("admin")
        assert not user.has_2fa and user.totp_secret_ciphertext is None and user.recovery_code_hashes is None
    assert "user.2fa_disabled" in audit_actions(app)


@pytest.fixture
def strict_app(tmp_path):
    app = make_app(tmp_path, REQUIRE_2FA="admin")
    yield app
    dispose(app)


def test_required_2fa_sends_admins_to_enrolment_before_any_page(strict_app):
    client = strict_app.test_client()
    login(client, "admin")
    for path in ("/deliveries", "/tokens", "/agents/agent-123/production/escalation"):
        response = client.get(path)
        assert response.status_code == 302 and response.headers["Location"] == "/account/2fa"
    html = client.get("/account/2fa").get_data(as_text=True)
    assert "Set up two-factor authentication to continue" in html
    secret, _ = enrol_through_pages(client)
    assert client.get("/deliveries").status_code == 200
    response = client.post("/account/2fa/disable", data={"code": code(secret, 1)})
    assert response.status_code == 422 and "cannot be turned off" in response.get_data(as_text=True)
    editor = strict_app.test_client()
    login(editor, "editor")
    assert editor.get("/deliveries").status_code == 200  # only admins must


def test_an_unknown_require_2fa_value_stops_the_start(tmp_path):
    with pytest.raises(RuntimeError, match="QLAR_REQUIRE_2FA must be empty, a role"):
        make_app(tmp_path, REQUIRE_2FA="admins")


def test_cli_reset_removes_the_factor(client, app, runner):
    login(client, "admin")
    enrol_through_pages(client)
    result = runner.invoke(args=["qlar", "user", "reset-2fa", "admin"])
    assert result.exit_code == 0, result.output
    assert client.get("/deliveries").status_code == 302  # signed out
    assert password_step(client).headers["Location"] == "/"  # no code step any more
    assert "user.2fa_reset" in audit_actions(app)


def test_codes_of_neighbouring_windows_are_accepted_once(app):
    secret = pyotp.random_base32()
    now = datetime.now(UTC)
    step = pyotp.TOTP(secret).timecode(now)
    assert matching_step(secret, pyotp.TOTP(secret).at(now - timedelta(seconds=30)), None, now) == step - 1
    assert matching_step(secret, pyotp.TOTP(secret).at(now + timedelta(seconds=30)), None, now) == step + 1
    assert matching_step(secret, pyotp.TOTP(secret).at(now - timedelta(seconds=90)), None, now) is None
    assert matching_step(secret, pyotp.TOTP(secret).at(now), step, now) is None
    assert matching_step(secret, "12 34 5x", None, now) is None
    assert matching_step(secret, "\u0661\u0662\u0663\u0664\u0665\u0666", None, now) is None  # Arabic-Indic digits
    with app.app_context():
        user = find_user("viewer")
        with pytest.raises(TwoFactorError, match="not right"):
            enrol(user, secret, "abcdef")


@pytest.mark.parametrize("which", ["app code", "recovery code"])
def test_one_code_sent_from_eight_browsers_at_once_signs_in_once(client, app, which):
    import threading
    from concurrent.futures import ThreadPoolExecutor

    login(client, "admin")
    secret, codes = enrol_through_pages(client)
    client.post("/logout")
    browsers = [app.test_client() for _ in range(8)]
    for browser in browsers:
        assert password_step(browser).status_code == 302
    sent = code(secret, steps_ahead=1) if which == "app code" else codes[0]  # the app code: not used at enrolment
    start = threading.Barrier(len(browsers))

    def send(browser):
        start.wait()
        return browser.post("/login/code", data={"code": sent}).status_code

    with ThreadPoolExecutor(len(browsers)) as pool:
        statuses = list(pool.map(send, browsers))
    assert sorted(statuses) == [302] + [422] * 7, statuses
    assert audit_actions(app).count("user.login") == 1 + 1  # the enrolment's login, and one of the eight
