"""Typeset formulas in the app, run headless with AppTest: the Formulas page reading an uploaded
screenshot with a tiny typeset model (and saying what to do when there is none), the Datasets
page showing im2latex's rendered images, the Formula attention page on a typeset model.

The models are tiny and untrained (``save_tiny_recognizer``): these tests check what the pages
show, not what the model knows. Renderings use LaTeX where installed, else mathtext."""

from __future__ import annotations

import io
from pathlib import Path

import pytest

from mathocr.typeset import latex_available, render_formula
from fixtures import IM2LATEX_ROWS
from test_app_pages import assert_clean, datasets_page
from test_formula_model import save_tiny_recognizer
from test_typeset_training import im2latex_data, rendered  # noqa: F401  (fixtures: synthetic im2latex, drawn)

PAGES = Path(__file__).resolve().parent.parent / "pages"


@pytest.fixture(scope="module")
def models(tmp_path_factory) -> dict[str, Path]:
    root = tmp_path_factory.mktemp("formula_models")
    return {kind: save_tiny_recognizer(root / kind, kind=kind) for kind in ("handwritten", "typeset")}


@pytest.fixture
def formula_models(models, monkeypatch) -> dict[str, Path]:
    monkeypatch.setenv("MATHOCR_FORMULA_MODEL", str(models["handwritten"]))
    monkeypatch.setenv("MATHOCR_TYPESET_MODEL", str(models["typeset"]))
    return models


def formula_png(latex: str = r"x ^ { 2 } + \alpha") -> bytes:
    buffer = io.BytesIO()
    render_formula(latex).save(buffer, format="PNG")
    return buffer.getvalue()


def open_page(name: str):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(PAGES / name), default_timeout=90)
    at.run()
    return at


def upload(at, data: bytes, read_as: str | None = None):
    at.radio(key="formulas_mode").set_value("Upload an image").run()
    at.file_uploader(key="formulas_upload").set_value(("formula.png", data, "image/png")).run()
    if read_as:
        at.radio(key="formulas_kind").set_value(read_as).run()
    return at


def test_an_uploaded_formula_read_as_typeset_gets_latex_from_the_typeset_model(formula_models):
    at = upload(open_page("formulas.py"), formula_png(), "Typeset")
    assert_clean(at)
    assert any(str(formula_models["typeset"]) in c.value for c in at.caption), [c.value for c in at.caption]
    assert len(at.code) >= 1 and "Confidence" in [m.label for m in at.metric]
    assert at.session_state["formula_last_kind"] == "typeset"


@pytest.mark.skipif(not latex_available(), reason="LaTeX (latex, dvipng) is not installed; the guess is measured on "
                    "LaTeX's Computer Modern, and mathtext's sans-serif strokes look handwritten to it")
def test_the_guess_sends_a_latex_screenshot_to_the_typeset_model(formula_models):
    at = upload(open_page("formulas.py"), formula_png(r"\sqrt { x } + \alpha"))
    assert_clean(at)
    assert at.radio(key="formulas_kind").value == "Guess from the image"
    assert any("Read as **typeset**" in c.value for c in at.caption), [c.value for c in at.caption]
    assert any(str(formula_models["typeset"]) in c.value for c in at.caption)
    assert len(at.code) >= 1


def test_when_the_guess_is_unsure_both_models_read_the_upload_and_the_surer_answers(formula_models):
    from mathocr.formula_decode import FormulaRecognizer
    from mathocr.formula_kind import HANDWRITING_MARGIN, guess_formula_kind
    from mathocr.render import load_image

    sans = r"x ^ { 2 } + \alpha"  # DejaVu Sans: strokes nearly as even as a pen's
    buffer = io.BytesIO()
    render_formula(sans, "mathtext-dejavusans").save(buffer, format="PNG")
    picture = load_image(buffer.getvalue())
    assert guess_formula_kind(picture).unsure
    per_token = {kind: FormulaRecognizer.load(formula_models[kind]).recognize_image(picture, 5).extra["per_token"]
                 for kind in ("handwritten", "typeset")}
    # the surer model answers; handwriting by ties and within the margin
    surer = "handwritten" if per_token["handwritten"] + HANDWRITING_MARGIN >= per_token["typeset"] else "typeset"
    at = upload(open_page("formulas.py"), buffer.getvalue())
    assert_clean(at)
    captions = [c.value for c in at.caption]
    assert any(f"Read as **{surer}**" in c and "the stroke widths leave it open" in c for c in captions), captions
    assert at.session_state["formula_last_kind"] == surer
    assert at.session_state["formula_last"].extra["per_token"] == pytest.approx(per_token[surer], abs=1e-4)


def test_without_a_typeset_model_the_page_says_how_to_get_one(formula_models, monkeypatch, tmp_path):
    monkeypatch.setenv("MATHOCR_TYPESET_MODEL", str(tmp_path / "no-model"))
    at = open_page("formulas.py")
    assert_clean(at)  # drawing needs only the handwritten model
    upload(at, formula_png(), "Typeset")
    assert not at.exception
    message = at.error[0].value
    assert "no usable typeset formula model" in message and "python -m mathocr data render" in message
    assert "--dataset im2latex" in message and len(at.code) == 0
    at.radio(key="formulas_kind").set_value("Handwritten").run()  # the other model still answers
    assert_clean(at)
    assert len(at.code) >= 1


def test_the_datasets_page_shows_rendered_im2latex_formulas_and_the_failures(rendered):  # noqa: F811
    at = datasets_page("im2latex")
    assert not at.exception
    captions = [c.value for c in at.caption]
    assert any(f"40 of the 41 formulas rendered by {rendered['engine']}" in c and "1 could not be rendered" in c
               for c in captions), captions
    assert len(at.image) == 8 and len(at.latex) >= 7  # one image each; KaTeX for the well-formed ones
    # the failure and its reason, in the expander
    failures = [frame.value for frame in at.dataframe if "id" in frame.value.columns and "reason" in frame.value]
    assert failures and list(failures[0]["id"]) == ["broken.png"]
    # beside each image, the formula's source and its canonical tokens (the same here: already canonical)
    assert [c.value for c in at.code[:2]] == [IM2LATEX_ROWS[0][0], IM2LATEX_ROWS[0][0]]


def test_the_datasets_page_says_how_to_render_im2latex(synthetic_data):
    at = datasets_page("im2latex")
    assert_clean(at)
    assert any("python -m mathocr data render" in i.value for i in at.info)
    assert len(at.image) == 0 and len(at.latex) == 8


def test_the_attention_page_shows_a_typeset_model_on_a_held_out_formula(formula_models, rendered):  # noqa: F811
    at = open_page("formula_attention.py")
    at.radio(key="attention_model").set_value("Typeset").run()
    assert_clean(at)
    assert any("Upload a screenshot" in i.value for i in at.info)
    next(r for r in at.radio if r.label == "Formula").set_value("im2latex test formula").run()
    assert_clean(at)
    assert len(at.image) >= 2  # the rendered formula and the attention of the first token
    assert any(m.value == "**Truth**" for m in at.markdown)
    next(r for r in at.radio if r.label == "Show").set_value("All tokens").run()
    assert_clean(at)


def test_the_attention_page_without_a_typeset_model_says_so(formula_models, monkeypatch, tmp_path):
    monkeypatch.setenv("MATHOCR_TYPESET_MODEL", str(tmp_path / "no-model"))
    at = open_page("formula_attention.py")
    assert_clean(at)
    at.radio(key="attention_model").set_value("Typeset").run()
    assert not at.exception
    assert "no usable typeset formula model" in at.error[0].value
