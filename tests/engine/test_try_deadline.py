"""The whole-try deadline: QLAR_TIMEOUT_SECONDS bounds a try from connect to last byte. A raw TLS server on
127.0.0.1 drips its answer (the body, the status line and headers, the TLS handshake) or streams forever; the
try is cut at the timeout, recorded as a timeout (never a success), and its connection is never reused."""
import gc
import socket
import ssl
import threading
import time
from collections import Counter

import pytest
import trustme
from apps import dispose, make_app, point_webhook, postgres_url
from workers import start_worker, stop

from qlar_console.engine.models import Event
from qlar_console.engine.send import Sender
from qlar_console.escalations.service import create_escalation
from qlar_console.extensions import db

FAST = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok"
DRIP_FOR = 20.0  # a dripping answer never lasts longer than this, whatever the client does
HEADERS = {"Content-Type": "application/json", "webhook-id": "msg_probe"}


class DripServer:
    """A raw TLS server on 127.0.0.1: `mode` picks the answer; counts TCP accepts and requests per webhook-id."""

    def __init__(self, tmp_path, mode: str = "fast"):
        ca = trustme.CA()
        self.ca_file = tmp_path / "drip-ca.pem"
        ca.cert_pem.write_to_path(str(self.ca_file))
        self.context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        ca.issue_cert("127.0.0.1").configure_cert(self.context)
        self.mode, self.accepts, self.ids = mode, 0, Counter()
        self.gone_after: list[float] = []  # per dripped connection: seconds from accept until the client left
        self._lock, self._stop = threading.Lock(), threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self.url = f"https://127.0.0.1:{self._listener.getsockname()[1]}/webhook"
        self._threads = [threading.Thread(target=self._accept_loop, daemon=True)]
        self._threads[0].start()

    def _accept_loop(self) -> None:
        while not self._stop.is_set():
            try:
                raw, _ = self._listener.accept()
            except TimeoutError:
                continue
            with self._lock:
                self.accepts += 1
            thread = threading.Thread(target=self._serve, args=(raw,), daemon=True)
            self._threads.append(thread)
            thread.start()

    def _serve(self, raw: socket.socket) -> None:
        accepted, conn = time.monotonic(), raw
        raw.settimeout(DRIP_FOR + 5)
        try:
            if self.mode == "handshake":
                return self._drip_handshake(raw, accepted)
            conn = self.context.wrap_socket(raw, server_side=True)  # raw is detached into conn
            while self._read_request(conn):
                if self.mode in ("fast", "slow"):
                    time.sleep(0.3 if self.mode == "slow" else 0)
                    conn.sendall(FAST)
                    continue  # kept alive for the next request
                if self.mode == "body":  # 200 at once, then a 100,000-byte body one byte every 0.2 s
                    conn.sendall(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
                    self._drip(conn, accepted, [b"x"] * 100_000, 0.2)
                elif self.mode == "headers":  # the status line and headers one byte every 0.3 s
                    self._drip(conn, accepted, [bytes([b]) for b in FAST], 0.3)
                elif self.mode == "stream":  # chunked, 100 bytes every 0.05 s, forever
                    conn.sendall(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
                    self._drip(conn, accepted, iter(lambda: b"64\r\n" + b"y" * 100 + b"\r\n", None), 0.05)
                return
        except OSError:  # the client went away (or the TLS handshake failed): nothing more to serve
            pass
        finally:
            conn.close()

    def _drip(self, conn, accepted: float, pieces, interval: float) -> None:
        """Send piece after piece until done, the client leaves (noted in gone_after), DRIP_FOR, or close()."""
        for piece in pieces:
            if self._stop.is_set() or time.monotonic() - accepted > DRIP_FOR:
                return
            try:
                conn.sendall(piece)
            except OSError:
                self.gone_after.append(time.monotonic() - accepted)
                return
            time.sleep(interval)

    def _drip_handshake(self, raw: socket.socket, accepted: float) -> None:
        """Run the server's side of the TLS handshake, sending its bytes one every 0.05 s."""
        incoming, outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        tls = self.context.wrap_bio(incoming, outgoing, server_side=True)
        while not self._stop.is_set():
            try:
                tls.do_handshake()
                return
            except ssl.SSLWantReadError:
                pass
            flight = outgoing.read()
            self._drip(raw, accepted, [flight[i:i + 1] for i in range(len(flight))], 0.05)
            data = raw.recv(65536)
            if not data:
                return
            incoming.write(data)

    def _read_request(self, conn) -> bool:
        """Read one request (headers and Content-Length body); False when the client closed the connection."""
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            data += chunk
        head, _, body = data.partition(b"\r\n\r\n")
        fields = (line.decode().split(":", 1) for line in head.split(b"\r\n")[1:])
        headers = {name.strip().lower(): value.strip() for name, value in fields}
        length = int(headers.get("content-length", "0"))
        while len(body) < length:
            chunk = conn.recv(65536)
            if not chunk:
                return False
            body += chunk
        with self._lock:
            self.ids[headers.get("webhook-id")] += 1
        return True

    def close(self) -> None:
        """Stop serving and wait for every connection's thread."""
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=5)
        self._listener.close()


@pytest.fixture(autouse=True)
def no_collection_inside_a_timed_try():
    """The cyclic collector waits for the end of each test: a full collection of what the earlier tests of this
    process left (tenths of a second with the GIL held) landing inside a one-second try would be the suite's
    pause, not the sender's."""
    gc.disable()
    yield
    gc.enable()


@pytest.fixture
def drip(tmp_path):
    server = DripServer(tmp_path)
    yield server
    server.close()


def _sender(drip, timeout: float = 1) -> Sender:
    return Sender(timeout=timeout, extra_cas=[str(drip.ca_file)], allow_private=True)


def _timed_post(sender: Sender, url: str):
    started = time.monotonic()
    outcome = sender.post(url, b"{}", HEADERS)
    return outcome, time.monotonic() - started


@pytest.mark.parametrize("mode", ["body", "headers", "stream", "handshake"])
def test_a_dripping_or_endless_answer_is_cut_at_the_timeout(drip, mode, figure):
    drip.mode = mode
    outcome, took = _timed_post(_sender(drip), drip.url)
    figure(f"try_deadline_{mode}_s", f"{took:.2f} (timeout 1s)")
    assert 1.0 <= took < 1.5
    assert outcome.timed_out and not outcome.ok
    assert outcome.error.startswith("Timed out after 1s")
    assert 1000 <= outcome.duration_ms < 1500
    if mode in ("body", "stream"):  # the status line came: kept for the trace, with what was read of the body
        assert outcome.status == 200 and outcome.error.endswith("the answer was cut off.")
        assert 0 < len(outcome.body) < 16 * 1024 and set(outcome.body) == {ord("x" if mode == "body" else "y")}
    else:
        assert outcome.status is None and outcome.error == "Timed out after 1s without a response."


def test_after_a_slow_connect_the_tls_handshake_gets_only_the_time_left(drip, monkeypatch, figure):
    """The handshake's own socket timeout starts after the connect; the watchdog still cuts it at the deadline."""
    from urllib3.util import connection

    real = connection.create_connection

    def slow_connect(*args, **kwargs):
        time.sleep(0.6)  # most of the 1 s goes on the TCP connect
        return real(*args, **kwargs)

    monkeypatch.setattr(connection, "create_connection", slow_connect)
    drip.mode = "handshake"
    outcome, took = _timed_post(_sender(drip), drip.url)
    figure("try_deadline_slow_connect_then_handshake_s", f"{took:.2f} (timeout 1s)")
    assert outcome.timed_out and outcome.error == "Timed out after 1s without a response."
    assert 1.0 <= took < 1.5  # not 0.6 s + the handshake's 1 s socket timeout


def test_a_cut_connection_is_never_reused_and_the_client_leaves_at_once(drip, figure):
    sender = _sender(drip)
    drip.mode = "body"
    assert sender.post(drip.url, b"{}", HEADERS).timed_out
    drip.mode = "fast"
    outcome = sender.post(drip.url, b"{}", HEADERS)
    assert outcome.ok and outcome.body == b"ok" and not outcome.timed_out
    assert drip.accepts == 2  # a new connection: the cut one did not go back to the pool
    deadline = time.monotonic() + 2
    while not drip.gone_after and time.monotonic() < deadline:
        time.sleep(0.02)
    [gone] = drip.gone_after
    figure("try_deadline_server_saw_client_leave_s", f"{gone:.2f} after accept (timeout 1s, a byte every 0.2s)")
    assert gone < 1.7  # the dripping server saw the client leave (its next byte or two failed)


def test_a_fast_answer_reuses_its_connection_and_a_slow_one_within_the_timeout_succeeds(drip):
    sender = _sender(drip)
    first, second = (sender.post(drip.url, b"{}", HEADERS) for _ in range(2))
    assert first.ok and second.ok and (first.status, second.body) == (200, b"ok")
    assert drip.accepts == 1 and drip.ids["msg_probe"] == 2
    drip.mode = "slow"  # 0.3 s, with a 1 s timeout
    outcome, took = _timed_post(sender, drip.url)
    assert outcome.ok and not outcome.timed_out and outcome.error is None and 0.3 <= took < 1
    assert drip.accepts == 1


def test_one_watchdog_thread_per_sender_not_one_per_try(drip):
    def watchdogs():
        return {t for t in threading.enumerate() if t.name == "qlar-deadline"}

    before, sender = watchdogs(), _sender(drip)
    for _ in range(30):
        assert sender.post(drip.url, b"{}", HEADERS).ok
    assert len(watchdogs() - before) == 1


def _drip_app(tmp_path, drip, url: str, **config):
    app = make_app(tmp_path, SQLALCHEMY_DATABASE_URI=url, CA_BUNDLE=str(drip.ca_file), ALLOW_PRIVATE_TARGETS=True,
                   TIMEOUT_SECONDS=1, **config)
    point_webhook(app, drip.url)
    return app


def test_the_dispatcher_records_a_cut_try_as_a_timeout_and_retries_it(tmp_path, drip, database_url, figure):
    drip.mode = "body"
    app = _drip_app(tmp_path, drip, database_url, LEASE_SECONDS=4, RETRY_SCHEDULE="200ms,200ms",
                    SLOWDOWN_SECONDS=0.3)
    try:
        with app.app_context():
            create_escalation("agent-123", "production")
        started = time.monotonic()
        assert app.extensions["qlar_dispatcher"].drain(limit=1) == 1
        took = time.monotonic() - started
        with app.app_context():
            event = db.session.scalars(db.select(Event)).one()
            [attempt] = event.attempts
            assert event.status == "pending" and event.next_attempt_at is not None
            assert attempt.error.startswith("Timed out after 1s") and attempt.response_status == 200
            assert attempt.duration_ms < 1500 and took < 2
            assert attempt.response_body and len(attempt.response_body) < 16 * 1024
        figure(f"try_deadline_drain_{database_url.split(':')[0].split('+')[0]}_s", f"{took:.2f} (timeout 1s)")
    finally:
        dispose(app)


@pytest.mark.parametrize("backend", ["postgresql"])
def test_two_workers_send_each_dripped_event_once_within_the_lease(tmp_path, drip, backend, figure):
    """A 1 s timeout and a 3 s lease: with dripped answers cut at 1 s, no lease runs out, no event goes twice."""
    drip.mode = "body"
    app = _drip_app(tmp_path, drip, postgres_url(), LEASE_SECONDS=3, RETRY_SCHEDULE="1m,1m", SLOWDOWN_SECONDS=600)
    workers = []
    try:
        workers = [start_worker(app, tmp_path / f"worker-{i}.log", threads=2, ENDPOINT_CONCURRENCY=2)
                   for i in range(2)]
        with app.app_context():
            for _ in range(6):
                create_escalation("agent-123", "production")
        time.sleep(6)  # twice the lease: an uncut try (20 s of drip) would have been sent again by now
        with app.app_context():
            events = db.session.scalars(db.select(Event)).all()
            ids = {event.id: [a.error for a in event.attempts] for event in events}
            db.session.commit()
        assert len(ids) == 6 and dict(drip.ids) == {event_id: 1 for event_id in ids}
        assert all(len(errors) == 1 and errors[0].startswith("Timed out after 1s") for errors in ids.values())
        figure("try_deadline_workers", f"6 events, 2 workers: {sum(drip.ids.values())} requests in 6s")
    finally:
        for worker in workers:
            worker.terminate()
            stop(worker)
        dispose(app)
