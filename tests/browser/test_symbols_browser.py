"""The Symbols page in a real browser: a symbol drawn with the mouse comes back as five candidates.

Uses the shipped model (models/symbols); skipped when it is missing.
"""

import pytest

from app_browser import REPO, SCREENSHOTS, assert_no_errors, open_page, wait_for_app

pytestmark = pytest.mark.browser
MODEL = REPO / "models" / "symbols" / "symbols.keras"


@pytest.mark.skipif(not MODEL.exists(), reason=f"no shipped symbol model at {MODEL}")
def test_drawn_symbol_gives_a_candidate_list(page, app_url):
    open_page(page, f"{app_url}/symbols")
    assert "Draw a symbol" in page.inner_text("body")
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for()
    box = canvas.bounding_box()
    # a large "+": a horizontal stroke, then a vertical one
    for (x0, y0), (x1, y1) in [((50, 140), (230, 140)), ((140, 50), (140, 230))]:
        page.mouse.move(box["x"] + x0, box["y"] + y0)
        page.mouse.down()
        page.mouse.move(box["x"] + x1, box["y"] + y1, steps=12)
        page.mouse.up()
    wait_for_app(page)
    page.wait_for_selector('[data-testid="stCode"]', timeout=60_000)
    wait_for_app(page)
    assert_no_errors(page)
    candidates = [c.inner_text().strip() for c in page.locator('[data-testid="stCode"]').all()]
    assert len(candidates) == 5
    assert "+" in candidates
    assert page.locator('[data-testid="stProgress"]').count() == 5
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "symbols-drawn.png", full_page=True)
