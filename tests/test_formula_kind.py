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


def test_sans_serif_type_is_unsure_and_the_surer_model_settles_it():
    from mathocr.formula_kind import UNSURE, KindGuess, settle

    guess = guess_formula_kind(render_formula(r"x ^ { 2 } + \alpha", engine="mathtext-dejavusans"))
    # DejaVu Sans has nearly the even strokes of a pen: the widths alone do not settle it
    assert guess.unsure and UNSURE[0] <= guess.uniform_width <= UNSURE[1]
    typeset = settle(guess, {"handwritten": -1.2, "typeset": -0.1})
    assert typeset.kind == "typeset" and typeset.unsure
    assert "typeset model is surer" in typeset.reason and "90% against 30%" in typeset.reason
    assert settle(guess, {"handwritten": -0.1, "typeset": -1.2}).kind == "handwritten"
    # within the margin, handwriting keeps the picture, and the reason does not claim it is surer
    close = {"handwritten": -0.5, "typeset": -0.4}
    assert settle(guess, close, margin=0.05).kind == "typeset"
    kept = settle(guess, close, margin=0.15)
    assert kept.kind == "handwritten" and "nearly as sure" in kept.reason and "61% against 67%" in kept.reason
    assert settle(guess, {"handwritten": -0.4, "typeset": -0.4}, margin=0.0).kind == "handwritten"  # a tie
    sure = KindGuess("typeset", 1.0, 0.1, "varying width")
    assert settle(sure, {"handwritten": 0.0, "typeset": -5.0}) is sure  # a sure guess stands


def test_the_unsure_band_follows_the_measured_share():
    from mathocr.formula_kind import UNSURE

    rng = np.random.default_rng(1)
    shares = []
    for formula in synthetic_formulas():
        for pen in (2.0, 4.0, 8.0):
            guess = guess_formula_kind(render_strokes(augment_strokes(formula.strokes, rng), height=150,
                                                      max_width=2000, stroke_width=pen))
            assert guess.unsure == (UNSURE[0] <= guess.uniform_width <= UNSURE[1] and guess.flat_paper >= 0.97)
            shares.append(guess.uniform_width)
    assert max(shares) > UNSURE[1]  # a pen's even strokes are mostly beyond doubt


def test_evaluate_kind_scores_the_rule_and_the_settled_guess_per_source(synthetic_data, tmp_path, capsys):
    import json

    from mathocr.cli import main
    from mathocr.formula_kind import HANDWRITING_MARGIN
    from mathocr.typeset import latex_available
    from test_formula_model import save_tiny_recognizer

    models = {kind: save_tiny_recognizer(tmp_path / kind, kind=kind) for kind in ("handwritten", "typeset")}
    code = main(["evaluate", "kind", "--split", "validation", "--n", "3", "--beam", "1", "--json",
                 "--model", str(models["handwritten"]), "--typeset-model", str(models["typeset"])])
    report = json.loads(capsys.readouterr().out)
    assert code == 0 and report["split"] == "validation"
    sources = report["sources"]
    expected = {"crohme", "mathtext", "mathtext-dejavusans"} | ({"latex"} if latex_available() else set())
    assert set(sources) == expected
    assert sources["crohme"]["kind"] == "handwritten" and sources["crohme"]["n"] == 2  # TestINKMLGT's two
    for row in sources.values():
        assert 1 <= row["n"] <= 3 and 0 <= row["unsure"] <= row["n"]
        for key in ("rule", "settled"):
            assert 0 <= row[key] <= 1
        # only unsure pictures can change their call
        assert abs(row["settled"] - row["rule"]) * row["n"] <= row["unsure"] + 1e-6
    assert sources["mathtext-dejavusans"]["unsure"] >= 1  # sans-serif type is what the models settle
    # margins scored from the same readings: the shipped one agrees with "settled"; a huge one hands
    # every unsure picture to handwriting, a hugely negative one to type
    main(["evaluate", "kind", "--split", "validation", "--n", "3", "--beam", "1", "--json",
          "--margins", f"{HANDWRITING_MARGIN},100,-100",
          "--model", str(models["handwritten"]), "--typeset-model", str(models["typeset"])])
    report = json.loads(capsys.readouterr().out)
    assert report["margin"] == HANDWRITING_MARGIN and report["sources"] == {
        source: {**row, "by_margin": report["sources"][source]["by_margin"]} for source, row in sources.items()}
    for row in report["sources"].values():
        by = row["by_margin"]
        assert by[str(float(HANDWRITING_MARGIN))] == row["settled"]
        sure_right = by["100.0"] if row["kind"] == "typeset" else by["-100.0"]
        assert sure_right == pytest.approx(by["-100.0" if row["kind"] == "typeset" else "100.0"]
                                           - row["unsure"] / row["n"], abs=1e-3)
    main(["evaluate", "kind", "--split", "validation", "--n", "1", "--beam", "1", "--margins", "0,0.5",
          "--model", str(models["handwritten"]), "--typeset-model", str(models["typeset"])])
    out = capsys.readouterr().out
    assert "with the models" in out and "by margin" in out
