"""Login hardening: the throttle (per username and per address, failures only), failed logins audited and
logged, the same work for unknown names, case-insensitive names, password rules and Argon2id re-hashing."""
import logging
import threading

import argon2
import pytest
from apps import PASSWORD

from qlar_console.audit.models import AuditEntry
from qlar_console.auth.models import User
from qlar_console.auth.passwords import password_problem
from qlar_console.auth.service import UserError, authenticate, create_user, find_user
from qlar_console.extensions import db

WRONG = "not the password at all"


def failures(app) -> list[AuditEntry]:
    """The user.login_failed entries, oldest first."""
    with app.app_context():
        return list(db.session.scalars(db.select(AuditEntry).filter_by(action="user.login_failed")
                                       .order_by(AuditEntry.id)))


def attempt(client, username="admin", password=WRONG, address="127.0.0.1"):
    return client.post("/login", data={"username": username, "password": password},
                       environ_base={"REMOTE_ADDR": address})


def test_the_21st_wrong_password_in_a_minute_gets_429_and_failures_are_audited(client, app, caplog):
    caplog.set_level(logging.INFO)
    for _ in range(20):
        response = attempt(client)
        assert response.status_code == 200 and "Invalid username or password." in response.get_data(as_text=True)
    response = attempt(client, password=PASSWORD)  # even the right one: the limit answers before any check
    assert response.status_code == 429
    assert "Too many attempts, try again in 1 minute." in response.get_data(as_text=True)
    assert 1 <= int(response.headers["Retry-After"]) <= 60
    assert client.get("/deliveries").status_code == 302  # not signed in
    entries = failures(app)
    assert len(entries) == 20
    assert {e.actor for e in entries} == {"admin"}
    assert all("wrong password from 127.0.0.1" == e.details for e in entries)
    logged = caplog.text
    assert "login failed for 'admin'" in logged and "login throttled" in logged
    assert WRONG not in logged and PASSWORD not in logged
    assert all(WRONG not in (e.details + e.actor) for e in entries)


def test_successful_logins_do_not_count(client):
    for _ in range(25):
        assert attempt(client, "editor", PASSWORD).status_code == 302
        client.post("/logout")


def test_the_username_limit_holds_across_addresses(client):
    for n in range(20):
        attempt(client, "Admin ", address=f"10.0.0.{n + 1}")  # the name as typed in any case counts as one
    assert attempt(client, address="10.0.1.1").status_code == 429
    assert attempt(client, "editor", PASSWORD, address="10.0.1.1").status_code == 302  # other names are not held


def test_the_address_limit_holds_across_usernames(client):
    for n in range(20):
        attempt(client, f"guess{n}")
    assert attempt(client, "editor", PASSWORD).status_code == 429
    assert attempt(client, "editor", PASSWORD, address="127.0.0.2").status_code == 302


def test_the_limit_is_configurable(tmp_path):
    from apps import dispose, make_app

    app = make_app(tmp_path, LOGIN_RATE_LIMIT="2 per hour")
    client = app.test_client()
    attempt(client), attempt(client)
    response = attempt(client)
    assert response.status_code == 429
    assert "Too many attempts, try again in 60 minutes." in response.get_data(as_text=True)
    dispose(app)


def test_unknown_and_known_usernames_cost_the_same_hash_check(app, monkeypatch):
    calls = []
    verify = argon2.PasswordHasher.verify
    monkeypatch.setattr(argon2.PasswordHasher, "verify", lambda self, h, p: calls.append(1) or verify(self, h, p))
    with app.app_context():
        create_user("carol", "viewer", "a long enough password", actor="test")
        assert authenticate("carol", WRONG) is None
        assert authenticate("nobody-here", WRONG) is None
        assert authenticate("x" * 5000, WRONG) is None
    assert calls == [1, 1, 1]


def test_a_long_typed_username_is_audited_shortened(client, app):
    attempt(client, "n" * 500)
    attempt(client, "")
    actors = [e.actor for e in failures(app)]
    assert actors == ["n" * 80]  # an empty name is the form's refusal, not a login attempt


def test_login_is_case_insensitive(client):
    assert attempt(client, "  EDITOR", PASSWORD).status_code == 302


