"""The reference receiver's Flask app (a factory), its held state, and serving it over HTTPS in a thread."""
import io
import logging
import secrets
import socket
import threading
from pathlib import Path

from flask import Flask, jsonify, request
from werkzeug.exceptions import HTTPException, MethodNotAllowed
from werkzeug.serving import BaseWSGIServer, WSGIRequestHandler, make_server
from werkzeug.wsgi import LimitedStream

from ..config import ROOT
from ..crypto import install_log_redaction
from ..engine.retry import parse_schedule
from ..security import add_security_headers
from .certs import CertPaths, ssl_context
from .faults import DROP_CONNECTION, FaultScript, FaultTaken, abort_socket
from .seen import DEFAULT_SEEN_DAYS, SeenEvents
from .store import DEFAULT_RETENTION_SECONDS, DEFAULT_TRACE_CAPACITY, InvalidReceiverSetting, KeyRing, TraceStore
from .views import bp
from .webhook import DEFAULT_TOLERANCE_SECONDS, receive

log = logging.getLogger(__name__)

EXTENSION = "qlar_receiver"
MAX_BODY_BYTES = 1024 * 1024
DEFAULT_SEEN_FILE = "receiver-events.db"  # in the console's instance folder


class ReceiverState:
    """What one receiver holds: its keys, traces, processed event ids, time window and the traces-page form token."""

    def __init__(self, keys: list[str], retention_seconds: float, capacity: int = DEFAULT_TRACE_CAPACITY, *,
                 tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS, seen: SeenEvents | None = None):
        self.keys = KeyRing(keys)
        self.traces = TraceStore(retention_seconds, capacity)
        self.seen = seen or SeenEvents()
        self.tolerance_seconds = float(tolerance_seconds)
        self.form_token = secrets.token_urlsafe(32)  # per process: the form needs no cookie
        self.faults = FaultScript()  # faults on command (POST /faults), none at start

    def set_keys(self, keys: list[str]) -> None:
        """Replace the held keys (each whsec_ + base64) on a running receiver."""
        self.keys.set_keys(keys)
        log.info("receiver keys replaced: %s", ", ".join(self.keys.fingerprints()) or "none")

    def receive(self, body: bytes, headers, fault: FaultTaken | None = None) -> tuple[int, dict]:
        """Answer one webhook request and trace it (with the fault it was taken under, if any)."""
        return receive(self.keys, self.seen, self.traces, body, headers, tolerance_seconds=self.tolerance_seconds,
                       fault=fault)


def create_receiver_app(keys: list[str] | None = None, retention_seconds: float = DEFAULT_RETENTION_SECONDS, *,
                        tolerance_seconds: float = DEFAULT_TOLERANCE_SECONDS, seen_path: str | Path | None = None,
                        seen_days: float = DEFAULT_SEEN_DAYS) -> Flask:
    """Build a reference receiver holding `keys` and keeping traces for `retention_seconds`.

    A Standard Webhooks timestamp further than `tolerance_seconds` from now is refused; processed event
    ids are kept `seen_days` in the SQLite file `seen_path` (None: in memory, forgotten at exit).
    """
    install_log_redaction()
    app = Flask(
        __name__,
        template_folder=str(ROOT / "templates"),
        static_folder=str(ROOT / "static"),
        instance_path=str(ROOT / "instance"),
    )
    app.config["MAX_CONTENT_LENGTH"] = MAX_BODY_BYTES
    seen = SeenEvents(seen_path, seen_days * 86400)
    app.extensions[EXTENSION] = ReceiverState(list(keys or []), retention_seconds, tolerance_seconds=tolerance_seconds,
                                              seen=seen)
    app.register_blueprint(bp)
    init_headers(app)
    init_errors(app)
    return app


def receiver_options(console: Flask) -> dict:
    """create_receiver_app's replay settings from the console's QLAR_RECEIVER_* configuration, checked."""
    tolerance = _positive(console.config, "RECEIVER_TOLERANCE_SECONDS", DEFAULT_TOLERANCE_SECONDS)
    days = _positive(console.config, "RECEIVER_DEDUPE_DAYS", DEFAULT_SEEN_DAYS)
    path = console.config.get("RECEIVER_DEDUPE_DB") or Path(console.instance_path) / DEFAULT_SEEN_FILE
    try:
        retries = sum(parse_schedule(console.config.get("RETRY_SCHEDULE") or ""))
    except ValueError:
        retries = 0  # the dispatcher reports a bad schedule itself
    if days * 86400 <= retries:
        log.warning("QLAR_RECEIVER_DEDUPE_DAYS=%g is shorter than the retry schedule (%.1f days): a late retry "
                    "or a replay after that would be processed again", days, retries / 86400)
    return {"tolerance_seconds": tolerance, "seen_path": Path(path), "seen_days": days}


def _positive(config, name: str, default: float) -> float:
    value = config.get(name, default)
    try:
        number = float(value)
    except (TypeError, ValueError):
        number = float("nan")
    if not (0 < number < float("inf")) or isinstance(value, bool):
        raise InvalidReceiverSetting(f"QLAR_{name} must be a positive number, not {value!r}.")
    return number


def receiver_state(app: Flask) -> ReceiverState:
    """The state of a receiver app (keys, traces), e.g. to call set_keys from the console."""
    return app.extensions[EXTENSION]


def init_headers(app: Flask) -> None:
    """A strict CSP and no caching: the pages show request traces."""

    app.after_request(add_security_headers)

    @app.after_request
    def no_store(response):
        response.headers.setdefault("Cache-Control", "no-store")
        return response


