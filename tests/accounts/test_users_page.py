"""The Users page (/users): admins add users (a first password shown once), change roles, reset 2FA and sign
users out everywhere, each audited; the last admin keeps the role; other roles never see or reach it."""
import html
import re

import pytest
from helpers import login

from qlar_console.audit.models import AuditEntry
from qlar_console.auth.models import User
from qlar_console.auth.totp import new_secret
from qlar_console.crypto import secret_box
from qlar_console.extensions import db


def _page(client, response=None) -> str:
    return html.unescape((response or client.get("/users")).get_data(as_text=True))


def _audit(app) -> list[tuple[str, str, str]]:
    with app.app_context():
        return [(e.actor, e.action, e.details) for e in db.session.scalars(db.select(AuditEntry)
                                                                            .order_by(AuditEntry.id))]


def _user(app, name):
    with app.app_context():
        user = db.session.scalar(db.select(User).filter_by(username=name))
        db.session.expunge(user)
        return user


@pytest.mark.parametrize("role", ["viewer", "editor"])
def test_only_admins_see_and_reach_the_users_page(client, role):
    login(client, role)
    assert "Users</a>" not in client.get("/").get_data(as_text=True)
    assert client.get("/users").status_code == 403
    assert client.post("/users", data={"username": "mallory", "role": "admin"}).status_code == 403
    assert client.post("/users/viewer/role", data={"role": "admin"}).status_code == 403
    assert client.post("/users/admin/sign-out").status_code == 403


def test_the_page_lists_every_user_with_role_and_two_factor(client):
    login(client, "admin")
    page = _page(client)
    assert '<a href="/users" aria-current="page">Users</a>' in page
    for name in ("admin", "editor", "editor2", "viewer"):
        assert f"<td>{name}" in page
    assert page.index("<td>admin") < page.index("<td>editor") < page.index("<td>viewer")  # by name
    assert "Reset 2FA" not in page  # nobody has a second factor yet
    assert client.get("/users").headers["Cache-Control"] == "no-store"


def test_add_user_shows_a_first_password_once_that_logs_in(app, client):
    login(client, "admin")
    response = client.post("/users", data={"username": "Alice", "role": "editor"})
    page = _page(client, response)

    assert response.status_code == 201 and response.headers["Cache-Control"] == "no-store"
    assert "User alice added as editor" in page
    password = re.search(r'id="new-password" type="text" readonly value="([^"]+)"', page)[1]
    assert password not in _page(client)  # shown once
    assert ("admin", "user.created", "alice as editor") in _audit(app)
    assert password not in repr(_audit(app))
    other = app.test_client()
    assert other.post("/login", data={"username": "alice", "password": password}).status_code == 302


@pytest.mark.parametrize(("data", "field", "message"), [
    ({"username": "", "role": "editor"}, "username", "Username"),
    ({"username": "editor", "role": "editor"}, "username", "User 'editor' already exists."),
    ({"username": "bob", "role": "owner"}, "role", "Not a valid choice"),
])
def test_a_refused_add_marks_the_field_and_keeps_the_input(app, client, data, field, message):
    login(client, "admin")
    response = client.post("/users", data=data)
    page = _page(client, response)

    assert response.status_code == 422
    assert re.search(rf'<p class="error" id="{field}-error">[^<]*{re.escape(message)}', page), page
    assert re.search(rf'aria-describedby="{field}-error"', page)
    if data["username"]:
        assert f'value="{data["username"]}"' in page
    assert "new-password" not in page
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 4


def test_change_role_signs_the_user_out_and_is_audited(app, client):
    editor = app.test_client()
    login(editor, "editor")
    login(client, "admin")

    response = client.post("/users/editor/role", data={"role": "viewer"}, follow_redirects=True)

    assert "editor is now viewer; every session of theirs is signed out." in _page(client, response)
    assert _user(app, "editor").role == "viewer"
    assert ("admin", "user.role_changed", "editor: editor -> viewer, every session signed out") in _audit(app)
    assert editor.get("/").status_code == 302  # back to the login page


def test_the_last_admin_keeps_the_role(app, client):
    login(client, "admin")
    response = client.post("/users/admin/role", data={"role": "editor"}, follow_redirects=True)
    assert "admin is the only admin: make another user admin first." in _page(client, response)
    assert _user(app, "admin").role == "admin"

    client.post("/users/editor/role", data={"role": "admin"})
    client.post("/users/admin/role", data={"role": "editor"})  # now there is another admin
    assert _user(app, "admin").role == "editor"


def test_reset_2fa_removes_the_factor_and_signs_the_user_out(app, client):
    with app.app_context():
        user = db.session.scalar(db.select(User).filter_by(username="editor"))
        user.totp_secret_ciphertext = secret_box().encrypt(new_secret())
        user.totp_enabled_at = db.func.now()
        db.session.commit()
    login(client, "admin")
    assert "Reset 2FA" in _page(client)

    response = client.post("/users/editor/2fa/reset", follow_redirects=True)

    assert "Two-factor authentication of editor is removed" in _page(client, response)
    assert not _user(app, "editor").has_2fa
    assert ("admin", "user.2fa_reset", "editor: second factor removed, every session signed out") in _audit(app)
    again = client.post("/users/editor/2fa/reset", follow_redirects=True)
    assert "editor has no second factor to reset." in _page(client, again)


def test_sign_out_everywhere_ends_the_users_sessions(app, client):
    viewer = app.test_client()
    login(viewer, "viewer")
    login(client, "admin")

    response = client.post("/users/viewer/sign-out", follow_redirects=True)

    assert "viewer is signed out everywhere." in _page(client, response)
    assert viewer.get("/").status_code == 302
    assert client.get("/users").status_code == 200  # the admin's own session is kept
    assert ("admin", "user.signed_out_everywhere", "viewer") in _audit(app)


def test_signing_oneself_out_everywhere_goes_to_the_login(client):
    login(client, "admin")
    response = client.post("/users/admin/sign-out")
    assert response.status_code == 302 and response.headers["Location"].endswith("/login")
    assert client.get("/users").status_code == 302


def test_an_unknown_user_is_a_404(client):
    login(client, "admin")
    assert client.post("/users/nobody/sign-out").status_code == 404
    assert client.post("/users/nobody/role", data={"role": "viewer"}).status_code == 404
