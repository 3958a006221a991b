"""API tokens: `flask qlar token …` and the API tokens page. The token is shown once and stored only as a hash."""
import html
import logging
import re
from datetime import timedelta
from pathlib import Path

import pytest
from apps import dispose, make_app
from helpers import login

from qlar_console.audit.models import AuditEntry
from qlar_console.auth.models import ApiToken
from qlar_console.auth.tokens import hash_token
from qlar_console.clock import utcnow
from qlar_console.extensions import db

SETTINGS = "/api/v1/agents/agent-123/production/settings"
TOKEN_IN_PAGE = re.compile(r'value="(qlar_tok_[A-Za-z0-9_-]+)"')
ONCE = "Copy this token now: it will not be shown again."


def bearer(token: str) -> dict:
    return {"Authorization": f"Bearer {token}"}


def cli_create(runner, name="ci", user="editor", scopes=("read", "write"), *extra):
    """Run `flask qlar token create` and return click's result."""
    scope_args = [arg for scope in scopes for arg in ("--scope", scope)]
    return runner.invoke(args=["qlar", "token", "create", name, "--user", user, *scope_args, *extra])


def cli_token(runner, name="ci", user="editor", scopes=("read", "write"), *extra) -> str:
    """The token `flask qlar token create` printed (asserting it printed only that)."""
    result = cli_create(runner, name, user, scopes, *extra)
    assert result.exit_code == 0, result.output
    lines = result.stdout.splitlines()
    assert len(lines) == 1 and lines[0].startswith("qlar_tok_"), result.stdout
    return lines[0]


def token_row(app, name: str) -> ApiToken:
    with app.app_context():
        token = db.session.scalar(db.select(ApiToken).filter_by(name=name))
        db.session.expunge(token)
        return token


def audit(app, action: str) -> list[AuditEntry]:
    with app.app_context():
        return list(db.session.scalars(db.select(AuditEntry).filter_by(action=action).order_by(AuditEntry.id)))


def page_create(client, **fields):
    """Press Create token on the API tokens page with these fields (defaults: a valid read+write token)."""
    data = {"name": "deploy", "user": "editor", "scopes": ["read", "write"], "expires": "90d"}
    data.update(fields)
    return client.post("/tokens", data=data)


def shown_token(response) -> str:
    match = TOKEN_IN_PAGE.search(response.get_data(as_text=True))
    assert match, "the new token is not on the page"
    return match.group(1)


# --- the CLI ---------------------------------------------------------------------------------------------------------


def test_cli_create_prints_only_the_token_which_then_authenticates(runner, client, app):
    token = cli_token(runner, "ci", "editor", ("read", "write"))

    assert client.get(SETTINGS, headers=bearer(token)).status_code == 200
    row = token_row(app, "ci")
    assert row.token_hash == hash_token(token) and row.scopes == ["read", "write"] and row.created_by == "cli"
    assert row.expires_at is None and row.hint == token[:13]
    [entry] = audit(app, "api_token.created")
    assert entry.actor == "cli" and "'ci' for editor, scopes read, write, never expires" in entry.details


def test_cli_create_says_everything_else_on_stderr_with_the_weaker_role_warning(runner):
    result = cli_create(runner, "ro", "viewer", ("read", "write"))

    assert result.exit_code == 0, result.output
    assert result.stdout.count("\n") == 1 and result.stdout.startswith("qlar_tok_")
    assert "shown only once" in result.stderr
    assert ("Warning: viewer is a viewer: calls needing write will be refused (403) unless the role changes."
            in result.stderr)
    assert result.stdout.strip() not in result.stderr


def test_cli_create_without_a_warning_when_the_role_allows_every_scope(runner):
    result = cli_create(runner, "full", "admin", ("read", "write", "secrets"))
    assert result.exit_code == 0 and "Warning" not in result.stderr


