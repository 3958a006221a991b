"""The docs/verify/ snippets, each run as a real server against real signed deliveries from the dispatcher.

qlar delivers only to https:// URLs, and the snippets speak plain HTTP (TLS ends at the receiver's proxy), so the
dispatcher delivers to the tests' trustme HTTPS receiver (tests/receiver.py), which forwards each request's exact
bytes and headers to the snippet on loopback and answers with the snippet's status: a TLS-terminating proxy.
A runtime that is missing skips its language with one line locally and fails in CI (CI=true), as .ci/run installs it.
"""
import http.client
import json
import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest
from apps import dispose, make_app, point_webhook
from helpers import login, stored_secret

from qlar_console.clock import utcnow
from qlar_console.engine.models import Event
from qlar_console.escalations import service as lifecycle
from qlar_console.extensions import db
from qlar_console.settings.keys import regenerate_secret
from qlar_console.settings.receiver_check import check_receiver
from qlar_console.settings.service import get_settings
from qlar_console.signing import qlar_signature, standard_signature

VERIFY = Path(__file__).resolve().parents[2] / "docs" / "verify"
ENV = ("agent-123", "production")
LANGUAGES = ("python", "node", "go", "ruby", "php", "java")
PROGRAMS = {"node": (["node"], "nodejs"), "go": (["go"], "golang-go"), "ruby": (["ruby"], "ruby"),
            "php": (["php"], "php-cli"), "java": (["java", "javac"], "default-jdk-headless")}
HOP_HEADERS = {"host", "content-length", "connection", "transfer-encoding", "accept-encoding"}
STARTUP_SECONDS = 30


def _require(language: str) -> None:
    """Skip (locally) or fail (CI) when the language's runtime is not installed."""
    programs, package = PROGRAMS.get(language, ([], ""))
    missing = [p for p in programs if shutil.which(p) is None]
    if missing:
        message = f"{language} snippet not run: {', '.join(missing)} missing (apt-get install {package})"
        if os.environ.get("CI"):
            pytest.fail(f"CI=true but {message}; .ci/run installs it.")
        pytest.skip(message)


@pytest.fixture(scope="session")
def commands(tmp_path_factory):
    """argv(port) per language, compiling Go and Java once per session."""
    built: dict = {}
    out = tmp_path_factory.mktemp("verify-build")

    def command(language: str):
        _require(language)
        if language not in built:
            built[language] = _build(language, out)
        return built[language]

    return command


def _build(language: str, out: Path):
    run = lambda argv: subprocess.run(argv, cwd=out, capture_output=True, text=True, timeout=240)  # noqa: E731
    if language == "go":
        result = run(["go", "build", "-o", str(out / "verify-go"), str(VERIFY / "verify.go")])
        assert result.returncode == 0, result.stderr
        return lambda port: [str(out / "verify-go")]
    if language == "java":
        result = run(["javac", "-d", str(out / "java"), str(VERIFY / "Verify.java")])
        assert result.returncode == 0, result.stderr
        return lambda port: ["java", "-XX:TieredStopAtLevel=1", "-cp", str(out / "java"), "Verify"]
    if language == "php":
        return lambda port: ["php", "-S", f"127.0.0.1:{port}", str(VERIFY / "verify.php")]
    program = {"python": sys.executable, "node": "node", "ruby": "ruby"}[language]
    filename = {"python": "verify.py", "node": "verify.js", "ruby": "verify.rb"}[language]
    return lambda port: [program, str(VERIFY / filename)]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Snippet:
    """One snippet process on a loopback port, holding `secret` in QLAR_WEBHOOK_SECRET."""

    def __init__(self, argv, secret: str, workdir: Path):
        self.port = _free_port()
        env = {**os.environ, "QLAR_WEBHOOK_SECRET": secret, "PORT": str(self.port), "HOST": "127.0.0.1",
               "QLAR_SEEN_DIR": str(workdir / f"seen-{self.port}")}
        self.log_path = workdir / f"snippet-{self.port}.log"
        with open(self.log_path, "wb") as log:
            self.process = subprocess.Popen(argv(self.port), env=env, cwd=workdir, stdout=log,
                                            stderr=subprocess.STDOUT)
        deadline = time.monotonic() + STARTUP_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise AssertionError(f"the snippet exited: {self.log_path.read_text(errors='replace')}")
            try:
                socket.create_connection(("127.0.0.1", self.port), timeout=0.5).close()
                return
            except OSError:
                time.sleep(0.05)
        self.close()
        raise AssertionError(f"the snippet did not listen within {STARTUP_SECONDS} s")

    def request(self, method: str, body: bytes = b"", headers: dict | None = None) -> tuple[int, dict]:
        """Send one request straight to the snippet; its status and JSON answer."""
        connection = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            connection.request(method, "/webhook", body=body, headers=headers or {})
            response = connection.getresponse()
            data = response.read()
        finally:
            connection.close()
        try:
            return response.status, json.loads(data) if data else {}
        except ValueError:
            return response.status, {"raw": data.decode(errors="replace")}

    def close(self) -> None:
        self.process.terminate()
        try:
            self.process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=5)


