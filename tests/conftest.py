"""Fixtures: a fresh app and database per test (tests/apps.py), clients, real HTTPS receivers and an SMTP server,
and the figures the tests measured, printed at the end."""
import gc
import os

import pytest
from apps import BASE_PG_URL, PASSWORD, PG_HOWTO, PG_URL, WORKER, dispose, make_app, point_webhook, postgres_url
from helpers import served


def pytest_collection_modifyitems(config, items):
    """Without a PostgreSQL URL (outside CI), leave the PostgreSQL runs out, saying so once at the end; then
    start the tests marked `long` first, one per pytest-xdist worker."""
    if not (PG_URL or os.environ.get("CI")):
        skipped = [item for item in items if "[postgresql" in item.nodeid or "test_faults.py" in item.nodeid]
        if skipped:
            config.hook.pytest_deselected(items=skipped)
            items[:] = [item for item in items if item not in skipped]
            FIGURES.append(f"postgresql: {len(skipped)} tests not run. {PG_HOWTO}")
    workers = getattr(config, "workerinput", {}).get("workercount", 1)
    items[:] = long_first(items, workers)


def pytest_collection_finish(session):
    """Once every test module and library is imported, freeze what exists: the cyclic collector then never
    walks those objects again. Full collections took about a seventh of the workers' CPU, each a few tenths of a second
    (the GIL held), long enough to show up inside a timed one-second try."""
    gc.collect()
    gc.freeze()


def long_first(items: list, workers: int) -> list:
    """The items reordered so that each of the `workers` contiguous slices xdist hands out at the start begins
    with its share of the `long` tests (dealt round-robin, longest first): a long test started last would
    leave the other workers idle at the end. Every worker orders the same way (xdist checks it)."""
    long = sorted((item for item in items if item.get_closest_marker("long")),
                  key=lambda item: -item.get_closest_marker("long").args[0])
    if not long or workers < 2:
        return items
    rest = iter([item for item in items if not item.get_closest_marker("long")])
    ordered, left = [], len(items)
    for worker in range(workers):
        size = left // (workers - worker)  # what xdist's worksteal hands this worker first
        left -= size
        mine = long[worker::workers]
        ordered += mine + [item for _, item in zip(range(size - len(mine)), rest, strict=False)]
    return ordered + list(rest)


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request, tmp_path):
    """Each test using the app fixtures runs on SQLite, and on PostgreSQL when one is configured."""
    return f"sqlite:///{tmp_path / 'qlar.db'}" if request.param == "sqlite" else postgres_url()


@pytest.fixture
def app(tmp_path, database_url):
    """A fresh console with CSRF off (tests that check CSRF build their own)."""
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=database_url)
    yield app
    dispose(app)


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
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=database_url, CA_BUNDLE=str(receiver.ca_file),
                   ALLOW_PRIVATE_TARGETS=True,
                   RETRY_SCHEDULE="200ms,200ms", TIMEOUT_SECONDS=2, LEASE_SECONDS=4, SLOWDOWN_SECONDS=0.3)
    point_webhook(app, receiver.url)
    yield app
    dispose(app)


@pytest.fixture
def delivering_server(tmp_path, receiver):
    """The console over HTTP (CSRF on) with its dispatcher, agent-123 · production delivering to the test receiver."""
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True, CA_BUNDLE=str(receiver.ca_file), ALLOW_PRIVATE_TARGETS=True,
                   RETRY_SCHEDULE="200ms,200ms", TIMEOUT_SECONDS=2, LEASE_SECONDS=4, SLOWDOWN_SECONDS=0.3)
    point_webhook(app, receiver.url)
    with served(app) as base_url:
        app.extensions["qlar_dispatcher"].start()
        yield base_url
    dispose(app)


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
