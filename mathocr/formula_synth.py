"""Made-up handwritten formulas: a LaTeX formula laid out by matplotlib's mathtext (the boxes of its
symbols, fraction bars and root signs, as a typesetter places them), each symbol then written in
a random writer's strokes from CROHME's segmentation (``SymbolBank``) fitted into its box.

The other made-up formulas of training (``formula_data``: relabelled, concatenated, stacked,
scripted) re-use the layouts of CROHME's own 8,834 formulas; these bring layouts and token
sequences that CROHME lacks (any formula of the vocabulary: im2latex's, or CROHME's truths laid out
anew), at the price of a typesetter's regularity, which a little jitter and the ink augmentation
loosen.

``layout(tokens)`` is the slow, deterministic part (a few milliseconds, cached by the caller);
``write(layout, bank, rng)`` is cheap and new every time."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from typing import Sequence

import numpy as np

from mathocr.formula_data import RELATIONS

# the symbol label (CROHME's segmentation) of each character mathtext draws
_CHAR_LABELS = {
    "+": "+", "\u2212": "-", "-": "-", "=": "=", "<": "\\lt", ">": "\\gt", "(": "(", ")": ")", "[": "[",
    "]": "]", "{": "\\{", "}": "\\}", "|": "|", "/": "/", "!": "!", ",": ",", ".": ".", "\u22c5": ".",
    "\u00d7": "\\times", "\u00b1": "\\pm", "\u00f7": "\\div", "\u2264": "\\leq", "\u2265": "\\geq",
    "\u2260": "\\neq", "\u2192": "\\rightarrow", "\u2211": "\\sum", "\u222b": "\\int", "\u221a": "\\sqrt",
    "\u221e": "\\infty", "\u2026": "\\ldots", "\u2208": "\\in", "\u2200": "\\forall", "\u2203": "\\exists",
    "\u2032": "\\prime", "\u03b1": "\\alpha", "\u03b2": "\\beta", "\u03b3": "\\gamma", "\u03b8": "\\theta",
    "\u03bb": "\\lambda", "\u03bc": "\\mu", "\u03c0": "\\pi", "\u03c3": "\\sigma", "\u03d5": "\\phi",
    "\u03c6": "\\phi", "\u0394": "\\Delta",
}
# tokens that draw nothing of their own (``\\frac`` draws a bar, counted apart)
_SILENT = frozenset({"{", "}", "^", "_", "\\frac"})
# a token's symbol label where the two differ; function names are written as one symbol in CROHME
_TOKEN_LABELS = {"<": "\\lt", ">": "\\gt", "\\cdot": "."}
FUNCTIONS = ("sin", "cos", "tan", "log", "lim")
# mathtext's size for the layout (its units are points; only proportions matter)
_SIZE = 10.0


@dataclass(frozen=True)
class Layout:
    """Where a formula's symbols go: ``labels[k]``'s box is ``boxes[k]`` (x0, y0, x1, y1; y grows
    downwards, as in ink), in units of the font size; ``size``: the height of a digit."""

    tokens: tuple[str, ...]
    labels: tuple[str, ...]
    boxes: np.ndarray  # (n, 4)
    size: float

    @property
    def aspect(self) -> float:
        """Width over height of all the boxes together."""
        lo, hi = self.boxes[:, :2].min(axis=0), self.boxes[:, 2:].max(axis=0)
        return float((hi[0] - lo[0]) / max(hi[1] - lo[1], 1e-6))


def token_labels(tokens: Sequence[str]) -> Counter:
    """The symbol labels a formula's tokens should draw (fraction bars and root overlines apart; the
    brackets of a root's index are not drawn)."""
    labels = Counter()
    depth = 0  # inside the [ ] of \sqrt [ n ]
    for k, t in enumerate(tokens):
        if t == "[" and k and tokens[k - 1] == "\\sqrt":
            depth = 1
        elif depth and t == "[":
            depth += 1
            labels[t] += 1
        elif depth and t == "]":
            depth -= 1
            if depth:
                labels[t] += 1
        elif t not in _SILENT:
            labels[_TOKEN_LABELS.get(t, t)] += 1
    return labels


