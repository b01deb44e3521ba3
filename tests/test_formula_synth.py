"""Made-up formulas (``--synth``): a formula laid out by mathtext, each symbol's box where a
typesetter puts it, written in other writers' strokes, the target tokens the formula's."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from fixtures import segmented_formulas


def boxes_of(lay):
    return {label: box for label, box in zip(lay.labels, lay.boxes)}


def centre(box):
    return (box[0] + box[2]) / 2, (box[1] + box[3]) / 2


def test_layout_places_scripts_fractions_and_roots_as_a_typesetter_does():
    from mathocr.formula_synth import layout

    lay = layout("x ^ { 2 } + y _ { a }".split())
    assert Counter(lay.labels) == Counter({"x": 1, "2": 1, "+": 1, "y": 1, "a": 1})
    b = boxes_of(lay)
    # the superscript is smaller, after x and raised (ink y grows downwards); the subscript lowered
    assert b["2"][0] >= b["x"][2] - 0.5 and centre(b["2"])[1] < centre(b["x"])[1]
    assert b["2"][3] - b["2"][1] < b["+"][3] - b["+"][1] + 2
    assert centre(b["a"])[1] > centre(b["y"])[1]
    assert [label for label, _ in sorted(zip(lay.labels, lay.boxes[:, 0]), key=lambda t: t[1])][:3] == ["x", "2", "+"]

    frac = boxes_of(layout("\\frac { a } { b + 1 }".split()))
    bar = frac["-"]  # the bar is the fraction's: no '-' token
    assert frac["a"][3] <= bar[1] + 0.5 and frac["b"][1] >= bar[3] - 0.5
    assert bar[0] <= frac["b"][0] and bar[2] >= frac["1"][2]  # it spans the wider part

    root = boxes_of(layout("\\sqrt { x + 1 } = 2".split()))
    # the root sign and its overline are one symbol, covering what it encloses
    assert root["\\sqrt"][0] < root["x"][0] and root["\\sqrt"][2] >= root["1"][2] and root["\\sqrt"][1] < root["x"][1]
    # an index's brackets are not drawn
    assert Counter(layout("\\sqrt [ 3 ] { 8 }".split()).labels) == Counter({"3": 1, "\\sqrt": 1, "8": 1})


def test_layout_writes_function_names_as_one_symbol_and_refuses_what_it_cannot_match():
    from mathocr.formula_synth import layout, to_mathtext, token_labels

    lay = layout("\\sin x + \\lim _ { n \\rightarrow \\infty } a _ { n }".split())
    assert Counter(lay.labels) == Counter({"\\sin": 1, "x": 1, "+": 1, "\\lim": 1, "n": 2, "\\rightarrow": 1,
                                           "\\infty": 1, "a": 1})
    assert to_mathtext("\\sin x ^ { 2 }".split()) == "\\sin x^{2}"
    for tokens in ["x < y \\leq \\frac { 1 } { 2 } \\cdot z", "f ^ { \\prime } ( x ) = \\{ \\alpha , \\beta \\}",
                   "\\sum _ { i = 1 } ^ { n } i ! \\neq \\int _ { 0 } ^ { 1 } t d t"]:
        lay = layout(tokens.split())
        assert lay is not None, tokens
        bars = tokens.split().count("\\frac")
        assert Counter(lay.labels) == token_labels(tokens.split()) + Counter({"-": bars})
        assert lay.aspect > 1
    # a symbol CROHME never segments, a command mathtext lacks, nothing at all
    assert layout("\\partial x".split()) is None
    assert layout("\\foo x".split()) is None
    assert layout([]) is None


def bank_of(labels):
    """A symbol bank of one unit square's strokes for each label (two writers each)."""
    square = [np.array([[0, 0], [1, 0], [1, 1], [0, 1], [0, 0]], np.float32)]
    return {label: [(0, square), (1, [s * 2 for s in square])] for label in labels}


