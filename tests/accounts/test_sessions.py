"""Sessions with a server-side anchor: a cookie copied before logout, a password or role change, or "sign out
everywhere" is refused afterwards; idle and absolute lifetimes end a session with a clear message."""
import time

import pytest
from apps import PASSWORD, point_webhook
from helpers import login

from qlar_console.audit.models import AuditEntry
from qlar_console.auth.service import find_user, set_role
from qlar_console.auth.sessions import LOGIN_AT, SEEN_AT
from qlar_console.extensions import db

SECRET_URL = "/agents/agent-123/production/webhook/secret"


def enable_webhook(app) -> None:
    """Give agent-123 · production a key, so the Copy endpoint has something to answer."""

    point_webhook(app, "https://example.com/hook")


def replay(app, cookie: str):
    """A fresh client (another browser) presenting a copied session cookie."""
    thief = app.test_client()
    thief.set_cookie("session", cookie)
    return thief


def assert_refused(response) -> None:
    assert response.status_code == 302 and response.headers["Location"].startswith("/login")


def test_a_cookie_saved_before_logout_is_refused_after_it(client, app):
    enable_webhook(app)
    login(client, "editor")
    saved = client.get_cookie("session").value
    assert replay(app, saved).get("/deliveries").status_code == 200  # a copy works while the session lives
    assert replay(app, saved).post(SECRET_URL).json["secret"].startswith("whsec_")
    client.post("/logout")
    assert_refused(replay(app, saved).get("/deliveries"))
    assert_refused(replay(app, saved).post(SECRET_URL))
    thief = replay(app, saved)
    page = thief.get("/deliveries", follow_redirects=True).get_data(as_text=True)
    assert "Your session has ended (logged out, or signed out everywhere): log in again." in page
    assert "Please log in to continue." not in page


def test_a_password_change_keeps_this_session_and_ends_the_others(client, app):
    login(client, "editor")
    other = app.test_client()
    login(other, "editor")
    response = client.post("/account/password", data={
        "current_password": PASSWORD, "new_password": "tangerine umbrella quietly", "confirm_password":
        "tangerine umbrella quietly"}, follow_redirects=True)
    assert "Password changed. Every other session is signed out." in response.get_data(as_text=True)
    assert client.get("/deliveries").status_code == 200
    assert_refused(other.get("/deliveries"))
    with app.app_context():
        entry = db.session.scalar(db.select(AuditEntry).filter_by(action="user.password_changed"))
        assert entry.actor == "editor" and "tangerine" not in entry.details


@pytest.mark.parametrize(("form", "message"), [
    ({"current_password": "wrong one", "new_password": "tangerine umbrella quietly",
      "confirm_password": "tangerine umbrella quietly"}, "The current password is not correct."),
    ({"current_password": PASSWORD, "new_password": "tangerine umbrella quietly",
      "confirm_password": "tangerine umbrella loudly"}, "The two new passwords differ."),
    ({"current_password": PASSWORD, "new_password": "password1234", "confirm_password": "password1234"},
     "Password is too weak: This is a very common password."),
    ({"current_password": PASSWORD, "new_password": "", "confirm_password": ""}, "This field is required."),
])
def test_a_refused_password_change_says_why_next_to_the_field(client, form, message):
    login(client, "editor")
    response = client.post("/account/password", data=form)
    assert response.status_code == 422
    assert message in response.get_data(as_text=True)
    assert client.get("/deliveries").status_code == 200  # nothing ended


def test_a_role_change_ends_the_users_sessions(client, app):
    login(client, "editor")
    with app.app_context():
        set_role("editor", "viewer", actor="test")
    assert_refused(client.get("/deliveries"))
    login(client, "viewer")
    with app.app_context():
        find_user("viewer").role = "editor"  # any code path that changes a role
        db.session.commit()
    assert_refused(client.get("/deliveries"))


