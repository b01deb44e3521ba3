"""The rule that tells a typeset formula from handwriting (``mathocr.formula_kind``): LaTeX's
renderings against ink drawn by the app's own renderer, a photo-like picture, a blank one."""

import numpy as np
import pytest
from PIL import Image

from mathocr.formula_kind import guess_formula_kind
from mathocr.render import augment_strokes, render_strokes
from mathocr.typeset import latex_available, render_formula
from test_formula_model import synthetic_formulas

needs_latex = pytest.mark.skipif(not latex_available(), reason="LaTeX (latex, dvipng) is not installed; ./test.sh "
                                 "installs it (mathtext's sans-serif strokes are as even as a pen's)")
TYPESET = [r"\sum _ { i = 1 } ^ { n } i", r"\sqrt { x } + \alpha", r"x + 1"]


@needs_latex
@pytest.mark.parametrize("formula", TYPESET)
def test_a_latex_rendering_is_typeset(formula):
    guess = guess_formula_kind(render_formula(formula, engine="latex"))
    assert guess.kind == "typeset", guess
    assert guess.flat_paper > 0.99 and "varying width" in guess.reason


@pytest.mark.parametrize("height, pen", [(120, 3.0), (200, 5.0)])
def test_rendered_ink_is_handwritten(height, pen):
    rng = np.random.default_rng(0)
    for formula in synthetic_formulas():
        image = render_strokes(augment_strokes(formula.strokes, rng), height=height, max_width=2000, stroke_width=pen)
        guess = guess_formula_kind(image)
        assert guess.kind == "handwritten", (formula.tokens, guess)
        assert "one width" in guess.reason


@needs_latex
def test_a_photo_of_paper_counts_as_handwriting():
    """Uneven light and camera noise: the paper is not one flat colour, whatever is written on it."""
    clean = np.asarray(render_formula(r"x + 1", engine="latex"), dtype=np.float64)
    rows, cols = clean.shape
    shade = np.linspace(0, 50, cols)[None, :] + np.linspace(0, 20, rows)[:, None]
    photo = clean * 0.85 + 20 - shade + np.random.default_rng(0).normal(0, 6, clean.shape)
    guess = guess_formula_kind(Image.fromarray(np.clip(photo, 0, 255).astype(np.uint8)))
    assert guess.kind == "handwritten" and guess.flat_paper < 0.97
    assert "photo or a scan" in guess.reason


def test_a_blank_picture_is_handwritten_and_says_why():
    guess = guess_formula_kind(Image.new("L", (200, 80), 255))
    assert guess.kind == "handwritten" and "hardly any ink" in guess.reason
