"""A real HTTPS receiver on loopback for the tests, with a trustme CA; scripted answers, recorded requests."""
import json
import ssl
import threading
import time
from dataclasses import dataclass, field

import trustme
from werkzeug.serving import make_server
from werkzeug.wrappers import Request, Response


@dataclass
class Received:
    """One request as the receiver saw it: raw body bytes and headers."""

    method: str
    path: str
    headers: dict
    body: bytes
    at: float = field(default_factory=time.monotonic)

    @property
    def json(self) -> dict:
        return json.loads(self.body)


class Receiver:
    """Records every request; `respond(received) -> (status, headers, delay_seconds)` decides the answer."""

    def __init__(self, tmp_path, *, port: int = 0, ca: trustme.CA | None = None):
        self.ca = ca or trustme.CA()
        self.ca_file = tmp_path / "test-ca.pem"
        self.ca.cert_pem.write_to_path(str(self.ca_file))
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        self.ca.issue_cert("127.0.0.1", "localhost", "::1").configure_cert(context)
        self.requests: list[Received] = []
        self.respond = lambda received: (200, {}, 0)
        self._cond = threading.Condition()
        self.server = make_server("127.0.0.1", port, self._app, threaded=True, ssl_context=context)
        self.url = f"https://127.0.0.1:{self.server.server_port}/webhook"
        self._thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self._thread.start()

    @Request.application
    def _app(self, request: Request) -> Response:
        received = Received(request.method, request.path, dict(request.headers), request.get_data())
        with self._cond:
            self.requests.append(received)
            self._cond.notify_all()
        status, headers, delay = self.respond(received)
        if delay:
            time.sleep(delay)
        return Response(f"status {status}", status=status, headers=headers)

    def wait_for(self, count: int, timeout: float = 10.0) -> list[Received]:
        """Block until `count` requests arrived (or fail after timeout)."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while len(self.requests) < count:
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"expected {count} requests, got {len(self.requests)}")
                self._cond.wait(left)
            return list(self.requests)

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()  # free the port (a test may bring the receiver back on it)
        self._thread.join(timeout=5)
