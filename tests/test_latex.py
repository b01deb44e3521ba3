"""LaTeX tokens, the canonical normal form (its documented rules and its properties), vocabularies."""

import json

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from mathocr.latex import (
    LatexError,
    Vocabulary,
    latex_equal,
    normalize_latex,
    normalize_symbol,
    normalize_tokens,
    tokenize_latex,
)

# ---------------------------------------------------------------------------------------------
# Tokenizer


@pytest.mark.parametrize(
    "text, tokens",
    [
        ("\\frac{1}{2}", ["\\frac", "{", "1", "}", "{", "2", "}"]),
        ("x^{46}", ["x", "^", "{", "4", "6", "}"]),
        ("\\alpha+\\beta", ["\\alpha", "+", "\\beta"]),
        ("\\{ x \\} \\, \\\\ \\|", ["\\{", "x", "\\}", "\\,", "\\\\", "\\|"]),
        ("\\begin {array} {cc} a \\end{ array }", ["\\begin{array}", "{", "c", "c", "}", "a", "\\end{array}"]),
        ("\\operatorname*{max}", ["\\operatorname*", "{", "m", "a", "x", "}"]),
        ("\\hat { \\omega } _ { \\bar { s } }", ["\\hat", "{", "\\omega", "}", "_", "{", "\\bar", "{", "s", "}", "}"]),
        ("$x_k xx_k $", ["$", "x", "_", "k", "x", "x", "_", "k", "$"]),
        ("\\ltq \\gtx", ["\\lt", "q", "\\gt", "x"]),  # CROHME glues the alias to the next letter
        ("\\ltimes \\gtrsim", ["\\ltimes", "\\gtrsim"]),  # real commands that start like it
        ("", []),
        ("  \n ", []),
    ],
)
def test_tokenize(text, tokens):
    assert tokenize_latex(text) == tokens


# ---------------------------------------------------------------------------------------------
# The normal form's rules, one by one, as the module's docstring states them