def test_cli_expires_in_sets_the_expiry_and_an_expired_token_is_refused(runner, client, app):
    token = cli_token(runner, "monthly", "editor", ("read",), "--expires-in", "30")
    expires = token_row(app, "monthly").expires_at
    assert abs(expires - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)
    assert f"{expires:%Y-%m-%d %H:%M}" in runner.invoke(args=["qlar", "token", "list"]).stdout
    assert client.get(SETTINGS, headers=bearer(token)).status_code == 200

    token_id = token_row(app, "monthly").id
    with app.app_context():
        db.session.get(ApiToken, token_id).expires_at = utcnow() - timedelta(seconds=1)
        db.session.commit()
    response = client.get(SETTINGS, headers=bearer(token))
    assert response.status_code == 401 and "expired" in response.json["detail"]
    assert " expired" in runner.invoke(args=["qlar", "token", "list"]).stdout


@pytest.mark.parametrize(("args", "message"), [
    (["ci", "--user", "nobody", "--scope", "read"],
     "Error: No user 'nobody': create it first with `flask qlar create-user`."),
    (["ci", "--user", "editor", "--scope", "admin"], "Error: Choose scopes among: read, write, secrets."),
    (["ci", "--user", "editor", "--scope", "read", "--scope", "root"],
     "Error: Choose scopes among: read, write, secrets."),
    (["  ", "--user", "editor", "--scope", "read"], "Error: Give the token a name of 1 to 80 characters."),
    (["ci", "--user", "editor", "--scope", "read", "--expires-in", "0"],
     "Error: A token expires after 1 to 3650 days, or never."),
    (["ci", "--user", "editor", "--scope", "read", "--expires-in", "soon"],
     "Error: --expires-in must be a whole number, not 'soon'."),
])
def test_cli_create_refusals_are_one_line_on_stderr(runner, app, args, message):
    result = runner.invoke(args=["qlar", "token", "create", *args])

    assert result.exit_code == 1
    assert result.stdout == ""
    assert result.stderr == message + "\n"
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(ApiToken)) == 0


def test_cli_list_shows_every_token_but_never_the_token(runner, app):
    empty = runner.invoke(args=["qlar", "token", "list"])
    assert empty.exit_code == 0 and empty.stdout == "" and "No API tokens yet" in empty.stderr
    first = cli_token(runner, "ci", "editor", ("read", "write"))
    second = cli_token(runner, "ops", "admin", ("secrets",), "--expires-in", "7")
    runner.invoke(args=["qlar", "token", "revoke", str(token_row(app, "ci").id)])

    result = runner.invoke(args=["qlar", "token", "list"])

    assert result.exit_code == 0
    header, *rows = result.stdout.splitlines()
    assert header.split() == ["ID", "NAME", "USER", "SCOPES", "HINT", "CREATED", "(UTC)", "EXPIRES", "LAST", "USED",
                              "STATE"]
    assert rows[0].split()[1:5] == ["ops", "admin", "secrets", second[:13] + "…"] and rows[0].endswith("active")
    assert rows[1].split()[1:5] == ["ci", "editor", "read,write", first[:13] + "…"] and rows[1].endswith("revoked")
    for token in (first, second):
        assert token not in result.output and token[:14] not in result.output


def test_cli_revoke_stops_the_token_and_is_audited(runner, client, app):
    token = cli_token(runner)
    token_id = token_row(app, "ci").id

    result = runner.invoke(args=["qlar", "token", "revoke", str(token_id)])

    assert result.exit_code == 0, result.output
    assert result.stdout == f"API token {token_id} ('ci' of editor) is revoked.\n"
    response = client.get(SETTINGS, headers=bearer(token))
    assert response.status_code == 401 and "revoked" in response.json["detail"]
    [entry] = audit(app, "api_token.revoked")
    assert entry.actor == "cli" and entry.details == "'ci' of editor"
    again = runner.invoke(args=["qlar", "token", "revoke", str(token_id)])
    assert again.exit_code == 0 and len(audit(app, "api_token.revoked")) == 1


@pytest.mark.parametrize(("token_id", "message"), [
    ("999", "Error: No API token 999."),
    ("99999999999", "Error: No API token 99999999999."),
    ("ci", "Error: TOKEN_ID must be a whole number, not 'ci'."),
])
def test_cli_revoke_refusals_are_one_line(runner, token_id, message):
    result = runner.invoke(args=["qlar", "token", "revoke", token_id])
    assert result.exit_code == 1 and result.stdout == "" and result.stderr == message + "\n"


