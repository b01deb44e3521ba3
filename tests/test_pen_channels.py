"""What the pen did, beside the ink (``render.pen_channels``): the direction it moved and where
strokes begin and end, as a formula model with ``pen_channels`` reads them from InkML or the canvas
(``--pen``); pictures reach it with those channels zero, and a warm start from a model of the ink
alone first computes exactly what that model did."""

from __future__ import annotations

import dataclasses
import json

import numpy as np
import pytest

from test_formula_model import save_tiny_recognizer, synthetic_formulas, tiny_config

RIGHT = [np.array([[0.0, 0.0], [10.0, 0.0]])]
DOWN = [np.array([[0.0, 0.0], [0.0, 10.0]])]


def channels_of(strokes, height=32, width=64):
    from mathocr.render import ink_array, pen_channels, render_strokes

    ink = ink_array(render_strokes(strokes, height, width, stroke_width=2.0))
    return ink, pen_channels(strokes, ink, width=width, stroke_width=2.0)


@pytest.mark.parametrize("strokes, axis, sign", [(RIGHT, 0, 1), ([RIGHT[0][::-1]], 0, -1), (DOWN, 1, 1),
                                                  ([DOWN[0][::-1]], 1, -1)])
def test_the_pen_channels_hold_the_direction_the_pen_moved_where_the_ink_is(strokes, axis, sign):
    ink, pen = channels_of(strokes)
    assert pen.shape == (*ink.shape, 3) and pen.dtype == np.float32
    solid = ink > 0.9
    assert solid.sum() > 20
    np.testing.assert_allclose(pen[solid, axis], sign * ink[solid], atol=1e-5)  # a unit vector, times the ink
    np.testing.assert_allclose(pen[solid, 1 - axis], 0, atol=1e-5)
    assert np.all(pen[ink == 0, :2] == 0)  # nothing off the ink


def test_the_ends_channel_marks_where_strokes_begin_and_end():
    ink, pen = channels_of(RIGHT)
    ys, xs = np.nonzero(ink > 0.9)
    ends = pen[..., 2]
    assert set(np.unique(ends)) == {0.0, 1.0}
    left, right, middle = xs.min(), xs.max(), (xs.min() + xs.max()) // 2
    row = int(np.median(ys))
    assert ends[row, left] == 1 and ends[row, right] == 1 and ends[row, middle] == 0
    # a dot is all end, and has no direction
    ink, pen = channels_of([np.array([[5.0, 5.0]]), RIGHT[0] + [0.0, 8.0]])
    assert pen[..., 2].sum() > 0 and np.isfinite(pen).all()
    with pytest.raises(ValueError, match="no ink"):
        channels_of([])


def test_two_strokes_over_the_same_ink_in_opposite_directions_cancel():
    there_and_back = [RIGHT[0], RIGHT[0][::-1]]
    ink, pen = channels_of(there_and_back)
    assert np.abs(pen[ink > 0.9, 0]).max() < 1e-5


def test_a_formula_input_with_pen_channels_has_the_same_ink():
    from mathocr.formula_data import WIDTH_STEP, formula_input, pad_batch, with_channels

    strokes = synthetic_formulas()[2].strokes
    ink, both = formula_input(strokes), formula_input(strokes, pen=True)
    assert ink.ndim == 2 and both.shape == (*ink.shape, 4)
    np.testing.assert_array_equal(both[..., 0], ink)
    assert np.abs(both[..., 1:3]).max() > 0.5 and both[..., 3].max() == 1.0
    # another model's channels: the ink alone, or zero where the pen is not known
    assert with_channels(both, 1) is not both and np.array_equal(with_channels(both, 1), ink)
    widened = with_channels(ink, 4)
    assert widened.shape == both.shape and np.array_equal(widened[..., 0], ink) and not widened[..., 1:].any()
    assert np.array_equal(with_channels(both, 4), both) and with_channels(ink, 1) is ink
    batch = pad_batch([both, both[:, :10]], margin=5)
    assert batch.shape == (2, ink.shape[0], int(np.ceil((ink.shape[1] + 5) / WIDTH_STEP) * WIDTH_STEP), 4)
    np.testing.assert_array_equal(batch[0, :, : ink.shape[1]], both)
    np.testing.assert_array_equal(batch[1, :, :10], both[:, :10])
    assert not batch[1, :, 10:].any()


def test_training_batches_with_the_pen_and_its_dropout():
    from mathocr.formula_data import TrainingBatches
    from mathocr.latex import Vocabulary

    formulas = synthetic_formulas()
    vocab = Vocabulary.from_sequences(f.tokens for f in formulas)
    with pytest.raises(ValueError, match="pen dropout"):
        TrainingBatches(formulas, vocab, pen=True, pen_dropout=1.5)
    for dropout in (0.0, 1.0):
        source = TrainingBatches(formulas, vocab, batch_size=6, seed=0, pen=True, pen_dropout=dropout)
        (images, _), _ = next(iter(source))
        assert images.shape[-1] == source.channels == 4 and images[..., 0].max() > 0.9
        assert bool(np.abs(images[..., 1:]).max() > 0) == (dropout == 0.0)
    (images, _), _ = next(iter(TrainingBatches(formulas, vocab, batch_size=6, seed=0, pen=True, augment=False)))
    assert images.shape[-1] == 4 and np.abs(images[..., 1:]).max() > 0  # validation: never dropped
    (images, _), _ = next(iter(TrainingBatches(formulas, vocab, batch_size=6, seed=0)))
    assert images.shape[-1] == 1


