"""Helpers for browser tests (the fixtures are in conftest.py): where things are, and how to
wait for the app and check a page."""

from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
SCREENSHOTS = REPO / "screenshots"
CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = [
    "--no-sandbox", "--headless", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]
RUN_TIMEOUT_MS = 60_000  # a page's script run (a first visit may load a model or build an index)


def wait_for_app(page, timeout_ms: int = RUN_TIMEOUT_MS) -> None:
    """Wait until the app is connected and its script has run to the end (and stayed so briefly,
    so a rerun it triggers itself is waited for too)."""
    done = '[data-testid="stApp"][data-test-script-state="notRunning"][data-test-connection-state="CONNECTED"]'
    page.wait_for_selector(done, timeout=timeout_ms)
    page.wait_for_timeout(300)
    page.wait_for_selector(done, timeout=timeout_ms)


def open_page(page, url: str) -> None:
    """Load a page of the app and wait for its script to finish."""
    page.goto(url)
    wait_for_app(page)


def assert_no_errors(page) -> None:
    """No exception (a stack trace) and no ``st.error`` alert on the page."""
    exceptions = page.locator('[data-testid="stException"]')
    assert exceptions.count() == 0, f"exception on {page.url}: {exceptions.first.inner_text()}"
    errors = page.locator('[data-testid="stAlertContentError"]')
    assert errors.count() == 0, f"error on {page.url}: {errors.first.inner_text()}"
