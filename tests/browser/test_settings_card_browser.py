"""Real-browser tests (Playwright + Debian Chromium) of the Escalation page's Webhook Notifications card."""

import re

import pytest
from helpers import PAGE, leaving_asks, stored_secret
from playwright.sync_api import Page, expect

HOOK_URL = "https://example.com/hooks/qlar"


def open_escalation(signed_in, username: str = "editor") -> Page:
    """agent-123 · production's Escalation page, signed in as `username`."""
    page = signed_in(username)
    expect(page.get_by_role("heading", name="Escalation", exact=True)).to_be_visible()
    return page


@pytest.fixture
def page(signed_in) -> Page:
    return open_escalation(signed_in)


def card(page: Page):
    return page.get_by_role("region", name="Webhook Notifications")


def switch(page: Page):
    return page.get_by_role("switch", name="Webhook")


def url_field(page: Page):
    return page.get_by_label("Webhook URL", exact=True)


def save(page: Page) -> None:
    page.get_by_role("button", name="Save", exact=True).click()


def save_enabled_webhook(page: Page, url: str = HOOK_URL) -> None:
    """Switch the webhook on, type `url` and Save successfully."""
    switch(page).check()
    url_field(page).fill(url)
    save(page)
    expect(page.get_by_text("Escalation settings saved")).to_be_visible()
    page.wait_for_load_state()  # the saved page's script (deferred) runs: its buttons work from here on


def copy_key(page: Page) -> str:
    """Press Copy, wait for "Copied", and return what landed on the clipboard."""
    page.wait_for_load_state()  # a click before the page's deferred script runs would do nothing
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(card(page).get_by_text("Copied", exact=True)).to_be_visible()
    return page.evaluate("navigator.clipboard.readText()")


def test_switch_shows_and_hides_webhook_fields(page):
    """The Webhook switch reveals the URL and Secret Key fields and says Enabled; off hides them, Disabled."""
    expect(card(page).get_by_text("Disabled", exact=True)).to_be_visible()
    expect(switch(page)).not_to_be_checked()
    expect(url_field(page)).to_be_attached()
    expect(url_field(page)).to_be_hidden()
    expect(page.get_by_label("Secret Key")).to_be_attached()
    expect(page.get_by_label("Secret Key")).to_be_hidden()

    switch(page).click()
    expect(switch(page)).to_be_checked()
    expect(url_field(page)).to_be_visible()
    expect(page.get_by_label("Secret Key")).to_be_visible()
    expect(card(page).get_by_text("Enabled", exact=True)).to_be_visible()

    switch(page).click()
    expect(switch(page)).not_to_be_checked()
    expect(url_field(page)).to_be_hidden()
    expect(page.get_by_label("Secret Key")).to_be_hidden()
    expect(card(page).get_by_text("Disabled", exact=True)).to_be_visible()


def test_switch_text_and_fields_match_state_after_back(page):
    """After Back to the page, the switch's Enabled/Disabled text and the fields match its restored state."""
    switch(page).click()
    page.get_by_role("link", name="Audit log").click()
    expect(page).to_have_url(re.compile(r"/audit"))
    page.go_back()
    expect(page).to_have_url(re.compile(re.escape(PAGE) + "$"))
    expect(url_field(page)).to_be_attached()
    if switch(page).is_checked():
        expect(card(page).get_by_text("Enabled", exact=True)).to_be_visible(timeout=1000)
        expect(url_field(page)).to_be_visible(timeout=1000)
    else:
        expect(card(page).get_by_text("Disabled", exact=True)).to_be_visible(timeout=1000)
        expect(url_field(page)).to_be_hidden(timeout=1000)


def test_http_url_error_shown_next_to_field_and_input_kept(page):
    """Saving an http:// URL shows "must start with https://" at the field and keeps what the user typed."""
    switch(page).click()
    url_field(page).fill("http://example.com/hook")
    save(page)

    expect(card(page).get_by_text("must start with https://")).to_be_visible()
    expect(url_field(page)).to_have_accessible_description(re.compile("must start with https://"))
    expect(url_field(page)).to_have_value("http://example.com/hook")
    expect(switch(page)).to_be_checked()
    expect(page.get_by_text("Escalation settings saved")).to_have_count(0)