@pytest.fixture
def proxy(receiver, tmp_path):
    """The HTTPS receiver as a TLS-terminating proxy in front of whichever snippet `proxy.start` ran last."""

    class Proxy:
        snippet: Snippet | None = None
        started: list[Snippet] = []

        def start(self, argv, secret: str) -> Snippet:
            if self.snippet:
                self.snippet.close()
            self.snippet = Snippet(argv, secret, tmp_path)
            self.started.append(self.snippet)
            return self.snippet

    proxy = Proxy()

    def forward(received):
        headers = {k: v for k, v in received.headers.items() if k.lower() not in HOP_HEADERS}
        status, _ = proxy.snippet.request(received.method, received.body, headers)
        return status, {}, 0

    receiver.respond = forward
    yield proxy
    for snippet in proxy.started:
        snippet.close()


@pytest.fixture
def verify_app(tmp_path, receiver):
    """An app (SQLite) whose agent-123 · production webhook points at the proxy, with short retries."""
    app = make_app(tmp_path, CA_BUNDLE=str(receiver.ca_file), ALLOW_PRIVATE_TARGETS=True,
                   RETRY_SCHEDULE="200ms,200ms,200ms", TIMEOUT_SECONDS=5, LEASE_SECONDS=10, SLOWDOWN_SECONDS=0.2)
    point_webhook(app, receiver.url)
    yield app
    dispose(app)


@pytest.fixture
def page_app(tmp_path):
    """A console on SQLite for the page tests."""
    app = make_app(tmp_path)
    yield app
    dispose(app)


def _qlar_form(received, body: bytes | None = None, signature: str | None = None) -> tuple[bytes, dict]:
    """The request with X-Qlar-Signature only (no webhook-* headers)."""
    return (received.body if body is None else body,
            {"Content-Type": "application/json",
             "X-Qlar-Signature": received.headers["X-Qlar-Signature"] if signature is None else signature})


def _standard_form(received, body: bytes | None = None, signature: str | None = None) -> tuple[bytes, dict]:
    """The request with the Standard Webhooks headers only."""
    return (received.body if body is None else body,
            {"Content-Type": "application/json", "webhook-id": received.headers["Webhook-Id"],
             "webhook-timestamp": received.headers["Webhook-Timestamp"],
             "webhook-signature": received.headers["Webhook-Signature"] if signature is None else signature})


def _one_byte_changed(body: bytes) -> bytes:
    """The body with one letter of the event type's value in the other case (still valid JSON)."""
    at = body.index(b'"eventType":"') + len(b'"eventType":"')
    return body[:at] + body[at:at + 1].swapcase() + body[at + 1:]


def _statuses(app) -> list[tuple[str, int | None]]:
    with app.app_context():
        events = db.session.scalars(db.select(Event).order_by(Event.id)).all()
        return [(e.status, e.last_status_code) for e in events]


def _drain_until(app, predicate, timeout: float = 8.0) -> None:
    """Drain the dispatcher inline (retries come due after 200 ms) until `predicate()` holds."""
    deadline = time.monotonic() + timeout
    while not predicate():
        assert time.monotonic() < deadline, f"not delivered in time: {_statuses(app)}"
        app.extensions["qlar_dispatcher"].drain()
        time.sleep(0.05)


