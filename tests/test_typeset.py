"""Typeset rendering: real LaTeX where installed (CI installs it), mathtext everywhere."""

import json

import numpy as np
import pytest

from mathocr.typeset import TypesetError, latex_available, render_formula, render_formula_set, render_mathtext

needs_latex = pytest.mark.skipif(not latex_available(), reason="LaTeX (latex, dvipng) is not installed; ./test.sh installs it")


def ink_pixels(image):
    return int((np.asarray(image) < 128).sum())


def test_mathtext_draws_a_fraction_cropped_to_its_ink():
    image = render_mathtext(r"\frac { 1 } { 2 } + x ^ { 2 }")
    arr = np.asarray(image)
    assert image.mode == "L"
    assert ink_pixels(image) > 50
    # cropped: a white margin all round, ink close to every edge
    assert arr[0].min() == 255 and arr[-1].min() == 255 and arr[:, 0].min() == 255
    assert (arr[:8] < 128).any() and (arr[:, -8:] < 128).any()


def test_mathtext_keeps_scripts_in_im2latex_spelling():
    # mathtext drops a script written `x ^ { 2 }` (a space after the operator) and draws "x 2"
    spaced, compact = render_mathtext(r"H _ { 0 } ^ { 2 }"), render_mathtext(r"H_{0}^{2}")
    assert spaced.size == compact.size and np.array_equal(np.asarray(spaced), np.asarray(compact))
    assert spaced.height > render_mathtext("H 0 2").height  # the scripts stand above and below the line


def test_mathtext_refuses_what_it_cannot_draw_with_a_reason():
    with pytest.raises(TypesetError, match="mathtext"):
        render_mathtext(r"\begin{array} { c c } a & b \end{array}")


@needs_latex
def test_latex_draws_what_mathtext_cannot():
    image = render_formula(r"\begin{array} { c c } a & b \\ c & d \end{array}", engine="latex")
    assert image.height > 40 and ink_pixels(image) > 50


@needs_latex
def test_latex_error_is_a_typeset_error():
    with pytest.raises(TypesetError, match="latex failed"):
        render_formula(r"\frac { 1 } {", engine="latex")


def test_formula_set_counts_failures_and_resumes(tmp_path):
    formulas = [("a.png", r"x ^ { 2 }"), ("b.png", r"\sqrt { y }"), ("bad.png", r"\begin{array} a")]
    result = render_formula_set(formulas, tmp_path / "set", engine="mathtext", workers=1)
    assert sorted(result.rendered) == ["a.png", "b.png"]
    assert list(result.failed) == ["bad.png"]
    assert result.image_path("a.png").exists()
    index = json.loads((tmp_path / "set" / "index.json").read_text())
    assert index["engine"] == "mathtext" and "bad.png" in index["failed"]
    # a second call draws nothing again, and keeps the count
    before = result.image_path("a.png").stat().st_mtime_ns
    again = render_formula_set(formulas, tmp_path / "set", engine="mathtext", workers=1)
    assert again.image_path("a.png").stat().st_mtime_ns == before
    assert sorted(again.rendered) == ["a.png", "b.png"] and list(again.failed) == ["bad.png"]
    with pytest.raises(ValueError, match="mathtext"):
        render_formula_set(formulas, tmp_path / "set", engine="latex", workers=1)