@pytest.mark.parametrize(
    "raw, canonical",
    [
        # spellings of one symbol
        ("a \\lt b", "a < b"),
        ("a<b", "a < b"),
        ("a \\gt b", "a > b"),
        ("\\ltq", "< q"),
        ("\\le \\ge \\ne \\to \\gets", "\\leq \\geq \\neq \\rightarrow \\leftarrow"),
        ("\\ldots", "\\ldots"),
        ("\\dots", "\\ldots"),
        ("\\cdots", "\\ldots"),
        ("\\lbrace x \\rbrace", "\\{ x \\}"),
        ("\\dfrac{a}{b} \\tfrac{c}{d}", "\\frac { a } { b } \\frac { c } { d }"),
        # dropped tokens
        ("\\sum\\limits_{i=1}^{n} i", "\\sum _ { i = 1 } ^ { n } i"),
        ("\\int\\nolimits_0^1", "\\int _ { 0 } ^ { 1 }"),
        ("$x$", "x"),
        ("$ $ x $", "x"),
        ("a \\, b \\; c \\quad d ~ e \\! f", "a b c d e f"),
        ("\\displaystyle x", "x"),
        ("  x   +   1  ", "x + 1"),
        # \left and \right and sizes
        ("\\left( x \\right)", "( x )"),
        ("\\left. x \\right|", "x |"),
        ("\\left\\{ x \\right.", "\\{ x"),
        ("\\Big( x \\bigr]", "( x ]"),
        ("\\left\\lbrace x \\right\\rbrace", "\\{ x \\}"),
        # text wrappers
        ("\\mbox{n v}", "n v"),
        ("\\mbox { n v }", "n v"),
        ("\\mathrm{d}x", "d x"),
        ("\\text{if} x", "i f x"),
        # braced arguments
        ("\\frac 1 2", "\\frac { 1 } { 2 }"),
        ("\\frac12", "\\frac { 1 } { 2 }"),
        ("\\frac{1}2", "\\frac { 1 } { 2 }"),
        ("\\frac\\alpha\\beta", "\\frac { \\alpha } { \\beta }"),
        ("{a \\over b}", "\\frac { a } { b }"),
        ("x^2", "x ^ { 2 }"),
        ("x^\\alpha", "x ^ { \\alpha }"),
        ("x^{2}", "x ^ { 2 }"),
        ("\\sqrt x", "\\sqrt { x }"),
        ("\\sqrt[3]{x}", "\\sqrt [ 3 ] { x }"),
        ("\\frac{\\frac12}{3}", "\\frac { \\frac { 1 } { 2 } } { 3 }"),
        ("\\hat x", "\\hat { x }"),
        # braces around single tokens and doubled braces
        ("{x}^{ 2 }", "x ^ { 2 }"),
        ("{ p } ^ { y }", "p ^ { y }"),
        ("x ^ { { 2 } }", "x ^ { 2 }"),
        ("{{a}} + {b}", "a + b"),
        # scripts: subscript first
        ("x^{2}_{i}", "x _ { i } ^ { 2 }"),
        ("x_i^2", "x _ { i } ^ { 2 }"),
        ("x _ { i } ^ { 2 }", "x _ { i } ^ { 2 }"),
        ("\\sum^{n}_{i=1}", "\\sum _ { i = 1 } ^ { n }"),
        # primes
        ("f'", "f ^ { \\prime }"),
        ("f^{'}", "f ^ { \\prime }"),
        ("f^{\\prime}", "f ^ { \\prime }"),
        ("f ^ \\prime", "f ^ { \\prime }"),
        ("f''", "f ^ { \\prime \\prime }"),
        ("f'^{'}", "f ^ { \\prime \\prime }"),
        ("x_{i}'", "x _ { i } ^ { \\prime }"),
        ("x'_{i}", "x _ { i } ^ { \\prime }"),
        # environments keep their column spec braced
        ("\\begin{array}{cc} a & b \\\\ c & d \\end{array}",
         "\\begin{array} { c c } a & b \\\\ c & d \\end{array}"),
        # typeset (im2latex) spellings: old font switches act on the rest of their group
        ("{ \\cal L } + x", "\\mathcal { L } + x"),
        ("{\\bf x y} z", "\\mathbf { x y } z"),
        ("\\Bbb R", "\\mathbb { R }"),
        ("{ \\it a b } c", "a b c"),
        ("x ^ \\bf y", "x ^ { \\mathbf { y } }"),
        # \sp and \sb are scripts; arguments of \phantom and friends stay braced; \hspace goes with its length
        ("x \\sp { 2 } \\sb 3", "x _ { 3 } ^ { 2 }"),
        ("\\phantom { \\mu | A } 1", "\\phantom { \\mu | A } 1"),
        ("\\mathop { \\rm lim } x", "\\mathop { l i m } x"),
        ("a \\hspace { 1 cm } b \\vspace*{2pt}", "a b"),
        ("{\\scriptsize x}", "x"),
    ],
)
def test_normal_form_rules(raw, canonical):
    assert normalize_latex(raw) == canonical
    assert normalize_latex(canonical) == canonical


def test_spellings_of_one_formula_are_equal():
    assert latex_equal("$x^{2}$", "{x}^{ 2 }")
    assert latex_equal("\\frac 1 2", "{1 \\over 2}")
    assert not latex_equal("x^2", "x_2")


def test_normalize_tokens_takes_a_token_list():
    assert normalize_tokens(["x", "^", "2"]) == ["x", "^", "{", "2", "}"]
    assert normalize_tokens([]) == []


@pytest.mark.parametrize("raw", ["{x", "x}", "\\frac{1}", "x^", "\\sqrt", "\\left", "{ \\frac 1 }"])
def test_unbalanced_input_raises_only_in_strict_mode(raw):
    with pytest.raises(LatexError):
        normalize_latex(raw, strict=True)
    normalize_latex(raw)  # a model's malformed output must still be scorable


@pytest.mark.parametrize("label, canonical", [("\\lt", "<"), (" \\ge ", "\\geq"), ("x", "x"), ("\\cdots", "\\ldots")])
def test_normalize_symbol(label, canonical):
    assert normalize_symbol(label) == canonical


@pytest.mark.parametrize(
    "raw",
    [
        "^ \\over",  # \over as a script's argument
        "\\left {",  # \left before a brace
        "\\left ^ x",
        "x ^ { 2 } { _ { i } }",  # a group that starts with a script
        "\\Pi ^ { \\mu } { } _ { \\nu }",  # im2latex's tensor indices after an empty group
        "x ^ { 2 } ^ { 3 } _ { i }",
        "\\sqrt [ } { ] ] x",  # brackets inside a root's option
        "\\sqrt [ ^ ] x",
        "^ } ' _",
    ],
)
def test_normal_form_is_a_fixed_point_on_inputs_that_once_broke_it(raw):
    once = normalize_latex(raw)
    assert normalize_latex(once) == once