# --- the API tokens page ---------------------------------------------------------------------------------------------


def test_only_admins_see_the_page_and_its_nav_link(client):
    assert client.get("/tokens").status_code == 302
    for username in ("viewer", "editor"):
        login(client, username)
        assert client.get("/tokens").status_code == 403
        assert page_create(client).status_code == 403
        assert "API tokens" not in client.get("/audit").get_data(as_text=True)
        client.post("/logout")

    login(client, "admin")
    nav = client.get("/audit").get_data(as_text=True)
    assert '<a href="/tokens">API tokens</a>' in nav
    page = client.get("/tokens")
    body = page.get_data(as_text=True)
    assert page.status_code == 200
    assert "<title>API tokens · qlar</title>" in body and "<h1>API tokens</h1>" in body
    assert "No API tokens yet." in body and "Create token</button>" in body
    for label in ("Name", "User", "Scopes", "Expires"):
        assert f">{label}</" in body
    assert body.count('type="checkbox"') == 3 and "<option selected value=\"90d\">In 90 days</option>" in body


def test_create_shows_the_token_once_and_a_reload_does_not(client, app):
    login(client, "admin")

    response = page_create(client, name="deploy", user="editor", scopes=["read", "write"], expires="30d")

    assert response.status_code == 201
    assert response.headers["Cache-Control"] == "no-store"
    body = response.get_data(as_text=True)
    token = shown_token(response)
    assert ONCE in body and ">Copy</button>" in body and 'readonly value="' + token in body
    assert "will be refused" not in body
    assert client.get(SETTINGS, headers=bearer(token)).status_code == 200
    row = token_row(app, "deploy")
    assert row.created_by == "admin" and row.scopes == ["read", "write"]
    assert abs(row.expires_at - (utcnow() + timedelta(days=30))) < timedelta(minutes=1)

    reload = client.get("/tokens").get_data(as_text=True)
    assert token not in reload and ONCE not in reload
    assert "deploy" in reload and f"<code>{token[:13]}…</code>" in reload and ">active<" in reload
    assert TOKEN_IN_PAGE.search(reload) is None
    assert "qlar_tok_" not in response.headers.get("Location", "")


def test_create_warns_when_the_users_role_is_below_a_scope(client):
    login(client, "admin")
    response = page_create(client, name="ro", user="viewer", scopes=["read", "secrets"], expires="never")

    assert response.status_code == 201
    body = html.unescape(response.get_data(as_text=True))
    assert "viewer is a viewer: calls needing secrets will be refused (403) unless the role changes." in body
    assert "never expires" in body


@pytest.mark.parametrize(("fields", "error_id", "message"), [
    ({"name": "   "}, "name-error", "Give the token a name of 1 to 80 characters."),
    ({"name": "x" * 81}, "name-error", "Give the token a name of 1 to 80 characters."),
    ({"scopes": []}, "scopes-error", "Choose scopes among: read, write, secrets."),
    ({"scopes": ["read", "root"]}, "scopes-error", "Choose scopes among: read, write, secrets."),
    ({"user": "nobody"}, "user-error", "No user 'nobody'"),
    ({"expires": "forever"}, "expires-error", "Not a valid choice."),
])
def test_create_refusals_show_at_the_field_and_keep_the_input(client, app, fields, error_id, message):
    login(client, "admin")
    sent = {"name": "deploy", "user": "editor2", "scopes": ["write"], "expires": "365d", **fields}

    response = page_create(client, **sent)

    assert response.status_code == 422
    body = html.unescape(response.get_data(as_text=True))
    assert re.search(rf'<p class="error" id="{error_id}">[^<]*{re.escape(message)}', body), body
    assert f'aria-describedby="{error_id}"' in body
    assert ONCE not in body and "qlar_tok_" not in body
    if "name" not in fields:
        assert 'value="deploy"' in body
    if "user" not in fields:
        assert '<option selected value="editor2">' in body
    if "scopes" not in fields:
        assert re.search(r'checked id="scopes-1" name="scopes" type="checkbox" value="write"', body)
    if "expires" not in fields:
        assert '<option selected value="365d">' in body
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(ApiToken)) == 0


