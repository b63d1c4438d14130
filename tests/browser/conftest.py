"""Browser tests: Playwright driving Debian's Chromium against a real Daphne on loopback.

The server runs on a temporary SQLite database with bots moving at once. Screenshots go to
``test-artifacts/browser/<test>/``; they are kept after the run for people to look at.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import (
    Browser,
    BrowserContext,
    ConsoleMessage,
    Page,
    Playwright,
    expect,
    sync_playwright,
)

from tests.live import ROOT, Server, manage, postgres_database, server_env, start_server

CHROMIUM = Path("/usr/bin/chromium")
ARTIFACTS = ROOT / "test-artifacts" / "browser"
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]
# A page that lost its server retries with a backoff of up to 15 s.
expect.set_options(timeout=25_000)

PHONE = {
    "viewport": {"width": 375, "height": 812},
    "device_scale_factor": 2,
    "is_mobile": True,
    "has_touch": True,
}
DESKTOP = {"viewport": {"width": 1280, "height": 860}}


@dataclass
class Site:
    """A running server with its environment (for manage.py) and log folder."""

    env: dict[str, str]
    server: Server
    logs: Path

    @property
    def base(self) -> str:
        return self.server.base


def _site(tmp: Path, database_url: str | None = None) -> Iterator[Site]:
    env = server_env(DATABASE_URL=database_url or f"sqlite:///{tmp / 'browser.sqlite3'}")
    manage(env, "migrate", "--noinput")
    manage(env, "load_scenarios")
    site = Site(env, start_server(env, tmp, "browser"), tmp)
    try:
        yield site
    finally:
        # A test may have restarted the server: stop the one running now.
        site.server.stop()


@pytest.fixture(scope="module")
def site(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Site]:
    yield from _site(tmp_path_factory.mktemp("site"))


@pytest.fixture
def own_site(tmp_path: Path) -> Iterator[Site]:
    """A server of the test's own (for tests that stop and restart it)."""
    yield from _site(tmp_path)


@pytest.fixture
def postgres_site(tmp_path: Path) -> Iterator[Site]:
    """A server of the test's own on a new PostgreSQL database (dropped afterwards)."""
    with postgres_database() as url:
        yield from _site(tmp_path, url)


# Module-scoped: Playwright's sync driver keeps an event loop of its own, which must be gone
# before any later asyncio test runs.
@pytest.fixture(scope="module")
def playwright() -> Iterator[Playwright]:
    if not CHROMIUM.exists():
        pytest.fail(
            f"{CHROMIUM} is missing: browser tests use Debian's chromium "
            "(.ci/ensure-services installs it; make test runs that).",
            pytrace=False,
        )
    with sync_playwright() as driver:
        yield driver


@pytest.fixture(scope="module")
def browser(playwright: Playwright) -> Iterator[Browser]:
    chromium = playwright.chromium.launch(
        executable_path=str(CHROMIUM), headless=True, args=CHROMIUM_ARGS
    )
    yield chromium
    chromium.close()


@pytest.fixture
def shots(request: pytest.FixtureRequest) -> Callable[[Page, str], Path]:
    """Save a full-page screenshot as ``test-artifacts/browser/<test>/<nn>-<name>.png``."""
    folder = ARTIFACTS / re.sub(r"[^\w.-]+", "_", request.node.name)
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    taken = 0

    def shoot(page: Page, name: str) -> Path:
        nonlocal taken
        taken += 1
        path = folder / f"{taken:02d}-{name}.png"
        page.screenshot(path=str(path), full_page=True)
        return path

    return shoot


def csp_violation(message: ConsoleMessage) -> str | None:
    """The text of a console message by which Chromium reports a Content-Security-Policy
    violation (a refused inline script, handler, style element, eval or connection), or None."""
    if message.type == "error" and "Content Security Policy" in message.text:
        return f"{message.page.url if message.page else '?'}: {message.text}"
    return None


@pytest.fixture
def people(browser: Browser) -> Iterator[Callable[..., Page]]:
    """Open a page in a browser context of its own (its own cookies: one person each).

    The test fails if any page of these contexts breaks the site's Content-Security-Policy:
    the violation is also among the first page's ``errors``."""
    contexts: list[BrowserContext] = []
    violations: list[str] = []

    def person(phone: bool = False, **options: Any) -> Page:
        context = browser.new_context(**(PHONE if phone else DESKTOP), **options)
        context.set_default_timeout(15_000)
        contexts.append(context)
        page = context.new_page()
        errors: list[str] = []
        page.on("pageerror", lambda error: errors.append(str(error)))

        def on_console(message: ConsoleMessage) -> None:
            violation = csp_violation(message)
            if violation is not None:
                violations.append(violation)
                errors.append(violation)

        context.on("console", on_console)
        page.errors = errors  # type: ignore[attr-defined]
        return page

    yield person
    for context in contexts:
        context.close()
    if violations:
        pytest.fail("Content-Security-Policy violations:\n" + "\n".join(violations))
