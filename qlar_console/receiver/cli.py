"""`flask qlar receiver`: run the reference receiver standalone over HTTPS."""
import ipaddress
import logging
import signal
import threading
from pathlib import Path

import click
from flask import current_app
from flask.cli import with_appcontext

from ..errors import one_line_errors
from .app import create_receiver_app, make_receiver_server, receiver_options, receiver_state
from .certs import ensure_local_ca
from .store import DEFAULT_RETENTION_SECONDS, InvalidReceiverKey, check_key

log = logging.getLogger(__name__)


def read_key_file(path: str | Path) -> str:
    """The whsec_ key stored in a file (surrounding whitespace stripped), or InvalidReceiverKey saying why."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise InvalidReceiverKey(f"Cannot read the key file {path}: {getattr(exc, 'strerror', None) or exc}.") from None
    try:
        return check_key(text)
    except InvalidReceiverKey as exc:
        raise InvalidReceiverKey(f"The key file {path} does not hold a usable key. {exc}") from None


def _is_loopback(host: str) -> bool:
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return host == "localhost"


@click.command("receiver")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(0, 65535), default=8443, show_default=True)
@click.option("--secret-file", type=click.Path(dir_okay=False, path_type=Path),
              help="File holding the whsec_ key to verify with (else set it on the traces page).")
@click.option("--retention", type=click.FloatRange(min=0, min_open=True), default=DEFAULT_RETENTION_SECONDS,
              show_default=True, help="Seconds request traces are kept.")
@with_appcontext
@one_line_errors
def receiver_command(host, port, secret_file, retention):
    """Run the reference receiver over HTTPS (certificate from instance/ca/) until interrupted.

    QLAR_RECEIVER_TOLERANCE_SECONDS, QLAR_RECEIVER_DEDUPE_DAYS and QLAR_RECEIVER_DEDUPE_DB set its replay safety.
    """
    keys = [read_key_file(secret_file)] if secret_file else []
    paths = ensure_local_ca(current_app.instance_path)
    app = create_receiver_app(keys, retention, **receiver_options(current_app))
    try:
        server = make_receiver_server(app, host, port, paths)
    except OSError as exc:
        raise click.ClickException(f"Cannot listen on {host}:{port}: {exc.strerror or exc}.") from None
    base = f"https://{host if ':' not in host else f'[{host}]'}:{server.server_port}"
    click.echo(f"Reference receiver: POST {base}/webhook   traces: {base}/")
    click.echo(f"TLS certificate from the local CA {paths.ca_cert} (pass it as QLAR_CA_BUNDLE to trust it).")
    fingerprints = receiver_state(app).keys.fingerprints()
    click.echo(f"Verifying with the key {fingerprints[0]}." if fingerprints else
               "No key yet: every request gets 401 until you set one on the traces page or pass --secret-file.")
    state = receiver_state(app)
    click.echo(f"Replay safety: webhook-timestamp within {state.tolerance_seconds:g} s of now; processed event "
               f"ids kept {state.seen.retention_seconds / 86400:g} days in {state.seen.path}.")
    if not _is_loopback(host):
        click.echo(f"Warning: {host} is not a loopback address; anyone who can reach it can read the traces "
                   "and replace the key.", err=True)
    click.echo("Ctrl-C stops.")
    _serve_until_stopped(server)
    click.echo("Receiver stopped.")


def _serve_until_stopped(server) -> None:
    """Serve in this thread until Ctrl-C or SIGTERM."""
    def stop(*_):
        raise KeyboardInterrupt

    previous = signal.signal(signal.SIGTERM, stop) if threading.current_thread() is threading.main_thread() else None
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass
    finally:
        server.server_close()
        if previous is not None:
            signal.signal(signal.SIGTERM, previous)
