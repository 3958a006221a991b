"""Fixtures: a fresh app and database per test, role users, and login helpers."""
import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from helpers import served
from werkzeug.security import generate_password_hash

from qlar_console import create_app
from qlar_console.auth.models import User
from qlar_console.extensions import db
from qlar_console.settings.service import add_agent

PASSWORD = "correct horse battery"
MASTER_KEY = Fernet.generate_key().decode()
FAST_HASH = generate_password_hash(PASSWORD, method="pbkdf2:sha256:1000")  # scrypt costs ~0.2s per user


PG_HOWTO = ("PostgreSQL runs of the suite need QLAR_TEST_DATABASE_URL, e.g. "
            "QLAR_TEST_DATABASE_URL=postgresql+psycopg://postgres@127.0.0.1:5432/test make test")
WORKER = os.environ.get("PYTEST_XDIST_WORKER")  # gw0, gw1, … when pytest-xdist runs the suite (make test)


def _worker_database(url: str) -> str:
    """Under pytest-xdist each worker drops and re-creates the schema per test, so each gets a database of its
    own beside QLAR_TEST_DATABASE_URL's (that name + _gw0, …), made afresh here and dropped at the end."""
    from sqlalchemy import create_engine, make_url, text

    base = make_url(url)
    name = f"{base.database}_{WORKER}"
    admin = create_engine(base, isolation_level="AUTOCOMMIT")
    with admin.connect() as connection:
        connection.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        connection.execute(text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    return base.set(database=name).render_as_string(hide_password=False)


PG_URL = os.environ.get("QLAR_TEST_DATABASE_URL")
if PG_URL and WORKER:
    BASE_PG_URL, PG_URL = PG_URL, _worker_database(PG_URL)


def postgres_url() -> str:
    """The test PostgreSQL URL; skips without one (a failure in CI, where it must be set)."""
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but QLAR_TEST_DATABASE_URL is not set. {PG_HOWTO}")
        pytest.skip(PG_HOWTO)
    return PG_URL


def pytest_collection_modifyitems(config, items):
    """Without a PostgreSQL URL (outside CI), leave the PostgreSQL runs out, saying so once at the end."""
    if PG_URL or os.environ.get("CI"):
        return
    skipped = [item for item in items if "[postgresql" in item.nodeid or "test_faults.py" in item.nodeid]
    if skipped:
        config.hook.pytest_deselected(items=skipped)
        items[:] = [item for item in items if item not in skipped]
        FIGURES.append(f"postgresql: {len(skipped)} tests not run. {PG_HOWTO}")


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each test using the app fixtures runs on SQLite, and on PostgreSQL when one is configured."""
    return f"sqlite:///{tmp_path / 'qlar.db'}" if request.param == "sqlite" else postgres_url()


def make_app(tmp_path, **overrides):
    """An app on a fresh database (SQLite in tmp_path unless overridden), the demo agent, one user per role."""
    config = {
        "TESTING": True,
        "SECRET_KEY": "test-secret-key",
        "MASTER_KEY": MASTER_KEY,
        "SQLALCHEMY_DATABASE_URI": f"sqlite:///{tmp_path / 'qlar.db'}",
        "INSTANCE_PATH": str(tmp_path),
        "WTF_CSRF_ENABLED": False,
        "ARGON2_PROFILE": "CHEAPEST",  # new password hashes in microseconds (production: RFC_9106_LOW_MEMORY)
        "RESOLVE_TIMEOUT_SECONDS": 0,  # Save looks no webhook host up in DNS; tests/test_ssrf.py turns it on
    }
    config.update(overrides)
    new_file = _new_sqlite_file(config["SQLALCHEMY_DATABASE_URI"])
    if new_file:  # a copy of this process's seeded database: a fresh schema and seed cost ~30 ms, a copy ~1 ms
        os.close(os.open(new_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # 0600, as the console makes it
        shutil.copyfile(_seeded_sqlite(), new_file)
    app = create_app(config)
    if not new_file:
        _seed(app)
    return app


def _seed(app) -> None:
    """A fresh schema, the demo agent and one user per role."""
    with app.app_context():
        if db.engine.dialect.name == "postgresql":
            db.drop_all()  # a fresh schema per test on the shared test database
        db.create_all()
        add_agent("agent-123", ["production", "staging"], "test")
        for name, role in (("viewer", "viewer"), ("editor", "editor"), ("admin", "admin"), ("editor2", "editor")):
            db.session.add(User(username=name, role=role, password_hash=FAST_HASH))
        db.session.commit()


def _new_sqlite_file(url: str) -> Path | None:
    """The file of a SQLite URL with an absolute path, if it does not exist yet."""
    path = Path(url.removeprefix("sqlite:///")) if url.startswith("sqlite:////") else None
    return path if path and not path.exists() and path.parent.is_dir() else None


@functools.cache
def _seeded_sqlite() -> Path:
    """A SQLite database made by make_app's own schema and seed, once per test process."""
    path = Path(tempfile.mkdtemp(prefix="qlar-seed-")) / "qlar.db"
    atexit.register(shutil.rmtree, path.parent, True)
    app = create_app({"TESTING": True, "SECRET_KEY": "seed", "MASTER_KEY": MASTER_KEY, "WORKER": "external",
                      "SQLALCHEMY_DATABASE_URI": f"sqlite:///{path}", "INSTANCE_PATH": str(path.parent)})
    _seed(app)
    dispose(app)  # closed and checkpointed: no -wal file is left beside it
    assert not Path(f"{path}-wal").exists()
    return path


@pytest.fixture
def app(tmp_path, database_url):
    """A fresh console with CSRF off (tests that check CSRF build their own)."""
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=database_url)
    yield app
    dispose(app)


