"""The formula model: it learns, its stepped decoder computes what training computes, beam search
at width 1 is greedy decoding, and a saved model loads and answers the same.

A tiny model (a few thousand parameters) on synthetic formulas written with ``fixtures.glyph``.
"""

from __future__ import annotations

import numpy as np
import pytest

from fixtures import symbols_in_a_row

SYNTHETIC = [  # (labels, truth tokens, vertical offsets)
    (["x", "+", "1"], "x + 1", None),
    (["a", "=", "b"], "a = b", None),
    (["x", "2"], "x ^ { 2 }", [0, -0.5]),
    (["(", "a", "+", "b", ")"], "( a + b )", None),
    (["y", "-", "x"], "y - x", None),
    (["2", "\\alpha"], "2 \\alpha", None),
]


def synthetic_formulas():
    from mathocr.formula_data import InkFormula

    out = []
    for i, (labels, truth, offsets) in enumerate(SYNTHETIC):
        strokes = [s for _, group in symbols_in_a_row(labels, y_offsets=offsets) for s in group]
        out.append(InkFormula(f"f{i}", strokes, truth.split()))
    return out


def tiny_config(coverage: bool = True, guide_weight: float = 0.0, blocks: int = 0, top_blocks: int = 0,
                counting: float = 0.0):
    from mathocr.formula_model import FormulaModelConfig

    return FormulaModelConfig(filters=(4, 8, 8, 8, 8), embed_dim=8, units=16, attention_dim=16, position_dim=8,
                              coverage=coverage, coverage_filters=4, dropout=0.0, guide_weight=guide_weight,
                              blocks=blocks, top_blocks=top_blocks, counting=counting)


def targets_for(model, y):
    """A batch's token targets as a model with ``model_outputs`` outputs learns them."""
    from mathocr.formula_model import model_outputs

    n = len(model_outputs(model))
    return y if n == 1 else (y,) * n


def shift_logits_by_counts(model, seed: int = 0):
    """A counting model's count bias set to random values, and its head counting about half a
    symbol a cell (both start near zero, so that a model differs from one that ignores its counts
    only once trained)."""
    layer = model.get_layer("count_bias")
    layer.kernel.assign(np.random.default_rng(seed).normal(0, 0.5, layer.kernel.shape).astype(np.float32))
    density = model.get_layer("counting").density
    density.bias.assign(np.zeros(density.bias.shape, np.float32))


def save_tiny_recognizer(directory, train_steps: int = 0, kind: str = "handwritten", blocks: int = 0,
                         top_blocks: int = 0, counting: float = 0.0, pen: bool = False):
    """A tiny formula model with the synthetic vocabulary, saved as the app loads it; ``kind``
    goes to its config.json as training.formulas writes it ("handwritten" or "typeset"). With
    ``pen``, it reads what the pen did too (``pen_channels``)."""
    import dataclasses

    import keras

    from mathocr.formula_data import TrainingBatches
    from mathocr.formula_decode import FormulaRecognizer
    from mathocr.formula_model import build_formula_model, compile_formula_model, count_mask
    from mathocr.latex import Vocabulary

    keras.utils.set_random_seed(0)
    formulas = synthetic_formulas()
    vocab = Vocabulary.from_sequences(f.tokens for f in formulas)
    config = dataclasses.replace(tiny_config(blocks=blocks, top_blocks=top_blocks, counting=counting),
                                 pen_channels=3 if pen else 0)
    model = compile_formula_model(build_formula_model(len(vocab), config=config, count_mask=count_mask(vocab.tokens)),
                                  counting=counting)
    if counting:
        shift_logits_by_counts(model)
    batches = iter(TrainingBatches(formulas, vocab, batch_size=6, seed=0, pen=pen))
    for _ in range(train_steps):
        x, y = next(batches)
        model.train_on_batch(x, targets_for(model, y))
    FormulaRecognizer(model, vocab).save(directory, {"kind": kind})
    return directory


@pytest.fixture(scope="module")
def tiny():
    import keras

    from mathocr.formula_data import TrainingBatches
    from mathocr.formula_model import build_formula_model, compile_formula_model
    from mathocr.latex import Vocabulary

    keras.utils.set_random_seed(1)
    formulas = synthetic_formulas()
    vocab = Vocabulary.from_sequences(f.tokens for f in formulas)
    # guided: the first attention pass has its own loss, so both outputs are trained here
    model = compile_formula_model(build_formula_model(len(vocab), config=tiny_config(guide_weight=0.5)),
                                  learning_rate=1e-2, guide_weight=0.5)
    source = TrainingBatches(formulas, vocab, batch_size=6, seed=0, augment=False)
    return model, vocab, source


def test_a_few_training_steps_lower_the_loss(tiny):
    model, _, source = tiny
    inputs, targets = next(iter(source))
    first = model.test_on_batch(inputs, (targets, targets))[0]
    for _ in range(30):
        model.train_on_batch(inputs, (targets, targets))
    assert model.test_on_batch(inputs, (targets, targets))[0] < 0.7 * first


def test_label_smoothing_zero_is_keras_cross_entropy_and_more_spreads_the_target():
    import keras

    from mathocr.formula_model import SmoothedTokenLoss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 7)).astype("float32") * 3
    targets = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 6, 0], [2, 0, 0, 0, 0]])  # 0: padding
    keras_loss = keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)
    assert float(SmoothedTokenLoss(0.0)(targets, logits)) == pytest.approx(float(keras_loss(targets, logits)), 1e-5)

    # by hand: the mean over the 8 real tokens of -(0.9 log p(true) + 0.1 mean log p)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    real = targets != 0
    true = np.take_along_axis(log_p, targets[..., None], -1)[..., 0]
    expected = -(0.9 * true + 0.1 * log_p.mean(-1))[real].mean()
    assert float(SmoothedTokenLoss(0.1)(targets, logits)) == pytest.approx(float(expected), 1e-5)
    # padding changes nothing: the same real tokens with other logits at the padded places
    logits2 = logits.copy()
    logits2[~real] = 0.0
    assert float(SmoothedTokenLoss(0.1)(targets, logits2)) == pytest.approx(float(expected), 1e-5)

    # a certain, right prediction costs nothing unsmoothed, and is penalised smoothed: the best logits are finite
    sure = np.full((1, 1, 7), -30.0, "float32")
    sure[0, 0, 3] = 30.0
    assert float(SmoothedTokenLoss(0.0)([[3]], sure)) < 1e-6
    assert float(SmoothedTokenLoss(0.1)([[3]], sure)) > 1.0
    with pytest.raises(ValueError, match="label smoothing"):
        SmoothedTokenLoss(1.0)