def init_errors(app: Flask) -> None:
    """HTTP errors as one clear JSON line; a wrong method says which one to use."""

    @app.errorhandler(MethodNotAllowed)
    def method_not_allowed(error):
        allowed = ", ".join(sorted(m for m in error.valid_methods or [] if m != "OPTIONS"))
        message = f"method {request.method} is not allowed on {request.path}; use {allowed}"
        if request.path == "/webhook":
            message += " with a signed JSON body"
        _log_refusal(405, f"use {allowed}")
        return jsonify(error=message), 405, {"Allow": allowed}

    @app.errorhandler(HTTPException)
    def http_error(error):
        if error.code == 404:
            return jsonify(error=f"nothing at {request.path}; webhooks go to POST /webhook"), 404
        _log_refusal(error.code, error.description)
        return jsonify(error=error.description), error.code

    @app.errorhandler(Exception)
    def unexpected(error):
        log.exception("receiver error on %s %s", request.method, request.path)
        return jsonify(error="internal error in the receiver"), 500


def _log_refusal(status: int, reason: str) -> None:
    """One line per refused request (e.g. a body over the size limit): method, path and why, never the body."""
    log.warning("%s %r refused with %s: %s", request.method[:16], request.path[:80], status, reason)


class _RequestBody(LimitedStream):
    """One request's body on a persistent connection: reads stop at its end, never into the next request."""

    def read(self, size: int = -1) -> bytes:
        if self.is_exhausted:  # werkzeug's drain after the response: the next request is not for it
            return b""
        return super().read(size if size < 0 else min(size, self.limit - self._pos))


class KeepAliveRequestHandler(WSGIRequestHandler):
    """werkzeug's handler with HTTP/1.1 persistent connections, so a sender pays one TLS handshake per connection.

    werkzeug closes every connection because it cannot tell where a request body ends (after the response it
    discards whatever the client sent). Here, an HTTP/1.1 request framed by Content-Length (or without a body)
    reads through a stream that ends with its body, so the connection stays open; responses carry
    Content-Length (or are chunked). Chunked requests, HTTP/1.0 and bodies left unread still close it.
    """

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else the body, written after the headers, waits for the client's delayed ACK
    _keep_alive = False

    def run_wsgi(self) -> None:
        length = self._body_length()
        if length is None:
            return super().run_wsgi()  # werkzeug's default: "Connection: close"
        socket_file, self.rfile = self.rfile, _RequestBody(self.rfile, length)  # wsgi.input and the drain
        self._keep_alive = True
        try:
            super().run_wsgi()
        finally:
            if not self.rfile.is_exhausted:  # where the next request starts is unknown
                self.close_connection = True
            self.rfile, self._keep_alive = socket_file, False

    def _body_length(self) -> int | None:
        """The request body's length when the connection may outlive this request, else None."""
        if self.request_version != "HTTP/1.1" or "Transfer-Encoding" in self.headers:
            return None
        lengths = self.headers.get_all("Content-Length") or ["0"]
        if len(lengths) != 1 or not (lengths[0].isascii() and lengths[0].isdigit()):
            return None
        return int(lengths[0])

    def send_header(self, keyword: str, value: str) -> None:
        # werkzeug sends "Connection: close" with every response: left out unless the client asked to close
        closing = f"{keyword}: {value}".lower() == "connection: close"
        if not (closing and self._keep_alive and not self.close_connection):
            super().send_header(keyword, value)

    _dropped = False

    def make_environ(self) -> dict:
        """werkzeug's environ plus the means to drop this connection (a "reset" fault, faults.drop_connection)."""
        environ = super().make_environ()
        environ[DROP_CONNECTION] = self._drop_connection
        return environ

    def _drop_connection(self) -> None:
        """End the connection at once with no answer; whatever the app then writes goes nowhere."""
        self._dropped = self.close_connection = True
        self.wfile = io.BytesIO()
        abort_socket(self.connection)

    def log_request(self, code: int | str = "-", size: int | str = "-") -> None:
        """werkzeug's access line; a dropped connection says so instead of a status that was never sent."""
        super().log_request("dropped (fault)" if self._dropped else code, size)


def make_receiver_server(app: Flask, host: str, port: int, cert_paths: CertPaths) -> BaseWSGIServer:
    """A threaded HTTPS server for the receiver, with persistent connections (port 0 picks a free one: see
    server.server_port).

    Raises OSError when the address cannot be bound (werkzeug alone would print and exit the process).
    """
    context = ssl_context(cert_paths)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.create_server((host, port), family=family, backlog=128) as listener:
        server = make_server(host, port, app, threaded=True, request_handler=KeepAliveRequestHandler,
                             ssl_context=context, fd=listener.fileno())
    server.server_port = server.port  # HTTPServer sets it only when it binds the socket itself
    return server


def serve_receiver_in_thread(app: Flask, host: str, port: int,
                             cert_paths: CertPaths) -> tuple[BaseWSGIServer, threading.Thread]:
    """Start the receiver in a daemon thread; stop it with server.shutdown() (within 0.1 s) then thread.join()."""
    server = make_receiver_server(app, host, port, cert_paths)
    thread = threading.Thread(target=server.serve_forever, args=(0.1,), name="qlar-receiver", daemon=True)
    thread.start()
    log.info("reference receiver on https://%s:%s/", host, server.server_port)
    return server, thread