def test_an_old_hash_is_rehashed_with_argon2id_at_login(client, app):
    with app.app_context():
        assert find_user("editor").password_hash.startswith("pbkdf2:")
    attempt(client, "editor", PASSWORD)
    assert client.get("/deliveries").status_code == 200  # the re-hash does not end the new session
    with app.app_context():
        assert find_user("editor").password_hash.startswith("$argon2id$")
    client.post("/logout")
    assert attempt(client, "editor", PASSWORD).status_code == 302


@pytest.mark.parametrize(("password", "reason"), [
    ("short pass", "Password must be at least 12 characters."),
    ("password1234", "Password is too weak: This is a very common password."),
    ("aaaaaaaaaaaa", "Password is too weak: Repeats like \"aaa\" are easy to guess."),
    ("carolcarol12", "Password is too weak:"),
])
def test_weak_passwords_are_refused_with_the_reason(password, reason):
    assert password_problem(password, "carol").startswith(reason)


@pytest.mark.parametrize("password", ["correct horse battery", "tangerine umbrella 42 quietly"])
def test_strong_passwords_pass(password):
    assert password_problem(password, "carol") is None


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["qa", "--role", "editor", "--password-stdin"], "\n",
     "Error: Password must not be empty: type one at the prompt, or send it on standard input."),
    (["Admin", "--role", "admin", "--password-stdin"], "a long enough password\n",
     "Error: User 'admin' already exists."),
    (["u" * 500, "--role", "viewer", "--password-stdin"], "a long enough password\n",
     "Error: Username must be at most 80 characters (this one has 500)."),
    (["qa", "--role", "viewer", "--password-stdin"], "password1234\n",
     "Error: Password is too weak: This is a very common password."),
    (["q a", "--role", "viewer", "--password-stdin"], "a long enough password\n",
     "Error: Username must not contain spaces or control characters."),
])
def test_create_user_refusals_are_one_line(runner, app, args, stdin, message):
    result = runner.invoke(args=["qlar", "create-user", *args], input=stdin)
    assert result.exit_code == 1
    assert result.output.strip().startswith(message)
    with app.app_context():
        assert db.session.scalar(db.select(db.func.count()).select_from(User)) == 4


def test_create_user_stores_the_name_in_lower_case(runner, app, client):
    result = runner.invoke(args=["qlar", "create-user", "QA-Lead", "--role", "viewer", "--password-stdin"],
                           input="a long enough password\n")
    assert result.output.strip() == "Created user qa-lead (viewer)."
    with app.app_context():
        assert find_user("qa-lead").password_hash.startswith("$argon2id$")
        with pytest.raises(UserError, match="already exists"):
            create_user("QA-LEAD", "viewer", "a long enough password")
    assert attempt(client, "Qa-Lead", "a long enough password").status_code == 302


def test_the_demo_password_passes_the_rules(app):
    with app.app_context():
        _, password = create_user("demo-admin", "admin", actor="demo")
        assert password_problem(password, "demo-admin") is None


def test_a_long_password_is_rated_quickly(app):
    import time

    start = time.perf_counter()
    assert password_problem("tangerine umbrella quietly " * 30) is None  # 810 characters
    assert password_problem("x" * 1025) == "Password must be at most 1024 characters."
    assert time.perf_counter() - start < 1


@pytest.mark.parametrize("username", ["ad\x00min", "\u00c9lodie", "admin' OR '1'='1"])
def test_odd_usernames_are_plain_failures(client, username):
    response = attempt(client, username)
    assert response.status_code == 200 and "Invalid username or password." in response.get_data(as_text=True)


