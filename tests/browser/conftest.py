"""The browser fixtures: one headless Debian Chromium per test process, and `signed_in` pages of the console."""
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic"]


@pytest.fixture
def signed_in(browser, request):
    """Factory: a page signed in as a fixture user, in a fresh browser context (width, colour scheme, any other
    Playwright context option; clipboard allowed), opened at `path` (the Escalation page of agent-123 · production
    unless given; None stays on the page login lands on). The console is the `live_server` fixture's unless
    `base_url` is given. The contexts close after the test."""
    from helpers import PAGE, sign_in
    from playwright.sync_api import expect

    contexts = []

    def make(username: str = "editor", width: int = 1280, scheme: str = "light", path: str | None = PAGE,
             base_url: str | None = None, **options):
        base_url = base_url or request.getfixturevalue("live_server")[0]
        context = browser.new_context(base_url=base_url, viewport={"width": width, "height": 900},
                                      color_scheme=scheme, **options)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
        contexts.append(context)
        page = context.new_page()
        sign_in(page, username)
        expect(page.get_by_role("button", name="Log out")).to_be_visible()
        if path:
            page.goto(path)
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture(scope="session")
def browser():
    """One headless Debian Chromium for the session (skipped without it locally, a failure in CI)."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: CI must install Debian's chromium for the browser tests.")
        pytest.skip(f"browser tests need Chromium at {CHROMIUM} (apt-get install chromium)")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()