def test_write_fits_each_symbol_into_its_box_loosened_as_a_hand_would():
    from mathocr.formula_synth import RESIZE, SHIFT, SPREAD, layout, write

    lay = layout("\\frac { a + 1 } { b } = x ^ { 2 }".split())
    instances = bank_of(set(lay.labels))
    for seed in range(5):
        strokes = write(lay, instances, np.random.default_rng(seed))
        assert len(strokes) == len(lay.labels)
        points = np.concatenate(strokes)
        width = np.ptp(points[:, 0]) / np.ptp(lay.boxes[:, [0, 2]])
        assert SPREAD[0] * 0.8 <= width <= SPREAD[1] * 1.2
        for stroke, label, box in zip(strokes, lay.labels, lay.boxes):
            lo, hi = stroke.min(axis=0), stroke.max(axis=0)
            # on its line (the spread is horizontal), moved at most a few standard deviations
            assert abs((lo[1] + hi[1]) / 2 - (box[1] + box[3]) / 2) <= 4 * SHIFT * lay.size / 2
            big = max(box[2] - box[0], box[3] - box[1])
            assert max(hi - lo) <= big * (1 + RESIZE) * 1.31 + 1e-3  # within the aspect slack of fit_into
    with pytest.raises(KeyError):
        write(lay, bank_of(["a"]), np.random.default_rng(0))


def test_relabel_changes_a_symbol_throughout_with_its_tokens_but_not_a_fraction_bar():
    from mathocr.formula_synth import layout, relabel

    lay = layout("x ^ { 2 } + x - \\frac { 1 } { 2 }".split())
    instances = bank_of(["x", "a", "c", "y", "1", "2", "7", "+", "-", "\\times"])
    assert relabel(lay, np.random.default_rng(0), 0.0, instances) is lay
    seen = set()
    for seed in range(20):
        new = relabel(lay, np.random.default_rng(seed), 1.0, instances)
        np.testing.assert_array_equal(new.boxes, lay.boxes)
        # the tokens follow the labels: the two x, the two 2 change together
        tokens = [t for t in new.tokens if t not in ("{", "}", "^", "\\frac")]
        assert Counter(tokens) + Counter({"-": 1}) == Counter(new.labels)
        assert new.tokens.count(new.tokens[0]) == 2 and new.tokens[0] != "x"
        # the minus is a token once but drawn twice (the bar): it stays, though '+' may become one
        assert "-" in new.tokens and new.labels.count("-") == new.tokens.count("-") + 1
        seen.add(new.tokens[0])
    assert seen == {"a", "c"}  # x's group, in the bank; not y, a descender


@pytest.mark.parametrize("reverse", [False, True])
def test_synth_training_batches_target_the_made_up_formulas(tmp_path, reverse):
    from mathocr.formula_data import TrainingBatches

    formulas, vocab = segmented_formulas(tmp_path, [(["x", "+", "1"], "x+1"), (["x", "=", "2"], "x=2"),
                                                    (["(", "a", ")"], "(a)"), (["y", "-", "b"], "y-b"),
                                                    (["x", "2"], "x^{2}"), (["a", "-", "b"], "\\frac{a}{b}")])
    pool = [["x", "^", "{", "2", "}"], ["\\frac", "{", "a", "+", "1", "}", "{", "b", "}"],
            ["(", "x", "-", "y", ")", "=", "2"], ["\\partial", "x"]]  # the last: not in the vocabulary
    with pytest.raises(ValueError, match="made-up formula rate"):
        TrainingBatches(formulas, vocab, batch_size=4, synth=1.5)
    source = TrainingBatches(formulas, vocab, batch_size=4, seed=0, synth=1.0, synth_formulas=pool, reverse=reverse)
    assert len(source._synth_pool) == 3
    seen = set()
    for _ in range(6):
        for batch in source.epoch_batches():
            (images, _), targets = source.make_batch(batch)
            assert images.shape[0] == len(batch)
            for item, row, image in zip(batch, targets, images):
                assert item[0] == "synth"
                tokens = vocab.decode(row)
                tokens = tokens[::-1] if reverse else tokens
                assert tokens in pool[:3]
                seen.add(tuple(tokens))
                assert image.max() > 0.5
    assert len(seen) == 3
    # by default the pool is the training formulas' own tokens
    own = TrainingBatches(formulas, vocab, batch_size=4, seed=0, synth=1.0)
    targets = {tuple(vocab.decode(row)) for batch in own.epoch_batches() for row in own.make_batch(batch)[1]}
    assert targets <= {tuple(f.tokens) for f in formulas}
    # none wider than the widest input: left as they were
    narrow = TrainingBatches(formulas, vocab, batch_size=4, seed=0, synth=1.0, synth_formulas=pool[2:3], max_width=32)
    assert all(isinstance(t, int) for batch in narrow.epoch_batches() for t in batch)
    # off: the plain formulas
    plain = TrainingBatches(formulas, vocab, batch_size=4, seed=0, synth=0.0, synth_formulas=pool)
    assert all(isinstance(i, int) for batch in plain.epoch_batches() for i in batch)