# ---------------------------------------------------------------------------------------------
# Properties

SOUP_TOKENS = [
    "{", "}", "^", "_", "'", "[", "]", "$", "&", "\\\\", "x", "2", "+", "(", ")", "|", ".",
    "\\frac", "\\sqrt", "\\over", "\\left", "\\right", "\\big", "\\limits", "\\mbox", "\\mathrm",
    "\\prime", "\\lt", "\\dots", "\\hat", "\\begin{array}", "\\end{array}", "\\alpha", "\\,", "\\{",
    "\\sum", "\\operatorname*", "\\binom",
]


@settings(max_examples=200, deadline=None)
@given(st.lists(st.sampled_from(SOUP_TOKENS), max_size=25))
def test_normalize_never_raises_and_is_idempotent_on_token_soup(tokens):
    once = normalize_tokens(tokens)
    assert normalize_tokens(once) == once


@settings(max_examples=100, deadline=None)
@given(st.text(max_size=40))
def test_normalize_never_raises_on_arbitrary_text(text):
    once = normalize_latex(text)
    assert normalize_latex(once) == once


# A generator of well-formed formulas that knows each one's canonical tokens and writes it the
# many ways people do: optional braces around single tokens, redundant braces, $, spaces, aliases,
# either order of scripts.

ATOMS = ["x", "y", "2", "7", "+", "-", "=", "(", ")", "\\alpha", "\\infty", "\\leq", "\\ldots", "<"]
SPELLINGS = {"\\leq": ["\\leq", "\\le"], "\\ldots": ["\\ldots", "\\dots", "\\cdots"], "<": ["<", "\\lt"]}


@st.composite
def atom(draw):
    """(canonical tokens, written tokens) of one symbol."""
    token = draw(st.sampled_from(ATOMS))
    written = draw(st.sampled_from(SPELLINGS.get(token, [token])))
    if draw(st.booleans()):
        return [token], ["{", written, "}"]
    return [token], [written]


def braced(draw, node, allow_bare=True):
    canonical, written = node
    if allow_bare and len(canonical) == 1 and draw(st.booleans()):
        return written  # x^2 or x^{2}: a single token needs no more braces
    extra = draw(st.integers(0, 2))
    return ["{"] * (extra + 1) + written + ["}"] * (extra + 1)


@st.composite
def formula(draw, depth=2):
    """(canonical tokens, written tokens) of a sequence of 1 to 3 items."""
    canonical, written = [], []
    for _ in range(draw(st.integers(1, 3))):
        kinds = ["atom"] + (["frac", "sqrt", "script", "over"] if depth > 0 else [])
        kind = draw(st.sampled_from(kinds))
        if kind == "atom":
            c, w = draw(atom())
        elif kind in ("frac", "over"):
            (cn, wn), (cd, wd) = draw(formula(depth - 1)), draw(formula(depth - 1))
            c = ["\\frac", "{", *cn, "}", "{", *cd, "}"]
            if kind == "over":
                w = ["{", *wn, "\\over", *wd, "}"]
            else:
                w = ["\\frac", *braced(draw, (cn, wn)), *braced(draw, (cd, wd))]
        elif kind == "sqrt":
            ca, wa = draw(formula(depth - 1))
            c, w = ["\\sqrt", "{", *ca, "}"], ["\\sqrt", *braced(draw, (ca, wa))]
        else:
            base = draw(st.sampled_from(["x", "y", "\\alpha", "\\sum"]))
            (cs, ws), (cp, wp) = draw(formula(depth - 1)), draw(formula(depth - 1))
            has_sub, has_sup = draw(st.sampled_from([(True, False), (False, True), (True, True)]))
            c, w = [base], [base]
            sub = ["_", *braced(draw, (cs, ws))] if has_sub else []
            sup = ["^", *braced(draw, (cp, wp))] if has_sup else []
            c += (["_", "{", *cs, "}"] if has_sub else []) + (["^", "{", *cp, "}"] if has_sup else [])
            w += sup + sub if draw(st.booleans()) else sub + sup
            if base == "\\sum" and draw(st.booleans()):
                w.insert(1, "\\limits")
        canonical += c
        written += w
    return canonical, written