def test_a_warm_start_gives_the_pen_channels_no_weight_so_the_model_first_computes_what_its_source_did():
    import keras

    from mathocr.formula_data import TrainingBatches
    from mathocr.formula_model import build_formula_model, compile_formula_model, main_logits, warm_start
    from mathocr.latex import Vocabulary

    keras.utils.set_random_seed(3)
    formulas = synthetic_formulas()
    vocab = Vocabulary.from_sequences(f.tokens for f in formulas)
    source = compile_formula_model(build_formula_model(len(vocab), config=tiny_config()), 1e-2)
    (ink, tokens), y = next(iter(TrainingBatches(formulas, vocab, batch_size=6, seed=0, augment=False)))
    for _ in range(3):
        source.train_on_batch((ink, tokens), y)
    reader = compile_formula_model(build_formula_model(len(vocab), config=dataclasses.replace(tiny_config(),
                                                                                              pen_channels=3)), 1e-2)
    assert warm_start(reader, source) == ["encoder/conv1"]
    (both, _), _ = next(iter(TrainingBatches(formulas, vocab, batch_size=6, seed=0, augment=False, pen=True)))
    np.testing.assert_array_equal(both[..., :1], ink)
    before = main_logits(source.predict_on_batch((ink, tokens)))
    np.testing.assert_allclose(main_logits(reader.predict_on_batch((both, tokens))), before, atol=1e-5)
    for _ in range(3):  # then it learns from the pen too
        reader.train_on_batch((both, tokens), y)
    kernel = reader.get_layer("encoder").get_layer("conv1").get_weights()[0]
    assert kernel.shape[2] == 4 and np.abs(kernel[:, :, 1:]).max() > 0
    blind = both.copy()
    blind[..., 1:] = 0
    assert not np.allclose(main_logits(reader.predict_on_batch((both, tokens))),
                           main_logits(reader.predict_on_batch((blind, tokens))), atol=1e-4)
    # the other way round (a model of the ink alone from one of the pen) is refused
    with pytest.raises(ValueError, match="other shapes"):
        warm_start(build_formula_model(len(vocab), config=tiny_config()), reader)


def test_a_recognizer_that_reads_the_pen_gets_it_from_strokes_and_zeros_from_pictures(tmp_path):
    import keras

    from mathocr.formula_decode import FormulaRecognizer
    from mathocr.formula_model import build_formula_model, warm_start
    from mathocr.render import render_strokes

    ink_only = FormulaRecognizer.load(save_tiny_recognizer(tmp_path / "ink", train_steps=10))
    keras.utils.set_random_seed(0)
    model = build_formula_model(len(ink_only.vocab), config=dataclasses.replace(tiny_config(), pen_channels=3))
    warm_start(model, ink_only.model)
    conv1 = model.get_layer("encoder").get_layer("conv1")
    kernel = conv1.get_weights()[0]
    kernel[:, :, 1:] = np.random.default_rng(0).normal(0, 0.5, kernel[:, :, 1:].shape)  # as if trained
    conv1.set_weights([kernel])
    FormulaRecognizer(model, ink_only.vocab).save(tmp_path / "pen", {"kind": "handwritten"})
    reader = FormulaRecognizer.load(tmp_path / "pen")
    assert reader.channels == 4 and ink_only.channels == 1
    assert json.loads((tmp_path / "pen" / "config.json").read_text())["height"] == 48
    strokes = synthetic_formulas()[0].strokes
    array = reader.input_from_strokes(strokes)
    assert array.shape[2] == 4 and np.abs(array[..., 1:]).max() > 0
    np.testing.assert_array_equal(array[..., 0], ink_only.input_from_strokes(strokes))
    picture = render_strokes(strokes, 120, max_width=2000, stroke_width=4)
    from_picture = reader.input_from_image(picture)
    assert from_picture.shape[2] == 4 and not from_picture[..., 1:].any()
    np.testing.assert_array_equal(from_picture[..., 0], ink_only.input_from_image(picture))
    # the pen changes what it reads, greedy and beam alike; with the channels zero it is its source
    for width in (1, 3):
        with_pen, without = reader.recognize_array(array, width), reader.recognize_array(from_picture, width)
        assert with_pen.image.shape == array.shape[:1] + with_pen.image.shape[1:]
        assert with_pen.logprob != pytest.approx(reader.recognize_array(with_channels_zero(array), width).logprob)
        assert without.latex == ink_only.recognize_array(from_picture[..., 0], width).latex
    # what it read comes back with the answer, for the attention page's pictures and feature maps
    result = reader.recognize_array(array, 1)
    assert result.pen.shape == (*result.image.shape, 3) and result.input.shape == (*result.image.shape, 4)
    np.testing.assert_array_equal(result.pen[:, : array.shape[1]], array[..., 1:])
    maps = reader.feature_maps(result.input, "relu1")
    assert maps.shape[:2] == result.image.shape and not np.allclose(maps, reader.feature_maps(result.image, "relu1"))
    alone = ink_only.recognize_array(array[..., 0], 1)
    assert alone.pen is None and alone.input is alone.image
    # a pair of models reading different channels: each reads the input as its own
    reader.rescorer, reader.rescore_weight = ink_only, 0.75
    paired = reader.recognize_array(array, 3)
    ids = [tuple(reader.vocab.encode(c.tokens)) for c in paired.candidates]
    lengths = np.array([len(i) + 1 for i in ids])
    agreements = np.array(paired.extra["agreements"])
    assert agreements[:, 1] == pytest.approx(ink_only.agreement(ink_only.score(array[..., 0], ids), lengths), abs=1e-4)
    assert agreements[:, 0] == pytest.approx(reader.agreement(reader.score(array, ids), lengths), abs=1e-4)
    assert np.array_equal(ink_only.at_height(array), array[..., 0])


