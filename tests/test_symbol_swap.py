"""Writing a formula's symbols in other writers' strokes (``--swap-symbols``): the donor's shape
lands in the original symbol's box, the formula's other strokes and tokens stay, and the
segmentation travels from InkML files to training batches."""

from __future__ import annotations

import numpy as np
import pytest

from fixtures import glyph, segmented_formulas, symbols_in_a_row, write_inkml


def formula_of(labels, truth, id_="f", size=100.0, x0=0.0):
    """An InkFormula with its segmentation, as load_crohme_formulas makes them."""
    from mathocr.formula_data import InkFormula

    strokes, symbols = [], []
    for label, group in symbols_in_a_row(labels, size=size):
        symbols.append((label, tuple(range(len(strokes), len(strokes) + len(group)))))
        strokes += [s + (x0, 0.0) for s in group]
    return InkFormula(id_, strokes, truth.split(), symbols)


def box(strokes):
    points = np.concatenate(strokes)
    return np.concatenate([points.min(axis=0), points.max(axis=0)])


def test_a_stretchy_symbol_fills_the_box_it_replaces():
    from mathocr.formula_data import fit_into

    target = [np.array([[10.0, 20.0], [40.0, 120.0]])]  # a tall, thin box (a big bracket)
    donor = [np.array([[0.0, 0.0], [5.0, 5.0]]), np.array([[5.0, 0.0], [0.0, 5.0]])]
    np.testing.assert_allclose(box(fit_into(target, donor, stretch=True)), [10, 20, 40, 120], atol=1e-4)


def test_a_letter_keeps_its_proportions_within_the_slack():
    from mathocr.formula_data import _ASPECT_SLACK, fit_into

    target = [np.array([[0.0, 0.0], [40.0, 100.0]])]  # 0.4 wide for 1 high
    donor = [np.array([[0.0, 0.0], [10.0, 10.0]])]  # square
    x0, y0, x1, y1 = box(fit_into(target, donor, stretch=False))
    aspect = (x1 - x0) / (y1 - y0)
    assert aspect == pytest.approx(1 / _ASPECT_SLACK**2, rel=1e-4)  # squeezed as far as allowed, no further
    assert ((x0 + x1) / 2, (y0 + y1) / 2) == pytest.approx((20.0, 50.0))  # centred where the letter was


def test_a_thin_minus_takes_the_width_and_keeps_its_thickness():
    from mathocr.formula_data import fit_into

    target = [np.array([[0.0, 50.0], [200.0, 52.0]])]  # a long fraction bar, 2 high
    donor = [np.array([[0.0, 0.0], [50.0, 6.0]])]  # a short, wavy minus, 6 high
    x0, y0, x1, y1 = box(fit_into(target, donor, stretch=True))
    assert (x0, x1) == pytest.approx((0.0, 200.0))
    assert y1 - y0 == pytest.approx(6.0 * 4)  # the thin axis follows the long one's scale (x4)


def test_restyle_writes_each_symbol_in_another_formulas_strokes():
    from mathocr.formula_data import InkFormula, SymbolBank

    own = formula_of(["x", "+", "1"], "x + 1", "own")
    # another writer: the same labels, written four times smaller elsewhere, and their x is a circle
    other = formula_of(["x", "+", "1"], "x + 1", "other", size=25.0, x0=1000.0)
    circle = glyph("a", x=1000.0, size=25.0)[0]
    other = InkFormula("other", [circle, *other.strokes[2:]], other.tokens,
                       [("x", (0,))] + [(label, tuple(i - 1 for i in refs)) for label, refs in other.symbols[1:]])
    bank = SymbolBank([own, other])
    assert len(bank) == 6
    new = bank.restyle(own, np.random.default_rng(0), rate=1.0, source=0)
    assert own.tokens == ["x", "+", "1"]  # the formula is unchanged
    # every symbol came from `other` (its only other instance), fitted into own's boxes
    assert len(new) == len(other.strokes)
    assert box(new) == pytest.approx(box(own.strokes), abs=1e-3)
    x_box = box([own.strokes[0], own.strokes[1]])
    circles = [s for s in new if len(s) == len(circle)]
    assert len(circles) == 1 and box(circles) == pytest.approx(x_box, abs=1e-3)


def test_restyle_leaves_alone_what_it_cannot_swap():
    from mathocr.formula_data import InkFormula, SymbolBank

    own = formula_of(["y", "-", "x"], "y - x", "own")
    other = formula_of(["a", "-", "b"], "a - b", "other", size=30.0)
    loose = InkFormula("canvas", own.strokes, own.tokens)  # no segmentation: a canvas drawing
    bank = SymbolBank([own, other, loose])
    rng = np.random.default_rng(0)
    assert bank.restyle(own, rng, rate=0.0) is own.strokes
    assert bank.restyle(loose, rng, rate=1.0) is loose.strokes
    new = bank.restyle(own, rng, rate=1.0, source=0)
    # y and x have no instance outside `own`: kept as they were; the minus is other's, in own's place
    kept = [s for s in new if any(s is t for t in own.strokes)]
    assert len(kept) == len(own.strokes) - 1
    assert not any(new[-1] is t for t in own.strokes)
    assert box([new[-1]]) == pytest.approx(box(own.strokes[own.symbols[1][1][0]:own.symbols[1][1][0] + 1]), abs=1e-3)