def relabel(lay: Layout, rng: np.random.Generator, rate: float, instances: dict) -> Layout:
    """``lay`` with each symbol of ``formula_data.RELABEL_GROUPS`` replaced, with probability ``rate``,
    throughout (its boxes and its tokens) by another of its group that ``instances`` holds, as
    ``SymbolBank.relabel`` does for real ink: ``x^2 + x`` may become ``a^7 + a``."""
    from mathocr.formula_data import LABEL_TOKENS, RELABEL_GROUPS

    if rate <= 0:
        return lay
    labels, tokens = list(lay.labels), list(lay.tokens)
    for label in sorted(set(labels)):
        group = next((g for g in RELABEL_GROUPS if label in g), None)
        if group is None or rng.uniform() >= rate:
            continue
        token = LABEL_TOKENS.get(label, label)
        if tokens.count(token) != labels.count(label):  # a '-' that is also a fraction bar, say
            continue
        choices = [g for g in group if g != label and instances.get(g)]
        if not choices:
            continue
        new = choices[int(rng.integers(len(choices)))]
        labels = [new if x == label else x for x in labels]
        tokens = [LABEL_TOKENS.get(new, new) if t == token else t for t in tokens]
    return Layout(tuple(tokens), tuple(labels), lay.boxes, lay.size)


_PARSER = None


def _parser():
    global _PARSER
    if _PARSER is None:
        import matplotlib
        from matplotlib.mathtext import MathTextParser

        matplotlib.rcParams["mathtext.fontset"] = "dejavusans"  # its glyphs carry their Unicode code points
        _PARSER = MathTextParser("path")
    return _PARSER


def to_mathtext(tokens: Sequence[str]) -> str:
    """Tokens as one mathtext string: no spaces but after a command name before a letter (mathtext
    takes the space in ``x ^ { 2 }`` for the superscript)."""
    out = []
    for token in tokens:
        if out and out[-1][:1] == "\\" and out[-1][1:].isalpha() and token[:1].isalpha():
            out.append(" ")
        out.append(token)
    return "".join(out)


def _glyph_box(font, fontsize: float, glyph_index: int) -> tuple[float, float, float, float] | None:
    """A glyph's ink box relative to its origin (x0, y0, x1, y1; y upwards), in points."""
    from matplotlib.ft2font import LoadFlags

    font.set_size(fontsize, 72)
    glyph = font.load_glyph(glyph_index, flags=LoadFlags.NO_HINTING)
    x0, y0, x1, y1 = (v / 64 for v in glyph.bbox)
    if x1 <= x0 and y1 <= y0:
        return None
    return x0, y0, x1, y1


def layout(tokens: Sequence[str]) -> Layout | None:
    """The layout of a canonical token sequence, or None where mathtext cannot set it or what it
    draws does not match the tokens one symbol to one (an unknown command, a symbol CROHME never
    segments)."""
    from matplotlib.font_manager import FontProperties

    tokens = tuple(tokens)
    if not tokens:
        return None
    try:
        parsed = _parser().parse("$" + to_mathtext(tokens) + "$", dpi=72, prop=FontProperties(size=_SIZE))
    except (ValueError, KeyError, RuntimeError):
        return None
    height = float(parsed.height)
    glyphs = []  # (label, x0, y0, x1, y1 in ink coordinates, upright)
    for font, fontsize, num, glyph_index, ox, oy in parsed.glyphs:
        if num == 32:
            continue
        box = _glyph_box(font, fontsize, glyph_index)
        if box is None:
            continue
        char = chr(num)
        upright = "Oblique" not in font.postscript_name and "Italic" not in font.postscript_name
        # mathtext draws \prime from Computer Modern's symbol font, code 0x30
        if num == 48 and "cmsy" in font.postscript_name.lower():
            char = "\u2032"
        label = char if char.isascii() and char.isalnum() else _CHAR_LABELS.get(char)
        if label is None:
            return None
        x0, y0, x1, y1 = box
        glyphs.append([label, ox + x0, height - oy - y1, ox + x1, height - oy - y0, upright])
    glyphs = _function_names(glyphs)
    if glyphs is None:
        return None
    rects = [(float(x), height - float(y) - float(h), float(x) + float(w), height - float(y))
             for x, y, w, h in parsed.rects]
    # each root sign's overline: the rect starting nearest its right edge, at its top
    for g in glyphs:
        if g[0] != "\\sqrt" or not rects:
            continue
        k = min(range(len(rects)), key=lambda r: abs(rects[r][0] - g[3]) + abs(rects[r][1] - g[2]))
        x0, y0, x1, y1 = rects.pop(k)
        g[1:5] = [min(g[1], x0), min(g[2], y0), max(g[3], x1), max(g[4], y1)]
    # the rest are fraction bars, one a \\frac
    if len(rects) != tokens.count("\\frac") or Counter(g[0] for g in glyphs) != token_labels(tokens):
        return None
    for x0, y0, x1, y1 in rects:
        glyphs.append(["-", x0, y0, x1, y1, True])
    labels = tuple(g[0] for g in glyphs)
    boxes = np.array([g[1:5] for g in glyphs], np.float32)
    return Layout(tokens, labels, boxes, _SIZE * 0.73)