def dispose(app) -> None:
    """Stop the app's dispatcher and close its pooled database connections."""
    app.extensions["qlar_dispatcher"].stop()
    with app.app_context():
        db.engine.dispose()


@pytest.fixture
def client(app):
    return app.test_client()


@pytest.fixture
def runner(app):
    return app.test_cli_runner()


class AuthActions:
    """Log a test client in and out as one of the fixture users."""

    def __init__(self, client):
        self._client = client

    def login(self, username="editor", password=PASSWORD):
        return self._client.post("/login", data={"username": username, "password": password})

    def logout(self):
        return self._client.post("/logout")


@pytest.fixture
def auth(client):
    return AuthActions(client)


@pytest.fixture
def live_server(tmp_path):
    """The console served over real HTTP on a free loopback port, CSRF on; yields (base_url, app)."""
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True)
    with served(app) as base_url:
        yield base_url, app
    dispose(app)


@pytest.fixture
def receiver(tmp_path):
    """A real HTTPS endpoint on 127.0.0.1 whose certificate comes from a throwaway test CA."""
    from receiver import Receiver

    server = Receiver(tmp_path)
    yield server
    server.close()


@pytest.fixture
def mail_server():
    """A real SMTP server on 127.0.0.1 (aiosmtpd) that keeps what it is sent: QLAR_SMTP_URL=mail_server.url."""
    from mail import MailServer

    server = MailServer()
    yield server
    server.close()


@pytest.fixture
def alert_receiver(tmp_path, receiver):
    """A second HTTPS receiver for alert POSTs, its certificate from the test receiver's CA."""
    from receiver import Receiver

    server = Receiver(tmp_path, ca=receiver.ca)
    yield server
    server.close()


@pytest.fixture
def delivery_app(tmp_path, receiver, database_url):
    """An app whose agent-123 · production webhook points at the test receiver, with short retries."""
    from qlar_console.settings.service import SettingsChange, get_settings, save_settings

    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=database_url, CA_BUNDLE=str(receiver.ca_file),
                   ALLOW_PRIVATE_TARGETS=True,
                   RETRY_SCHEDULE="200ms,200ms", TIMEOUT_SECONDS=2, LEASE_SECONDS=4, SLOWDOWN_SECONDS=0.3)
    with app.app_context():
        settings = get_settings("agent-123", "production")
        change = SettingsChange(webhook_enabled=True, webhook_url=receiver.url)
        save_settings(settings, change, expected_version=settings.version, actor="test")
    yield app
    dispose(app)


@pytest.fixture
def delivering_server(tmp_path, receiver):
    """The console over HTTP (CSRF on) with its dispatcher, agent-123 · production delivering to the test receiver."""
    from qlar_console.settings.service import SettingsChange, get_settings, save_settings

    app = make_app(tmp_path, WTF_CSRF_ENABLED=True, CA_BUNDLE=str(receiver.ca_file), ALLOW_PRIVATE_TARGETS=True,
                   RETRY_SCHEDULE="200ms,200ms", TIMEOUT_SECONDS=2, LEASE_SECONDS=4, SLOWDOWN_SECONDS=0.3)
    with app.app_context():
        settings = get_settings("agent-123", "production")
        save_settings(settings, SettingsChange(webhook_enabled=True, webhook_url=receiver.url),
                      expected_version=settings.version, actor="test")
    with served(app) as base_url:
        app.extensions["qlar_dispatcher"].start()
        yield base_url
    dispose(app)


CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def open_as(browser, live_server):
    """Factory: log in as a fixture user in a fresh context (width, colour scheme; clipboard allowed) and open
    `path` (the Escalation page of agent-123 · production by default); the contexts close after the test."""
    from helpers import PAGE, sign_in
    from playwright.sync_api import expect

    base_url, _ = live_server
    contexts = []

    def make(username: str = "editor", width: int = 1280, scheme: str = "light", path: str = PAGE):
        context = browser.new_context(base_url=base_url, viewport={"width": width, "height": 900},
                                      color_scheme=scheme)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
        contexts.append(context)
        page = context.new_page()
        sign_in(page, username)
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        page.goto(path)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the session (skipped without it locally, a failure in CI)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium for the browser tests.")
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


FIGURES: list[str] = []


@pytest.fixture
def figure():
    """Record a measured figure (name, value) for the summary at the end of the run."""
    return lambda name, value: FIGURES.append(f"{name}: {value}")


def pytest_sessionfinish(session):
    """A worker hands its figures to the controller, and drops its own database."""
    if WORKER:
        session.config.workeroutput["qlar_figures"] = list(FIGURES)
        if PG_URL:
            from sqlalchemy import create_engine, make_url, text

            admin = create_engine(BASE_PG_URL, isolation_level="AUTOCOMMIT")
            with admin.connect() as connection:
                connection.execute(text(f'DROP DATABASE IF EXISTS "{make_url(PG_URL).database}" WITH (FORCE)'))
            admin.dispose()


@pytest.hookimpl(optionalhook=True)
def pytest_testnodedown(node, error):
    """The controller gathers each worker's figures (a line every worker reports, once)."""
    for line in getattr(node, "workeroutput", {}).get("qlar_figures", []):
        if line not in FIGURES:
            FIGURES.append(line)


def pytest_terminal_summary(terminalreporter):
    """Print the figures the fault tests measured."""
    if FIGURES:
        terminalreporter.section("qlar summary")
        for line in FIGURES:
            terminalreporter.write_line(line)