def test_after_a_refused_save_the_field_has_the_focus_and_a_fix_clears_the_error(page):
    """The refused field gets the focus (not the page body); typing a valid URL clears the server's message."""
    switch(page).click()
    url_field(page).fill("http://example.com/hook")
    save(page)
    expect(card(page).get_by_text("must start with https://")).to_be_visible()
    expect(url_field(page)).to_be_focused()
    page.keyboard.press("Control+A")
    page.keyboard.type(HOOK_URL)
    expect(card(page).get_by_text("must start with https://")).to_have_count(0)
    expect(url_field(page)).not_to_have_attribute("aria-invalid", "true")
    save(page)
    expect(page.get_by_text("Escalation settings saved")).to_be_visible()


def test_save_shows_message_and_persists_after_reload(page):
    """A valid Save says "Escalation settings saved" and the switch and URL survive a reload."""
    save_enabled_webhook(page)

    page.reload()
    expect(switch(page)).to_be_checked()
    expect(card(page).get_by_text("Enabled", exact=True)).to_be_visible()
    expect(url_field(page)).to_be_visible()
    expect(url_field(page)).to_have_value(HOOK_URL)


def test_copy_puts_key_on_clipboard_not_in_page(page, live_server):
    """Copy shows "Copied" and puts the stored whsec_ key on the clipboard; the page shows only a mask."""
    _, app = live_server
    save_enabled_webhook(page)

    key = copy_key(page)
    assert key.startswith("whsec_")
    assert key not in page.content()
    expect(page.get_by_label("Secret Key")).not_to_have_value(key)
    assert key == stored_secret(app)


def regenerate(page: Page, grace: str | None = None, confirm: bool = True) -> None:
    """Press Regenerate Key, choose the grace period in the confirmation dialog, confirm (or cancel)."""
    page.get_by_role("button", name="Regenerate Key").click()
    dialog = page.get_by_role("dialog", name="Confirm Regenerate Key")
    expect(dialog).to_be_visible()
    if grace:
        dialog.get_by_label("Keep the previous key valid for").select_option(label=grace)
    dialog.get_by_role("button", name="Regenerate Key" if confirm else "Cancel").click()
    expect(dialog).to_be_hidden()


def test_regenerate_after_confirming_gives_new_key(page, live_server):
    """Regenerate Key, once confirmed in its dialog, replaces the key Copy hands out."""
    _, app = live_server
    save_enabled_webhook(page)
    key_a = copy_key(page)

    regenerate(page)
    expect(page.get_by_text("Secret key regenerated")).to_be_visible()

    key_b = copy_key(page)
    assert key_b.startswith("whsec_")
    assert key_b != key_a
    assert key_b == stored_secret(app)


def test_regenerate_cancelled_keeps_key(page, live_server):
    """Cancelling the Regenerate Key dialog leaves the page and the key unchanged."""
    _, app = live_server
    save_enabled_webhook(page)
    key_a = copy_key(page)

    regenerate(page, confirm=False)
    expect(page.get_by_text("Secret key regenerated")).to_have_count(0)
    assert page.url.endswith(PAGE)
    assert copy_key(page) == key_a
    assert stored_secret(app) == key_a


def test_regenerate_keeps_unsaved_url_and_switch(page, live_server):
    """The guide's order, URL -> Copy -> Regenerate -> Save: Regenerate keeps the unsaved switch and URL."""
    _, app = live_server
    switch(page).check()
    url_field(page).fill(HOOK_URL)
    key_a = copy_key(page)  # Copy creates the key; the field stops promising to create it
    expect(page.get_by_label("Secret Key")).not_to_have_value("Created when you save or copy")
    expect(card(page).get_by_text("Copied", exact=True)).to_have_count(0, timeout=5000)  # "Copied" clears

    regenerate(page)
    expect(page.get_by_text("Secret key regenerated")).to_be_visible()
    expect(switch(page)).to_be_checked()
    expect(page.locator("#webhook-state")).to_have_text("Enabled")
    expect(url_field(page)).to_have_value(HOOK_URL)
    key_b = copy_key(page)
    assert key_b != key_a

    save(page)
    expect(page.get_by_text("Escalation settings saved")).to_be_visible()
    expect(switch(page)).to_be_checked()
    expect(url_field(page)).to_have_value(HOOK_URL)
    assert stored_secret(app) == key_b


