"""Real-browser test (Playwright + Debian Chromium) of the API tokens page: create, Copy, Revoke."""
from helpers import answer_next_dialog, api_token, axe_violations, sideways_overflow, wider_than
from playwright.sync_api import expect

from qlar_console.auth.models import ApiToken
from qlar_console.auth.tokens import hash_token
from qlar_console.clock import utcnow
from qlar_console.extensions import db


def test_create_copy_and_revoke_a_token(signed_in, live_server):
    """Create token shows it once; Copy puts exactly it on the clipboard; Revoke, once confirmed, ends it."""
    base_url, app = live_server
    page = signed_in("admin", path=None)
    page.get_by_role("navigation", name="Main").get_by_role("link", name="API tokens").click()
    expect(page.get_by_role("heading", name="API tokens", exact=True)).to_be_visible()

    page.get_by_label("Name").fill("ci-deploy")
    page.get_by_label("User").select_option("editor")
    page.get_by_role("checkbox", name="read").check()
    page.get_by_role("checkbox", name="write").check()
    page.get_by_label("Expires").select_option("30d")
    page.get_by_role("button", name="Create token").click()

    expect(page.get_by_text("Copy this token now: it will not be shown again.")).to_be_visible()
    token = page.get_by_label("Token", exact=True).input_value()
    assert token.startswith("qlar_tok_")
    page.wait_for_load_state()  # the new page's deferred script runs: Copy works from here on
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_text("Copied", exact=True)).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == token
    with app.app_context():
        stored = db.session.scalar(db.select(ApiToken).filter_by(token_hash=hash_token(token)))
        assert stored.name == "ci-deploy" and stored.state(utcnow()) == "active"

    row = page.get_by_role("row").filter(has_text="ci-deploy")
    expect(row).to_contain_text(token[:13] + "…")
    messages = answer_next_dialog(page)
    row.get_by_role("button", name="Revoke").click()
    expect(page.get_by_text("API token 'ci-deploy' of editor revoked")).to_be_visible()
    assert messages and messages[0].startswith("Revoke the API token ci-deploy of editor?")
    expect(row).to_contain_text("revoked")
    expect(row.get_by_role("button", name="Revoke")).to_have_count(0)
    expect(page.get_by_text("Copy this token now")).to_have_count(0)
    assert token not in page.content()
    with app.app_context():
        assert db.session.get(ApiToken, stored.id).state(utcnow()) == "revoked"


def test_tokens_page_passes_axe_and_fits_small_screens(signed_in, live_server):
    """The Scopes checkboxes are a fieldset (no list items without their list), with and without field errors;
    the tokens table scrolls in its own box at 390 px."""
    base_url, app = live_server
    api_token(app, "editor")
    page = signed_in("admin", path=None)
    page.goto("/tokens")
    expect(page.get_by_role("group", name="Scopes").get_by_role("checkbox")).to_have_count(3)
    assert axe_violations(page) == [] and wider_than(page, 1280) == []

    page.get_by_label("Name").fill("ci")
    page.get_by_role("button", name="Create token").click()  # no scope: the error at the fieldset
    expect(page.get_by_role("group", name="Scopes")).to_have_accessible_description(
        "Choose scopes among: read, write, secrets.")
    assert axe_violations(page) == []
    page.set_viewport_size({"width": 390, "height": 844})
    assert sideways_overflow(page) == 0
