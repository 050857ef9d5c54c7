"""A real browser for the portal's tests: Debian's chromium driven by Playwright.

Playwright's own browser download cannot be fetched here, so it launches the system browser
(`executable_path`). Screenshots go to $GALLEY_TEST_ARTIFACTS (default: test-artifacts/ at the
repository root), kept after the run as the flows' evidence.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import pytest

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
ARTIFACTS = Path(os.environ.get("GALLEY_TEST_ARTIFACTS",
                                Path(__file__).resolve().parent.parent / "test-artifacts"))
# Where the portal keeps its token (galley/portal/static/js/auth.js): tests that are not about
# signing in put an administrator's token there instead of walking the sign-in page.
TOKEN_KEY = "galley.portal.token"


@pytest.fixture(scope="session")
def browser():
    playwright_api = pytest.importorskip("playwright.sync_api")
    if not Path(CHROMIUM).exists():
        pytest.skip("chromium is not installed (scripts/test installs it)")
    # context.set_default_timeout (new_page) covers actions, not expect()'s assertions: give them
    # the same 15 s instead of 5 s, for a loaded machine
    playwright_api.expect.set_options(timeout=15_000)
    with playwright_api.sync_playwright() as playwright:
        launched = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield launched
        launched.close()


def new_page(browser, width: int = 1280, height: int = 720):
    """A page in a fresh context (its own cookies and storage). Galley's HTTPS certificate comes
    from its own CA, which this browser does not know: tests use plain-HTTP servers on loopback
    or ignore that one certificate error."""
    context = browser.new_context(viewport={"width": width, "height": height}, ignore_https_errors=True)
    context.set_default_timeout(15_000)
    return context.new_page()


def open_signed_in(browser, url: str, token: str, path: str = "/", **size):
    """The portal at `path`, already holding `token` (as the sign-in flow would leave it)."""
    page = new_page(browser, **size)
    record = json.dumps({"accessToken": token, "expiresOn": 4102444800})  # 2100-01-01
    page.add_init_script(f"sessionStorage.setItem({json.dumps(TOKEN_KEY)}, {json.dumps(record)});")
    page.goto(url + path)
    return page


def screenshot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    target = ARTIFACTS / (re.sub(r"[^A-Za-z0-9_.-]+", "-", name) + ".png")
    page.screenshot(path=str(target), full_page=True)
    return target


def sign_in(page, url: str, username: str, password: str):
    """Signs `username` in through the real sign-in page: opens the portal (which sends the browser
    to the authority) unless the page is on the sign-in page already, submits the form, and waits
    until the portal is back with a token in sessionStorage. The page's context must have no live
    sign-in session (a fresh `new_page`, or after signing out): else no page asks for a password."""
    if "/oauth2/v2.0/authorize" not in page.url:
        page.goto(url + "/")
        page.wait_for_url(re.compile(r".*/oauth2/v2\.0/authorize.*"))
    page.get_by_label("User name").fill(username)
    page.get_by_label("Password").fill(password)
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(re.escape(url) + r"/(#.*)?$"))
    page.wait_for_function(f"() => !!sessionStorage.getItem({json.dumps(TOKEN_KEY)})")
    return page