def test_made_up_examples_of_each_kind(tmp_path):
    from mathocr.formula_data import MADE_UP_KINDS, made_up_examples, made_up_source

    formulas, _ = segmented_formulas(tmp_path, [(["x", "+", "1"], "x+1"), (["x", "=", "2"], "x=2"),
                                                (["(", "a", ")"], "(a)"), (["y", "-", "b"], "y-b"),
                                                (["x", "2"], "x^{2}"), (["a", "-", "b"], "\\frac{a}{b}")])
    own = [f.tokens for f in formulas]
    source = made_up_source(formulas)
    for kind in MADE_UP_KINDS:
        examples = made_up_examples(source, kind, n=4, seed=1)
        assert len(examples) == 4, kind
        for image, tokens in examples:
            assert image.shape[0] == 48 and image.max() > 0.5
            if kind == "two on a line":
                assert len(tokens) > 3
            elif kind == "fractions":
                assert tokens[0] == "\\frac" or "\\frac" in tokens
            elif kind == "scripts":
                assert "^" in tokens or "_" in tokens
            elif kind == "typeset layouts":
                assert tokens in own
    # another seed, other examples; a pool of other formulas for the layouts
    assert [t for _, t in made_up_examples(source, "relabelled", 4, seed=2)] != [
        t for _, t in made_up_examples(source, "relabelled", 4, seed=1)]
    # the same seed, the same examples, whatever was shown in between
    first = made_up_examples(source, "typeset layouts", 3, seed=5)
    made_up_examples(source, "fractions", 3, seed=6)
    again = made_up_examples(source, "typeset layouts", 3, seed=5)
    assert [t for _, t in first] == [t for _, t in again]
    assert all(np.array_equal(a, b) for (a, _), (b, _) in zip(first, again))
    pool = [["\\frac", "{", "x", "}", "{", "2", "}"]]
    other = made_up_source(formulas, synth_formulas=pool)
    assert {tuple(t) for _, t in made_up_examples(other, "typeset layouts", 3)} == {tuple(pool[0])}
    with pytest.raises(ValueError, match="unknown kind"):
        made_up_examples(source, "doodles")


VOCAB = {"x", "y", "d", "l", "a", "2", "=", "+", "(", ")", "{", "}", "^", "_", "\\sin", "\\frac", "\\times",
         "\\alpha", "\\beta", "F", "G", "A", "\\Delta", "\\rightarrow", ","}


def test_fit_vocabulary_keeps_a_formula_s_roles_in_the_vocabulary():
    from mathocr.formula_synth import fit_vocabulary

    def fit(text, seed=0):
        out = fit_vocabulary(text.split(), VOCAB, np.random.default_rng(seed))
        return None if out is None else " ".join(out)

    # in the vocabulary already: unchanged
    assert fit("x ^ { 2 } = \\frac { a } { y }") == "x ^ { 2 } = \\frac { a } { y }"
    # accents and fonts go, their argument stays; symbols become one of the same role
    assert fit("\\hat { x } _ { 2 } \\equiv \\partial \\mathcal { F } ; \\ell") == "x _ { 2 } = d F , l"
    assert fit("\\langle x \\rangle * y \\longrightarrow 2 \\nonumber") == "( x ) \\times y \\rightarrow 2"
    # an operator name the vocabulary holds becomes its token; another is spelled out
    assert fit("\\operatorname { s i n } x") == "\\sin x"
    assert fit("\\operatorname { d a } x") == "d a x"
    # a phantom goes with its argument; one that empties a group leaves nothing to write
    assert fit("x ^ { \\phantom { a } 2 }") == "x ^ { 2 }"
    assert fit("x ^ { \\phantom { a } }") is None
    # symbols with no counterpart, and tables, are refused
    assert fit("x ^ { \\perp }") is None
    # a dagger marks a symbol as a prime does, where the vocabulary has one
    assert fit("x ^ { \\dagger }") is None
    assert " ".join(fit_vocabulary("x ^ { \\dagger }".split(), VOCAB | {"\\prime"}, None)) == "x ^ { \\prime }"
    assert fit("\\begin{array} { l } x \\\\ y \\end{array}") is None
    # letters outside the vocabulary: one of their kind, the same wherever they appear, not one the
    # formula already uses, so that distinct letters stay distinct
    seen = set()
    for seed in range(20):
        out = fit("\\nu _ { \\alpha } + \\nu = K _ { F }", seed).split()
        assert out[0] == out[6] and out[0] in {"\\beta"}  # \alpha is taken
        assert out[8] in {"G", "A", "\\Delta"}  # capitals, F taken
        seen.add(out[8])
    assert seen == {"G", "A", "\\Delta"}