def test_inkml_segmentation_reaches_training_batches(tmp_path):
    from mathocr.formula_data import TrainingBatches, load_inkml_formulas
    from mathocr.latex import Vocabulary

    for i, (labels, truth) in enumerate([(["x", "+", "1"], "x+1"), (["x", "-", "1"], "x-1"),
                                         (["(", "a", ")"], "(a)")]):
        write_inkml(tmp_path / f"e{i}.inkml", symbols_in_a_row(labels), truth)
    formulas, skipped = load_inkml_formulas(sorted(tmp_path.glob("*.inkml")))
    assert not skipped
    assert [label for label, _ in formulas[0].symbols] == ["x", "+", "1"]
    assert formulas[0].symbols[0][1] == (0, 1)  # x's two strokes
    vocab = Vocabulary.from_sequences(f.tokens for f in formulas)
    with pytest.raises(ValueError, match="swap rate"):
        TrainingBatches(formulas, vocab, batch_size=3, swap_symbols=1.5)
    source = TrainingBatches(formulas, vocab, batch_size=3, seed=0, swap_symbols=1.0)
    assert len(source.bank) == 9
    (images, tokens_in), targets = next(iter(source))
    assert images.shape[0] == 3 and images.max() > 0.5
    assert TrainingBatches(formulas, vocab, batch_size=3, augment=False, swap_symbols=1.0).bank is None


@pytest.mark.data
def test_crohme_formulas_carry_their_segmentation(real_data):
    from mathocr.formula_data import load_crohme_formulas

    formulas = load_crohme_formulas("validation", real_data)
    segmented = [f for f in formulas if f.symbols]
    assert len(segmented) > 0.95 * len(formulas)
    for f in segmented[:50]:
        covered = sorted(i for _, refs in f.symbols for i in refs)
        assert covered == list(range(len(f.strokes)))  # each stroke in exactly one symbol


def test_relabel_replaces_a_symbol_throughout_and_the_tokens_follow():
    from mathocr.formula_data import SymbolBank

    own = formula_of(["x", "+", "x", "=", "2"], "x + x = 2", "own")
    other = formula_of(["a", "-", "1"], "a - 1", "other", size=30.0, x0=1000.0)
    bank = SymbolBank([own, other])
    strokes, tokens = bank.relabel(own, np.random.default_rng(0), rate=1.0, source=0)
    # each replaceable symbol became the only other member of its group in the bank, every
    # instance of it; '=' has no other relation to become and stays
    assert tokens == ["a", "-", "a", "=", "1"]
    assert own.tokens == ["x", "+", "x", "=", "2"]
    assert len(strokes) == 2 + 1 + 2 + 2 + 1  # a, -, a, = (own strokes), 1
    equals = [own.strokes[i] for i in own.symbols[3][1]]
    assert sum(any(s is t for t in equals) for s in strokes) == 2
    assert not any(any(s is t for t in own.strokes) for s in strokes if not any(s is e for e in equals))
    # the donors' a's sit in the x's boxes, in their order from left to right
    circles = sorted((s for s in strokes if len(s) > 2), key=lambda s: s[:, 0].min())
    for circle, (_, refs) in zip(circles, [own.symbols[0], own.symbols[2]]):
        x0, y0, x1, y1 = box([own.strokes[i] for i in refs])
        cx0, cy0, cx1, cy1 = box([circle])
        assert x0 - 1e-3 <= cx0 < cx1 <= x1 + 1e-3 and y0 - 1e-3 <= cy0 < cy1 <= y1 + 1e-3


def test_relabel_keeps_what_its_tokens_do_not_say_and_what_it_cannot_replace():
    from mathocr.formula_data import InkFormula, SymbolBank

    # a fraction's bar is segmented as '-' but written \frac: relabelling it would make the tokens wrong
    fraction = formula_of(["-", "1", "2"], "\\frac { 1 } { 2 }", "fraction")
    other = formula_of(["+", "x"], "+ x", "other")
    loose = InkFormula("canvas", other.strokes, other.tokens)  # no segmentation: a canvas drawing
    bank = SymbolBank([fraction, other, loose])
    rng = np.random.default_rng(0)
    strokes, tokens = bank.relabel(fraction, rng, rate=1.0, source=0)
    assert tokens == ["\\frac", "{", "2", "}", "{", "1", "}"]  # the digits swapped, with their own as donors
    assert any(s is fraction.strokes[0] for s in strokes) and len(strokes) == 3  # the bar is kept
    assert bank.relabel(fraction, rng, rate=0.0) == (fraction.strokes, fraction.tokens)
    assert bank.relabel(loose, rng, rate=1.0) == (loose.strokes, loose.tokens)


@pytest.mark.parametrize("reverse", [False, True])
def test_relabelled_training_batches_target_the_new_tokens(tmp_path, reverse):
    from mathocr.formula_data import TrainingBatches

    formulas, vocab = segmented_formulas(tmp_path, [(["x", "+", "1"], "x+1"), (["x", "-", "1"], "x-1"),
                                                    (["(", "a", ")"], "(a)")])
    with pytest.raises(ValueError, match="relabelling rate"):
        TrainingBatches(formulas, vocab, batch_size=3, relabel=1.5)
    source = TrainingBatches(formulas, vocab, batch_size=3, seed=0, relabel=1.0, reverse=reverse)
    (images, tokens_in), targets = next(iter(source))
    assert images.shape[0] == 3 and images.max() > 0.5
    # x and a trade places, + and -; the only digit stays
    written = sorted(" ".join(vocab.decode(row)) for row in targets)  # right to left when reversed
    expected = sorted(" ".join(s[::-1] if reverse else s) for s in (["a", "-", "1"], ["a", "+", "1"], ["(", "x", ")"]))
    assert written == expected
    plain = TrainingBatches(formulas, vocab, batch_size=3, seed=0, relabel=0.0, reverse=reverse)
    assert sorted(map(tuple, next(iter(plain))[1].tolist())) != sorted(map(tuple, targets.tolist()))
