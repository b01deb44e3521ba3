"""The training page through AppTest: bad settings refused, real smoke runs started from the page
(symbols; typeset formulas on synthetic im2latex), followed to the end, their curves shown, their
models promoted and used by the recognizer pages."""

import time
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from mathocr import jobs
from mathocr.runs import list_runs
from test_typeset_training import im2latex_data, rendered  # noqa: F401  (fixtures: synthetic im2latex, drawn)

APP = str(Path(__file__).resolve().parent.parent / "app.py")
SMOKE = "smoke (about a minute)"


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setenv("MATHOCR_RUNS", str(tmp_path / "runs"))
    return tmp_path / "runs"


def training_page() -> AppTest:
    at = AppTest.from_file(APP, default_timeout=120)
    at.run()
    at.switch_page("pages/training.py")
    at.run()
    assert not at.exception, at.exception
    return at


def fill(at: AppTest, kind: str, preset: str, **values) -> None:
    at.selectbox[0].set_value(kind).run()
    at.radio(key=f"preset-{kind}").set_value(preset).run()
    for name, value in values.items():
        at.text_input(key=f"{kind}-{preset}-{name}").set_value(str(value))


def press(at: AppTest, label: str) -> None:
    next(b for b in at.button if b.label == label).click().run()


def test_bad_settings_are_refused_with_a_message(runs_dir, synthetic_data):
    at = training_page()
    fill(at, "symbols", "custom", batch_size=-8, learning_rate="fast")
    press(at, "Start")
    errors = " ".join(e.value for e in at.error)
    assert "batch_size must be at least 1" in errors
    assert "learning_rate must be a number" in errors
    assert list_runs(root=runs_dir) == []


def test_a_smoke_run_from_the_page_finishes_and_its_model_can_be_promoted(runs_dir, synthetic_data):
    at = training_page()
    fill(at, "symbols", SMOKE, fraction=1.0, batch_size=4, epochs=2)
    press(at, "Start")
    assert not at.error, [e.value for e in at.error]
    [run] = list_runs(root=runs_dir)
    deadline = time.monotonic() + 240
    while jobs.run_state(run) not in jobs.FINAL_STATES and time.monotonic() < deadline:
        time.sleep(1)
    assert jobs.run_state(run) == "finished", jobs.log_tail(run)

    at.run()
    assert not at.exception, at.exception
    assert len(jobs.read_metrics(run)) == 2
    assert any("finished" in e.label for e in at.expander)
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart"), "no curve shown"

    press(at, "Use this model")
    assert any("now use the model" in s.value for s in at.success), [e.value for e in at.error]
    active = jobs.active_model_dir("symbols")
    assert active.parent.parent.name == "promoted"

    # the recognizer page loads the promoted model
    at.switch_page("pages/symbols.py")
    at.run()
    assert not at.exception, at.exception
    assert any(str(active) in c.value for c in at.caption), [c.value for c in at.caption]


def test_a_typeset_smoke_run_from_the_page_serves_the_typeset_pages(runs_dir, rendered, tmp_path, monkeypatch):
    from test_formula_model import save_tiny_recognizer

    at = training_page()
    at.selectbox[0].set_value("typeset").run()
    assert any("Trains on the 40 im2latex formulas rendered" in c.value for c in at.caption)
    fill(at, "typeset", SMOKE, fraction=1.0)
    press(at, "Start")
    assert not at.error, [e.value for e in at.error]
    [run] = list_runs(root=runs_dir)
    assert run.path.parent.name == "formulas"  # where training.formulas writes every run
    deadline = time.monotonic() + 300
    while jobs.run_state(run) not in jobs.FINAL_STATES and time.monotonic() < deadline:
        time.sleep(1)
    assert jobs.run_state(run) == "finished", jobs.log_tail(run)

    at.run()
    assert any(e.label.endswith(f"typeset / {run.name} — finished") for e in at.expander), [e.label for e in at.expander]
    press(at, "Use this model")
    assert any("The typeset pages now use the model" in s.value for s in at.success), [e.value for e in at.error]
    active = jobs.active_model_dir("typeset")
    assert active.parent.name == "typeset" and active.parent.parent.name == "promoted"
    assert jobs.active_model_dir("formulas") == jobs.MODELS_DIR / "formulas"  # the handwritten one is untouched

    # the attention viewer's typeset model is the promoted one
    monkeypatch.setenv("MATHOCR_FORMULA_MODEL", str(save_tiny_recognizer(tmp_path / "handwritten")))
    at.switch_page("pages/formula_attention.py")
    at.run()
    at.radio(key="attention_model").set_value("Typeset").run()
    assert not at.exception and not at.error, [e.value for e in at.error]
    assert any(str(active) in c.value for c in at.caption), [c.value for c in at.caption]