def as_text(draw, tokens):
    """Tokens written out with random spacing and stray $ (never gluing a command to a letter)."""
    out = []
    for token in tokens:
        if draw(st.integers(0, 9)) == 0:
            out.append(" $ ")
        out.append(token)
        out.append(" " if token[0] == "\\" and token[-1].isalpha() else draw(st.sampled_from(["", " ", "  "])))
    return "".join(out)


@settings(max_examples=100, deadline=None)
@given(st.data())
def test_redundant_braces_spaces_and_dollars_do_not_change_the_normal_form(data):
    canonical, written = data.draw(formula())
    text = as_text(data.draw, written)
    assert normalize_latex(text, strict=True) == " ".join(canonical), text
    assert normalize_latex(" ".join(canonical), strict=True) == " ".join(canonical)


@settings(max_examples=50, deadline=None)
@given(st.data())
def test_wrapping_a_formula_in_braces_or_dollars_changes_nothing(data):
    canonical, written = data.draw(formula())
    text = " ".join(written)
    assume(text)
    assert normalize_latex("{" + text + "}") == normalize_latex(text)
    assert normalize_latex("$" + text + "$") == normalize_latex(text)


# ---------------------------------------------------------------------------------------------
# Vocabulary


def test_vocabulary_ids_and_round_trip():
    vocab = Vocabulary.from_sequences([["x", "^", "{", "2", "}"], ["x", "+", "1"]])
    assert vocab.tokens[:4] == ["<pad>", "<s>", "</s>", "<unk>"]
    assert (vocab.pad_id, vocab.start_id, vocab.end_id, vocab.unk_id) == (0, 1, 2, 3)
    assert vocab.tokens[4] == "x"  # most frequent first
    assert len(vocab) == 4 + 7 and "x" in vocab and "\\alpha" not in vocab
    tokens = ["x", "+", "{", "2", "}"]
    ids = vocab.encode(tokens, add_bounds=True)
    assert ids[0] == vocab.start_id and ids[-1] == vocab.end_id
    assert vocab.decode(ids) == tokens
    assert vocab.decode(ids + [vocab.index["x"]]) == tokens  # stops at the end token
    assert vocab.decode([vocab.pad_id, *vocab.encode(tokens), vocab.pad_id]) == tokens


def test_vocabulary_unknown_tokens_and_ids():
    vocab = Vocabulary(["a", "b"])
    assert vocab.encode(["a", "\\zeta"]) == [4, vocab.unk_id]
    assert vocab.decode([4, 99, -1]) == ["a", "<unk>", "<unk>"]


def test_vocabulary_min_count_and_specials_in_input():
    vocab = Vocabulary.from_sequences([["a", "a", "b"]], min_count=2)
    assert vocab.tokens == ["<pad>", "<s>", "</s>", "<unk>", "a"]
    assert Vocabulary(["<unk>", "a"]).tokens == ["<pad>", "<s>", "</s>", "<unk>", "a"]
    with pytest.raises(ValueError):
        Vocabulary(["a", "a"])


def test_vocabulary_save_and_load(tmp_path):
    vocab = Vocabulary(["\\alpha", "{", "}", "é"])
    vocab.save(tmp_path / "vocab.json")
    loaded = Vocabulary.load(tmp_path / "vocab.json")
    assert loaded.tokens == vocab.tokens and loaded.index == vocab.index
    (tmp_path / "other.json").write_text(json.dumps({"tokens": ["a", "b"]}))
    with pytest.raises(ValueError, match="not a mathocr vocabulary"):
        Vocabulary.load(tmp_path / "other.json")


@settings(max_examples=50, deadline=None)
@given(st.lists(st.lists(st.text(min_size=1, max_size=3), max_size=8), max_size=8))
def test_vocabulary_encodes_and_decodes_every_known_sequence(sequences):
    vocab = Vocabulary.from_sequences(sequences)
    for seq in sequences:
        if not any(t in Vocabulary.SPECIALS for t in seq):
            assert vocab.decode(vocab.encode(seq, add_bounds=True)) == seq


def test_backslash_before_a_newline_is_a_control_space():
    # found by hypothesis: "\\\n0" used to normalise to "\\ 0", which normalised again to "0"
    assert normalize_latex("\\\n0") == "0" == normalize_latex("\\ 0")