def _function_names(glyphs: list) -> list | None:
    """``glyphs`` with each run of upright lowercase letters that spells a function name merged into
    one symbol (``\\sin``); None where an upright lowercase letter is not part of one."""
    out, k = [], 0
    while k < len(glyphs):
        g = glyphs[k]
        if g[5] and len(g[0]) == 1 and g[0].islower():
            word = "".join(h[0] for h in glyphs[k:k + 3])
            if word not in FUNCTIONS or not all(h[5] for h in glyphs[k:k + 3]):
                return None
            run = glyphs[k:k + 3]
            out.append(["\\" + word, min(h[1] for h in run), min(h[2] for h in run), max(h[3] for h in run),
                        max(h[4] for h in run), True])
            k += 3
            continue
        out.append(g)
        k += 1
    return out


# fit_vocabulary: commands dropped with their braced argument kept (accents, fonts, operator names),
# dropped with their argument, and symbols that become a vocabulary symbol of the same role
_UNWRAP = frozenset({
    "\\mathcal", "\\mathbf", "\\mathsf", "\\mathtt", "\\mathbb", "\\mathfrak", "\\mathscr", "\\boldsymbol",
    "\\bm", "\\pmb", "\\textbf", "\\bar", "\\overline", "\\underline", "\\tilde", "\\widetilde", "\\hat",
    "\\widehat", "\\dot", "\\ddot", "\\vec", "\\check", "\\breve", "\\acute", "\\grave",
    "\\overrightarrow", "\\operatorname", "\\operatorname*", "\\mathop", "\\mathrm",
})
_DROP_GROUP = frozenset({"\\phantom", "\\hphantom", "\\vphantom", "\\label"})
_DROP = frozenset({"\\nonumber", "\\left", "\\right"})
_SAME_ROLE = {
    "\\partial": "d", "\\hbar": "h", "\\ell": "l", "\\imath": "i", "\\jmath": "j", "\\nabla": "\\Delta",
    "\\triangle": "\\Delta", "*": "\\times", "\\otimes": "\\times", "\\star": "\\times", "\\wedge": "\\times",
    "\\oplus": "+", "\\circ": "\\cdot", "\\bullet": "\\cdot", "\\mp": "\\pm", "\\equiv": "=", "\\approx": "=",
    "\\simeq": "=", "\\sim": "=", "\\cong": "=", "\\propto": "=", "\\doteq": "=", "\\ll": "<", "\\gg": ">",
    "\\longrightarrow": "\\rightarrow", "\\Rightarrow": "\\rightarrow", "\\Longrightarrow": "\\rightarrow",
    "\\mapsto": "\\rightarrow", "\\subset": "\\in", "\\subseteq": "\\in", ";": ",", ":": ",", "\\mid": "|",
    "\\langle": "(", "\\rangle": ")", "\\prod": "\\sum", "\\oint": "\\int", "\\varepsilon": "\\epsilon",
    "\\vartheta": "\\theta", "\\varphi": "\\phi", "\\varrho": "\\rho", "\\varpi": "\\pi",
    "\\dagger": "\\prime", "\\dag": "\\prime", "\\cdots": "\\ldots", "\\dots": "\\ldots",
}
LOWER_GREEK = frozenset(f"\\{g}" for g in (
    "alpha beta gamma delta epsilon zeta eta theta iota kappa lambda mu nu xi pi rho sigma varsigma tau "
    "upsilon phi chi psi omega").split())
UPPER_GREEK = frozenset(f"\\{g}" for g in "Gamma Delta Theta Lambda Xi Pi Sigma Upsilon Phi Psi Omega".split())


def _kind(token: str) -> str | None:
    """The role a letter plays, for ``fit_vocabulary``: a capital (Latin or Greek), a Greek small
    letter, or None."""
    if len(token) == 1 and token.isupper() or token in UPPER_GREEK:
        return "capital"
    if token in LOWER_GREEK:
        return "greek"
    return None