def with_channels_zero(array):
    out = array.copy()
    out[..., 1:] = 0
    return out


def test_the_training_command_reads_the_pen_from_a_warm_start(tmp_path, capsys):
    import keras

    from mathocr.formula_decode import FormulaRecognizer
    from training.formulas import main

    from fixtures import symbols_in_a_row, write_inkml
    from test_formula_model import SYNTHETIC

    inkml = tmp_path / "inkml"
    inkml.mkdir()
    for i, (labels, truth, offsets) in enumerate(SYNTHETIC):
        write_inkml(inkml / f"f{i}.inkml", symbols_in_a_row(labels, y_offsets=offsets), truth)
    common = ["--runs", str(tmp_path / "runs"), "--train-dir", str(inkml), "--val-dir", str(inkml), "--no-test",
              "--filters", "4,8,8,8,8", "--units", "16", "--attention-dim", "16", "--batch-size", "6",
              "--verbose", "0", "--epochs", "1"]
    assert main(["--name", "ink"] + common + ["--export", str(tmp_path / "ink")]) == 0
    assert main(["--name", "pen"] + common + ["--pen", "--pen-dropout", "0.5", "--init-from", str(tmp_path / "ink"),
                                              "--export", str(tmp_path / "pen")]) == 0
    config = json.loads((tmp_path / "runs" / "formulas" / "pen" / "config.json").read_text())
    assert config["model"]["pen_channels"] == 3 and config["pen_dropout"] == 0.5
    reader = FormulaRecognizer.load(tmp_path / "pen")
    assert reader.channels == 4
    kernel = reader.model.get_layer("encoder").get_layer("conv1").get_weights()[0]
    assert np.abs(kernel[:, :, 1:]).max() > 0  # trained from zero
    first = keras.saving.load_model(tmp_path / "ink" / "formulas.keras", compile=False)
    assert first.get_layer("encoder").get_layer("conv1").get_weights()[0].shape[2] == 1
    with pytest.raises(SystemExit, match="only handwritten"):
        main(["--name", "typeset", "--dataset", "im2latex", "--pen"] + common)
    # evaluated on InkML with what the pen did, and without it (--no-pen: the channels zero)
    from mathocr.cli import main as cli

    capsys.readouterr()
    reports = []
    for extra in ([], ["--no-pen"]):
        assert cli(["evaluate", "formulas", "--model", str(tmp_path / "pen"), "--inkml-dir", str(inkml), "--json",
                    *extra]) == 0
        reports.append(json.loads(capsys.readouterr().out))
    assert [r["pen_channels"] for r in reports] == [True, False] and reports[0]["n"] == reports[1]["n"] == 6
    reader.read_pen = False
    array = reader.input_from_strokes(synthetic_formulas()[0].strokes)
    assert array.shape[2] == 4 and not array[..., 1:].any()


def test_a_picture_of_the_pen_colours_the_ink_by_its_direction():
    from mathocr.render import pen_picture

    ink, pen = channels_of([RIGHT[0], DOWN[0] + [20.0, -5.0]])
    picture = pen_picture(ink, pen)
    assert picture.shape == (*ink.shape, 3) and picture.dtype == np.uint8
    assert np.all(picture[(ink == 0) & (pen[..., 2] == 0)] == 255)  # white paper
    solid = ink > 0.9
    rightwards = solid & (pen[..., 0] > 0.9)
    downwards = solid & (pen[..., 1] > 0.9)
    assert rightwards.any() and downwards.any()
    red, green, blue = (picture[rightwards].astype(int)[:, k].mean() for k in range(3))
    assert red > 200 and green < 60 and blue < 60  # rightwards: red
    red, green, blue = (picture[downwards].astype(int)[:, k].mean() for k in range(3))
    assert green > 150 and blue < 60  # downwards: yellow-green