def stored_bytes(app) -> bytes:
    """Every byte SQLite keeps for the app's database (the file and any journal beside it)."""
    path = Path(app.config["SQLALCHEMY_DATABASE_URI"].removeprefix("sqlite:///"))
    return b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))


def test_the_database_holds_only_the_hash(client, app):
    login(client, "admin")
    token = shown_token(page_create(client))
    assert client.get(SETTINGS, headers=bearer(token)).status_code == 200

    with app.app_context():
        if db.engine.dialect.name == "sqlite":
            db.engine.dispose()
            stored = stored_bytes(app)
            assert hash_token(token).encode() in stored
            assert token.encode() not in stored and token[9:].encode() not in stored
        for table in db.metadata.sorted_tables:
            rows = db.session.execute(db.select(table)).all()
            assert token[9:] not in repr(rows), table.name


def test_revoke_on_the_page_stops_the_token_and_is_audited(client, app):
    login(client, "admin")
    token = shown_token(page_create(client, name="deploy"))
    token_id = token_row(app, "deploy").id
    page = client.get("/tokens").get_data(as_text=True)
    assert f'action="/tokens/{token_id}/revoke"' in page
    assert 'data-confirm="Revoke the API token deploy of editor?' in page

    response = client.post(f"/tokens/{token_id}/revoke")

    assert response.status_code == 302 and response.headers["Location"] == "/tokens"
    page = html.unescape(client.get("/tokens").get_data(as_text=True))
    assert "API token 'deploy' of editor revoked" in page and ">revoked<" in page
    assert f'action="/tokens/{token_id}/revoke"' not in page
    assert client.get(SETTINGS, headers=bearer(token)).status_code == 401
    [entry] = audit(app, "api_token.revoked")
    assert entry.actor == "admin" and entry.details == "'deploy' of editor"
    assert client.post("/tokens/999/revoke").status_code == 404
    assert client.post("/tokens/99999999999/revoke").status_code == 404
    client.post("/logout")
    login(client, "editor")
    assert client.post(f"/tokens/{token_id}/revoke").status_code == 403


def test_the_token_is_never_logged_nor_audited(client, runner, app, caplog):
    caplog.set_level(logging.DEBUG)
    login(client, "admin")
    from_page = shown_token(page_create(client, name="deploy"))
    from_cli = cli_token(runner, "ci")
    for token in (from_page, from_cli):
        assert client.get(SETTINGS, headers=bearer(token)).status_code == 200
    for name in ("deploy", "ci"):
        client.post(f"/tokens/{token_row(app, name).id}/revoke")
    assert client.get(SETTINGS, headers=bearer(from_page)).status_code == 401

    audit_page = client.get("/audit").get_data(as_text=True)
    with app.app_context():
        details = [e.details for e in db.session.scalars(db.select(AuditEntry))]
    assert "api_token.created" in audit_page and "api_token.revoked" in audit_page
    for token in (from_page, from_cli):
        assert token[9:] not in caplog.text
        assert token[9:] not in audit_page
        assert not any(token[9:] in d for d in details)


@pytest.fixture
def csrf_app(tmp_path):
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    yield app
    dispose(app)


def test_create_and_revoke_need_the_csrf_token(csrf_app):
    client = csrf_app.test_client()
    form = client.get("/login").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', form).group(1)
    client.post("/login", data={"username": "admin", "password": "correct horse battery", "csrf_token": csrf})
    page = client.get("/tokens").get_data(as_text=True)
    csrf = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)

    assert page_create(client).status_code == 400
    created = client.post("/tokens", data={"name": "deploy", "user": "editor", "scopes": ["read"], "expires": "never",
                                           "csrf_token": csrf})
    assert created.status_code == 201
    token_id = token_row(csrf_app, "deploy").id
    assert client.post(f"/tokens/{token_id}/revoke").status_code == 400
    assert client.post(f"/tokens/{token_id}/revoke", data={"csrf_token": csrf}).status_code == 302
