"""Layered configuration: defaults, then instance/config.py, then QLAR_* environment variables."""
import logging
import os
import secrets
from pathlib import Path

from flask import Flask
from sqlalchemy.engine import make_url

log = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
LOCAL_CA_DIR = "ca"  # instance/ca/: the local CA `flask qlar demo` makes for the reference receiver


class Defaults:
    """Settings every deployment starts from; override them in instance/config.py or QLAR_*."""

    ENV = "production"  # "development" (make run, .flaskenv) relaxes key handling
    SECRET_KEY: str | None = None
    MASTER_KEY: str | None = None  # comma-separated Fernet keys; the first encrypts
    SQLALCHEMY_DATABASE_URI: str | None = None
    SESSION_COOKIE_HTTPONLY = True
    SESSION_COOKIE_SAMESITE = "Lax"
    SESSION_COOKIE_SECURE = False
    REMEMBER_COOKIE_HTTPONLY = True
    REMEMBER_COOKIE_SAMESITE = "Lax"
    WTF_CSRF_TIME_LIMIT = None  # token lives as long as the session
    TRUSTED_PROXIES = 0  # proxies in front of the console whose X-Forwarded-For/-Proto/-Host/-Prefix are believed

    # Accounts (auth/): login throttle, session lifetime, second factor
    LOGIN_RATE_LIMIT = "20 per minute"  # failed logins per username and per client address (Flask-Limiter notation)
    SESSION_IDLE_MINUTES = 30  # a session unused this long ends
    SESSION_MAX_HOURS = 12  # a session ends this long after its login, used or not
    REQUIRE_2FA = ""  # "admin": admins must enrol a second factor before using any page

    # Delivery (DESIGN.md "Delivery semantics")
    WORKER = "embedded"  # "external": no dispatcher thread in the web process; run `flask qlar worker`
    DISPATCHER_THREADS = 4  # sender threads: they only wait on the network, so a few are cheap
    ENDPOINT_CONCURRENCY: int | None = None  # a hard limit; default a share of half that a fast endpoint may exceed
    TIMEOUT_SECONDS = 15
    LEASE_SECONDS = 60
    RETRY_SCHEDULE = "5s,5m,30m,2h,5h,10h,10h"
    SLOWDOWN_SECONDS = 60
    CA_BUNDLE: str | None = None
    ALLOW_PRIVATE_TARGETS = False
    RESOLVE_TIMEOUT_SECONDS = 2.0  # Save looks the webhook host up this long, to warn of private addresses; 0: never
    TRACE_RETENTION_DAYS = 7
    PAUSE_AFTER = "30m"  # an endpoint failing this long pauses: its events wait, one probe at a time
    PROBE_MAX_SECONDS = 300  # a paused endpoint's probe delay doubles up to this
    MAX_ENDPOINTS = 10  # endpoints a pair may have, its primary (the card's webhook) included
    SMTP_URL: str | None = None  # alert emails: smtp://host:port, smtp+starttls://user:pass@host:587, smtps://…
    MAIL_FROM = "qlar-console <qlar-alerts@localhost>"
    ALERT_RETRY_SCHEDULE = "10s,1m,5m,30m,2h,6h,12h"  # an alert email or POST that fails is tried again
    POLL_SECONDS = 2.0  # fallback when a wake-up cannot arrive
    METRICS_TOKEN: str | None = None  # when set, /metrics wants "Authorization: Bearer <token>"
    METRICS_PUBLIC = False  # production serves /metrics only with METRICS_TOKEN, unless this is set

    # Reference receiver (flask qlar receiver, flask qlar serve --receiver-port): replay safety
    RECEIVER_TOLERANCE_SECONDS = 300  # refuse a Standard Webhooks webhook-timestamp further from now
    RECEIVER_DEDUPE_DAYS = 7  # processed event ids kept (longer than RETRY_SCHEDULE), across restarts
    RECEIVER_DEDUPE_DB: str | None = None  # their SQLite file; default instance/receiver-events.db

    # JSON API (/api/v1)
    API_RATE_LIMIT = "600 per minute"  # per token; Flask-Limiter notation
    RATELIMIT_STORAGE_URI = "memory://"  # per process; use redis://… when several processes serve the API
    API_TITLE = "qlar-console API"
    API_VERSION = "v1"
    OPENAPI_VERSION = "3.1.0"
    OPENAPI_URL_PREFIX = "/api/v1"
    OPENAPI_JSON_PATH = "openapi.json"


