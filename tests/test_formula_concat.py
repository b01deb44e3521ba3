"""Two training formulas written on one line (``--concat``): the second at the first's writing
size and on its line, an operator in another writer's hand between them or none, the target
tokens following, and the pairs bucketed as wide as they are."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures import segmented_formulas, symbols_in_a_row


def formula_of(labels, truth, size=100.0, x0=0.0, y0=0.0, y_offsets=None):
    from mathocr.formula_data import InkFormula

    strokes, symbols = [], []
    for label, group in symbols_in_a_row(labels, size=size, y_offsets=y_offsets):
        symbols.append((label, tuple(range(len(strokes), len(strokes) + len(group)))))
        strokes += [s + (x0, y0) for s in group]
    return InkFormula("f", strokes, truth.split(), symbols)


def box(strokes):
    points = np.concatenate([s[:, :2] for s in strokes])
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def test_writing_line_reads_the_letters_not_the_scripts():
    from mathocr.formula_data import InkFormula, writing_line

    big = formula_of(["x", "2", "y", "a", "1"], "x ^ { 2 } y a _ { 1 }", y_offsets=[0, -0.5, 0, 0, 0.5])
    small = formula_of(["x", "2", "y", "a", "1"], "x ^ { 2 } y a _ { 1 }", size=30.0, x0=900.0, y0=400.0,
                       y_offsets=[0, -0.5, 0, 0, 0.5])
    (size, line), (size2, line2) = writing_line(big), writing_line(small)
    assert size2 / size == pytest.approx(0.3, rel=1e-4)
    # the line runs through the letters, not between them and the scripts
    letters = box([big.strokes[i] for label, refs in big.symbols if label in "xya" for i in refs])
    assert line == pytest.approx((letters[1] + letters[3]) / 2, abs=0.2 * size)
    assert line2 == pytest.approx(400.0 + 0.3 * line, rel=1e-4)
    # without a segmentation (a canvas drawing) the strokes stand in for the symbols
    loose = InkFormula("canvas", big.strokes, big.tokens)
    assert writing_line(loose)[0] == pytest.approx(size, rel=0.5)


def test_concatenate_writes_the_second_after_the_first_at_its_size_on_its_line():
    from mathocr.formula_data import concatenate, writing_line

    first = formula_of(["x", "+", "1"], "x + 1")
    second = formula_of(["a", "b"], "a b", size=30.0, x0=5000.0, y0=-800.0)
    # a third column (time) must survive
    joiner = [np.column_stack([s, np.arange(len(s))]) for s in formula_of(["="], "=", size=7.0).strokes]
    lines = (writing_line(first), writing_line(second))
    for seed in range(5):
        rng = np.random.default_rng(seed)
        out = concatenate(first.strokes, second.strokes, rng, lines, joiner)
        assert len(out) == len(first.strokes) + len(joiner) + len(second.strokes)
        for mine, theirs in zip(out, first.strokes):
            np.testing.assert_array_equal(mine, theirs)  # the first stays where it was
        placed_joiner = out[len(first.strokes):len(first.strokes) + len(joiner)]
        placed_second = out[len(first.strokes) + len(joiner):]
        assert all(s.shape[1] == 3 for s in placed_joiner)
        b1, bj, b2 = box(first.strokes), box(placed_joiner), box(placed_second)
        size = lines[0][0]
        # in order, left to right, with gaps of a third to four fifths of a symbol
        assert b1[2] + 0.3 * size - 1e-3 <= bj[0] <= b1[2] + 0.8 * size + 1e-3
        assert bj[2] + 0.3 * size - 1e-3 <= b2[0] <= bj[2] + 0.8 * size + 1e-3
        # the joiner is about a symbol large, on the line; the second is written as large as the first
        assert 0.55 * size - 1e-3 <= max(bj[2] - bj[0], bj[3] - bj[1]) <= 0.85 * size + 1e-3
        assert (bj[1] + bj[3]) / 2 == pytest.approx(lines[0][1], abs=1e-3)
        scale = (b2[3] - b2[1]) / (box(second.strokes)[3] - box(second.strokes)[1])
        ratio = lines[0][0] / lines[1][0]  # their letters' sizes
        assert 0.85 * ratio - 1e-3 <= scale <= 1.15 * ratio + 1e-3
        moved = formula_of(["a", "b"], "a b")
        moved.strokes, moved.symbols = placed_second, second.symbols
        assert writing_line(moved)[1] == pytest.approx(lines[0][1], abs=1e-3)
    # side by side, without a joiner
    out = concatenate(first.strokes, second.strokes, np.random.default_rng(0), lines)
    assert len(out) == len(first.strokes) + len(second.strokes) and box(out[len(first.strokes):])[0] > box(first.strokes)[2]


@pytest.mark.parametrize("reverse", [False, True])
def test_concatenated_training_batches_target_both_formulas(tmp_path, reverse):
    from mathocr.formula_data import TrainingBatches

    formulas, vocab = segmented_formulas(tmp_path, [(["x", "+", "1"], "x+1"), (["x", "=", "2"], "x=2"),
                                                    (["(", "a", ")"], "(a)"), (["y", "-", "b"], "y-b")])
    with pytest.raises(ValueError, match="concatenation rate"):
        TrainingBatches(formulas, vocab, batch_size=4, concat=1.5)
    source = TrainingBatches(formulas, vocab, batch_size=4, seed=0, concat=1.0, reverse=reverse)
    items = source.epoch_items()
    assert all(isinstance(t, tuple) and t[0] == k and t[1] != k for k, t in enumerate(items))
    singles = [f.tokens for f in formulas]
    seen_joiners = set()
    for _ in range(6):
        for batch in source.epoch_batches():
            (images, tokens_in), targets = source.make_batch(batch)
            assert images.shape[0] == len(batch)
            for (i, j), row, image in zip(batch, targets, images):
                tokens = vocab.decode(row)
                tokens = tokens[::-1] if reverse else tokens
                a, b = singles[i], singles[j]
                assert tokens[:len(a)] == a and tokens[len(tokens) - len(b):] == b
                middle = tokens[len(a):len(tokens) - len(b)]
                assert middle in ([], ["+"], ["-"], ["="])
                seen_joiners.add(tuple(middle))
                # the pair is wider than either formula alone
                assert np.flatnonzero(image.max(axis=(0, 2)) > 0.5).max() > max(source.widths[i], source.widths[j])
    assert len(seen_joiners) == 4
    # no pair is longer than max_tokens, nor wider than the widest input
    short = TrainingBatches(formulas, vocab, batch_size=4, seed=0, concat=1.0, max_tokens=6)
    assert all(isinstance(t, int) for t in short.epoch_items())
    narrow = TrainingBatches(formulas, vocab, batch_size=4, seed=0, concat=1.0,
                             max_width=max(source.widths) + TrainingBatches.PAIR_GAP)
    assert all(isinstance(t, int) for t in narrow.epoch_items())
    # off: the same batches as before there was concatenation
    plain = TrainingBatches(formulas, vocab, batch_size=4, seed=0, concat=0.0)
    assert all(isinstance(i, int) for batch in plain.epoch_batches() for i in batch)


def made_up_targets(source, vocab, epochs, reverse):
    """Each item of ``epochs`` epochs of ``source``'s batches with its target tokens, read left to
    right; every batch made, one image per item."""
    for _ in range(epochs):
        for batch in source.epoch_batches():
            (images, _), targets = source.make_batch(batch)
            assert images.shape[0] == len(batch)
            for item, row in zip(batch, targets):
                tokens = vocab.decode(row)
                yield item, tokens[::-1] if reverse else tokens


# Made-up fractions (``--stack``): two short formulas' ink stacked over another writer's bar.

def test_stack_writes_the_numerator_over_the_bar_over_the_denominator():
    from mathocr.formula_data import stack, writing_line

    top = formula_of(["x", "+", "1"], "x + 1")
    bottom = formula_of(["a", "b", "a", "b"], "a b a b", size=30.0, x0=5000.0, y0=-800.0)
    # a wobbly bar, short, written anywhere, with a third column (time) that must survive
    bar = [np.column_stack([np.linspace(0, 40, 9), 300 + 3 * np.sin(np.arange(9)), np.arange(9)])]
    sizes = (writing_line(top)[0], writing_line(bottom)[0])
    for seed in range(5):
        out, bar_y = stack(top.strokes, bottom.strokes, bar, np.random.default_rng(seed), sizes)
        assert len(out) == len(top.strokes) + 1 + len(bottom.strokes)
        for mine, theirs in zip(out, top.strokes):
            np.testing.assert_array_equal(mine, theirs)  # the numerator stays where it was
        placed_bar, placed_bottom = out[len(top.strokes)], out[len(top.strokes) + 1:]
        assert placed_bar.shape[1] == 3
        b1, bb, b2 = box(top.strokes), box([placed_bar]), box(placed_bottom)
        size = sizes[0]
        # top to bottom (ink y grows downwards): numerator, bar, denominator, a fifth to two fifths of a symbol apart
        assert b1[3] + 0.2 * size - 1e-3 <= (bb[1] + bb[3]) / 2 <= b1[3] + 0.4 * size + 1e-3
        assert bar_y == pytest.approx((bb[1] + bb[3]) / 2, abs=1e-3)
        assert bar_y + 0.2 * size - 1e-3 <= b2[1] <= bar_y + 0.4 * size + 1e-3
        # the bar spans both parts, stays thin, and both are centred on it
        assert bb[2] - bb[0] > max(b1[2] - b1[0], b2[2] - b2[0])
        assert bb[3] - bb[1] <= 0.1 * size * (6 / 3) + 1e-3  # the sine's swing, squashed to a tenth of a symbol
        centre = (bb[0] + bb[2]) / 2
        assert centre == pytest.approx((b1[0] + b1[2]) / 2, abs=1e-3)
        assert (b2[0] + b2[2]) / 2 == pytest.approx(centre, abs=0.1 * size + 1e-3)
        # the denominator is written as large as the numerator (its letters' sizes, within 15 %)
        scale = (b2[3] - b2[1]) / (box(bottom.strokes)[3] - box(bottom.strokes)[1])
        ratio = sizes[0] / sizes[1]
        assert 0.85 * ratio - 1e-3 <= scale <= 1.15 * ratio + 1e-3


@pytest.mark.parametrize("reverse", [False, True])
def test_fraction_training_batches_target_the_fraction(tmp_path, reverse):
    from mathocr.formula_data import TrainingBatches

    formulas, vocab = segmented_formulas(tmp_path, [(["x", "+", "1"], "x+1"), (["x", "=", "2"], "x=2"),
                                                    (["(", "a", ")"], "(a)"), (["1", "-", "2"], "\\frac{1}{2}")])
    with pytest.raises(ValueError, match="fraction rate"):
        TrainingBatches(formulas, vocab, batch_size=4, stack=-0.1)
    source = TrainingBatches(formulas, vocab, batch_size=4, seed=0, stack=1.0, reverse=reverse)
    singles = [f.tokens for f in formulas]
    parts = [t for t in singles if "=" not in t]  # an equation is never a numerator
    seen = set()
    fractions = [["\\frac", "{", *a, "}", "{", *b, "}"] for a in parts for b in parts]
    for item, tokens in made_up_targets(source, vocab, 6, reverse):
        assert item[0] == "frac"
        if tokens in fractions:
            seen.add("frac")
            continue
        # after another formula and an operator
        assert any(tokens == [*p, op, *f] for p in parts for op in "+-=" for f in fractions), tokens
        seen.add("prefix")
    assert seen == {"frac", "prefix"}
    # no fraction longer than max_tokens
    short = TrainingBatches(formulas, vocab, batch_size=4, seed=0, stack=1.0, max_tokens=8)
    assert all(isinstance(t, int) for batch in short.epoch_batches() for t in batch)
    # off: the plain formulas
    plain = TrainingBatches(formulas, vocab, batch_size=4, seed=0, stack=0.0)
    assert all(isinstance(i, int) for batch in plain.epoch_batches() for i in batch)


# Made-up scripts (``--script``): a short formula's ink after another's last symbol, smaller, raised or lowered.

def test_last_symbol_is_the_rightmost_symbol_or_stroke():
    from mathocr.formula_data import InkFormula, last_symbol

    f = formula_of(["x", "a", "2"], "x a ^ { 2 }", y_offsets=[0, 0, -0.5])
    top, bottom = last_symbol(f)
    expected = box([f.strokes[i] for i in f.symbols[2][1]])
    assert (top, bottom) == pytest.approx((expected[1], expected[3]))
    # written out of order, the rightmost still counts; without a segmentation, its rightmost stroke
    shuffled = InkFormula("f", f.strokes, f.tokens, f.symbols[::-1])
    assert last_symbol(shuffled) == pytest.approx((top, bottom))
    loose = InkFormula("canvas", f.strokes, f.tokens)
    rightmost = max(f.strokes, key=lambda s: s[:, 0].max())
    assert last_symbol(loose) == pytest.approx((rightmost[:, 1].min(), rightmost[:, 1].max()))


@pytest.mark.parametrize("kind", ["^", "_"])
def test_attach_script_writes_a_smaller_script_after_the_base_above_or_below_it(kind):
    from mathocr.formula_data import (PRIME_SIZE, SCRIPT_GAP, SCRIPT_SCALE, SCRIPT_SHIFT, attach_script,
                                      last_symbol, writing_line)

    base = formula_of(["x", "+", "1"], "x + 1")
    # the script written large and far away, with a third column (time) that must survive
    script = formula_of(["a", "b"], "a b", size=30.0, x0=5000.0, y0=-800.0)
    script_strokes = [np.column_stack([s, np.arange(len(s))]) for s in script.strokes]
    sizes = (writing_line(base)[0], writing_line(script)[0])
    top, bottom = last_symbol(base)
    size = sizes[0]
    for seed in range(8):
        out = attach_script(base.strokes, script_strokes, np.random.default_rng(seed), sizes, (top, bottom), kind)
        assert len(out) == len(base.strokes) + len(script.strokes)
        for mine, theirs in zip(out, base.strokes):
            np.testing.assert_array_equal(mine, theirs)  # the base stays where it was
        placed = out[len(base.strokes):]
        assert all(s.shape[1] == 3 for s in placed)
        b0, b1 = box(base.strokes), box(placed)
        assert b0[2] + SCRIPT_GAP[0] * size - 1e-3 <= b1[0] <= b0[2] + SCRIPT_GAP[1] * size + 1e-3
        scale = (b1[3] - b1[1]) / (box(script.strokes)[3] - box(script.strokes)[1])
        ratio = sizes[0] / sizes[1]
        assert SCRIPT_SCALE[0] * ratio - 1e-3 <= scale <= SCRIPT_SCALE[1] * ratio + 1e-3
        centre = (b1[1] + b1[3]) / 2
        if kind == "^":  # ink y grows downwards: a superscript's centre is above the last symbol's top
            assert top - SCRIPT_SHIFT[1] * size - 1e-3 <= centre <= top - SCRIPT_SHIFT[0] * size + 1e-3
        else:
            assert bottom + SCRIPT_SHIFT[0] * size - 1e-3 <= centre <= bottom + SCRIPT_SHIFT[1] * size + 1e-3
    # a prime: its own largest side scaled to a fraction of a symbol
    tick = [np.array([[3.0, 900.0], [2.0, 960.0]])]
    out = attach_script(base.strokes, tick, np.random.default_rng(0), (size, 1.0), (top, bottom), "^", prime=True)
    extent = np.ptp(out[-1], axis=0).max()
    assert PRIME_SIZE[0] * size - 1e-3 <= extent <= PRIME_SIZE[1] * size + 1e-3
    assert (out[-1][:, 1].min() + out[-1][:, 1].max()) / 2 < top + 1e-3
    with pytest.raises(ValueError, match="a script is"):
        attach_script(base.strokes, tick, np.random.default_rng(0), sizes, (top, bottom), "'")


@pytest.mark.parametrize("reverse", [False, True])
def test_script_training_batches_target_the_script(tmp_path, reverse):
    from mathocr.formula_data import InkFormula, TrainingBatches, scriptable
    from mathocr.latex import Vocabulary

    formulas, _ = segmented_formulas(tmp_path, [(["x", "+", "1"], "x+1"), (["x", "=", "2"], "x=2"),
                                               (["(", "a", ")"], "(a)"), (["a", "+"], "a+"), (["b", "1"], "b_{1}")])
    # a formula with a prime (written as a tick) in its segmentation gives the bank its primes
    tick = formula_of(["y", "1"], "y ^ { \\prime }", y_offsets=[0, -0.5])
    formulas.append(InkFormula("p", tick.strokes, tick.tokens, [tick.symbols[0], ("\\prime", tick.symbols[1][1])]))
    vocab = Vocabulary.from_sequences(f.tokens for f in formulas)
    with pytest.raises(ValueError, match="script rate"):
        TrainingBatches(formulas, vocab, batch_size=4, script=1.5)
    source = TrainingBatches(formulas, vocab, batch_size=4, seed=0, script=1.0, reverse=reverse)
    singles = [f.tokens for f in formulas]
    bases = [t for t in singles if scriptable(t[-1])]  # not `a +`, nor a script's closing brace
    assert ["a", "+"] not in bases and ["y", "^", "{", "\\prime", "}"] not in bases
    smalls = [t for t in singles if "=" not in t and len(t) <= 4]
    parts = [t for t in singles if "=" not in t]
    scripted = [[*b, k, "{", *s, "}"] for b in bases for k in "^_" for s in smalls]
    scripted += [[*b, "^", "{", "\\prime", "}"] for b in bases]
    seen = set()
    for item, tokens in made_up_targets(source, vocab, 8, reverse):
        assert item[0] == "script"
        if tokens in scripted:
            seen.add("prime" if "\\prime" in tokens else item[3])
            continue
        # followed by an operator and another formula
        assert any(tokens == [*s, op, *q] for s in scripted for op in "+-=" for q in parts), tokens
        seen.add("then")
    assert seen == {"^", "_", "prime", "then"}
    # none longer than max_tokens
    short = TrainingBatches(formulas, vocab, batch_size=4, seed=0, script=1.0, max_tokens=4)
    assert all(isinstance(t, int) for batch in short.epoch_batches() for t in batch)
    # off: the plain formulas
    plain = TrainingBatches(formulas, vocab, batch_size=4, seed=0, script=0.0)
    assert all(isinstance(i, int) for batch in plain.epoch_batches() for i in batch)


def test_elastic_training_batches_bend_the_ink_and_keep_the_targets(tmp_path):
    from mathocr.formula_data import TrainingBatches

    formulas, vocab = segmented_formulas(tmp_path, [(["x", "+", "1"], "x+1"), (["y", "=", "2"], "y=2")])
    with pytest.raises(ValueError, match="elastic amplitude"):
        TrainingBatches(formulas, vocab, batch_size=2, elastic=0.8)

    def images(source, batches=4):
        out = []
        for _ in range(batches):
            (arr, _), targets = source.make_batch([0, 1])
            out.append((arr, targets))
        return out

    plain = images(TrainingBatches(formulas, vocab, batch_size=2, seed=5))
    bent = images(TrainingBatches(formulas, vocab, batch_size=2, seed=5, elastic=0.1))
    for (a, ta), (b, tb) in zip(plain, bent):
        assert np.array_equal(ta, tb)  # the same formulas, the same targets
        assert a.shape[0] == b.shape[0] == 2 and b.max() > 0.5
    assert not all(a.shape == b.shape and np.array_equal(a, b) for (a, _), (b, _) in zip(plain, bent))  # other ink
    # off: the batches of before, draw for draw
    off = images(TrainingBatches(formulas, vocab, batch_size=2, seed=5, elastic=0.0))
    assert all(np.array_equal(a, c) for (a, _), (c, _) in zip(plain, off))