def fit_vocabulary(tokens: Sequence[str], vocabulary, rng: np.random.Generator) -> list[str] | None:
    """``tokens`` (canonical) rewritten into ``vocabulary``'s symbols, or None where they cannot be.
    A formula's role survives, its meaning need not: accents and font commands go, their argument
    stays (``\\hat { \\omega }`` -> ``\\omega``); ``\\operatorname { s i n }`` -> ``\\sin``; symbols
    become one of the same role (``\\partial`` -> ``d``, ``\\equiv`` -> ``=``, ``\\langle`` -> ``(``); a
    capital or Greek letter outside the vocabulary becomes a random one of its kind inside it that
    the formula does not use yet, the same one wherever it appears. Training only needs the written symbols to match the target."""
    from mathocr.latex import normalize_tokens

    tokens = list(tokens)
    out: list[str] = []
    closing: list[bool] = []  # for each open brace: whether its closing brace is kept
    k = 0
    while k < len(tokens):
        t = tokens[k]
        has_group = k + 1 < len(tokens) and tokens[k + 1] == "{"
        if t in _DROP_GROUP and has_group:
            depth, k = 1, k + 2
            while k < len(tokens) and depth:
                depth += {"{": 1, "}": -1}.get(tokens[k], 0)
                k += 1
            continue
        if t in _UNWRAP and has_group:
            end, depth = k + 2, 1
            while end < len(tokens) and depth:
                depth += {"{": 1, "}": -1}.get(tokens[end], 0)
                end += 1
            name = "".join(tokens[k + 2:end - 1])
            if t.startswith("\\operatorname") and name in FUNCTIONS and f"\\{name}" in vocabulary:
                out.append(f"\\{name}")
                k = end
                continue
            closing.append(False)
            k += 2
            continue
        if t in _UNWRAP or t in _DROP:
            k += 1
            continue
        if t == "{":
            closing.append(True)
        elif t == "}":
            if not closing:
                return None
            if not closing.pop():
                k += 1
                continue
        out.append(_SAME_ROLE.get(t, t))
        k += 1
    # letters outside the vocabulary: one of their kind inside it, the same for every occurrence
    known = getattr(vocabulary, "tokens", vocabulary)  # a Vocabulary or a set of tokens
    pools = {kind: sorted(v for v in known if _kind(v) == kind) for kind in ("capital", "greek")}
    chosen: dict[str, str] = {}
    for n, t in enumerate(out):
        if t in vocabulary:
            continue
        kind = _kind(t)
        if kind is None or not pools[kind]:
            return None
        if t not in chosen:  # one the formula does not use yet, where there is one
            free = [v for v in pools[kind] if v not in out and v not in chosen.values()] or pools[kind]
            chosen[t] = free[int(rng.integers(len(free)))]
        out[n] = chosen[t]
    if "{" in out and any(a == "{" and b == "}" for a, b in zip(out, out[1:])):
        return None  # an emptied group (a script that held only a phantom)
    out = normalize_tokens(out)
    return out if out and all(t in vocabulary for t in out) else None


# where ``pieces`` cuts a long formula, coarsest first: between clauses, between the sides of a
# relation, between terms; only outside every brace group and bracket pair
_CUTS = (frozenset({","}), RELATIONS, frozenset({"+", "-", "\\pm"}))
_OPENING, _CLOSING = frozenset({"(", "[", "\\{"}), frozenset({")", "]", "\\}"})
# pieces shorter than this are left out (short formulas are plentiful)
PIECE_MIN_TOKENS = 3
# the longest piece training cuts (``--synth-im2latex pieces``), in tokens: about nine in ten pieces
# then fit the model's 448-pixel input once laid out
PIECE_TOKENS = 30


def _top_level(tokens: Sequence[str]) -> list[bool]:
    """For each token, whether it stands outside every brace group and bracket pair."""
    braces = brackets = 0
    top = []
    for t in tokens:
        if t == "}":
            braces -= 1
        elif braces == 0 and t in _CLOSING:
            brackets -= 1
        top.append(braces == 0 and brackets == 0 and t not in _OPENING and t not in _CLOSING and t not in "{}")
        if t == "{":
            braces += 1
        elif braces == 0 and t in _OPENING:
            brackets += 1
    return top