def test_im2latex_formulas_rewritten_into_the_vocabulary(tmp_path):
    from fixtures import write_im2latex

    from mathocr.formula_synth import im2latex_formulas

    rows = [(f"x ^ {{ {k % 3} }} = \\hat {{ y }}", f"{k}.png") for k in range(40)]
    rows += [(f"\\partial x + {k % 2}", f"p{k}.png") for k in range(40)]
    rows += [(f"\\nu + x ^ {{ {k % 2} }}", f"n{k}.png") for k in range(40)]
    write_im2latex(tmp_path, rows)
    vocab = VOCAB | {"0", "1"}
    covered = im2latex_formulas(vocab, tmp_path)
    rewritten = im2latex_formulas(vocab, tmp_path, fit=True)
    assert covered == []  # every formula has a token outside the vocabulary
    assert 100 <= len(rewritten) <= 120  # im2latex's training split: 90 %
    assert {" ".join(t) for t in rewritten} == {"x ^ { 0 } = y", "x ^ { 1 } = y", "x ^ { 2 } = y",
                                                  "d x + 0", "d x + 1", "\\alpha + x ^ { 0 }",
                                                  "\\alpha + x ^ { 1 }", "\\beta + x ^ { 0 }",
                                                  "\\beta + x ^ { 1 }"}
    assert im2latex_formulas(vocab, tmp_path / "nothing", fit=True) == []


def test_pieces_cut_long_formulas_where_a_formula_may_end():
    from mathocr.formula_synth import pieces

    def cut(text, budget):
        return [" ".join(p) for p in pieces(text.split(), budget)]

    # short enough already: nothing to cut
    assert cut("a = b + c", 5) == []
    # clauses between top-level commas first; a clause too long splits between its sides, a side
    # too long between its terms; the separator where a cut falls goes, neighbours merge while they fit
    assert cut("a = b + c , x ^ { 2 } + y ^ { 2 } = z ^ { 2 }", 8) == [
        "a = b + c", "x ^ { 2 }", "y ^ { 2 }", "z ^ { 2 }"]
    assert cut("a = b + c , x ^ { 2 } + y ^ { 2 } = z ^ { 2 }", 11) == [
        "a = b + c", "x ^ { 2 } + y ^ { 2 }", "z ^ { 2 }"]
    # never inside braces or brackets: a fraction or a bracket pair too long is left out whole
    assert cut("\\frac { a + b + c + d } { e } + ( x + y + z + w ) = f - g", 6) == ["f - g"]
    for text in ("\\sqrt { a , b , c , d } = x ^ { n + 1 } , [ 0 , 1 ] + \\{ a , b , c \\} + y",
                 "( a + b ) ( c + d ) , x _ { i } ^ { 2 } - \\sum _ { i = 1 } ^ { n } y _ { i } = 0"):
        for piece in pieces(text.split(), 9):
            assert 3 <= len(piece) <= 9
            assert piece.count("{") == piece.count("}") and piece.count("(") == piece.count(")")
            assert piece.count("[") == piece.count("]") and piece.count("\\{") == piece.count("\\}")
            assert piece[0] not in {"^", "_", "}", ","} and " ".join(piece) in text
    # under three tokens: left out (the "g" after the cut, the "x y")
    assert cut("a , b , c = d , e + f + g , x y", 3) == ["a , b", "c = d", "e + f"]


def test_im2latex_formulas_with_pieces_of_the_long_ones(tmp_path):
    from fixtures import write_im2latex

    from mathocr.formula_synth import im2latex_formulas

    long = "x ^ { 2 } + y ^ { 2 } = \\frac { a } { y } , a + 1 = 2 , x = y"
    write_im2latex(tmp_path, [(long, f"{k}.png") for k in range(30)] + [("x + 1", f"s{k}.png") for k in range(30)])
    vocab = VOCAB | {"1"}
    whole = im2latex_formulas(vocab, tmp_path, fit=True)
    with_pieces = im2latex_formulas(vocab, tmp_path, fit=True, piece_tokens=12)
    assert with_pieces[:len(whole)] == whole  # the formulas first, as they were
    # then each distinct piece once: the first clause cut between its sides, the other two together
    assert [" ".join(p) for p in with_pieces[len(whole):]] == [
        "x ^ { 2 } + y ^ { 2 }", "\\frac { a } { y }", "a + 1 = 2 , x = y"]