def load_config(app: Flask, overrides: dict | None) -> None:
    """Apply the configuration layers in order, then fill what development may generate."""
    app.config.from_object(Defaults)
    app.config.from_pyfile("config.py", silent=True)
    for plain in ("SECRET_KEY", "DATABASE_URL"):  # the conventional unprefixed names
        if os.environ.get(plain):
            app.config["SQLALCHEMY_DATABASE_URI" if plain == "DATABASE_URL" else plain] = os.environ[plain]
    app.config.from_prefixed_env("QLAR")
    if overrides:
        app.config.from_mapping(overrides)
    if app.config.get("DATABASE_URL"):
        app.config["SQLALCHEMY_DATABASE_URI"] = app.config["DATABASE_URL"]
    uri = app.config["SQLALCHEMY_DATABASE_URI"] or f"sqlite:///{Path(app.instance_path) / 'qlar.db'}"
    if uri.startswith(("postgres://", "postgresql://")):  # the common form: use psycopg 3
        uri = "postgresql+psycopg://" + uri.split("://", 1)[1]
    app.config["SQLALCHEMY_DATABASE_URI"] = uri
    if uri.startswith("postgresql"):  # survive a database restart: test pooled connections before use
        app.config.setdefault("SQLALCHEMY_ENGINE_OPTIONS", {"pool_pre_ping": True})
    _ensure_secret_key(app)
    app.config["TRUSTED_CAS"] = trusted_cas(app)
    create_database_file(app)


def trusted_cas(app: Flask) -> list[str]:
    """CA files the sender trusts besides the system bundle: QLAR_CA_BUNDLE, and the demo's local CA if present."""
    extras = [app.config["CA_BUNDLE"]] if app.config.get("CA_BUNDLE") else []
    if extras and not Path(extras[0]).is_file():  # the sender loads it at its first send: refuse to start now
        raise RuntimeError(f"QLAR_CA_BUNDLE is {extras[0]}, which is not a file: point it at a PEM file of CAs.")
    local_ca = Path(app.instance_path) / LOCAL_CA_DIR / "ca.pem"
    if local_ca.exists():
        extras.append(str(local_ca))
    return extras


def is_development(app: Flask) -> bool:
    """True when keys may be generated into instance/ (never in production)."""
    return app.config["ENV"] == "development" or app.testing


def _ensure_secret_key(app: Flask) -> None:
    """Use the configured SECRET_KEY; in development create one in instance/; else refuse to start."""
    if app.config["SECRET_KEY"]:
        return
    if not is_development(app):
        raise RuntimeError(
            "SECRET_KEY is not set: set QLAR_SECRET_KEY (or SECRET_KEY) to a long random value "
            "before starting qlar-console outside development."
        )
    path = Path(app.instance_path) / "secret_key"
    app.config["SECRET_KEY"] = read_or_create_key_file(path, lambda: secrets.token_hex(32))


def read_or_create_key_file(path: Path, make) -> str:
    """Return the key stored at path, creating it (mode 0600) with make() if absent."""
    path.parent.mkdir(parents=True, exist_ok=True)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    except FileExistsError:
        make_private(path)
        return path.read_text().strip()
    with os.fdopen(fd, "w") as fh:
        fh.write(make() + "\n")
    return path.read_text().strip()


def create_database_file(app: Flask) -> None:
    """Create the SQLite database file 0600 before SQLite (or `flask db upgrade`) would create it 0644.

    The file holds the encrypted webhook keys, password hashes and token hashes. SQLite gives its
    -wal, -shm and -journal files the database file's mode.
    """
    url = make_url(app.config["SQLALCHEMY_DATABASE_URI"])
    if url.get_backend_name() != "sqlite" or url.database in (None, "", ":memory:") or url.database.startswith("file:"):
        return
    path = Path(app.instance_path) / url.database  # Flask-SQLAlchemy reads a relative path in instance/
    try:
        os.close(os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
    except FileExistsError:
        for existing in (path, *(path.with_name(path.name + end) for end in ("-wal", "-shm", "-journal"))):
            make_private(existing)
    except OSError:  # no such directory, or not ours to create: SQLite says so at the first query (/readyz)
        pass


def make_private(path: Path) -> None:
    """Take group and other access away from an existing file of ours (one made before files were 0600)."""
    try:
        mode = path.stat().st_mode & 0o777
        if mode & 0o077:
            path.chmod(mode & 0o700)
            log.warning("%s was readable by others (mode %o): now %o", path, mode, mode & 0o700)
    except OSError:  # absent, or not ours: leave it
        pass