def pieces(tokens: Sequence[str], budget: int = PIECE_TOKENS) -> list[list[str]]:
    """Formulas of at most ``budget`` tokens cut from a longer one (none from one that short): its
    clauses between top-level commas; of a clause still too long, runs of its sides between
    relations; of a side still too long, runs of its terms between ``+`` and ``-``. Neighbouring
    parts are merged while they fit, with the separator between them; the separator where a cut
    falls is left out. Cuts fall only outside braces and brackets, so each piece is well formed;
    pieces under ``PIECE_MIN_TOKENS`` tokens, or that cannot be cut small enough, are left out."""
    tokens = list(tokens)
    if len(tokens) <= budget:
        return []
    out: list[list[str]] = []

    def cut(seq: list[str], level: int) -> None:
        if len(seq) <= budget:
            if len(seq) >= PIECE_MIN_TOKENS:
                out.append(seq)
            return
        if level == len(_CUTS):
            return
        top = _top_level(seq)
        parts, separators, start = [], [], 0
        for k, t in enumerate(seq):
            if top[k] and t in _CUTS[level]:
                parts.append(seq[start:k])
                separators.append(t)
                start = k + 1
        parts.append(seq[start:])
        window = parts[0]
        for separator, part in zip(separators, parts[1:]):
            if window and len(window) + 1 + len(part) <= budget:
                window = window + [separator] + part
            else:
                cut(window, level + 1)
                window = part
        cut(window, level + 1)

    cut(tokens, 0)
    return out


def im2latex_formulas(vocabulary, root=None, fit: bool = False, seed: int = 0,
                      piece_tokens: int = 0) -> list[list[str]]:
    """im2latex's training formulas (canonical tokens) whose every token ``vocabulary`` holds (none of
    its validation or test formulas); none where the data has no im2latex. ``fit``: the others too,
    where ``fit_vocabulary`` can rewrite them into the vocabulary (letters drawn with ``seed``).
    ``piece_tokens``: besides, of each formula longer than that, its ``pieces`` of at most that many
    tokens (each distinct piece once), so that long formulas give layouts that fit the input."""
    from mathocr.data import im2latex_available, load_im2latex

    if not im2latex_available(root):
        return []
    rng = np.random.default_rng(seed)
    kept = []
    for f in load_im2latex(root, split="train"):
        tokens = f.tokens.split()
        if tokens and all(token in vocabulary for token in tokens):
            kept.append(tokens)
        elif tokens and fit and (mapped := fit_vocabulary(tokens, vocabulary, rng)) is not None:
            kept.append(mapped)
    if piece_tokens > 0:
        seen = {tuple(t) for t in kept}
        for tokens in list(kept):
            for piece in pieces(tokens, piece_tokens):
                if tuple(piece) not in seen:
                    seen.add(tuple(piece))
                    kept.append(piece)
    return kept


# how loosely a made-up formula is written: its symbols spread apart by up to this factor, each
# box moved by up to this share of a symbol and scaled by up to this share
SPREAD = (1.0, 1.35)
SHIFT = 0.08
RESIZE = 0.12


def write(lay: Layout, instances: dict, rng: np.random.Generator) -> list[np.ndarray]:
    """``lay``'s symbols in other writers' strokes: for each, a random instance of its label from
    ``instances`` (``SymbolBank.instances``) fitted into its box, the boxes loosened as a hand
    would (``SPREAD``, ``SHIFT``, ``RESIZE``). Raises KeyError for a label the bank lacks."""
    from mathocr.formula_data import STRETCHY, fit_into

    boxes = lay.boxes.astype(np.float64, copy=True)
    spread = rng.uniform(*SPREAD)
    centre = (boxes[:, [0, 1]] + boxes[:, [2, 3]]) / 2
    half = (boxes[:, [2, 3]] - boxes[:, [0, 1]]) / 2
    centre[:, 0] *= spread
    centre += rng.normal(0, SHIFT * lay.size / 2, size=centre.shape)
    half *= rng.uniform(1 - RESIZE, 1 + RESIZE, size=(len(boxes), 1))
    strokes: list[np.ndarray] = []
    for label, c, h in zip(lay.labels, centre, half):
        donors = instances[label]
        _, donor = donors[int(rng.integers(len(donors)))]
        target = [np.array([c - h, c + h], np.float32)]
        strokes.extend(fit_into(target, donor, label in STRETCHY))
    return strokes