def test_a_model_compiled_with_label_smoothing_trains_saves_and_resumes(tiny, tmp_path):
    import keras

    from mathocr.formula_model import build_formula_model, compile_formula_model

    _, vocab, source = tiny
    keras.utils.set_random_seed(1)
    model = compile_formula_model(build_formula_model(len(vocab), config=tiny_config(guide_weight=0.5)),
                                  learning_rate=1e-2, guide_weight=0.5, label_smoothing=0.1)
    inputs, targets = next(iter(source))
    first = model.test_on_batch(inputs, (targets, targets))[0]
    for _ in range(40):
        model.train_on_batch(inputs, (targets, targets))
    trained = model.test_on_batch(inputs, (targets, targets))[0]
    assert trained < 0.75 * first  # (smoothed, the loss cannot reach 0: its floor here is about 0.9)
    model.save(tmp_path / "last.keras")  # as a run checkpoints it; resuming loads it compiled
    again = keras.saving.load_model(tmp_path / "last.keras")
    assert again.loss[0].smoothing == pytest.approx(0.1)
    assert again.test_on_batch(inputs, (targets, targets))[0] == pytest.approx(trained, rel=1e-4)


def test_distillation_adds_the_kl_divergence_to_the_teacher_at_the_tokens_it_teaches():
    import keras

    from mathocr.formula_model import DistilledTokenLoss

    rng = np.random.default_rng(0)
    logits = rng.normal(size=(3, 5, 7)).astype("float32") * 3
    targets = np.array([[1, 2, 3, 0, 0], [4, 5, 6, 6, 0], [2, 0, 0, 0, 0]])  # 0: padding
    keras_loss = float(keras.losses.SparseCategoricalCrossentropy(from_logits=True, ignore_class=0)(targets, logits))
    # plain ids (validation) or no teacher anywhere: the usual cross-entropy
    assert float(DistilledTokenLoss(0.5)(targets, logits)) == pytest.approx(keras_loss, 1e-5)
    untaught = np.concatenate([targets[..., None], np.zeros((3, 5, 7))], -1).astype("float32")
    assert float(DistilledTokenLoss(0.5)(untaught, logits)) == pytest.approx(keras_loss, 1e-5)
    # a teacher that agrees with the model adds nothing
    p = np.exp(logits) / np.exp(logits).sum(-1, keepdims=True)
    taught = np.concatenate([targets[..., None], p * (targets != 0)[..., None]], -1).astype("float32")
    assert float(DistilledTokenLoss(0.5)(taught, logits)) == pytest.approx(keras_loss, 1e-4)
    # another teacher at the first token of each formula only: its KL divergence, weighted, averaged over real tokens
    q = rng.dirichlet(np.ones(7), size=3).astype("float32")
    taught = np.concatenate([targets[..., None], np.zeros((3, 5, 7))], -1).astype("float32")
    taught[:, 0, 1:] = q
    kl = (q * (np.log(q) - np.log(p[:, 0]))).sum(-1)
    expected = keras_loss + 0.5 * kl.sum() / (targets != 0).sum()
    assert float(DistilledTokenLoss(0.5)(taught, logits)) == pytest.approx(expected, 1e-4)
    assert float(DistilledTokenLoss(0.0)(taught, logits)) == pytest.approx(keras_loss, 1e-5)
    with pytest.raises(ValueError, match="at least 0"):
        DistilledTokenLoss(-1.0)


@pytest.mark.parametrize("flip", [False, True])
def test_a_teacher_gives_its_distribution_over_each_token_at_the_students_place_for_it(flip):
    """``teacher_targets``: for a teacher reading the other way round (``flip``), the probabilities
    it gives the i-th token of the truth, read from the end, land at the student's i-th position;
    the end token and padding are not taught."""
    import keras

    from mathocr.formula_data import TrainingBatches, pad_tokens
    from mathocr.formula_model import build_formula_model, teacher_targets
    from mathocr.latex import Vocabulary

    keras.utils.set_random_seed(3)
    formulas = synthetic_formulas()
    vocab = Vocabulary.from_sequences(f.tokens for f in formulas)
    teacher = build_formula_model(len(vocab), config=tiny_config(guide_weight=0.5))
    (images, _), targets = next(iter(TrainingBatches(formulas, vocab, batch_size=6, seed=0, augment=False)))
    packed = teacher_targets(teacher, images, targets, vocab.start_id, vocab.end_id, flip).numpy()
    assert packed.shape == (*targets.shape, 1 + len(vocab))
    np.testing.assert_array_equal(packed[..., 0], targets)
    # the teacher's own reading of each truth, built here from the token lists
    truths = [[int(t) for t in row if t not in (0, vocab.end_id)] for row in targets]
    tokens_in, _ = pad_tokens([t[::-1] if flip else t for t in truths], vocab)
    probs = keras.ops.convert_to_numpy(keras.ops.softmax(teacher([images, tokens_in], training=False)[0], -1))
    for row, truth in enumerate(truths):
        n = len(truth)
        for i in range(n):
            np.testing.assert_allclose(packed[row, i, 1:], probs[row, n - 1 - i if flip else i], atol=1e-5)
        assert not packed[row, n:, 1:].any()  # the end position and padding
    assert len({len(t) for t in truths}) > 1  # formulas of several lengths in the batch


@pytest.mark.parametrize("coverage, guide_weight, counting", [(True, 0.0, 0.0), (False, 0.0, 0.0), (True, 0.5, 0.0),
                                                             (True, 0.5, 0.1)])
def test_stepped_decoder_computes_what_training_computes(coverage, guide_weight, counting):
    """Teacher-forced logits from the parallel model equal the stepped decoder's, step by step:
    the GRU states and the coverage are carried the same way in both, and a counting model's
    counts shift the logits of every step in both."""
    import tensorflow as tf

    from mathocr.formula_data import TrainingBatches
    from mathocr.formula_decode import FormulaDecoder
    from mathocr.formula_model import build_formula_model, main_logits
    from mathocr.latex import Vocabulary

    formulas = synthetic_formulas()
    vocab = Vocabulary.from_sequences(f.tokens for f in formulas)
    model = build_formula_model(len(vocab), config=tiny_config(coverage, guide_weight, counting=counting))
    if counting:
        shift_logits_by_counts(model)
    (images, tokens_in), _ = next(iter(TrainingBatches(formulas, vocab, batch_size=6, seed=0, augment=False)))
    parallel = tf.nn.log_softmax(main_logits(model([images, tokens_in], training=False))).numpy()

    decoder = FormulaDecoder(model, vocab.start_id, vocab.end_id)
    features, memory, keys, h1, h2, _, shift = decoder._encode(tf.constant(images))
    assert np.abs(shift.numpy()).max() > 0.1 if counting else not np.any(shift.numpy())
    hf, wf = tf.shape(features)[1], tf.shape(features)[2]
    coverage_map = tf.zeros([len(images), hf * wf])
    for t in range(tokens_in.shape[1]):
        logp, h1, h2, coverage_map, _ = decoder._step(tf.constant(tokens_in[:, t]), h1, h2, coverage_map,
                                                      keys, memory, hf, wf, None, shift)
        np.testing.assert_allclose(logp.numpy(), parallel[:, t], atol=2e-4)
    # and so does the scorer's teacher-forced pass, which encodes one image once for many sequences
    for i in range(2):
        forced = decoder.forced_fn(images[i:i + 1], np.repeat(tokens_in[i:i + 1], 3, 0)).numpy()
        np.testing.assert_allclose(forced, np.repeat(parallel[i:i + 1], 3, 0), atol=2e-4)


