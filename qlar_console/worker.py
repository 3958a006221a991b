"""The delivery engine wired to this app, and the lean worker process (`python -m qlar_console.worker`).

`flask qlar worker` runs this module: it loads only what delivering needs (Flask's config and app
context, SQLAlchemy, requests, cryptography, the settings it reads), not the web console's forms,
templates, API or migrations.
"""
import argparse
import ctypes
import logging
import os
import signal
import sys
import time

from flask import Flask
from sqlalchemy import LABEL_STYLE_TABLENAME_PLUS_COL, and_, bindparam, select

from .clock import utcnow
from .config import ROOT, load_config
from .crypto import install_log_redaction
from .engine.models import Endpoint
from .engine.targets import TargetCache
from .engine.worker import Dispatcher
from .extensions import db
from .settings.models import EscalationSettings
from .settings.targets import resolve_endpoints, switch_off_after_gone

log = logging.getLogger(__name__)

EP, CARD = Endpoint.__table__, EscalationSettings.__table__
# Each endpoint's row and, for a primary endpoint, its card's: everything resolve_endpoints builds a target from.
_ROWS = (select(EP, CARD).select_from(EP.outerjoin(CARD, and_(
    EP.c.is_primary, CARD.c.agent_id == EP.c.agent_id, CARD.c.environment == EP.c.environment)))
    .where(EP.c.id.in_(bindparam("ids", expanding=True))).set_label_style(LABEL_STYLE_TABLENAME_PLUS_COL))
_GRACE = (EP.c.previous_secret_expires_at, CARD.c.previous_secret_expires_at)


def endpoint_stamps(ids: set[str]) -> dict[str, tuple]:
    """What each endpoint's target is built from (TargetCache's stamp): its rows whole, and whether a previous
    key is still in its grace period (signing_secrets), in one statement of the caller's transaction."""
    now = utcnow()
    rows = db.session.connection().execute(_ROWS, {"ids": list(ids)})
    return {row[0]: (tuple(row), tuple(bool(expires and expires > now) for expires in
                                       (row._mapping[column] for column in _GRACE))) for row in rows}


def init_dispatcher(app: Flask) -> Dispatcher:
    """Give the app its dispatcher, reading endpoints from the settings (again only when they changed) and
    switching a webhook off on 410."""
    dispatcher = Dispatcher()
    dispatcher.init_app(app, resolve=TargetCache(resolve_endpoints, endpoint_stamps), on_gone=switch_off_after_gone)
    return dispatcher


def create_worker_app(config: dict | None = None) -> Flask:
    """An app with the configuration, the database and the dispatcher, and nothing of the web console."""
    instance = (config or {}).get("INSTANCE_PATH") or os.environ.get("QLAR_INSTANCE_PATH") or ROOT / "instance"
    app = Flask(__name__, instance_path=str(instance), instance_relative_config=True)
    load_config(app, config)
    app.config["WORKER"] = "external"  # this process is the worker: no embedded start
    install_log_redaction()
    db.init_app(app)
    init_dispatcher(app)
    return app


def run(app: Flask, threads: int | None) -> None:
    """Run the dispatcher until SIGINT or SIGTERM, then finish in-flight sends and exit."""
    dispatcher = app.extensions["qlar_dispatcher"]
    signal.signal(signal.SIGTERM, lambda *_: dispatcher.request_stop())
    limit_malloc_arenas()
    dispatcher.start(threads)
    print(f"Worker running with {dispatcher.thread_count} threads; Ctrl-C stops.", flush=True)
    try:
        while dispatcher.running:
            time.sleep(0.5)
    except KeyboardInterrupt:
        pass
    dispatcher.stop()
    print("Worker stopped.", flush=True)


def limit_malloc_arenas(arenas: int = 2) -> None:
    """glibc gives busy threads malloc arenas of their own, which inflates a worker's RSS: cap them."""
    try:
        ctypes.CDLL("libc.so.6").mallopt(-8, arenas)  # -8 is M_ARENA_MAX
    except (OSError, AttributeError):  # not glibc: nothing to tune
        pass


def become_lean_worker(threads: int | None, instance_path: str) -> None:
    """Replace this process (`flask qlar worker`, which loaded the whole console) with the lean worker."""
    args = [sys.executable, "-m", "qlar_console.worker", *(["--threads", str(threads)] if threads else [])]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    env.setdefault("QLAR_INSTANCE_PATH", instance_path)
    sys.stdout.flush()
    os.execve(sys.executable, args, env)


def main(argv: list[str] | None = None) -> None:
    """`python -m qlar_console.worker [--threads N]`: the standalone dispatcher."""
    parser = argparse.ArgumentParser(prog="python -m qlar_console.worker", description=main.__doc__)
    parser.add_argument("--threads", type=int, default=None, help="sender threads (default QLAR_DISPATCHER_THREADS)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, stream=sys.stderr, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    run(create_worker_app(), args.threads)


if __name__ == "__main__":
    main()
