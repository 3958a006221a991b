"""The QA flow of the seed's steps 5 and 10, end to end in Chromium.

Console (with its dispatcher) and the reference receiver run for real on loopback, the receiver's
certificate from the local CA the console trusts on its own. Run test flow shows three valid events at
the receiver, in order; Regenerate Key makes the next ones 401 (visible in Deliveries); pasting the
new key into the receiver lets the retries through.
"""
import time

import pytest
from apps import dispose, make_app, point_webhook
from helpers import served, served_receiver
from playwright.sync_api import Page, expect

from qlar_console.receiver.app import create_receiver_app, receiver_state
from qlar_console.receiver.certs import ensure_local_ca
from qlar_console.settings.keys import signing_secrets
from qlar_console.settings.service import get_settings


@pytest.fixture
def stack(tmp_path):
    """(console_url, receiver_url): the console + dispatcher and the reference receiver, like `make run`."""
    certs = ensure_local_ca(tmp_path)  # before the app: the dispatcher trusts instance/ca/ca.pem by itself
    app = make_app(tmp_path, WTF_CSRF_ENABLED=True, ALLOW_PRIVATE_TARGETS=True, RETRY_SCHEDULE=",".join(["1s"] * 8),
                   TIMEOUT_SECONDS=3, LEASE_SECONDS=5)
    receiver_app = create_receiver_app([])
    with served_receiver(receiver_app, certs) as receiver:
        receiver_url = f"https://127.0.0.1:{receiver.server_port}"
        with app.app_context():
            point_webhook(app, f"{receiver_url}/webhook", "staging")
            receiver_state(receiver_app).set_keys(signing_secrets(get_settings("agent-123", "staging")))
        with served(app) as console:
            app.extensions["qlar_dispatcher"].start()
            yield console, receiver_url
        dispose(app)


def _wait_for_text(page: Page, url: str, text: str, count: int, timeout: float = 15) -> None:
    """Reload url until `text` appears `count` times (the receiver's page is static)."""
    deadline = time.monotonic() + timeout
    while True:
        page.goto(url)
        found = page.get_by_text(text, exact=True).count()
        if found >= count or time.monotonic() > deadline:
            assert found >= count, f"{text!r}: {found} of {count} at {url}"
            return
        time.sleep(0.3)


def _event_types(page: Page, verdict: str) -> list[str]:
    """Event types of the receiver rows with this verdict, oldest first."""
    rows = page.locator("tbody tr").filter(has=page.get_by_text(verdict, exact=True))
    return [row.locator("td").nth(1).inner_text() for row in rows.all()][::-1]


def test_qa_flow_run_regenerate_and_rotate_receiver_key(signed_in, stack):
    console, receiver = stack
    page = signed_in("editor", path=None, base_url=console, ignore_https_errors=True)

    # Step 10: Run test flow -> created, claimed, completed arrive, each with a valid signature, in order.
    page.goto("/escalations?agent=agent-123&env=staging")
    page.get_by_role("button", name="Run test flow").click()
    expect(page.get_by_text("Test flow ran:")).to_be_visible()
    _wait_for_text(page, f"{receiver}/", "signature valid", 3)
    assert _event_types(page, "signature valid") == ["created", "claimed", "completed"]

    # Step 5: Regenerate Key without telling the receiver -> the next events are rejected with 401.
    page.goto("/agents/agent-123/staging/escalation")
    page.get_by_role("button", name="Regenerate Key").click()
    page.get_by_role("dialog").get_by_role("button", name="Regenerate Key").click()
    expect(page.get_by_text("Secret key regenerated.", exact=False)).to_be_visible()
    page.goto("/escalations?agent=agent-123&env=staging")
    page.get_by_role("button", name="Run test flow").click()
    _wait_for_text(page, f"{receiver}/", "rejected (401): signature mismatch", 2)
    page.goto("/deliveries?status=pending")
    expect(page.get_by_role("cell", name="401").first).to_be_visible()

    # Paste the new key into the receiver: the retries now go through, in order.
    page.goto("/agents/agent-123/staging/escalation")
    page.get_by_role("button", name="Copy").click()
    expect(page.get_by_text("Copied")).to_be_visible()
    new_key = page.evaluate("navigator.clipboard.readText()")
    page.goto(f"{receiver}/")
    page.get_by_label("Secret Key").fill(new_key)
    page.get_by_role("button", name="Set key").click()
    _wait_for_text(page, f"{receiver}/", "signature valid", 6)
    assert _event_types(page, "signature valid") == ["created", "claimed", "completed"] * 2
    assert new_key not in page.content()


def test_check_receiver_from_the_card(signed_in, stack):
    """An editor presses Check receiver and reads the scorecard: the reference receiver passes every rule."""
    console, _ = stack
    page = signed_in("editor", path=None, base_url=console)
    page.goto("/agents/agent-123/staging/escalation")
    url = page.get_by_label("Webhook URL", exact=True)
    saved = url.input_value()
    url.fill(saved + "-unsaved")  # an edit the check must not throw away
    page.get_by_role("button", name="Check receiver").click()
    expect(page.get_by_text("Receiver check: every required rule passed.")).to_be_visible()
    expect(url).to_have_value(saved + "-unsaved")
    stale = page.get_by_text("Out of date: this scorecard is for")
    expect(stale).to_be_visible()  # it checked the saved URL, not the one in the form
    url.fill(saved)
    expect(stale).to_be_hidden()
    scorecard = page.get_by_role("table", name="Scorecard for")
    expect(scorecard.get_by_role("row")).to_have_count(11)  # header + rules 1-8, 10, 11 (no previous key: no 9)
    expect(scorecard.get_by_role("cell", name="Fail", exact=True)).to_have_count(0)