def test_leaving_with_unsaved_edits_warns(page):
    """With an unsaved edit, the agent switcher (or any link) asks before leaving; staying keeps the edit."""
    switch(page).check()
    url_field(page).fill("https://example.com/unsaved")
    assert leaving_asks(page) == ["beforeunload"]
    assert page.url.endswith(PAGE)
    expect(url_field(page)).to_have_value("https://example.com/unsaved")

    save(page)  # Save itself never asks, nor does leaving once saved
    expect(page.get_by_text("Escalation settings saved")).to_be_visible()
    asked = []
    page.on("dialog", lambda dialog: (asked.append(dialog.type), dialog.dismiss()))
    page.get_by_role("navigation", name="Agent and environment").get_by_role("link", name="staging").click()
    page.wait_for_url("**/staging/escalation")
    assert asked == []


def test_https_rule_checked_as_you_type(page):
    """The https error appears while typing an http:// URL and clears once the URL is corrected."""
    switch(page).check()
    url_field(page).fill("http://example.com/hook")
    error = page.locator("#webhook-url-error")
    expect(error).to_have_text("Webhook URL must start with https://")
    expect(url_field(page)).to_have_attribute("aria-invalid", "true")
    url_field(page).fill(HOOK_URL)
    expect(error).to_be_hidden()
    expect(url_field(page)).not_to_have_attribute("aria-invalid", "true")


def test_regenerate_with_grace_then_revoke_previous(page):
    """With a 1 hour grace the page counts down the old key's validity; Revoke previous key now ends it."""
    save_enabled_webhook(page)
    url_field(page).fill("https://example.com/unsaved-edit")

    regenerate(page, grace="1 hour")
    expect(page.get_by_text("Secret key regenerated")).to_be_visible()

    grace = card(page).get_by_role("note").filter(has_text="Previous key still valid until")
    expect(grace).to_be_visible()
    expect(grace.locator(".countdown")).to_have_text(re.compile(r"^(1h 0m 00s|59m \d\ds) left$"))
    revoke = page.get_by_role("button", name="Revoke previous key now")
    expect(revoke).to_be_visible()

    page.once("dialog", lambda dialog: dialog.accept())
    revoke.click()
    expect(page.get_by_text("Previous key revoked")).to_be_visible()
    expect(page.get_by_text("Previous key still valid until")).to_have_count(0)
    expect(page.get_by_role("button", name="Revoke previous key now")).to_have_count(0)
    expect(url_field(page)).to_have_value("https://example.com/unsaved-edit")  # revoked in place, edit kept


def test_viewer_sees_no_webhook_card(signed_in):
    """A viewer gets no Webhook Notifications card, only a line saying the role cannot change it."""
    page = open_escalation(signed_in, "viewer")
    expect(page.get_by_role("heading", name="Webhook Notifications")).to_have_count(0)
    expect(page.get_by_label("Webhook", exact=True)).to_have_count(0)
    expect(url_field(page)).to_have_count(0)
    expect(page.get_by_label("Secret Key")).to_have_count(0)
    expect(page.get_by_role("button", name="Save", exact=True)).to_have_count(0)
    expect(page.get_by_text(re.compile(r"role \(viewer\) cannot change webhook settings"))).to_be_visible()


def test_second_editor_is_told_who_saved_first_and_keeps_input(signed_in):
    """When two editors save over each other, the later one is told who saved first and keeps the typed URL."""
    first, second = open_escalation(signed_in, "editor"), open_escalation(signed_in, "editor2")

    save_enabled_webhook(first, "https://example.com/hooks/first")

    switch(second).check()
    url_field(second).fill("https://example.com/hooks/second")
    save(second)
    conflict = second.get_by_role("alert")
    expect(conflict).to_contain_text(re.compile(r"^\s*editor saved these settings"))
    expect(second.get_by_text("Escalation settings saved")).to_have_count(0)
    expect(switch(second)).to_be_checked()
    expect(url_field(second)).to_have_value("https://example.com/hooks/second")