def test_sign_out_everywhere_ends_every_session(client, app):
    login(client, "editor")
    other = app.test_client()
    login(other, "editor")
    response = client.post("/account/sign-out-everywhere", follow_redirects=True)
    assert "You are signed out everywhere" in response.get_data(as_text=True)
    assert_refused(client.get("/deliveries"))
    assert_refused(other.get("/deliveries"))


def test_an_admin_signs_a_user_out_everywhere_from_the_cli(client, app, runner):
    login(client, "viewer")
    result = runner.invoke(args=["qlar", "user", "sign-out-everywhere", "Viewer"])
    assert result.exit_code == 0 and result.output.strip() == "Every session of viewer is signed out."
    assert_refused(client.get("/deliveries"))
    result = runner.invoke(args=["qlar", "user", "sign-out-everywhere", "nobody"])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: No user 'nobody': create it with `flask qlar create-user`."


def test_cli_role_change_and_password_reset_end_sessions(client, app, runner):
    login(client, "viewer")
    result = runner.invoke(args=["qlar", "user", "set-role", "viewer", "editor"])
    assert result.output.strip() == "viewer is now editor."
    assert_refused(client.get("/deliveries"))
    login(client, "viewer")
    result = runner.invoke(args=["qlar", "user", "set-password", "viewer", "--password-stdin"], input="short\n")
    assert result.exit_code == 1 and "at least 12 characters" in result.output
    result = runner.invoke(args=["qlar", "user", "set-password", "viewer", "--password-stdin"],
                           input="tangerine umbrella quietly\n")
    assert result.exit_code == 0, result.output
    assert_refused(client.get("/deliveries"))
    response = client.post("/login", data={"username": "viewer", "password": "tangerine umbrella quietly"})
    assert response.status_code == 302


def age_session(client, **seconds_ago) -> None:
    """Move the session's login or last-use time back."""
    with client.session_transaction() as session:
        for key, ago in seconds_ago.items():
            session[{"login": LOGIN_AT, "seen": SEEN_AT}[key]] = int(time.time()) - ago


@pytest.mark.parametrize(("ages", "message"), [
    ({"seen": 31 * 60}, "Your session has ended after 30 minutes without activity. Log in again."),
    ({"login": 12 * 3600 + 5, "seen": 10}, "Your session has ended: a login lasts at most 12 hours. Log in again."),
])
def test_idle_and_absolute_lifetimes_end_a_session(client, ages, message):
    login(client, "editor")
    age_session(client, **ages)
    response = client.get("/deliveries")
    assert_refused(response)
    assert message in client.get(response.headers["Location"]).get_data(as_text=True)
    assert_refused(client.get("/deliveries"))  # the session is gone, not only this request


def test_activity_keeps_a_session_alive(client):
    login(client, "editor")
    age_session(client, seen=29 * 60, login=11 * 3600)
    assert client.get("/deliveries").status_code == 200
    with client.session_transaction() as session:
        assert time.time() - session[SEEN_AT] < 5  # the use was noted


def test_lifetimes_are_configurable(tmp_path):
    from apps import dispose, make_app

    app = make_app(tmp_path, SESSION_IDLE_MINUTES=1, SESSION_MAX_HOURS=0.5)
    client = app.test_client()
    login(client, "editor")
    age_session(client, seen=61)
    assert_refused(client.get("/deliveries"))
    login(client, "editor")
    age_session(client, login=1801)
    assert_refused(client.get("/deliveries"))
    dispose(app)


def test_a_cookie_from_another_browser_is_dropped(client, app):
    login(client, "editor")
    saved = client.get_cookie("session").value
    thief = replay(app, saved)
    assert_refused(thief.get("/deliveries", headers={"User-Agent": "curl/8"}))  # strong session protection


def test_a_cookie_from_before_the_upgrade_is_refused(client):
    login(client, "editor")
    with client.session_transaction() as session:
        session["_user_id"] = "2"  # the old form: no session version
    assert_refused(client.get("/deliveries"))