def test_beam_search_of_width_one_is_greedy(tiny):
    from mathocr.formula_data import pad_batch, plain_images
    from mathocr.formula_decode import FormulaDecoder

    model, vocab, _ = tiny
    decoder = FormulaDecoder(model, vocab.start_id, vocab.end_id)
    for array in plain_images(synthetic_formulas())[:3]:
        image = pad_batch([array])
        greedy = decoder.greedy(image, 12)[0]
        beam = decoder.beam(image, 1, 12)[0]
        assert beam["ids"] == greedy["ids"]
        assert beam["logprob"] == pytest.approx(greedy["logprob"], abs=1e-4)
        assert len(beam["alphas"]) == len(greedy["alphas"])
        wide = decoder.beam(image, 4, 12)
        assert len(wide) == 4
        assert [h["logprob"] for h in wide] == sorted((h["logprob"] for h in wide), reverse=True)
        assert wide[0]["logprob"] >= greedy["logprob"] - 1e-4  # beam search finds at least as likely an answer


def test_attention_weights_are_a_distribution_over_the_grid(tiny):
    from mathocr.formula_data import pad_batch, plain_images
    from mathocr.formula_decode import FormulaDecoder

    model, vocab, _ = tiny
    decoder = FormulaDecoder(model, vocab.start_id, vocab.end_id)
    array = plain_images(synthetic_formulas())[3]
    hyp = decoder.greedy(pad_batch([array]), 10)[0]
    assert hyp["alphas"].shape[1:] == (3, int(np.ceil(array.shape[1] / 32) * 32) // 16)
    np.testing.assert_allclose(hyp["alphas"].sum(axis=(1, 2)), 1.0, atol=1e-4)


def test_saved_model_loads_and_answers_the_same(tmp_path):
    from mathocr.formula_decode import FormulaRecognizer

    directory = save_tiny_recognizer(tmp_path / "model")
    strokes = synthetic_formulas()[0].strokes
    first = FormulaRecognizer.load(directory).recognize_strokes(strokes, beam_width=3)
    second = FormulaRecognizer.load(directory).recognize_strokes(strokes, beam_width=3)
    assert first.tokens == second.tokens and first.logprob == pytest.approx(second.logprob, abs=1e-5)
    assert len(first.candidates) == 3
    assert 0.0 <= first.confidence <= 1.0


def test_the_model_reads_its_input_with_a_blank_margin(tmp_path):
    import json

    from mathocr.formula_data import WIDTH_STEP, pad_batch
    from mathocr.formula_decode import MARGIN, FormulaRecognizer

    assert pad_batch([np.ones((48, 40)), np.ones((48, 70))], margin=30).shape == (2, 48, 128, 1)  # 70 + 30 -> 128
    directory = save_tiny_recognizer(tmp_path / "model")
    recognizer = FormulaRecognizer.load(directory)
    assert recognizer.margins == (MARGIN,) and json.loads((directory / "config.json").read_text())["margins"] == [MARGIN]
    array = recognizer.input_from_strokes(synthetic_formulas()[0].strokes)
    result = recognizer.recognize_array(array)
    width = result.image.shape[1]  # what the model read, which its attention maps cover
    assert width >= array.shape[1] + MARGIN and width % WIDTH_STEP == 0
    assert (result.image[:, : array.shape[1]] == array).all() and not result.image[:, array.shape[1]:].any()
    assert result.attention.shape[2] * 16 == width  # the encoder's stride
    # a model saved without the key (before margins) gets the default; one saved with 0 keeps 0,
    # and so does one saved with the single "margin" of before several
    config = {k: v for k, v in json.loads((directory / "config.json").read_text()).items() if k != "margins"}
    (directory / "config.json").write_text(json.dumps(config))
    assert FormulaRecognizer.load(directory).margins == (MARGIN,)
    for key, value in (("margins", [0]), ("margin", 0)):
        (directory / "config.json").write_text(json.dumps({**config, key: value}))
        tight = FormulaRecognizer.load(directory).recognize_array(array)
        assert tight.image.shape[1] == int(np.ceil(array.shape[1] / WIDTH_STEP) * WIDTH_STEP)


def test_with_several_margins_the_likeliest_reading_per_token_answers(tmp_path):
    from mathocr.formula_decode import FormulaRecognizer

    recognizer = FormulaRecognizer.load(save_tiny_recognizer(tmp_path / "model"))
    arrays = [recognizer.input_from_strokes(f.strokes) for f in synthetic_formulas()[:4]]
    margins = (0, 48, 160)
    for beam in (1, 3):
        readings = {}
        for margin in margins:
            recognizer.margins = (margin,)
            readings[margin] = [recognizer.recognize_array(a, beam) for a in arrays]
        recognizer.margins = margins
        for i, array in enumerate(arrays):
            both = recognizer.recognize_array(array, beam)
            per_token = {m: r[i].extra["per_token"] for m, r in readings.items()}
            chosen = readings[max(margins, key=lambda m: (per_token[m], -margins.index(m)))][i]
            assert both.extra["margin"] == chosen.extra["margin"]
            assert both.tokens == chosen.tokens and both.logprob == pytest.approx(chosen.logprob, abs=1e-4)
            assert both.image.shape == chosen.image.shape  # the input that reading read
            assert [c.tokens for c in both.candidates] == [c.tokens for c in chosen.candidates]
    # the batched search picks the same readings (batches of one: a batch pads to its widest)
    for array in arrays:
        (h,), single = recognizer.recognize_many([array], batch_size=1), recognizer.recognize_array(array)
        assert h["tokens"] == single.tokens
        assert FormulaRecognizer.per_token(h) == pytest.approx(single.extra["per_token"], abs=1e-4)
    assert recognizer.margin == 0
    recognizer.margin = 32
    assert recognizer.margins == (32,)


def never_closes_unopened(tokens) -> bool:
    depth = 0
    for token in tokens:
        depth += (token == "{") - (token == "}")
        if depth < 0:
            return False
    return True


def test_training_batches_can_get_a_random_blank_margin():
    from mathocr.formula_data import WIDTH_STEP, TrainingBatches
    from mathocr.latex import Vocabulary

    formulas = synthetic_formulas()
    vocab = Vocabulary.from_sequences(f.tokens for f in formulas)
    tight = TrainingBatches(formulas, vocab, batch_size=len(formulas), seed=0, augment=False)
    batch = list(range(len(formulas)))
    (plain, _), _ = tight.make_batch(batch)
    widest = max(a.shape[1] for a in tight._plain)
    assert plain.shape[2] == int(np.ceil(widest / WIDTH_STEP) * WIDTH_STEP)
    padded = TrainingBatches(formulas, vocab, batch_size=len(formulas), seed=0, augment=False, pad_margin=200)
    widths = {padded.make_batch(batch)[0][0].shape[2] for _ in range(30)}
    assert min(widths) >= plain.shape[2] and max(widths) > plain.shape[2] + 100  # 0..200 blank columns
    assert max(widths) <= int(np.ceil((widest + 200) / WIDTH_STEP) * WIDTH_STEP) and len(widths) > 3
    (images, _), _ = padded.make_batch(batch)
    np.testing.assert_array_equal(images[:, :, : plain.shape[2]], plain)  # only blank paper added
    assert not images[:, :, plain.shape[2]:].any()
    with pytest.raises(ValueError, match="padding margin"):
        TrainingBatches(formulas, vocab, augment=False, pad_margin=-1)


@pytest.mark.parametrize("pen", [2.0, 12.0])  # at 48 pixels: 0.64 and 3.84 pixels wide
def test_pictures_of_handwriting_reach_the_model_with_the_training_pen(pen, tmp_path):
    from mathocr.formula_data import STROKE_WIDTH, formula_bitmap
    from mathocr.formula_decode import FormulaRecognizer
    from mathocr.formula_kind import stroke_widths
    from mathocr.render import ImageError, ink_array, render_strokes

    def median_width(bitmap):
        return float(np.median(stroke_widths(ink_array(bitmap).astype(np.float64))))

    for formula in synthetic_formulas()[:3]:
        picture = render_strokes(formula.strokes, height=150, max_width=3000, stroke_width=pen)
        as_drawn = median_width(formula_bitmap(picture))
        normalised = median_width(formula_bitmap(picture, pen=STROKE_WIDTH))
        assert abs(normalised - STROKE_WIDTH) < abs(as_drawn - STROKE_WIDTH)
        assert abs(normalised - STROKE_WIDTH) < 0.7, (as_drawn, normalised)
    blank = render_strokes(synthetic_formulas()[0].strokes, height=150).point(lambda _: 255)
    with pytest.raises(ImageError):
        formula_bitmap(blank, pen=STROKE_WIDTH)
    # the handwritten model reads pictures with the pen normalised, the typeset one as they are
    directory = save_tiny_recognizer(tmp_path / "model")
    handwritten = FormulaRecognizer.load(directory)
    np.testing.assert_array_equal(handwritten.input_from_image(picture),
                                  ink_array(formula_bitmap(picture, pen=STROKE_WIDTH)))
    handwritten.pen_normalise = False
    np.testing.assert_array_equal(handwritten.input_from_image(picture), ink_array(formula_bitmap(picture)))
    typeset = FormulaRecognizer.load(save_tiny_recognizer(tmp_path / "typeset", kind="typeset"))
    np.testing.assert_array_equal(typeset.input_from_image(picture), ink_array(formula_bitmap(picture)))


def test_searches_keep_braces_paired():
    """A model whose output layer ranks "}" first, "{" second and the end token third, whatever it
    sees: free, it closes groups it never opened; kept balanced, it pairs them."""
    from mathocr.formula_data import pad_batch
    from mathocr.formula_decode import FormulaRecognizer
    from mathocr.latex import Vocabulary

    vocab = Vocabulary.from_sequences(f.tokens for f in synthetic_formulas())
    model = biased_model(vocab, {"}": 2.0, "{": 1.0, vocab.END: 0.0})
    decoder = FormulaRecognizer(model, vocab).decoder
    image = pad_batch([np.random.default_rng(0).uniform(size=(48, 96)).astype(np.float32)])

    def tokens(hyp):
        return vocab.decode(hyp["ids"])

    assert tokens(decoder.greedy(image, 8, balance=False)[0]) == ["}"] * 8
    assert tokens(decoder.greedy(image, 8, balance=True)[0]) == ["{", "}"] * 4
    free = [tokens(h) for h in decoder.beam(image, 3, 8, balance=False)]
    assert not all(never_closes_unopened(t) for t in free), free
    kept = decoder.beam(image, 3, 8, balance=True)
    assert all(never_closes_unopened(tokens(h)) for h in kept), [tokens(h) for h in kept]
    assert all(tokens(h).count("{") == tokens(h).count("}") for h in kept if h["ended"])
    # and the end token waits for open groups to close: rows at depth 0 and 1, all moves equal
    logp = tf_log_uniform(2, len(vocab))
    masked = decoder._balanced(logp, np.array([0, 1], np.int32), True).numpy()
    close, end = vocab.index["}"], vocab.end_id
    assert masked[0, close] < -1e8 and masked[0, end] > -1e8
    assert masked[1, end] < -1e8 and masked[1, close] > -1e8
    free = decoder._balanced(logp, np.array([0, 1], np.int32), False).numpy()
    never = [vocab.pad_id, vocab.start_id]  # never emitted, balanced or not
    assert (free[:, never] < -1e8).all() and (masked[:, never] < -1e8).all()
    assert (np.delete(free, never, axis=1) == np.delete(logp.numpy(), never, axis=1)).all()
    # a model that ranks the start and padding tokens first still writes tokens
    assert tokens(FormulaRecognizer(biased_model(vocab, {vocab.START: 3.0, vocab.PAD: 2.0, "x": 1.0}),
                                    vocab).decoder.greedy(image, 4, balance=False)[0]) == ["x"] * 4


def tf_log_uniform(rows: int, columns: int):
    import tensorflow as tf

    return tf.fill([rows, columns], -float(np.log(columns)))


def biased_model(vocab, ranking):
    """A tiny model whose output layer ranks the tokens of ``ranking`` (token -> logit) above all
    others, whatever it sees."""
    import keras

    from mathocr.formula_model import build_formula_model

    keras.utils.set_random_seed(3)
    model = build_formula_model(len(vocab), config=tiny_config())
    logits = model.get_layer("logits")
    kernel, bias = logits.get_weights()
    bias[:] = -20.0
    for token, value in ranking.items():
        bias[vocab.index[token]] = value
    logits.set_weights([kernel * 0.0, bias])
    return model


def test_right_to_left_models_learn_reversed_targets_and_answer_in_reading_order(tmp_path):
    from mathocr.formula_data import TrainingBatches, pad_batch
    from mathocr.formula_decode import FormulaRecognizer
    from mathocr.latex import Vocabulary

    formulas = synthetic_formulas()
    vocab = Vocabulary.from_sequences(f.tokens for f in formulas)
    batch = list(range(len(formulas)))
    _, forward = TrainingBatches(formulas, vocab, batch_size=6, seed=0, augment=False).make_batch(batch)
    _, backward = TrainingBatches(formulas, vocab, batch_size=6, seed=0, augment=False, reverse=True).make_batch(batch)
    for f, row in zip(formulas, backward):
        assert vocab.decode([int(i) for i in row if i not in (vocab.pad_id, vocab.end_id)]) == f.tokens[::-1]
    assert (backward != vocab.pad_id).sum() == (forward != vocab.pad_id).sum()

    # a model that prefers "{" to "}" to the end: read right to left, "}" opens a group and "{"
    # closes it, so the balanced search writes "} {" pairs, which turned round read "{ }"
    model = biased_model(vocab, {"{": 2.0, "}": 1.0, vocab.END: 0.0})
    image = np.random.default_rng(0).uniform(size=(48, 96)).astype(np.float32)
    backward = FormulaRecognizer(model, vocab, direction="r2l")
    padded = pad_batch([image], margin=backward.margin)
    raw = backward.decoder.greedy(padded, backward.step_limit(padded.shape[2]))[0]
    n = len(raw["ids"])
    assert n > 8 and vocab.decode(raw["ids"]) == ["}", "{"] * (n // 2)
    result = backward.recognize_array(image)
    assert result.tokens == ["{", "}"] * (n // 2)
    np.testing.assert_array_equal(result.attention[:n], raw["alphas"][:n][::-1])  # each token keeps its map
    forward = FormulaRecognizer(model, vocab)
    assert forward.recognize_array(image).tokens == ["{"] * n  # left to right it never closes one
    backward.save(tmp_path / "r2l")
    assert FormulaRecognizer.load(tmp_path / "r2l").direction == "r2l"
    with pytest.raises(ValueError, match="right to left"):
        FormulaRecognizer(model, vocab, direction="up")


@pytest.mark.parametrize("direction", ["l2r", "r2l"])
def test_scoring_a_sequence_gives_the_log_probability_the_search_found(direction):
    """``score`` (teacher-forced, all steps at once) agrees with the stepped beam search on the
    log-probability of each hypothesis, for every margin, in both reading directions."""
    import keras

    from mathocr.formula_data import TrainingBatches, pad_batch, plain_images
    from mathocr.formula_decode import FormulaRecognizer
    from mathocr.formula_model import build_formula_model, compile_formula_model
    from mathocr.latex import Vocabulary

    keras.utils.set_random_seed(2)
    formulas = synthetic_formulas()
    vocab = Vocabulary.from_sequences(f.tokens for f in formulas)
    model = compile_formula_model(build_formula_model(len(vocab), config=tiny_config()), learning_rate=1e-2)
    batches = iter(TrainingBatches(formulas, vocab, batch_size=6, seed=0, augment=False, reverse=direction == "r2l"))
    for _ in range(40):  # enough for its hypotheses to end
        model.train_on_batch(*next(batches))
    recognizer = FormulaRecognizer(model, vocab, direction=direction)
    recognizer.margins = (32, 96)
    ended = 0
    for array in plain_images(formulas)[:3]:
        hypotheses = []
        for margin in recognizer.margins:
            batch = pad_batch([array], margin=margin)
            hypotheses.append(recognizer._in_reading_order(recognizer.decoder.beam(batch, 3, 12)))
        for row, hyps in enumerate(hypotheses):
            scores = recognizer.score(array, [h["ids"] for h in hyps])
            assert scores.shape == (2, 3) and (scores < 0).all()
            for h, score in zip(hyps, scores[row]):
                if h["ended"]:  # its end token is part of both
                    assert score == pytest.approx(h["logprob"], abs=2e-4)
                    ended += 1
                else:  # the search stopped before the end token, whose probability the score adds
                    assert score < h["logprob"] + 2e-4
    assert ended >= 6
    assert recognizer.score(array, []).shape == (2, 0)


def test_a_second_model_searches_too_and_both_rank_the_pooled_candidates(tmp_path):
    from mathocr.formula_decode import FormulaRecognizer

    first = FormulaRecognizer.load(save_tiny_recognizer(tmp_path / "first", train_steps=20))
    second = FormulaRecognizer.load(save_tiny_recognizer(tmp_path / "second", train_steps=5))
    second.direction = "r2l"  # any model can rescore; this one reads the sequences backwards
    second.margins = (0, 64)
    first.margins = (32, 96)
    arrays = [first.input_from_strokes(f.strokes) for f in synthetic_formulas()[:3]]
    plain = {width: [first.recognize_array(a, width) for a in arrays] for width in (1, 3)}
    first.rescorer, first.rescore_weight = second, 0.0
    assert not first.rescoring
    assert [first.recognize_array(a, 3).tokens for a in arrays] == [p.tokens for p in plain[3]]
    changed, found_by = 0, set()
    for weight in (0.5, 50.0):
        first.rescore_weight = weight
        for width in (1, 3):
            for array, alone in zip(arrays, plain[width]):
                result = first.recognize_array(array, width)
                ids = [tuple(first.vocab.encode(c.tokens)) for c in result.candidates]
                assert len(set(ids)) == len(ids)  # each candidate once
                assert not {first.vocab.start_id, first.vocab.pad_id} & {i for seq in ids for i in seq}
                searched = {tuple(int(i) for i in h["ids"]) for model in (first, second)
                            for hyps, _, _ in model._readings(array, width) for h in hyps}
                assert set(ids) == searched  # both models' searches, all their readings
                lengths = np.array([len(i) + 1 for i in ids])
                own, other = first.score(array, ids), second.score(array, ids)
                expected = first.agreement(own, lengths) + weight * first.agreement(other, lengths)
                assert list(expected) == sorted(expected, reverse=True)
                assert result.extra["rescored"] == pytest.approx(expected[0], abs=1e-4)
                # each candidate's two agreements, from which other weights rank the same candidates
                agreements = np.array(result.extra["agreements"])
                assert agreements == pytest.approx(np.stack([first.agreement(own, lengths),
                                                             first.agreement(other, lengths)], axis=1), abs=1e-4)
                assert [c.logprob for c in result.candidates] == pytest.approx(own.max(axis=0), abs=1e-4)
                # its confidence for the kind guess stays this model's own, whichever answer won
                assert result.extra["per_token"] == pytest.approx(
                    max(first.per_token(hyps[0]) for hyps, _, _ in first._readings(array, width)), abs=1e-5)
                found_by.add(result.extra["found_by"])
                if weight == 50.0:  # the second model decides alone
                    mine = first.agreement(other, lengths)
                    assert mine[0] == pytest.approx(mine.max(), abs=1e-4)
                    changed += result.tokens != alone.tokens
            # batched greedy decoding (training's validation) is not re-ranked
            assert "rescored" not in first.recognize_many(arrays[:1])[0]
    assert changed  # here the second model overrules the first at least once
    assert found_by <= {"l2r", "r2l"} and found_by
    # saved with its rescorer, loaded with it
    first.save(tmp_path / "both")
    loaded = FormulaRecognizer.load(tmp_path / "both")
    assert loaded.rescorer.direction == "r2l" and loaded.rescorer.margins == (0, 64) and loaded.rescore_weight == 50.0
    assert loaded.recognize_array(arrays[0], 3).tokens == first.recognize_array(arrays[0], 3).tokens


def test_a_rescorer_trained_at_another_height_reads_the_input_scaled_to_its_own(tmp_path):
    """Session 16 paired a 64-pixel model with the 48-pixel twin: each model reads the formula at
    its own height (the rescorer's input is the other's, scaled), searching and scoring."""
    from mathocr.formula_decode import FormulaRecognizer
    from mathocr.formula_model import build_formula_model

    first = FormulaRecognizer.load(save_tiny_recognizer(tmp_path / "first", train_steps=20))
    trained = FormulaRecognizer.load(save_tiny_recognizer(tmp_path / "second", train_steps=5))
    low = build_formula_model(len(trained.vocab), height=32, config=tiny_config())
    low.set_weights(trained.model.get_weights())  # the weights do not depend on the height
    second = FormulaRecognizer(low, trained.vocab, height=32)
    second.direction, second.margins, first.margins = "r2l", (0, 64), (32, 96)
    first.rescorer, first.rescore_weight = second, 0.75
    assert first.height == 48 and second.height == 32
    for array in [first.input_from_strokes(f.strokes) for f in synthetic_formulas()[:3]]:
        scaled = second.at_height(array)
        assert scaled.shape == (32, round(array.shape[1] * 32 / 48)) and scaled.dtype == np.float32
        assert 0.0 <= scaled.min() and scaled.max() <= 1.0 and scaled.max() > 0.5  # the ink is still there
        assert np.abs(scaled.mean() - array.mean()) < 0.02  # as much ink, in proportion
        assert first.at_height(array) is array
        for width in (1, 3):
            result = first.recognize_array(array, width)
            ids = [tuple(first.vocab.encode(c.tokens)) for c in result.candidates]
            searched = {tuple(int(i) for i in h["ids"]) for model, read in ((first, array), (second, scaled))
                        for hyps, _, _ in model._readings(read, width) for h in hyps}
            assert set(ids) == searched
            lengths = np.array([len(i) + 1 for i in ids])
            agreements = np.array(result.extra["agreements"])
            assert agreements[:, 1] == pytest.approx(first.agreement(second.score(scaled, ids), lengths), abs=1e-4)
            assert agreements[:, 0] == pytest.approx(first.agreement(first.score(array, ids), lengths), abs=1e-4)


def test_the_two_models_decode_side_by_side_with_the_same_answers_as_one_after_the_other(tmp_path):
    from concurrent.futures import ThreadPoolExecutor

    from mathocr.formula_decode import FormulaRecognizer

    first = FormulaRecognizer.load(save_tiny_recognizer(tmp_path / "first", train_steps=20))
    second = FormulaRecognizer.load(save_tiny_recognizer(tmp_path / "second", train_steps=5))
    second.direction, second.margins, first.margins = "r2l", (0, 64), (32, 96)
    first.rescorer, first.rescore_weight = second, 0.75
    arrays = [first.input_from_strokes(f.strokes) for f in synthetic_formulas()[:4]]

    def answers(results):
        return [(r.latex, [c.latex for c in r.candidates], [round(c.logprob, 4) for c in r.candidates],
                 round(r.extra["rescored"], 4), r.extra["found_by"], r.extra["margin"], np.round(r.attention, 4).tolist())
                for r in results]

    for width in (1, 3):
        first.concurrent = False
        alone = answers([first.recognize_array(a, width) for a in arrays])
        first.concurrent = True
        assert answers([first.recognize_array(a, width) for a in arrays]) == alone
        # several callers at once (the app's sessions) share the decoding threads
        with ThreadPoolExecutor(4) as callers:
            assert answers(callers.map(lambda a: first.recognize_array(a, width), arrays)) == alone


@pytest.mark.parametrize("blocks,top_blocks,counting", [(0, 0, 0.0), (2, 0, 0.0), (4, 0, 0.0), (0, 2, 0.0),
                                                        (2, 2, 0.0), (2, 0, 0.1)])
def test_a_reading_cut_to_a_width_is_encoded_as_that_narrower_image_alone(blocks, top_blocks, counting, tmp_path):
    """``_encode`` with ``cols``: each row's features, first states, attention bias and (for a
    counting model) count shift are those of its input cut to ``cols`` grid columns and encoded on
    its own, for cuts narrower and wider than the band it re-encodes (``cut_band``), one input or
    several; with residual blocks too, at 1/8 and at 1/16, whose reach needs the wider band."""
    import tensorflow as tf

    from mathocr.formula_decode import FormulaRecognizer, cut_band
    from mathocr.formula_model import ResidualBlock

    decoder = FormulaRecognizer.load(save_tiny_recognizer(tmp_path / "model", train_steps=3, blocks=blocks,
                                                          top_blocks=top_blocks, counting=counting)).decoder
    CUT_BAND = decoder.cut_band
    assert (decoder.cut_band, decoder.band_cols) == cut_band(blocks, top_blocks)
    rng = np.random.default_rng(0)
    for layer in decoder.encoder.layers:  # as in a trained model, blank paper gives activations too
        norms = [layer.bn_a, layer.bn_b] if isinstance(layer, ResidualBlock) else [layer]
        for norm in norms:
            if norm.name.startswith("bn"):
                norm.beta.assign(rng.normal(0.3, 0.3, norm.beta.shape).astype(np.float32))
                norm.gamma.assign(rng.normal(1.0, 0.3, norm.gamma.shape).astype(np.float32))
    inputs = np.zeros((2, 48, 512, 1), np.float32)
    inputs[0, :, :200] = rng.random((48, 200, 1)) < 0.2  # ink, then blank paper (a margin)
    inputs[1, :, :90] = rng.random((48, 90, 1)) < 0.2
    cols = np.array([14, 20, 32, 6, 8, 24], np.int32)  # three readings of each input, 96 to 512 pixels
    assert (cols * 16 < CUT_BAND).any() and (cols * 16 > CUT_BAND).any()
    for images, rows in ((inputs[:1], cols[:3]), (inputs, cols)):
        features, _, _, h1, h2, bias, shift = decoder._encode(tf.constant(images), tf.constant(rows))
        m = len(rows) // len(images)
        for r, c in enumerate(rows):
            alone, _, _, h1_alone, h2_alone, _, shift_alone = decoder._encode(
                tf.constant(images[r // m:r // m + 1, :, :c * 16]))
            np.testing.assert_allclose(features[r, :, :c], alone[0], atol=1e-4)
            np.testing.assert_allclose(shift[r], shift_alone[0], atol=1e-4)
            assert np.abs(shift_alone.numpy()).max() > 0.01 if counting else not np.any(shift_alone.numpy())
            assert not np.any(features[r, :, c:])  # nothing beyond the cut
            np.testing.assert_allclose(h1[r], h1_alone[0], atol=1e-4)
            np.testing.assert_allclose(h2[r], h2_alone[0], atol=1e-4)
            cells = bias[r].numpy().reshape(features.shape[1], -1)
            assert (cells[:, :c] == 0).all() and (cells[:, c:] < -1e8).all()
    if blocks == 4 or top_blocks:  # the band of an encoder without blocks is too narrow for one with them
        decoder.cut_band, decoder.band_cols = cut_band(blocks if top_blocks else 0)
        features, *_ = decoder._encode(tf.constant(inputs), tf.constant(cols))
        m = len(cols) // len(inputs)
        errors = [np.abs(features[r, :, :c] - decoder._encode(tf.constant(inputs[r // m:r // m + 1, :, :c * 16]))[0][0])
                  .max() for r, c in enumerate(cols)]
        assert max(errors) > 1e-4  # the tolerance above


def test_residual_blocks_start_as_the_identity_so_a_warm_start_computes_what_its_source_did(tiny):
    import dataclasses

    from mathocr.formula_model import build_formula_model, compile_formula_model, main_logits, warm_start

    model, vocab, batches = tiny
    x, y = next(iter(batches))
    config = tiny_config(guide_weight=0.5)
    deeper = compile_formula_model(build_formula_model(len(vocab), config=dataclasses.replace(config, blocks=2, top_blocks=1)),
                                   1e-2, guide_weight=0.5)
    assert warm_start(deeper, model) == ["encoder/res1", "encoder/res2", "encoder/top1"]
    before = main_logits(model.predict_on_batch(x))
    np.testing.assert_array_equal(main_logits(deeper.predict_on_batch(x)), before)
    for _ in range(3):  # and then they learn: the blocks' last scales leave zero
        deeper.train_on_batch(x, (y, y))
    for block in ("res1", "top1"):
        assert np.abs(deeper.get_layer("encoder").get_layer(block).bn_b.gamma.numpy()).max() > 0
    assert not np.allclose(main_logits(deeper.predict_on_batch(x)), before, atol=1e-4)
    # another shape, or a source layer that the model lacks, is refused
    with pytest.raises(ValueError, match="other shapes"):
        warm_start(build_formula_model(len(vocab), config=dataclasses.replace(config, units=24)), model)
    with pytest.raises(ValueError, match="not in this one"):
        warm_start(build_formula_model(len(vocab), config=config), deeper)


def test_encoder_dropout_drops_whole_feature_maps_in_training_only_and_warm_starts_either_way(tiny):
    import dataclasses

    import keras

    from mathocr.formula_model import build_formula_model, compile_formula_model, main_logits, warm_start

    model, vocab, batches = tiny
    x, y = next(iter(batches))
    config = dataclasses.replace(tiny_config(guide_weight=0.5), blocks=1, top_blocks=1)
    plain = compile_formula_model(build_formula_model(len(vocab), config=config), 1e-2, guide_weight=0.5)
    assert warm_start(plain, model) == ["encoder/res1", "encoder/top1"]
    dropping = compile_formula_model(build_formula_model(len(vocab), config=dataclasses.replace(config, encoder_dropout=0.5)),
                                     1e-2, guide_weight=0.5)
    encoder = dropping.get_layer("encoder")
    assert [layer.name for layer in encoder.layers if "drop" in layer.name] == [
        "drop3", "drop4", "drop5", "res1_drop", "top1_drop"]
    assert warm_start(dropping, plain) == []  # dropout has no weights: nothing new to learn
    # at inference the dropout does nothing: the same logits as the source
    np.testing.assert_array_equal(main_logits(dropping.predict_on_batch(x)), main_logits(plain.predict_on_batch(x)))
    # in training it zeroes whole channels of a feature map (the same at every position) and scales the rest
    images = x[0] if isinstance(x, (tuple, list)) else x["image"]
    probe = encoder.get_layer("drop4")
    inner = encoder.get_layer("relu4").output
    activations = keras.Model(encoder.input, inner)(images, training=False)
    dropped = probe(activations, training=True).numpy()
    kept = activations.numpy()
    alive = kept.reshape(-1, kept.shape[-1]).max(0) > 0
    zeroed = np.all(dropped == 0, axis=(1, 2))  # (batch, channels): a whole map zero
    assert 0.2 < zeroed[:, alive].mean() < 0.8
    np.testing.assert_allclose(dropped[~np.broadcast_to(zeroed[:, None, None, :], dropped.shape)],
                               2 * kept[~np.broadcast_to(zeroed[:, None, None, :], kept.shape)], rtol=1e-6)
    # and a model without dropout warm-starts from one with it
    assert warm_start(compile_formula_model(build_formula_model(len(vocab), config=config), 1e-2, guide_weight=0.5),
                      dropping) == []
    dropping.train_on_batch(x, (y, y))


def test_count_loss_compares_predicted_counts_with_the_tokens_of_the_targets():
    from mathocr.formula_model import CountLoss, count_mask
    from mathocr.latex import Vocabulary

    vocab = Vocabulary(["x", "{", "}", "^", "2"])
    mask = count_mask(vocab.tokens)
    assert [t for t, m in zip(vocab.tokens, mask) if m] == ["x", "^", "2"]  # no specials, no braces
    x, open_, close, up, two = (vocab.index[t] for t in ("x", "{", "}", "^", "2"))
    targets = np.array([[x, up, open_, two, close, vocab.end_id, 0, 0],  # x ^ { 2 } </s>, padded
                        [x, x, two, vocab.end_id, 0, 0, 0, 0]])  # x x 2 </s>
    truth = np.zeros((2, len(vocab)), np.float32)
    truth[0, [x, up, two]] = 1
    truth[1, x], truth[1, two] = 2, 1
    loss = CountLoss(len(vocab), mask)
    assert float(loss(targets, truth)) == pytest.approx(0.0, abs=1e-6)
    off = truth.copy()
    off[0, x] += 0.5  # within one of the truth: quadratic, 0.125
    off[1, two] += 3.0  # beyond: linear, 2.5
    assert float(loss(targets, off)) == pytest.approx((0.125 + 2.5) / 2, abs=1e-5)  # summed, then the batch's mean
    # the end token, padding and braces are not counted: the targets' "{", "}" and end add nothing
    assert truth[0, [open_, close, vocab.end_id, 0]].sum() == 0


def test_a_counting_head_starts_with_no_effect_then_learns_to_count(tiny, tmp_path):
    """``--counting``: warm-started from a model without it, the new head and bias are listed and the
    logits are exactly the source's; trained, its counts approach the truth's while the tokens
    still learn; saved and loaded, it answers the same."""
    import dataclasses

    from mathocr.formula_data import plain_images
    from mathocr.formula_decode import FormulaRecognizer
    from mathocr.formula_model import (build_formula_model, compile_formula_model, count_mask, main_logits,
                                       model_outputs, warm_start)

    model, vocab, batches = tiny
    x, y = next(iter(batches))
    config = dataclasses.replace(tiny_config(guide_weight=0.5), counting=0.1)
    counting = compile_formula_model(build_formula_model(len(vocab), config=config, count_mask=count_mask(vocab.tokens)),
                                     1e-3, guide_weight=0.5, counting=1.0)  # the head: 1e-2 (RATE)
    assert model_outputs(counting) == ["tokens", "guide", "counts"]
    assert warm_start(counting, model) == ["counting", "count_bias"]
    np.testing.assert_array_equal(main_logits(counting.predict_on_batch(x)), main_logits(model.predict_on_batch(x)))

    # (as training computes them: a few steps leave the batch-norm statistics of inference far behind)
    first = counting.train_on_batch(x, (y, y, y), return_dict=True)
    for _ in range(60):
        last = counting.train_on_batch(x, (y, y, y), return_dict=True)
    assert last["counting_loss"] < 0.3 * first["counting_loss"]
    assert last["count_bias_loss"] < first["count_bias_loss"]  # the tokens' loss, under the logits' last layer
    mask = np.array(count_mask(vocab.tokens), np.float32)
    assert not np.any(counting.predict_on_batch(x)[2][:, mask == 0])
    assert np.abs(counting.get_layer("count_bias").kernel.numpy()).max() > 0  # the logits use the counts

    array = plain_images(synthetic_formulas()[:1])[0]
    before = FormulaRecognizer(counting, vocab).recognize_array(array, beam_width=3)
    FormulaRecognizer(counting, vocab).save(tmp_path / "counting")
    loaded = FormulaRecognizer.load(tmp_path / "counting")
    assert loaded.decoder.counting is not None
    after = loaded.recognize_array(array, beam_width=3)
    assert after.tokens == before.tokens and after.logprob == pytest.approx(before.logprob, abs=1e-4)


def test_margins_read_at_once_answer_as_each_read_on_its_own_and_a_batch_as_each_input_alone(tmp_path):
    """``margins_at_once``: one encoding of the widest padding, each reading cut to its own width
    and stopped at its own length limit, gives what separate readings give (greedy, beam, scores,
    attention maps); and in a batch, each input is read as if it were alone (it once read the
    batch's widest padding)."""
    from mathocr.formula_decode import FormulaRecognizer

    # barely trained: its searches run into their length limits, which differ from margin to margin
    recognizer = FormulaRecognizer.load(save_tiny_recognizer(tmp_path / "model", train_steps=3))
    recognizer.margins = (0, 64, 160)
    formulas = synthetic_formulas()
    arrays = [recognizer.input_from_strokes(f.strokes) for f in formulas]
    assert len({a.shape[1] for a in arrays}) > 2

    def answers(results):
        return [(r.latex, r.ended, r.extra["margin"], r.image.shape, [c.latex for c in r.candidates],
                 [round(c.logprob, 3) for c in r.candidates], np.round(r.attention, 3).tolist()) for r in results]

    for width in (1, 3):
        recognizer.margins_at_once = False
        apart = [recognizer.recognize_array(a, width) for a in arrays]
        recognizer.margins_at_once = True
        together = [recognizer.recognize_array(a, width) for a in arrays]
        assert answers(together) == answers(apart)
        assert any(not r.ended for r in together) and any(r.attention.shape[2] * 16 < r.image.shape[1] + 160
                                                          for r in together)
    keys = [[recognizer.vocab.index[t] for t in c.tokens] for c in together[0].candidates]
    recognizer.margins_at_once = False
    apart_scores = recognizer.score(arrays[0], keys)
    recognizer.margins_at_once = True
    np.testing.assert_allclose(recognizer.score(arrays[0], keys), apart_scores, atol=1e-3)
    assert apart_scores.shape == (3, len(keys))
    # a search hands its encoding on, and scoring from it is scoring from scratch
    readings, encoded = recognizer._search(arrays[0], 3)
    assert len(encoded) == 7 and encoded[1].shape[0] == 3
    np.testing.assert_allclose(recognizer.score(arrays[0], keys, encoded), apart_scores, atol=1e-3)
    assert [[h["ids"] for h in hyps] for hyps, _, _ in readings] == [
        [h["ids"] for h in hyps] for hyps, _, _ in recognizer._readings(arrays[0], 3)]

    alone = [recognizer.recognize_array(a) for a in arrays]
    batched = recognizer.recognize_many(arrays, batch_size=len(arrays))
    assert [h["tokens"] for h in batched] == [r.tokens for r in alone]
    assert [round(FormulaRecognizer.per_token(h), 3) for h in batched] == [round(r.extra["per_token"], 3) for r in alone]
    recognizer.margins_at_once = False  # the old way: the narrow inputs read the batch's blank columns too
    assert [h["tokens"] for h in recognizer.recognize_many(arrays, batch_size=len(arrays))] != [r.tokens for r in alone]
