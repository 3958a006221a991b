"""Real-browser test (Playwright + Debian Chromium) of the account page: set up two-factor authentication by
the typed key (the QR code shown beside it), save the recovery codes, then log in with the password and a code."""
from datetime import UTC, datetime, timedelta

import pyotp
from helpers import axe_violations, sideways_overflow, sign_in
from playwright.sync_api import expect


def check_page(page) -> None:
    """No axe violation, light and dark, and no sideways scroll at 390 px."""
    for scheme in ("light", "dark"):
        page.emulate_media(color_scheme=scheme)
        assert axe_violations(page) == [], scheme
    page.set_viewport_size({"width": 390, "height": 844})
    assert sideways_overflow(page) == 0
    page.set_viewport_size({"width": 1280, "height": 800})


def test_enrol_then_log_in_with_a_code(signed_in):
    page = signed_in("admin", path=None)
    page.get_by_role("link", name="admin", exact=True).click()  # the top bar's username
    expect(page.get_by_role("heading", name="Your account")).to_be_visible()
    check_page(page)

    page.get_by_role("link", name="Set up two-factor authentication").click()
    qr = page.get_by_role("img", name="QR code that adds qlar console to an authenticator app")
    expect(qr).to_be_visible()
    assert qr.evaluate("img => img.complete && img.naturalWidth > 0")  # the data: image passes the CSP
    check_page(page)
    secret = page.locator("#totp-key").inner_text().replace(" ", "")
    totp = pyotp.TOTP(secret)

    page.get_by_label("Code from the app").fill("000000" if totp.now() != "000000" else "111111")
    page.get_by_role("button", name="Turn on").click()
    field = page.get_by_label("Code from the app")
    expect(field).to_have_accessible_description(
        "That code is not right: enter the 6-digit code your app shows now.")
    check_page(page)

    field.fill(totp.now())
    page.get_by_role("button", name="Turn on").click()
    expect(page.get_by_text("Save these codes now: they will not be shown again.")).to_be_visible()
    codes = page.get_by_role("list", name="Recovery codes").get_by_role("listitem")
    expect(codes).to_have_count(10)
    check_page(page)

    page.get_by_role("link", name="I have saved them: back to your account").click()
    expect(page.get_by_text("On", exact=True)).to_be_visible()
    assert secret not in page.content()
    page.get_by_role("button", name="Log out").click()

    sign_in(page, "admin")
    expect(page.get_by_role("heading", name="Authentication code")).to_be_visible()
    check_page(page)
    page.get_by_label("Authentication code").fill(totp.at(datetime.now(UTC) + timedelta(seconds=30)))
    page.get_by_role("button", name="Verify").click()
    expect(page.get_by_role("button", name="Log out")).to_be_visible()


def test_sign_out_everywhere_asks_first_then_ends_the_session(signed_in):
    page = signed_in("editor", path="/account")
    page.once("dialog", lambda dialog: dialog.accept())
    page.get_by_role("button", name="Sign out everywhere").click()
    expect(page.get_by_text("You are signed out everywhere")).to_be_visible()
    page.goto("/deliveries")
    expect(page.get_by_role("heading", name="Log in")).to_be_visible()
