"""The app and its Datasets page, run headless with Streamlit's AppTest on synthetic data."""

from pathlib import Path

import pytest

from mathocr import data

REPO = Path(__file__).resolve().parent.parent


def run_app(timeout: float = 60):
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(REPO / "app.py"), default_timeout=timeout)
    at.run()
    return at


def datasets_page(view: str | None = None):
    at = run_app()
    at.switch_page("pages/datasets.py")
    at.run()
    if view:
        at.session_state["datasets_view"] = view
        at.run()
    return at


def assert_clean(at) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert not at.error, [e.value for e in at.error]


def test_app_runs(synthetic_data):
    at = run_app()
    assert_clean(at)
    assert at.title[0].value == "mathocr"


def test_datasets_page_shows_expressions(synthetic_data):
    at = datasets_page()
    assert_clean(at)
    assert [m.value for m in at.metric] == ["5", "2", "2", "10"]
    assert "2 file(s) could not be read" in at.caption[1].value
    table = at.dataframe[0].value
    assert len(table) == 9 and table["id"].iloc[0] == "synth_h1"
    # the first match in detail: its ink, how it was written, its truth typeset, its symbols, its metadata
    assert at.subheader[0].value == "synth_h1"
    assert at.latex[0].value.strip("$\n") == "x + 1"
    ink, pen, symbols = at.image
    assert len(ink.value) == 1 and symbols.captions == ["x", "+", "1"]
    assert len(pen.value) == 1 and pen.captions[0].startswith("how it was written")
    meta = at.dataframe[1].value
    assert dict(zip(meta["field"], meta["value"]))["writer"] == "writer1"


def test_datasets_page_filters_expressions(synthetic_data):
    at = datasets_page()
    at.selectbox(key="expr_token").set_value("\\frac").run()
    assert_clean(at)
    assert list(at.dataframe[0].value["id"]) == ["synth_k2"]
    assert at.latex[0].value.strip("$\n") == "\\frac { 1 } { 2 }"
    at.selectbox(key="expr_token").set_value(None)
    at.slider(key="expr_length").set_value((4, 7)).run()
    assert set(at.dataframe[0].value["id"]) == {"synth_h2", "synth_k2", "synth_m1"}
    at.pills(key="expr_splits").set_value(["test"]).run()
    assert_clean(at)
    assert "No expression matches" in at.info[0].value
    at.slider(key="expr_length").set_value((0, 7)).run()
    assert set(at.dataframe[0].value["id"]) == {"synth_t1", "synth_t2"}
    at.multiselect(key="expr_sources").set_value(["CROHME2014"]).run()
    assert len(at.dataframe[0].value) == 2


def test_datasets_page_shows_a_symbol_grid(synthetic_data):
    at = datasets_page("Symbols")
    assert_clean(at)
    assert at.selectbox(key="sym_class").value == "x"  # the most frequent class first
    assert len(at.image) == 1 and "2 of the 2 samples of `x` in train" in at.caption[-1].value
    at.selectbox(key="sym_class").set_value("a").run()
    at.button(key="sym_shuffle").click().run()
    assert_clean(at)
    assert "samples of `a`" in at.caption[-1].value
    at.segmented_control(key="sym_split").set_value("test").run()
    assert_clean(at)
    assert "in test" in at.caption[-1].value and len(at.image) == 1


def test_datasets_page_shows_statistics(synthetic_data):
    at = datasets_page("Statistics")
    assert_clean(at)
    assert len(at.get("vega_lite_chart")) == 2
    assert "Symbol classes in train** (10 classes, 16 symbols)" in at.markdown[0].value
    by_source = at.dataframe[0].value
    assert by_source.loc["KAIST", "train"] == 2 and by_source.loc["CROHME2013", "validation"] == 2


def test_datasets_page_shows_made_up_training_formulas(synthetic_data):
    at = datasets_page("Made up")
    assert_clean(at)
    # typeset layouts first: CROHME's training truths (and im2latex's in their vocabulary), written in CROHME's ink
    assert at.segmented_control(key="made_up_kind").value == "typeset layouts"
    first = [c.value for c in at.code]
    assert len(at.image) == len(first) > 0
    truths = {"x + 1", "x ^ { 2 }", "a = b", "\\frac { 1 } { 2 }", "( a + b )"}
    assert set(first) <= truths, first
    at.button(key="made_up_again").click().run()
    assert_clean(at)
    assert len(at.image) > 0
    at.segmented_control(key="made_up_kind").set_value("two on a line").run()
    assert_clean(at)
    pairs = [c.value for c in at.code]
    assert pairs and all(len(p.split()) >= 4 for p in pairs), pairs
    assert any("one line" in m.value for m in at.markdown)


def test_datasets_page_shows_im2latex(synthetic_data):
    at = datasets_page("im2latex")
    assert_clean(at)
    assert len(at.latex) == 8
    at.selectbox(key="im2_token").set_value("\\frac").run()
    at.segmented_control(key="im2_split").set_value("train").run()
    assert_clean(at)
    table = at.dataframe[0].value
    assert len(table) > 0 and all("\\frac" in latex for latex in table["latex"])
    assert set(table["split"]) == {"train"}


def test_datasets_page_without_data_says_what_to_do(empty_data):
    at = datasets_page()
    assert_clean(at)
    assert f"CROHME 2016 is not in `{empty_data}`" in at.warning[0].value
    help_text = at.markdown[0].value
    assert "TrainINKML/` (missing)" in help_text and data.CROHME_HELP in help_text
    assert at.text_input(key="datasets_root").value in ("", None)
    assert not at.dataframe and not at.image


def test_datasets_page_with_only_im2latex(tmp_path, monkeypatch):
    from fixtures import write_im2latex

    monkeypatch.setenv("MATHOCR_DATA", str(write_im2latex(tmp_path / "data")))
    at = datasets_page("im2latex")
    assert_clean(at)
    assert "CROHME 2016 is not in" in at.warning[0].value
    assert len(at.latex) == 8


def test_datasets_page_can_use_another_directory_for_the_session(empty_data, tmp_path):
    from fixtures import write_synthetic_data

    other = write_synthetic_data(tmp_path / "other")
    at = datasets_page()
    at.text_input(key="datasets_root").input(str(other)).run()
    assert_clean(at)
    assert not at.warning
    assert len(at.dataframe[0].value) == 9
    at.text_input(key="datasets_root").input(str(tmp_path / "nowhere")).run()
    assert_clean(at)
    assert any("is not a folder" in w.value for w in at.warning)


@pytest.mark.parametrize("view", ["Expressions", "Symbols", "Statistics", "im2latex"])
def test_each_view_without_data_has_no_exception(empty_data, view):
    at = datasets_page(view)
    assert_clean(at)
