"""The signature debugger on an event's page, in a real browser: the replaced key's signature shown in red."""

from helpers import served

from qlar_console.crypto import secret_box
from qlar_console.engine.models import Event
from qlar_console.escalations.service import create_escalation
from qlar_console.extensions import db
from qlar_console.settings.keys import regenerate_secret
from qlar_console.settings.service import get_settings
from qlar_console.signing import qlar_signature


def test_debugger_in_the_browser_says_the_replaced_key_no_longer_validates(delivery_app, receiver, signed_in):
    """After Regenerate Key with no grace period, a signature made with the replaced key is shown in red."""
    from playwright.sync_api import expect

    receiver.respond = lambda r: (401, {}, 0)
    with delivery_app.app_context():
        old = secret_box().decrypt(get_settings("agent-123", "production").secret_ciphertext)
        regenerate_secret(get_settings("agent-123", "production"), "editor")
        create_escalation("agent-123", "production")
        delivery_app.extensions["qlar_dispatcher"].drain(limit=1)
        event = db.session.scalars(db.select(Event)).one()
        event_id, body = event.id, event.body
    with served(delivery_app) as base_url:
        page = signed_in("viewer", path=f"/deliveries/{event_id}", base_url=base_url)
        page.get_by_label("Signature debugger").first.fill(qlar_signature(old, body))
        page.get_by_role("button", name="Check signature").first.click()
        verdict = page.locator(".verdict")
        expect(verdict).to_contain_text("Matches the previous key, which stopped validating at")
        expect(verdict).not_to_contain_text("this signature is valid")
        expect(verdict).to_have_class("verdict verdict-bad")
