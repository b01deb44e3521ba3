"""The Formulas page in a real browser: strokes drawn on the canvas come back as LaTeX.

Uses the shipped model (models/formulas); skipped when it is missing.
"""

import pytest

from app_browser import REPO, SCREENSHOTS, assert_no_errors, open_page, wait_for_app

pytestmark = pytest.mark.browser
MODEL = REPO / "models" / "formulas" / "formulas.keras"


def draw(page, canvas, strokes):
    """Draw polylines given in canvas pixels."""
    box = canvas.bounding_box()
    for stroke in strokes:
        x, y = stroke[0]
        page.mouse.move(box["x"] + x, box["y"] + y)
        page.mouse.down()
        for x, y in stroke[1:]:
            page.mouse.move(box["x"] + x, box["y"] + y, steps=4)
        page.mouse.up()


@pytest.mark.skipif(not MODEL.exists(), reason=f"no shipped formula model at {MODEL}")
def test_drawn_formula_comes_back_as_latex(page, app_url):
    open_page(page, f"{app_url}/formulas")
    assert "Write a formula" in page.inner_text("body")
    canvas = page.locator("canvas.upper-canvas").first
    canvas.wait_for()
    # "x + 1", large and clear
    draw(page, canvas, [
        [(60, 80), (100, 130), (140, 180)], [(140, 80), (100, 130), (60, 180)],
        [(200, 130), (280, 130)], [(240, 90), (240, 170)],
        [(330, 100), (355, 80), (355, 180)],
    ])
    wait_for_app(page)
    page.wait_for_selector('[data-testid="stCode"]', timeout=60_000)
    wait_for_app(page)
    assert_no_errors(page)
    answer = page.locator('[data-testid="stCode"]').first.inner_text().strip()
    assert answer and answer != "(nothing recognized)"
    assert "Confidence" in page.inner_text("body")
    SCREENSHOTS.mkdir(exist_ok=True)
    page.screenshot(path=SCREENSHOTS / "formulas-drawn.png", full_page=True)
