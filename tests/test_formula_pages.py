"""The Formulas and Formula attention pages, run headless with AppTest.

A drawing is injected the way the canvas component stores it (``pages.common.canvas_state``); the
pages load a tiny model written here (``MATHOCR_FORMULA_MODEL``), so these tests neither need nor
wait for the shipped one.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from pages.common import canvas_state
from test_formula_model import save_tiny_recognizer

PAGES = Path(__file__).resolve().parent.parent / "pages"
# "x + 1" as fabric.js describes free-drawn strokes
DRAWING = {"objects": [
    {"type": "path", "path": [["M", 40, 60], ["Q", 70, 90, 100, 120], ["L", 110, 130]]},
    {"type": "path", "path": [["M", 110, 60], ["Q", 80, 90, 60, 110], ["L", 40, 130]]},
    {"type": "path", "path": [["M", 150, 95], ["L", 210, 95]]},
    {"type": "path", "path": [["M", 180, 65], ["L", 180, 125]]},
    {"type": "path", "path": [["M", 250, 70], ["Q", 265, 60, 270, 55], ["L", 270, 130]]},
]}


@pytest.fixture(scope="module")
def model_dir(tmp_path_factory) -> Path:
    return save_tiny_recognizer(tmp_path_factory.mktemp("formula_model"))


def open_page(name: str, model_dir, monkeypatch):
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("MATHOCR_FORMULA_MODEL", str(model_dir))
    at = AppTest.from_file(str(PAGES / name), default_timeout=90)
    at.run()
    return at


def test_empty_canvas_gives_a_hint(model_dir, monkeypatch):
    at = open_page("formulas.py", model_dir, monkeypatch)
    assert not at.exception and not at.error
    assert "Write a formula" in at.info[0].value
    assert len(at.code) == 0


def test_a_drawing_gives_latex_candidates_and_a_confidence(model_dir, monkeypatch):
    at = open_page("formulas.py", model_dir, monkeypatch)
    at.sidebar.slider[0].set_value(3)
    at.session_state["formulas_canvas"] = canvas_state(DRAWING)
    at.run()
    assert not at.exception and not at.error
    assert len(at.code) == 3  # the answer and two other candidates
    assert "Confidence" in [m.label for m in at.metric]
    # sympy reads it, or the page says quietly that it cannot
    assert at.subheader.values.count("With sympy") == 1 or any("Sympy cannot" in c.value for c in at.caption)


def test_the_answer_says_how_the_model_read_the_drawing(model_dir, tmp_path, monkeypatch):
    import json
    import shutil

    several = shutil.copytree(model_dir, tmp_path / "several")
    config = json.loads((several / "config.json").read_text())
    (several / "config.json").write_text(json.dumps({**config, "margins": [0, 96]}))
    # and one whose candidates a right-to-left model re-ranks (config.json "rescore")
    rescored = shutil.copytree(several, tmp_path / "rescored")
    shutil.copytree(model_dir, rescored / "rescorer")
    backwards = json.loads((rescored / "rescorer" / "config.json").read_text())
    (rescored / "rescorer" / "config.json").write_text(json.dumps({**backwards, "direction": "r2l"}))
    (rescored / "config.json").write_text(json.dumps({**config, "margins": [0, 96],
                                                      "rescore": {"model": "rescorer", "weight": 0.5}}))
    ranked = "A second model, one that reads right to left, searched too"
    for directory, expected, absent in ((model_dir, "at least 64 blank columns after it.", ranked),
                                        (several, "the likeliest of 2 readings with different margins", ranked),
                                        (rescored, ranked, None)):
        at = open_page("formulas.py", directory, monkeypatch)
        at.session_state["formulas_canvas"] = canvas_state(DRAWING)
        at.run()
        assert not at.exception and not at.error
        captions = [c.value for c in at.caption]
        assert any(expected in c for c in captions), captions
        assert absent is None or not any(absent in c for c in captions)
        assert (directory == rescored) == any("This answer came from" in c and "search." in c for c in captions)


def test_switching_to_upload_waits_for_a_file(model_dir, monkeypatch):
    at = open_page("formulas.py", model_dir, monkeypatch)
    at.radio[0].set_value("Upload an image").run()
    assert not at.exception
    assert "Upload a photo or scan" in at.info[0].value
    assert len(at.code) == 0


def test_attention_page_shows_a_map_per_token(model_dir, monkeypatch):
    at = open_page("formula_attention.py", model_dir, monkeypatch)
    assert not at.exception and not at.error
    assert any("Write a formula" in i.value for i in at.info)
    at.session_state["formula_attention_canvas"] = canvas_state(DRAWING)
    at.run()
    assert not at.exception and not at.error
    assert len(at.code) == 1
    show = [r for r in at.radio if r.label == "Show"][0]
    show.set_value("All tokens").run()
    assert not at.exception and not at.error


def test_attention_page_shows_the_feature_maps_of_each_convolution_and_residual_block(tmp_path, monkeypatch):
    at = open_page("formula_attention.py", save_tiny_recognizer(tmp_path / "deeper", blocks=1), monkeypatch)
    at.session_state["formula_attention_canvas"] = canvas_state(DRAWING)
    at.run()
    layers = next(s for s in at.selectbox if s.label == "Layer")
    assert list(layers.options) == ["relu1", "relu2", "relu3", "relu4", "relu5", "res1"]
    layers.set_value("res1").run()
    assert not at.exception and not at.error
    assert any(c.value.startswith("res1: ") for c in at.caption)


def test_attention_page_shows_what_the_pen_did_for_a_model_that_reads_it(tmp_path, monkeypatch):
    at = open_page("formula_attention.py", save_tiny_recognizer(tmp_path / "pen", train_steps=2, pen=True), monkeypatch)
    at.session_state["formula_attention_canvas"] = canvas_state(DRAWING)
    at.run()
    assert not at.exception and not at.error
    pictures = [i for i in at.image if any(c.startswith("what the pen did") for c in i.captions)]
    assert len(pictures) == 1
    next(s for s in at.selectbox if s.label == "Layer").set_value("relu1").run()  # feature maps of all four channels
    assert not at.exception and not at.error
    at = open_page("formula_attention.py", model_dir_of(tmp_path / "ink"), monkeypatch)
    at.session_state["formula_attention_canvas"] = canvas_state(DRAWING)
    at.run()
    assert not [i for i in at.image if any(c.startswith("what the pen did") for c in i.captions)]


def model_dir_of(directory):
    return save_tiny_recognizer(directory)


def test_attention_page_takes_the_formula_page_answer(model_dir, monkeypatch):
    from mathocr.formula_decode import FormulaRecognizer
    from test_formula_model import synthetic_formulas

    at = open_page("formula_attention.py", model_dir, monkeypatch)
    at.session_state["formula_last"] = FormulaRecognizer.load(model_dir).recognize_strokes(
        synthetic_formulas()[0].strokes)
    at.run()
    assert not at.exception and not at.error
    assert at.radio(key="attention_model").value == "Handwritten"
    assert next(r for r in at.radio if r.label == "Formula").value == "Last formula recognized"
    assert len(at.code) == 1
    backwards = "writes formulas from right to left"
    assert not any(backwards in c.value for c in at.caption)
    # an answer that the right-to-left twin's search found says whose attention maps these are
    at.session_state["formula_last"].extra["found_by"] = "r2l"
    at.run()
    assert not at.exception and any(backwards in c.value for c in at.caption)


def test_a_photo_taken_askew_is_turned_level_and_the_page_says_by_what(model_dir, monkeypatch):
    import io

    from fixtures import symbols_in_a_row
    from mathocr.photo import photo_of_paper
    from mathocr.render import render_strokes

    strokes = [s for _, symbol in symbols_in_a_row(["x", "+", "2", "=", "a"]) for s in symbol]
    clean = render_strokes(strokes, height=150, max_width=6000, stroke_width=5)
    said = {}
    for paper, tilt in (("plain", 0.0), ("plain", 8.0), ("squared", -6.0)):
        buffer = io.BytesIO()
        photo_of_paper(clean, 2, paper, tilt=tilt).save(buffer, format="PNG")
        at = open_page("formulas.py", model_dir, monkeypatch)
        at.radio(key="formulas_mode").set_value("Upload an image").run()
        at.file_uploader(key="formulas_upload").set_value(("photo.png", buffer.getvalue(), "image/png")).run()
        assert not at.exception and not at.error and len(at.code) >= 1
        said[paper, tilt] = " ".join(c.value for c in at.caption if c.value.startswith("Before reading it"))
    assert "paper made white" in said["plain", 0.0] and "turned" not in said["plain", 0.0]
    # a formula's writing tells its slope where no lines do (a symbol's would not: the symbol pages never turn by it)
    by_writing = re.search(r"turned (\d+\.\d)° clockwise, so that its writing runs level", said["plain", 8.0])
    assert by_writing and 6.5 <= float(by_writing.group(1)) <= 9.5, said["plain", 8.0]
    by_lines = re.search(r"turned (\d+\.\d)° counter-clockwise, so that the paper's lines run level",
                         said["squared", -6.0])
    assert by_lines and 4.0 <= float(by_lines.group(1)) <= 8.0, said["squared", -6.0]  # 6, and the lines' own 1.5