def test_wrong_passwords_sent_at_once_are_checked_at_most_the_limit(tmp_path, database_url):
    """30 at once at 5 a minute: each takes its place in the count before its password is checked."""
    from concurrent.futures import ThreadPoolExecutor

    from apps import dispose, make_app
    from argon2 import PasswordHasher
    from argon2.profiles import RFC_9106_LOW_MEMORY

    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=database_url, LOGIN_RATE_LIMIT="5 per minute")
    with app.app_context():  # a hash at production cost, so a check takes as long as it does for real
        find_user("admin").password_hash = PasswordHasher.from_parameters(RFC_9106_LOW_MEMORY).hash(PASSWORD)
        db.session.commit()
    start = threading.Barrier(30)

    def one(n):
        client = app.test_client()
        start.wait()
        return attempt(client, address=f"10.1.0.{n}").status_code

    with ThreadPoolExecutor(30) as pool:
        statuses = list(pool.map(one, range(30)))
    assert statuses.count(200) <= 5 and statuses.count(429) >= 25, statuses
    assert len(failures(app)) == statuses.count(200) <= 5  # only those were checked
    assert attempt(app.test_client(), password=PASSWORD, address="10.2.0.1").status_code == 429  # still held
    dispose(app)


def test_behind_one_trusted_proxy_each_client_has_its_own_count(tmp_path):
    from apps import dispose, make_app

    app = make_app(tmp_path, LOGIN_RATE_LIMIT="3 per minute", TRUSTED_PROXIES=1)
    client = app.test_client()

    def via_proxy(client_address, username):
        return client.post("/login", data={"username": username, "password": WRONG},
                           environ_base={"REMOTE_ADDR": "127.0.0.1"}, headers={"X-Forwarded-For": client_address})

    for n in range(3):
        assert via_proxy("203.0.113.7", f"guess{n}").status_code == 200
    assert via_proxy("203.0.113.7", "guess9").status_code == 429
    assert via_proxy("198.51.100.2", "guess10").status_code == 200  # another client behind the same proxy
    assert [e.details for e in failures(app)][-1] == "wrong password from 198.51.100.2"
    dispose(app)


def test_without_trusted_proxies_a_forwarded_address_is_ignored(client):
    for n in range(20):
        client.post("/login", data={"username": f"guess{n}", "password": WRONG},
                    headers={"X-Forwarded-For": f"203.0.113.{n}"})
    assert attempt(client, "editor", PASSWORD).status_code == 429  # every forged address was 127.0.0.1


def test_ipv6_clients_are_counted_by_their_64(client):
    for n in range(20):
        attempt(client, f"guess{n}", address=f"2001:db8:1:2::{n + 1:x}")
    assert attempt(client, "editor", PASSWORD, address="2001:db8:1:2:ffff::1").status_code == 429  # same /64
    assert attempt(client, "editor", PASSWORD, address="2001:db8:1:3::1").status_code == 302  # another /64


@pytest.mark.parametrize("value", ["-1", "many", "11"])
def test_a_bad_trusted_proxies_value_stops_the_start(tmp_path, value):
    from apps import make_app

    with pytest.raises(RuntimeError, match="QLAR_TRUSTED_PROXIES must be a whole number from 0 to 10"):
        make_app(tmp_path, TRUSTED_PROXIES=value)


def test_login_gives_the_session_a_fresh_csrf_token(tmp_path):
    import re

    from apps import dispose, make_app

    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    client = app.test_client()
    before = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', client.get("/login").text).group(1)
    assert client.post("/login", data={"username": "editor", "password": PASSWORD,
                                       "csrf_token": before}).status_code == 302
    page = client.get("/account").text
    after = re.search(r'name="csrf_token" type="hidden" value="([^"]+)"', page).group(1)
    with client.session_transaction() as session:
        assert session["csrf_token"] not in (None, "")
    from itsdangerous import URLSafeTimedSerializer
    raw = URLSafeTimedSerializer(app.secret_key, salt="wtf-csrf-token")
    assert raw.loads(before) != raw.loads(after)  # a token seen before login is no good after it
    assert client.post("/logout", data={"csrf_token": before}).status_code == 400
    dispose(app)


@pytest.mark.parametrize(("config", "sent"), [
    ({"ENV": "production"}, True),
    ({"ENV": "development", "SESSION_COOKIE_SECURE": True}, True),
    ({"ENV": "development"}, False),
])
def test_hsts_is_sent_in_production(tmp_path, config, sent):
    from apps import dispose, make_app

    app = make_app(tmp_path, **config)
    response = app.test_client().get("/login")
    assert (response.headers.get("Strict-Transport-Security") == "max-age=31536000") is sent
    dispose(app)
