"""Real-browser test (Playwright + Debian Chromium) of the Users page: Add user, Copy its first password,
Change role through its confirmation, at 1280 and 390 px, light and dark, with axe clean."""
import re

import pytest
from helpers import answer_next_dialog, axe_violations, keep_screenshot, sideways_overflow, wider_than
from playwright.sync_api import expect

from qlar_console.auth.models import User
from qlar_console.extensions import db


def test_add_a_user_copy_the_password_and_change_a_role(signed_in, live_server):
    _, app = live_server
    page = signed_in("admin", path="/")
    page.get_by_role("navigation", name="Main").get_by_role("link", name="Users").click()
    expect(page.get_by_role("heading", name="Users", exact=True)).to_be_visible()

    page.get_by_role("button", name="Add user").click()  # no name: the field says why and has the focus
    expect(page.get_by_label("Username")).to_have_attribute("aria-invalid", "true")
    expect(page.get_by_label("Username")).to_be_focused()

    page.get_by_label("Username").fill("alice")
    page.get_by_label("Role", exact=True).select_option("editor")
    page.get_by_role("button", name="Add user").click()
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    password = page.get_by_label("First password").input_value()
    page.wait_for_load_state()  # the new page's deferred script runs: Copy works from here on
    page.get_by_role("button", name="Copy", exact=True).click()
    expect(page.get_by_text("Copied", exact=True)).to_be_visible()
    assert page.evaluate("navigator.clipboard.readText()") == password
    keep_screenshot(page, "users-added-1280")

    row = page.get_by_role("row").filter(has_text="alice")
    row.get_by_label("Role of alice").select_option("viewer")
    messages = answer_next_dialog(page, accept=False)  # dismissed: nothing changes
    row.get_by_role("button", name="Change role").click()
    expect(page.get_by_text("it will not be shown again")).to_be_visible()
    assert messages == ["Change the role of alice? Every session of theirs is signed out."]
    with app.app_context():
        assert db.session.scalar(db.select(User.role).filter_by(username="alice")) == "editor"

    answer_next_dialog(page)
    row.get_by_role("button", name="Change role").click()
    expect(page.get_by_text("alice is now viewer; every session of theirs is signed out.")).to_be_visible()
    expect(page.get_by_text("it will not be shown again")).to_have_count(0)
    assert password not in page.content()
    with app.app_context():
        assert db.session.scalar(db.select(User.role).filter_by(username="alice")) == "viewer"


@pytest.mark.parametrize(("width", "scheme"), [(1280, "light"), (390, "dark")])
def test_the_users_page_fits_and_passes_axe(signed_in, width, scheme):
    page = signed_in("admin", width, scheme, path="/users")
    expect(page.get_by_role("button", name=re.compile("Sign out everywhere"))).to_have_count(4)
    assert axe_violations(page) == []
    assert sideways_overflow(page) == 0 and wider_than(page, width) == []
    keep_screenshot(page, f"users-{width}-{scheme}")