@pytest.mark.parametrize("language", LANGUAGES)
def test_snippet_against_real_deliveries(language, commands, verify_app, receiver, proxy):
    argv = commands(language)
    old_key = stored_secret(verify_app)
    snippet = proxy.start(argv, old_key)

    # Correct key: the dispatcher's real deliveries (both header forms on each) are accepted with 2xx.
    with verify_app.app_context():
        esc = lifecycle.create_escalation(*ENV).id
        lifecycle.claim(esc, "supervisor-1")
        lifecycle.complete(esc, "Refund issued")
    _drain_until(verify_app, lambda: all(s == "succeeded" for s, _ in _statuses(verify_app)))
    assert [code for _, code in _statuses(verify_app)] == [200, 200, 200]
    delivered = receiver.requests[:3]
    first = delivered[0]

    for form in (_qlar_form, _standard_form):
        status, answer = snippet.request("POST", *form(first))
        assert (status, answer.get("status")) == (200, "duplicate"), form.__name__  # processed once per eventId
        for body in (_one_byte_changed(first.body), json.dumps(json.loads(first.body), indent=2).encode()):
            assert snippet.request("POST", *form(first, body=body))[0] == 401, (form.__name__, body[:40])
        assert snippet.request("POST", first.body, {"Content-Type": "application/json"})[0] == 401
    # Grace period: any one of several values may match.
    other, qlar = "sha256=" + "0" * 64, first.headers["X-Qlar-Signature"]
    assert snippet.request("POST", *_qlar_form(first, signature=f"{other},{qlar}"))[0] == 200
    standard = first.headers["Webhook-Signature"]
    assert snippet.request("POST", *_standard_form(first, signature=f"v1,{'A' * 43}= {standard}"))[0] == 200
    assert [snippet.request(method)[0] for method in ("GET", "PUT")] == [405, 405]

    # The Standard Webhooks timestamp window: signed correctly, but an hour off either way.
    for offset in (-3600, 3600):
        stamp = int(time.time()) + offset
        headers = {"webhook-id": "msg_stale", "webhook-timestamp": str(stamp),
                   "webhook-signature": standard_signature(old_key, "msg_stale", stamp, first.body)}
        assert snippet.request("POST", first.body, headers)[0] == 401

    # An event type the snippet does not know is skipped with 2xx, after verification.
    unknown = json.dumps({"eventId": "evt_unknown_type", "eventType": "escalation.merged", "agentId": "agent-123",
                          "timestamp": utcnow().strftime("%Y-%m-%dT%H:%M:%SZ"), "escalation": {"id": "esc-x"}}).encode()
    status, answer = snippet.request("POST", unknown, {"X-Qlar-Signature": qlar_signature(old_key, unknown)})
    assert (status, answer.get("status")) == (200, "skipped")

    # Regenerate Key: the next delivery is refused by the snippet still holding the old key, then accepted once
    # it is restarted with the new key; a delivery signed with the old key is now refused.
    with verify_app.app_context():
        regenerate_secret(get_settings(*ENV), "editor")
        lifecycle.create_escalation(*ENV)
        verify_app.extensions["qlar_dispatcher"].drain(limit=1)
    assert _statuses(verify_app)[-1] == ("pending", 401)
    new_key = stored_secret(verify_app)
    snippet = proxy.start(argv, new_key)
    _drain_until(verify_app, lambda: _statuses(verify_app)[-1][0] == "succeeded")
    assert _statuses(verify_app)[-1] == ("succeeded", 200)
    for form in (_qlar_form, _standard_form):
        assert snippet.request("POST", *form(first))[0] == 401, form.__name__

    # The console's receiver check probes the same policy: every rule passes, the timestamp window included.
    with verify_app.app_context():
        check = check_receiver(get_settings(*ENV), "test")
        failed = [(r["number"], r["got"]) for r in check.results if not r["passed"] and r["number"] != 10]
    assert failed == [] and check.passed


def test_python_snippet_mirrors_the_reference_receiver():
    """The Python snippet names the receiver function it mirrors and uses the same window and comparisons."""
    from qlar_console.receiver.webhook import DEFAULT_TOLERANCE_SECONDS

    text = (VERIFY / "verify.py").read_text()
    assert "qlar_console/receiver/webhook.py" in text and "signature_refusal" in text
    assert f"TOLERANCE_SECONDS = {DEFAULT_TOLERANCE_SECONDS:g}" in text and "hmac.compare_digest" in text


def test_every_snippet_reads_the_key_from_the_environment():
    from qlar_console.settings.verify import SNIPPETS

    assert [s.slug for s in SNIPPETS] == list(LANGUAGES)
    for path in (VERIFY / s.filename for s in SNIPPETS):
        text = path.read_text()
        assert "QLAR_WEBHOOK_SECRET" in text and "whsec_" in text, path.name
        assert "405" in text or "MethodNotAllowed" in text, path.name


@pytest.mark.parametrize("language, filename", [("python", "verify.py"), ("node", "verify.js"), ("go", "verify.go"),
                                                ("ruby", "verify.rb"), ("php", "verify.php"), ("java", "Verify.java")])
def test_snippet_page_shows_the_file(page_app, language, filename):
    app = page_app
    client = app.test_client()
    assert client.get(f"/verify/{language}").status_code == 302  # login first
    login(client, "viewer")
    html = client.get(f"/verify/{language}").get_data(as_text=True)
    code = (VERIFY / filename).read_text()
    first_line = code.splitlines()[1 if language == "php" else 0]
    assert 'data-copy="snippet-code"' in html and 'id="snippet-code"' in html
    assert first_line.replace('"', "&#34;").replace("'", "&#39;") in html or first_line in html
    download = client.get(f"/verify/{language}/file")
    assert download.status_code == 200 and download.data == code.encode()
    assert client.get("/verify/cobol").status_code == 404


def test_escalation_card_links_each_language_without_the_code(page_app):
    client = page_app.test_client()
    login(client, "editor")
    html = client.get("/agents/agent-123/production/escalation").get_data(as_text=True)
    assert "Verify in your receiver" in html
    for language in LANGUAGES:
        assert f'href="/verify/{language}"' in html
    assert "QLAR_WEBHOOK_SECRET" not in html  # links only: the page carries no snippet
