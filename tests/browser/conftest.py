"""The browser fixtures: one headless Debian Chromium per test process, and `signed_in` pages of the console."""
import os
from pathlib import Path

import pytest

CHROMIUM = Path("/usr/bin/chromium")
# Chromium keeps the last --disable-features it is given, so this one repeats Playwright's own (1.65's
# chromiumSwitches.ts) and adds the omnibox's two popups: each browser context (one per test) preloads both as
# WebUI pages in renderers of their own, a tenth of the whole suite's CPU, for a toolbar headless never shows.
PLAYWRIGHT_DISABLED = ("AvoidUnnecessaryBeforeUnloadCheckSync,DestroyProfileOnBrowserClose,HttpsUpgrades,"
                       "HttpsFirstBalancedModeAutoEnable,LensOverlay,MediaRouter,PaintHolding,"
                       "ThirdPartyStoragePartitioning,AvoidCorsURLLoaderRestartOnRedirect,OptimizationHints,"
                       "NetworkTimeServiceQuerying,AimEnabled,PreconnectToSearch")
CHROMIUM_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
                 "--disable-sync", "--no-first-run", "--disable-quic",
                 f"--disable-features={PLAYWRIGHT_DISABLED},WebUIOmniboxPopup,WebUIOmniboxAimPopup"]
# The console binds a session to the browser that logged in (Flask-Login's "strong" protection: address and
# User-Agent), so the login posted over HTTP and the browser context present the same one.
USER_AGENT = "Mozilla/5.0 (X11; Linux x86_64) HeadlessChrome qlar-console-tests"


@pytest.fixture
def signed_in(browser, request):
    """Factory: a page signed in as a fixture user, in a fresh browser context (width, colour scheme, any other
    Playwright context option; clipboard allowed), opened at `path` (the Escalation page of agent-123 · production
    unless given; None: /, the page a login lands on). The console is the `live_server` fixture's unless
    `base_url` is given. The login is posted through the console's own form over HTTP and its cookies handed to
    the context (the login page itself is driven by tests/browser/test_account_browser.py and
    test_pages_browser.py); the contexts close after the test."""
    from helpers import PAGE

    contexts = []

    def make(username: str = "editor", width: int = 1280, scheme: str = "light", path: str | None = PAGE,
             base_url: str | None = None, **options):
        base_url = base_url or request.getfixturevalue("live_server")[0]
        options = {"user_agent": USER_AGENT, **options}
        context = browser.new_context(base_url=base_url, viewport={"width": width, "height": 900},
                                      color_scheme=scheme, **options)
        context.grant_permissions(["clipboard-read", "clipboard-write"], origin=base_url)
        contexts.append(context)
        cookies = login_cookies(base_url, username, options["user_agent"])
        context.add_cookies([{"name": name, "value": value, "url": base_url} for name, value in cookies.items()])
        page = context.new_page()
        page.goto(path or "/")
        return page

    yield make
    for context in contexts:
        context.close()


def login_cookies(base_url: str, username: str, user_agent: str) -> dict[str, str]:
    """Log in through the console's login form (its CSRF token included) over HTTP; the session's cookies."""
    import re

    import requests
    from apps import PASSWORD

    with requests.Session() as session:
        session.headers["User-Agent"] = user_agent
        form = session.get(f"{base_url}/login", timeout=10)
        token = re.search(r'name="csrf_token"[^>]*value="([^"]+)"', form.text)
        answer = session.post(f"{base_url}/login", allow_redirects=False, timeout=10,
                              data={"username": username, "password": PASSWORD,
                                    **({"csrf_token": token.group(1)} if token else {})})
        assert answer.status_code == 302 and answer.headers["Location"] != "/login", answer.text[:500]
        return session.cookies.get_dict()


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
