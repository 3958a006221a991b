"""The test apps: a fresh console on a fresh database (a copy of one seeded SQLite file, or a fresh schema on the
test PostgreSQL), one user per role, and the webhook pointed where a test wants it."""
import atexit
import functools
import os
import shutil
import tempfile
from pathlib import Path

import pytest
from cryptography.fernet import Fernet
from jinja2 import BytecodeCache
from werkzeug.routing import Rule
from werkzeug.security import generate_password_hash

from qlar_console import create_app
from qlar_console.auth.models import User
from qlar_console.extensions import db
from qlar_console.settings.service import SettingsChange, add_agent, get_settings, save_settings

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


PG_URL = BASE_PG_URL = os.environ.get("QLAR_TEST_DATABASE_URL")
if PG_URL and WORKER:
    BASE_PG_URL, PG_URL = PG_URL, _worker_database(PG_URL)


def postgres_url() -> str:
    """The test PostgreSQL URL; skips without one (a failure in CI, where it must be set)."""
    if not PG_URL:
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but QLAR_TEST_DATABASE_URL is not set. {PG_HOWTO}")
        pytest.skip(PG_HOWTO)
    return PG_URL


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
        "RESOLVE_TIMEOUT_SECONDS": 0,  # Save looks no webhook host up in DNS; tests/settings/test_ssrf.py turns it on
    }
    config.update(overrides)
    new_file = _new_sqlite_file(config["SQLALCHEMY_DATABASE_URI"])
    if new_file:  # a copy of this process's seeded database: a fresh schema and seed cost ~30 ms, a copy ~1 ms
        os.close(os.open(new_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))  # 0600, as the console makes it
        shutil.copyfile(_seeded_sqlite(), new_file)
    app = create_app(config)
    app.jinja_env.bytecode_cache = TEMPLATES
    if not new_file:
        _seed(app)
    return app


class _CompiledTemplates(BytecodeCache):
    """The templates as compiled by this test process's first app that rendered each, for every later app
    (each app has its own Jinja environment and would compile them again: ~7% of the suite's time). Jinja
    checks each template's source checksum before it uses its code."""

    def __init__(self):
        self._code: dict[str, bytes] = {}

    def load_bytecode(self, bucket):
        if bucket.key in self._code:
            bucket.bytecode_from_string(self._code[bucket.key])

    def dump_bytecode(self, bucket):
        self._code[bucket.key] = bucket.bytecode_to_string()


TEMPLATES = _CompiledTemplates()


def _share_url_builders() -> None:
    """Each app's URL map compiles two builder functions per rule (Python code generated and compiled: half
    of what an app costs to make, ~18 ms). A builder depends only on the rule's text, parts and defaults, and
    takes the rule it builds for as its first argument, so the test apps of one process share them
    (werkzeug 3.1's Rule._compile_builder, memoised; the console itself makes one app per process)."""
    compile_builder, builders = Rule._compile_builder, {}

    def shared(rule, append_unknown=True):
        try:
            key = (rule.rule, tuple(rule._trace), tuple(sorted((rule.defaults or {}).items())), append_unknown)
            builder = builders.get(key)
        except TypeError:  # an unhashable default: compiled as werkzeug would
            return compile_builder(rule, append_unknown)
        if builder is None:
            builder = builders[key] = compile_builder(rule, append_unknown)
        return builder

    Rule._compile_builder = shared


_share_url_builders()


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


def dispose(app) -> None:
    """Stop the app's dispatcher and close its pooled database connections."""
    app.extensions["qlar_dispatcher"].stop()
    with app.app_context():
        db.engine.dispose()


def point_webhook(app, url: str, environment: str = "production", **change) -> None:
    """Switch agent-123 · `environment`'s webhook on, pointed at `url` (with any other SettingsChange fields)."""
    with app.app_context():
        settings = get_settings("agent-123", environment)
        save_settings(settings, SettingsChange(webhook_enabled=True, webhook_url=url, **change),
                      expected_version=settings.version, actor="test")
