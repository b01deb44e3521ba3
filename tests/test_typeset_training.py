"""Typeset formulas end to end on synthetic im2latex CSVs: ``data render`` (LaTeX where installed,
else mathtext), the rendered splits, batches, a smoke training run of ``training.formulas
--dataset im2latex``, the evaluation command on the held-out split, and warm starts."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from fixtures import IM2LATEX_ROWS, write_im2latex
from mathocr.typeset import latex_available, render_latex, render_latex_batch

KEYS = {"n", "exprate", "le1", "le2", "bleu4", "token_edit_distance", "ms_per_formula"}
BROKEN = (r"\frac { 1 } {", "broken.png")
TINY = ["--filters", "4,8,8,8,8", "--units", "16", "--attention-dim", "16", "--batch-size", "8", "--verbose", "0"]

needs_latex = pytest.mark.skipif(not latex_available(), reason="LaTeX (latex, dvipng) is not installed; ./test.sh installs it")


@pytest.fixture
def im2latex_data(tmp_path, monkeypatch):
    root = write_im2latex(tmp_path / "data", [*IM2LATEX_ROWS, BROKEN])
    monkeypatch.setenv("MATHOCR_DATA", str(root))
    monkeypatch.setenv("MATHOCR_CACHE", str(tmp_path / "cache"))
    return root


def run_cli(argv, capsys):
    from mathocr.cli import main

    code = main(argv)
    return code, capsys.readouterr()


@pytest.fixture
def rendered(im2latex_data, capsys):
    code, out = run_cli(["data", "render", "--json", "--workers", "1"], capsys)
    assert code == 0
    return json.loads(out.out)


def test_render_command_draws_the_set_and_counts_the_failure(rendered, capsys):
    from mathocr.typeset_data import load_typeset_formulas

    assert rendered["rendered"] == len(IM2LATEX_ROWS) and rendered["failed"] == 1
    assert rendered["engine"] == ("latex" if latex_available() else "mathtext")
    index = json.loads((Path(rendered["directory"]) / "index.json").read_text())
    assert list(index["failed"]) == ["broken.png"]
    splits = {s: load_typeset_formulas(s) for s in ("train", "validation", "test")}
    assert sum(len(v) for v in splits.values()) == len(IM2LATEX_ROWS)
    assert not {f.id for f in splits["test"]} & {f.id for f in splits["train"]}  # held out
    # a second run draws nothing new
    code, out = run_cli(["data", "render", "--json", "--workers", "1"], capsys)
    assert code == 0 and json.loads(out.out)["rendered"] == len(IM2LATEX_ROWS)


def test_render_command_can_draw_one_split_only(im2latex_data, tmp_path, capsys):
    from mathocr.data import load_im2latex
    from mathocr.typeset_data import load_typeset_formulas

    code, out = run_cli(["data", "render", "--json", "--workers", "1", "--split", "test"], capsys)
    report = json.loads(out.out)
    test_ids = {f.id for f in load_im2latex(split="test")} - {BROKEN[1]}  # the broken one fails, counted
    assert code == 0 and report["rendered"] == len(test_ids) < len(IM2LATEX_ROWS)
    assert report["rendered"] + report["failed"] == len(load_im2latex(split="test"))
    assert {f.id for f in load_typeset_formulas("test")} == test_ids
    drawn = {p.name for p in Path(report["directory"]).glob("*.png")}
    assert drawn == {f"{Path(i).stem}.png" for i in test_ids}
    with pytest.raises(Exception, match="no rendered im2latex train"):
        load_typeset_formulas("train")


def test_typeset_batches_have_the_model_height_and_bucketed_widths(rendered):
    from mathocr.latex import Vocabulary
    from mathocr.typeset_data import TypesetBatches, load_typeset_formulas

    train = load_typeset_formulas("train")
    vocab = Vocabulary.from_sequences(f.tokens for f in train)
    for augment in (False, True):
        source = TypesetBatches(train, vocab, batch_size=8, augment=augment, height=32, max_width=320)
        (images, tokens_in), targets = next(iter(source))
        assert images.shape[1] == 32 and images.shape[2] % 32 == 0 and images.shape[2] <= 320
        assert images.max() > 0.5 and images.min() >= 0  # ink is bright on black, as for handwriting
        assert tokens_in.shape == targets.shape and (tokens_in[:, 0] == vocab.start_id).all()


def test_token_dropout_hides_previous_tokens_but_never_the_start_or_the_targets(rendered):
    from mathocr.latex import Vocabulary
    from mathocr.typeset_data import TypesetBatches, load_typeset_formulas

    train = load_typeset_formulas("train")
    vocab = Vocabulary.from_sequences(f.tokens for f in train)
    plain = TypesetBatches(train, vocab, batch_size=8, augment=False, height=32, max_width=320, seed=3)
    hidden = TypesetBatches(train, vocab, batch_size=8, augment=False, height=32, max_width=320, seed=3,
                            token_dropout=0.5)
    (_, clean_in), clean_targets = plain.make_batch(list(range(8)))
    (_, tokens_in), targets = hidden.make_batch(list(range(8)))
    np.testing.assert_array_equal(targets, clean_targets)
    assert (tokens_in[:, 0] == vocab.start_id).all()
    changed = tokens_in != clean_in
    assert changed.any() and (tokens_in[changed] == vocab.unk_id).all()
    assert (tokens_in[clean_in == vocab.pad_id] == vocab.pad_id).all()
    with pytest.raises(ValueError, match="token dropout"):
        TypesetBatches(train, vocab, augment=False, token_dropout=1.0)


def test_other_fonts_render_and_stand_in_for_the_main_rendering_in_training(rendered, tmp_path, capsys):
    from PIL import Image

    from mathocr.latex import Vocabulary
    from mathocr.typeset import render_formula
    from mathocr.typeset_data import TypesetBatches, load_typeset_formulas

    code, out = run_cli(["data", "render", "--engine", "mathtext-dejavusans", "--workers", "1", "--json",
                         "--out", str(tmp_path / "dejavu")], capsys)
    report = json.loads(out.out)
    assert code == 0 and report["engine"] == "mathtext-dejavusans" and report["rendered"] == len(IM2LATEX_ROWS)
    sans, serif = render_formula("x ^ { 2 }", "mathtext-dejavusans"), render_formula("x ^ { 2 }", "mathtext")
    assert sans.size != serif.size or not np.array_equal(np.asarray(sans), np.asarray(serif))
    with pytest.raises(ValueError, match="unknown engine"):
        render_formula("x", "mathtext-comic")

    train = load_typeset_formulas("train")
    vocab = Vocabulary.from_sequences(f.tokens for f in train)
    # a stand-in rendering that is unmistakable: a solid block of ink for every formula
    solid = tmp_path / "solid"
    solid.mkdir()
    for f in train:
        block = Image.new("L", (200, 40), 255)
        block.paste(0, (4, 4, 196, 36))
        block.save(solid / Path(f.image_path).name)
    for share, inky in ((1.0, True), (0.0, False)):
        source = TypesetBatches(train, vocab, batch_size=8, height=32, max_width=320, also=[tmp_path / "dejavu", solid],
                                also_share=share, seed=1)
        assert all(len(v) == 2 for v in source.variants)
        # half the draws pick the DejaVu rendering, half the block
        blocks = [source.image(i).mean() > 0.6 for i in range(len(train)) for _ in range(4)]
        assert any(blocks) if inky else not any(blocks)
        assert not all(blocks)  # sparse typeset ink, from the main or the DejaVu rendering

def test_typeset_training_smoke_run_exports_a_typeset_model_that_the_evaluation_reads(rendered, tmp_path, capsys):
    from mathocr.formula_decode import FormulaRecognizer
    from training.formulas import main

    assert main(["--dataset", "im2latex", "--name", "ts", "--runs", str(tmp_path / "runs"), "--epochs", "1",
                 "--height", "32", "--max-width", "320", "--export", str(tmp_path / "typeset"), *TINY]) == 0
    run = tmp_path / "runs" / "formulas" / "ts"
    evaluation = json.loads((run / "evaluation.json").read_text())
    assert KEYS <= set(evaluation["test"]) and evaluation["test"]["n"] >= 1
    recognizer = FormulaRecognizer.load(tmp_path / "typeset")
    assert recognizer.kind == "typeset" and recognizer.height == 32
    assert recognizer.margins == (64, 128, 192)  # three readings, read at once (EXPORT_MARGINS)
    assert "\\alpha" in recognizer.vocab  # its own vocabulary, from im2latex
    capsys.readouterr()
    code, out = run_cli(["evaluate", "formulas", "--model", str(tmp_path / "typeset"), "--im2latex",
                         "--split", "validation", "--json"], capsys)
    assert code == 0
    scores = json.loads(out.out)
    assert KEYS <= set(scores) and scores["n"] >= 1


def test_warm_start_keeps_weights_and_vocabulary_and_refuses_another_architecture(rendered, tmp_path):
    from mathocr.formula_decode import FormulaRecognizer
    from training.formulas import main

    common = ["--dataset", "im2latex", "--runs", str(tmp_path / "runs"), "--epochs", "1", "--height", "32",
              "--max-width", "320", "--no-test", *TINY]
    assert main([*common, "--name", "first", "--export", str(tmp_path / "first")]) == 0
    # learning rate 0: the warm-started run keeps exactly the weights it started from
    assert main([*common, "--name", "warm", "--init-from", str(tmp_path / "first"), "--learning-rate", "0",
                 "--export", str(tmp_path / "warm")]) == 0
    first, warm = FormulaRecognizer.load(tmp_path / "first"), FormulaRecognizer.load(tmp_path / "warm")
    assert first.vocab.tokens == warm.vocab.tokens
    for a, b in zip(first.model.trainable_weights, warm.model.trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # the weights do not depend on the input height (convolutions, sinusoidal grid positions): a taller run
    # starts from them too (session 16 warm-started the 48-pixel handwriting model at 64)
    taller = [c if c != "32" else "48" for c in common]
    assert main([*taller, "--name", "taller", "--init-from", str(tmp_path / "first"), "--learning-rate", "0",
                 "--export", str(tmp_path / "taller")]) == 0
    tall = FormulaRecognizer.load(tmp_path / "taller")
    assert tall.height == 48
    for a, b in zip(first.model.trainable_weights, tall.model.trainable_weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    # residual blocks added to the encoder start as the identity, and a counting head with no effect on
    # the logits (``--counting``); every other weight comes from the source
    assert main([*common, "--name", "deeper", "--init-from", str(tmp_path / "first"), "--learning-rate", "0",
                 "--blocks", "1", "--top-blocks", "1", "--counting", "0.1", "--export", str(tmp_path / "deeper")]) == 0
    deeper = FormulaRecognizer.load(tmp_path / "deeper").model
    assert {"res1", "top1"} <= {layer.name for layer in deeper.get_layer("encoder").layers}
    assert {"counting", "count_bias"} <= {layer.name for layer in deeper.layers}
    assert not np.any(deeper.get_layer("count_bias").kernel.numpy())
    recorded = json.loads((tmp_path / "deeper" / "config.json").read_text())["model"]
    assert (recorded["blocks"], recorded["top_blocks"], recorded["counting"]) == (1, 1, 0.1)
    for name in ("conv1", "bn5"):
        for a, b in zip(first.model.get_layer("encoder").get_layer(name).trainable_weights,
                        deeper.get_layer("encoder").get_layer(name).trainable_weights):
            np.testing.assert_array_equal(a.numpy(), b.numpy())
    for a, b in zip(first.model.get_layer("logits").weights, deeper.get_layer("logits").weights):
        np.testing.assert_array_equal(a.numpy(), b.numpy())
    with pytest.raises(SystemExit, match="not the same architecture"):
        main([*common, "--name", "other", "--init-from", str(tmp_path / "first"), "--units", "24"])
    with pytest.raises(SystemExit, match="not the same architecture"):  # blocks and heads are added, never dropped
        main([*common, "--name", "shallower", "--init-from", str(tmp_path / "deeper")])


@needs_latex
def test_batch_rendering_isolates_the_broken_formula_and_matches_single_runs():
    formulas = [r"x ^ { 2 }", r"\frac { 1 } {", r"\sqrt { y } + \alpha", r"\begin{array} { c c } a & b \end{array}"]
    results = render_latex_batch(formulas)
    assert [isinstance(r, Exception) for r in results] == [False, True, False, False]
    assert "latex failed" in str(results[1])
    for formula, image in zip(formulas[2:], results[2:]):
        assert image.size == render_latex(formula).size


@pytest.mark.data
@needs_latex
def test_shipped_typeset_model_reads_held_out_formulas(real_data, tmp_path, capsys):
    """The shipped typeset model on 24 formulas of im2latex's held-out test split, drawn by LaTeX here:
    the preprocessing the model was trained with and the one the evaluation uses still agree."""
    from mathocr.data import load_im2latex
    from mathocr.formula_decode import SHIPPED_MODEL_DIR
    from mathocr.typeset import render_formula_set

    model = SHIPPED_MODEL_DIR.parent / "typeset"
    if not (model / "formulas.keras").exists():
        pytest.skip(f"no shipped typeset model at {model}")
    if not (real_data / "im2latex").is_dir():
        pytest.skip(f"im2latex is not under {real_data}")
    test = load_im2latex(real_data, "test")[:24]
    result = render_formula_set([(f.id, f.latex) for f in test], tmp_path / "rendered", workers=1)
    assert len(result.rendered) >= 20
    code, out = run_cli(["evaluate", "formulas", "--model", str(model), "--im2latex", "--rendered",
                         str(tmp_path / "rendered"), "--data", str(real_data), "--json"], capsys)
    assert code == 0
    scores = json.loads(out.out)
    assert scores["n"] == len(result.rendered) and KEYS <= set(scores)
    # 0.85 on the whole split (models/typeset/MODEL_CARD.md); far lower means the inputs no longer match
    assert scores["bleu4"] > 0.6, scores
