"""Small helpers shared by the tests (imported explicitly, never star-imported)."""
import os
import re
import threading
from contextlib import contextmanager
from pathlib import Path

PAGE = "/agents/agent-123/production/escalation"


def page_version(html: str) -> int:
    """The optimistic-locking version the Escalation page's form carries."""
    return int(re.search(r'name="version" value="(\d+)"', html).group(1))


def save_form(version: int, url: str = "https://example.com/hooks/qlar", enabled: bool = True, **extra) -> dict:
    """The fields a browser posts when Save is pressed."""
    data = {"webhook_url": url, "version": str(version), "default_urgency": "high",
            "claim_timeout_minutes": "30", "trigger_conditions": "Angry Customer Escalation"}
    if enabled:
        data["webhook_enabled"] = "y"
    data.update(extra)
    return data


@contextmanager
def served(app):
    """A WSGI app (the console, the reference receiver) over real HTTP on a free loopback port, in a thread;
    yields its base URL."""
    from werkzeug.serving import make_server

    with _serving(make_server("127.0.0.1", 0, app, threaded=True)) as server:
        yield f"http://127.0.0.1:{server.server_port}"


@contextmanager
def served_receiver(receiver_app, certs):
    """The reference receiver over real HTTPS (its local CA) on a free loopback port, in a thread; yields the server."""
    from qlar_console.receiver.app import make_receiver_server

    with _serving(make_receiver_server(receiver_app, "127.0.0.1", 0, certs)) as server:
        yield server


@contextmanager
def _serving(server):
    """Serve in a daemon thread until the block ends, then stop, free the port and join the thread. The thread
    checks for shutdown every 50 ms, so stopping it costs no test half a second."""
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield server
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


def login(client, username: str = "editor") -> None:
    """Log a test client in as one of the fixture users (fails loudly if the login is refused)."""
    from apps import PASSWORD

    response = client.post("/login", data={"username": username, "password": PASSWORD})
    assert response.status_code == 302, f"login as {username} refused"


def stored_secret(app, environment: str = "production") -> str:
    """The webhook key of agent-123 in `environment`, as the app decrypts it from the database."""
    from qlar_console.crypto import secret_box
    from qlar_console.settings.service import get_settings

    with app.app_context():
        return secret_box().decrypt(get_settings("agent-123", environment).secret_ciphertext)


def api_token(app, username: str = "editor", *scopes: str, expires_in_days: int | None = None) -> dict:
    """Headers carrying a new API token of `username` (scopes default to read and write)."""
    from qlar_console.auth.tokens import create_token

    with app.app_context():
        _, plaintext = create_token(f"test-{username}", username, list(scopes or ("read", "write")),
                                    actor="test", expires_in_days=expires_in_days)
    return {"Authorization": f"Bearer {plaintext}"}


def assert_problem(response, status: int, slug: str) -> dict:
    """The response is an RFC 9457 problem of that status and type (urn:qlar:problem:<slug>); returns its body."""
    assert response.status_code == status, response.data
    assert response.mimetype == "application/problem+json"
    body = response.json
    assert body["status"] == status and body["type"] == f"urn:qlar:problem:{slug}" and body["title"]
    return body


def sign_in(page, username: str = "editor") -> None:
    """Log a Playwright page in through the login form as one of the fixture users."""
    from apps import PASSWORD

    page.goto("/login")
    page.get_by_label("Username").fill(username)
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_role("button", name="Log in").click()


def leaving_asks(page) -> list[str]:
    """Follow the agent switcher's staging link, dismissing what the page asks: the dialogs' types (["beforeunload"]
    when an unsaved edit holds the page)."""
    asked = []

    def stay(dialog):
        asked.append(dialog.type)
        dialog.dismiss()

    page.once("dialog", stay)
    page.get_by_role("navigation", name="Agent and environment").get_by_role("link", name="staging").click()
    for _ in range(50):
        if asked:
            break
        page.wait_for_timeout(100)
    return asked


def answer_next_dialog(page, accept: bool = True) -> list[str]:
    """Accept (or dismiss) the page's next JS dialog; the returned list receives its message."""
    messages = []

    def answer(dialog):
        messages.append(dialog.message)
        dialog.accept() if accept else dialog.dismiss()

    page.once("dialog", answer)
    return messages


AXE = Path(__file__).parent / "vendor" / "axe.min.js"  # axe-core 4.14.1 (MPL-2.0), vendored: no network in tests


def axe_violations(page) -> list[str]:
    """Run axe-core in the page; each violation as "rule-id: help (n nodes) e.g. <selector>". axe still runs
    every rule; only the violations are gathered and only their summaries leave the page (the full result,
    passes included, is megabytes to build and carry over DevTools)."""
    if not page.evaluate("typeof window.axe !== 'undefined'"):
        page.evaluate(AXE.read_text() + "\n;true")  # through DevTools, so the page's strict CSP stays on
    return page.evaluate("""async () => (await axe.run(document, { resultTypes: ["violations"] })).violations.map(
      (v) => `${v.id}: ${v.help} (${v.nodes.length} nodes) e.g. ${JSON.stringify(v.nodes[0].target)}`)""")


def sideways_overflow(page) -> int:
    """How many CSS pixels the page scrolls sideways (0 when it fits the viewport)."""
    return page.evaluate("document.documentElement.scrollWidth - document.documentElement.clientWidth")


def wider_than(page, width: int) -> list[str]:
    """Visible elements whose right edge lies beyond `width` px (outside boxes that scroll on their own)."""
    return page.evaluate("""(width) => {
      const out = [];
      for (const el of document.querySelectorAll('body *')) {
        const box = el.getBoundingClientRect();
        if (!box.width || box.right <= width + 1) continue;
        if (el.closest('.table-scroll, pre')) continue;
        out.push(el.tagName.toLowerCase() + (el.id ? '#' + el.id : '') + (el.className ? '.' + el.className : ''));
      }
      return out.slice(0, 10);
    }""", width)


def keep_screenshot(target, name: str) -> None:
    """With QLAR_SCREENSHOTS=DIR, save a PNG of a page (full length) or a locator as DIR/name.png; else nothing."""
    folder = os.environ.get("QLAR_SCREENSHOTS")
    if not folder:
        return
    Path(folder).mkdir(parents=True, exist_ok=True)
    path = str(Path(folder) / f"{name}.png")
    if hasattr(target, "goto"):  # a Page
        target.screenshot(path=path, full_page=True)
    else:
        target.screenshot(path=path)
