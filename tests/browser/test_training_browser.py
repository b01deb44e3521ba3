"""The Training page in a real browser: a smoke run started with a click, its progress bar moving."""

import time

import pytest

from app_browser import SCREENSHOTS, assert_no_errors, open_page, wait_for_app

pytestmark = pytest.mark.browser


def test_start_a_smoke_run_and_watch_its_progress_bar_move(page, synthetic_app_url):
    open_page(page, f"{synthetic_app_url}/training")
    # the formula model: the symbol CNN's smoke run stops early (its patience) within seconds on a
    # fast machine, before the page's refresh has shown its bar at two places
    page.locator('[data-testid="stSelectbox"]').filter(has_text="Model kind").first.click()
    page.get_by_role("option", name="Handwritten formulas (seq2seq)").click()
    wait_for_app(page)
    page.get_by_text("smoke (about a minute)").first.click()
    wait_for_app(page)
    # enough epochs on the tiny synthetic set for the bar to be seen at several places; the test
    # stops the run once it has seen the bar move
    epochs = page.get_by_role("textbox", name="epochs", exact=True)
    epochs.fill("400")
    epochs.press("Tab")
    page.get_by_role("textbox", name="fraction", exact=True).fill("1.0")
    page.get_by_role("textbox", name="batch_size", exact=True).fill("4")
    page.get_by_role("button", name="Start").click()
    wait_for_app(page)
    assert_no_errors(page)
    assert "Started run" in page.inner_text("body")

    seen = []
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        bars = page.locator('[data-testid="stProgress"]')
        if bars.count():
            text = bars.first.inner_text().strip()
            if text and (not seen or seen[-1] != text):
                seen.append(text)
        if len(seen) >= 3 or "— finished" in page.inner_text("body"):
            break
        page.wait_for_timeout(500)
    assert len(seen) >= 2, f"the progress bar did not move: {seen}; {page.inner_text('body')[:3000]}"
    page.locator('[data-testid="stProgress"]').first.scroll_into_view_if_needed()
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "training-running.png")
    stop = page.get_by_role("button", name="Stop")
    if stop.count():
        stop.first.click()
        wait_for_app(page)
