"""Formulas as a model reads them: ink rendered to bitmaps, canonical token ids, bucketed batches.

Every image comes from ``render.render_strokes`` (training, evaluation and the app alike), at
``HEIGHT`` pixels high and at most ``MAX_WIDTH`` wide, and goes through ``ink_array``. Training
images are re-rendered on every epoch from augmented ink (random slant, rotation, scale, per-stroke
jitter and pen width), so the model never sees the same bitmap twice. Batches group formulas of
similar width and length, so padding (and the time spent on it) stays small.

The parsed strokes of a split are cached under ``data.cache_dir()``: parsing 8,800 InkML files
takes longer than rendering them.
"""

from __future__ import annotations

import gzip
import hashlib
import pickle
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator, Sequence

import numpy as np
from PIL import Image

from mathocr import data as data_mod
from mathocr.inkml import InkMLError, read_inkml
from mathocr.latex import Vocabulary, normalize_tokens, tokenize_latex
from mathocr.render import (PEN_CHANNELS, augment_strokes, elastic_strokes, fit_bitmap, ink_array, pen_channels,
                            render_strokes)

HEIGHT = 48
MAX_WIDTH = 448
WIDTH_STEP = 32  # batch widths are padded to a multiple of this (the encoder's stride divides it)
STROKE_WIDTH = 1.6


@dataclass
class InkFormula:
    """One handwritten formula: its strokes and canonical tokens."""

    id: str
    strokes: list[np.ndarray]
    tokens: list[str]
    # the segmented symbols, as (label, stroke indices); CROHME's files have them, canvases do not
    symbols: list[tuple[str, tuple[int, ...]]] = field(default_factory=list)


def load_inkml_formulas(paths: Sequence[Path]) -> tuple[list[InkFormula], dict[str, str]]:
    """Read InkML files into formulas; unreadable files are returned with their reason."""
    formulas, skipped = [], {}
    for path in paths:
        try:
            ink = read_inkml(path)
        except (InkMLError, OSError) as err:
            skipped[str(path)] = str(err)
            continue
        formulas.append(InkFormula(Path(path).stem, ink.strokes, normalize_tokens(tokenize_latex(ink.truth)),
                                   _symbol_pairs(ink)))
    return formulas, skipped


def _symbol_pairs(ink) -> list[tuple[str, tuple[int, ...]]]:
    return [(sym.label, tuple(sym.stroke_indices)) for sym in ink.symbols]


def load_crohme_formulas(split: str, root=None) -> list[InkFormula]:
    """A CROHME split's formulas (train, validation = 2013, test = 2014). The strokes and raw
    truths are cached after the first read; the truths are normalised on every load, so a change
    to the canonical form needs no cache flush."""
    paths = data_mod.crohme_files(split, root)
    digest = hashlib.sha256(f"formulas-v3|{split}".encode())
    for p in paths:
        st = p.stat()
        digest.update(f"{p}|{st.st_size}|{st.st_mtime_ns}".encode())
    cached = data_mod.cache_dir() / f"formulas-{split}-{digest.hexdigest()[:16]}.pkl.gz"
    if cached.exists():
        raw = pickle.loads(gzip.decompress(cached.read_bytes()))
    else:
        raw = []
        for path in paths:
            try:
                ink = read_inkml(path)
            except (InkMLError, OSError):
                continue
            raw.append((Path(path).stem, ink.strokes, ink.truth, _symbol_pairs(ink)))
        data_mod.atomic_write(cached, gzip.compress(pickle.dumps(raw)))
    return [InkFormula(i, strokes, normalize_tokens(tokenize_latex(truth)), symbols)
            for i, strokes, truth, symbols in raw]


def render_formula(strokes, height: int = HEIGHT, max_width: int = MAX_WIDTH,
                   stroke_width: float = STROKE_WIDTH) -> Image.Image:
    """The bitmap a formula model reads, from pen strokes (canvas or InkML)."""
    return render_strokes(strokes, height=height, max_width=max_width, stroke_width=stroke_width)


def formula_input(strokes, height: int = HEIGHT, max_width: int = MAX_WIDTH, stroke_width: float = STROKE_WIDTH,
                  pen: bool = False) -> np.ndarray:
    """What a formula model reads from pen strokes: the ink ``(h, w)`` of ``render_formula``; with
    ``pen``, also what the pen did there, ``(h, w, 4)``: the ink and ``render.pen_channels``."""
    ink = ink_array(render_formula(strokes, height, max_width, stroke_width))
    if not pen:
        return ink
    return np.concatenate([ink[..., None], pen_channels(strokes, ink, max_width=max_width,
                                                        stroke_width=stroke_width)], -1)


def with_channels(array: np.ndarray, channels: int) -> np.ndarray:
    """A model input ``(h, w)`` or ``(h, w, c)`` as a model with ``channels`` input channels reads
    it: the ink alone ``(h, w)`` for one channel (what else there is dropped); the ink and what the
    pen did ``(h, w, channels)``, zero where it is not known (a picture has no pen strokes)."""
    if channels == 1:
        return array if array.ndim == 2 else array[..., 0]
    ink = array if array.ndim == 2 else array[..., 0]
    out = np.zeros((*ink.shape, channels), np.float32)
    out[..., 0] = ink
    if array.ndim == 3:
        k = min(channels, array.shape[2])
        out[..., 1:k] = array[..., 1:k]
    return out


def formula_bitmap(image: Image.Image, height: int = HEIGHT, max_width: int = MAX_WIDTH,
                   pen: float | None = None) -> Image.Image:
    """The bitmap a formula model reads, from a paper-like image (a photo, a scan, a screenshot).
    With ``pen`` (pixels at the model's scale), the strokes are first thickened or thinned to that
    width (``normalise_pen``): for the handwritten model, trained on ink drawn with 1-2.4 pixel pens."""
    if pen is not None:
        image = normalise_pen(image, height, max_width, pen)
    return fit_bitmap(image, height=height, max_width=max_width)


PEN_WORK_SCALE = 4  # pens are measured and changed at this many times the model's resolution


def normalise_pen(image: Image.Image, height: int, max_width: int, pen: float, thin: bool = True) -> Image.Image:
    """The picture's ink cropped, scaled to ``PEN_WORK_SCALE`` times the size a model reads it at,
    with its strokes thickened (a minimum filter on dark ink) or thinned (a maximum filter) so that
    their median width (``formula_kind.stroke_widths``) is about ``pen * PEN_WORK_SCALE``. A photo
    of a formula written small with a thick marker, or large with a fine pen, otherwise reaches the
    model with strokes of 4 or 0.5 pixels. Measured on CROHME 2014 (``evaluate formulas --as-picture
    150,PEN [--no-pen-normalise]``: each formula drawn 150 pixels high, greedy, three margins): a 2-pixel
    pen (0.64 at the model's scale) 19.6 % -> 21.5 % ExpRate, a 12-pixel one (3.8) 5.9 % -> 20.7 %, a
    5-pixel one (1.6, as trained) 22.2 % -> 21.8 %; read from the ink itself, 21.4 %. With ``thin``
    False, strokes wider than ``pen`` are only cropped and scaled (``symbol_data.picture_image``)."""
    from PIL import ImageFilter

    from mathocr.formula_kind import stroke_widths

    gray = image.convert("L")
    ys, xs = np.nonzero(np.asarray(gray) < 200)  # fit_bitmap's ink
    if len(xs) == 0:
        return gray  # fit_bitmap says it is blank
    crop = gray.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    cw, ch = crop.size
    scale = min((height - 4) / ch, (max_width - 4) / cw) * PEN_WORK_SCALE  # fit_bitmap's 2-pixel margins
    work = crop.resize((max(1, round(cw * scale)), max(1, round(ch * scale))),
                       Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    darkness = 1.0 - np.asarray(work, dtype=np.float64) / 255.0
    widths = stroke_widths(darkness)
    if widths.size == 0 or (darkness > 0.5).mean() > 0.5:  # no strokes to measure (dark paper, a blot)
        return work
    change = pen * PEN_WORK_SCALE - float(np.median(widths))
    # a filter of size k widens or narrows a stroke by k - 1 (at most by 4 pixels at the model's scale)
    size = min(2 * int(round(abs(change) / 2)) + 1, 4 * PEN_WORK_SCALE + 1)
    if size < 3 or (change < 0 and not thin):
        return work
    return work.filter(ImageFilter.MinFilter(size) if change > 0 else ImageFilter.MaxFilter(size))


# Symbols that can stand for one another in a formula, grouped so that each takes about the same
# place in its line (x-height letters, ascenders, descenders, digits, capitals, operators,
# relations, functions): ``SymbolBank.relabel`` writes a formula with one such symbol replaced
# throughout by another of its group, in another writer's hand, and the tokens follow.
RELABEL_GROUPS = (
    ("a", "c", "e", "m", "n", "o", "r", "s", "u", "v", "w", "x", "z", "\\alpha", "\\sigma", "\\pi"),
    ("b", "d", "h", "k", "l", "t", "\\theta", "\\lambda"),
    ("g", "p", "q", "y", "\\gamma", "\\mu"),
    ("0", "1", "2", "3", "4", "5", "6", "7", "8", "9"),
    ("A", "B", "C", "E", "F", "G", "H", "I", "L", "M", "N", "P", "R", "S", "T", "V", "X", "Y", "\\Delta"),
    ("+", "-", "\\times", "\\pm", "\\div"),
    ("=", "\\leq", "\\geq", "\\neq", "\\lt", "\\gt", "\\rightarrow"),
    ("\\sin", "\\cos", "\\tan", "\\log"),
)
# a segmentation label whose canonical token is spelled differently
LABEL_TOKENS = {"\\lt": "<", "\\gt": ">"}
_GROUP_OF = {label: group for group in RELABEL_GROUPS for label in group}

# Symbols whose shape stretches with what they enclose or span: a restyled one fills the
# original's box on both axes. Others keep their own proportions within a small tolerance.
STRETCHY = frozenset({"\\sqrt", "-", "(", ")", "[", "]", "\\{", "\\}", "|", "/", "\\rightarrow", "\\int",
                      "\\sum", "\\lim", "\\ldots", "\\cdots"})
_ASPECT_SLACK = 1.3  # a non-stretchy symbol may get this much wider or narrower than its own shape
_THIN = 0.15  # a side shorter than this fraction of the other (the height of '-') is not fitted


def _box(strokes: Sequence[np.ndarray]) -> tuple[np.ndarray, np.ndarray]:
    points = np.concatenate([s[:, :2] for s in strokes])
    return points.min(axis=0), points.max(axis=0)


class SymbolBank:
    """Every segmented symbol of a set of formulas, by label, so that a formula can be rewritten
    in other writers' hands: ``restyle`` replaces some of its symbols by another writer's strokes
    for the same label, fitted into the original symbol's box. The formula (its tokens and its
    layout) stays the same; the shapes are new combinations, which a training set of 8,800
    formulas from a few hundred writers lacks. Formulas without segmentation pass unchanged."""

    def __init__(self, formulas: Sequence[InkFormula]):
        self.instances: dict[str, list[tuple[int, list[np.ndarray]]]] = {}
        for index, formula in enumerate(formulas):
            for label, refs in formula.symbols:
                strokes = [formula.strokes[i] for i in refs if 0 <= i < len(formula.strokes)]
                if strokes:
                    self.instances.setdefault(label, []).append((index, strokes))

    def __len__(self) -> int:
        return sum(len(v) for v in self.instances.values())

    def restyle(self, formula: InkFormula, rng: np.random.Generator, rate: float,
                source: int | None = None) -> list[np.ndarray]:
        """``formula``'s strokes with each symbol replaced, with probability ``rate``, by the same
        label's strokes from another formula of the bank (not ``source``, the formula's own
        index in it, when given)."""
        if rate <= 0 or not formula.symbols:
            return formula.strokes
        out: list[np.ndarray | None] = list(formula.strokes)
        extra: list[np.ndarray] = []
        for label, refs in formula.symbols:
            refs = [i for i in refs if 0 <= i < len(formula.strokes)]
            if not refs or rng.uniform() >= rate:
                continue
            others = [inst for inst in self.instances.get(label, ()) if inst[0] != source]
            if not others:
                continue
            _, donor = others[int(rng.integers(len(others)))]
            extra.extend(fit_into([formula.strokes[i] for i in refs], donor, label in STRETCHY))
            for i in refs:
                out[i] = None
        return [s for s in out if s is not None] + extra

    def relabel(self, formula: InkFormula, rng: np.random.Generator, rate: float,
                source: int | None = None) -> tuple[list[np.ndarray], list[str]]:
        """A new formula from ``formula``: each of its symbols that ``RELABEL_GROUPS`` holds is, with
        probability ``rate``, replaced throughout (every instance, in the ink and in the tokens) by
        another symbol of its group, each instance in another writer's strokes fitted into its box.
        ``x^2 + x`` may become ``a^7 + a``: the layout is real handwriting, the token sequence one
        the training set may not have, so the decoder cannot recite it from memory. A label is
        replaced only where its token occurs as often as its segmented instances (a fraction bar is
        segmented as ``-`` but written ``\\frac``), so the tokens stay true to the ink. Returns the
        strokes and the tokens."""
        tokens = list(formula.tokens)
        if rate <= 0 or not formula.symbols:
            return formula.strokes, tokens
        where: dict[str, list[list[int]]] = {}
        for label, refs in formula.symbols:
            refs = [i for i in refs if 0 <= i < len(formula.strokes)]
            if refs:
                where.setdefault(label, []).append(refs)
        out: list[np.ndarray | None] = list(formula.strokes)
        extra: list[np.ndarray] = []
        for label, instances in where.items():
            group = _GROUP_OF.get(label)
            token = LABEL_TOKENS.get(label, label)
            places = [k for k, t in enumerate(formula.tokens) if t == token]
            if group is None or len(places) != len(instances) or rng.uniform() >= rate:
                continue
            choices = [g for g in group if g != label and self.instances.get(g)]
            if not choices:
                continue
            new = choices[int(rng.integers(len(choices)))]
            for refs in instances:
                donors = [inst for inst in self.instances[new] if inst[0] != source] or self.instances[new]
                _, donor = donors[int(rng.integers(len(donors)))]
                extra.extend(fit_into([formula.strokes[i] for i in refs], donor, new in STRETCHY))
                for i in refs:
                    out[i] = None
            for k in places:
                tokens[k] = LABEL_TOKENS.get(new, new)
        return [s for s in out if s is not None] + extra, tokens


def scriptable(token: str) -> bool:
    """Whether a made-up script may follow ``token``: a letter, a digit, a Greek letter or a
    closing bracket (not a script's own closing brace: no double scripts)."""
    return ((len(token) == 1 and token.isalnum()) or token in (")", "]")
            or (token.startswith("\\") and token[1:] in _GREEK))


_GREEK = frozenset({"alpha", "beta", "gamma", "delta", "theta", "lambda", "mu", "pi", "sigma", "phi", "Delta"})

# Operators that may join two formulas written one after the other (``concatenate``); None: side by side
JOINERS = ("+", "-", "=", None)
# the relations: a formula with one is an equation or an inequality, not a numerator
RELATIONS = frozenset({"=", "<", ">", "\\leq", "\\geq", "\\neq", "\\rightarrow", "\\in"})


# the labels whose boxes tell how large a formula is written and where its line runs (letters, digits)
_SIZING = frozenset(label for group in RELABEL_GROUPS[:5] for label in group)


def writing_line(formula: InkFormula) -> tuple[float, float]:
    """How large ``formula`` is written and the height its line runs at: the upper quartile of its
    letters' and digits' box sizes (the larger side) and the median of their vertical centres, from
    its segmentation (scripts are smaller and off the line, but fewer); without one, the same of
    its strokes."""
    boxes = [_box([formula.strokes[i] for i in refs if 0 <= i < len(formula.strokes)])
             for label, refs in formula.symbols
             if label in _SIZING and any(0 <= i < len(formula.strokes) for i in refs)]
    if len(boxes) < 2:
        boxes = [(s[:, :2].min(axis=0), s[:, :2].max(axis=0)) for s in formula.strokes if len(s)]
    if not boxes:
        return 1.0, 0.0
    sizes = [float((hi - lo).max()) for lo, hi in boxes]
    centres = [float(lo[1] + hi[1]) / 2 for lo, hi in boxes]
    return max(float(np.percentile(sizes, 75)), 1e-6), float(np.median(centres))


def concatenate(first: Sequence[np.ndarray], second: Sequence[np.ndarray], rng: np.random.Generator,
                lines: tuple[tuple[float, float], tuple[float, float]], joiner: Sequence[np.ndarray] | None = None
                ) -> list[np.ndarray]:
    """One line of ink: ``second`` written after ``first``, scaled to its writing size (within
    15 %) and moved onto its line (``lines``: each one's ``writing_line``), a random gap of a
    third to four fifths of a symbol between them; with ``joiner`` (an operator's strokes, another
    writer's), that between them too, about a symbol large, centred on the line. Strokes keep any
    columns beyond x and y."""
    (size, line), (size2, line2) = lines

    def placed(strokes, scale, mid, left):
        strokes = [np.array(s, np.float32, copy=True) for s in strokes]
        lo = min(float(s[:, 0].min()) for s in strokes)
        for s in strokes:
            s[:, 0] = (s[:, 0] - lo) * scale + left
            s[:, 1] = (s[:, 1] - mid) * scale + line
        return strokes, max(float(s[:, 0].max()) for s in strokes)

    out = [np.asarray(s, np.float32) for s in first]
    cursor = max(float(s[:, 0].max()) for s in out) + size * rng.uniform(0.3, 0.8)
    if joiner is not None and len(joiner):
        points = np.concatenate([s[:, :2] for s in joiner])
        extent = max(float(np.ptp(points, axis=0).max()), 1e-6)
        mid = float(points[:, 1].min() + points[:, 1].max()) / 2
        strokes, cursor = placed(joiner, size * rng.uniform(0.55, 0.85) / extent, mid, cursor)
        out += strokes
        cursor += size * rng.uniform(0.3, 0.8)
    strokes, _ = placed(second, size / size2 * rng.uniform(0.85, 1.15), line2, cursor)
    return out + strokes


def stack(numerator: Sequence[np.ndarray], denominator: Sequence[np.ndarray], bar: Sequence[np.ndarray],
          rng: np.random.Generator, sizes: tuple[float, float]) -> tuple[list[np.ndarray], float]:
    """One fraction of ink: ``numerator`` over ``bar`` (a stroke of another writer's minus or
    fraction bar, stretched a little wider than the wider part) over ``denominator``, the
    denominator scaled to the numerator's writing size (within 15 %; ``sizes``: each one's
    ``writing_line`` size), both centred on the bar, a fifth to two fifths of a symbol above and
    below it (ink y grows downwards). Returns the strokes and the bar's height, the line a
    formula written before the fraction runs on. Strokes keep any columns beyond x and y."""
    size, size2 = sizes

    def box(strokes):
        points = np.concatenate([s[:, :2] for s in strokes])
        return points.min(axis=0), points.max(axis=0)

    top = [np.array(s, np.float32, copy=True) for s in numerator]
    scale = size / size2 * rng.uniform(0.85, 1.15)
    bottom = [np.array(s, np.float32, copy=True) for s in denominator]
    for s in bottom:
        s[:, :2] *= scale
    (lo1, hi1), (lo2, hi2) = box(top), box(bottom)
    width = max(hi1[0] - lo1[0], hi2[0] - lo2[0]) * rng.uniform(1.05, 1.25) + size * 0.2
    centre = float(lo1[0] + hi1[0]) / 2
    bar_y = float(hi1[1]) + size * rng.uniform(0.2, 0.4)
    line = [np.array(s, np.float32, copy=True) for s in bar]
    blo, bhi = box(line)
    bar_w, bar_h = max(float(bhi[0] - blo[0]), 1e-6), float(bhi[1] - blo[1])
    # the bar spans ``width``; its wobble keeps its own proportion, at most a tenth of a symbol
    squash = min(width / bar_w, size * 0.1 / bar_h) if bar_h > 0 else 0.0
    for s in line:
        s[:, 0] = (s[:, 0] - (blo[0] + bhi[0]) / 2) * (width / bar_w) + centre
        s[:, 1] = (s[:, 1] - (blo[1] + bhi[1]) / 2) * squash + bar_y
    shift = np.array([centre - float(lo2[0] + hi2[0]) / 2 + rng.uniform(-0.1, 0.1) * size,
                      bar_y + size * rng.uniform(0.2, 0.4) - float(lo2[1])], np.float32)
    for s in bottom:
        s[:, :2] += shift
    return top + line + bottom, bar_y


# where a made-up script sits, in writing sizes of its base (ink y grows downwards): its centre this far
# above the top of the base's last symbol (superscript) or below its bottom (subscript), written this
# much smaller, this far after it
SCRIPT_SHIFT = (-0.05, 0.3)
SCRIPT_SCALE = (0.45, 0.7)
SCRIPT_GAP = (0.0, 0.2)
# a prime (a short tick) is this large, placed as a superscript
PRIME_SIZE = (0.25, 0.45)


def last_symbol(formula: InkFormula) -> tuple[float, float]:
    """The top and bottom (ink y) of ``formula``'s rightmost symbol, from its segmentation; without
    one, of its rightmost stroke."""
    groups = [[formula.strokes[i] for i in refs if 0 <= i < len(formula.strokes)] for _, refs in formula.symbols]
    groups = [g for g in groups if g] or [[s] for s in formula.strokes if len(s)]
    lo, hi = max((_box(g) for g in groups), key=lambda box: float(box[1][0]))
    return float(lo[1]), float(hi[1])


def attach_script(base: Sequence[np.ndarray], script: Sequence[np.ndarray], rng: np.random.Generator,
                  sizes: tuple[float, float], anchor: tuple[float, float], kind: str, prime: bool = False
                  ) -> list[np.ndarray]:
    """One script of ink: ``script`` written after ``base`` as its superscript (``kind`` "^") or
    subscript ("_"): scaled to 0.45-0.7 of the base's writing size (``sizes``: each one's
    ``writing_line`` size), its centre ``SCRIPT_SHIFT`` of a symbol above the top of the base's
    last symbol (below its bottom; ``anchor``: that top and bottom, as ``last_symbol`` gives
    them), a gap of ``SCRIPT_GAP`` after it. With ``prime``, ``script`` is a single symbol (another
    writer's prime) scaled to ``PRIME_SIZE`` of a symbol. Strokes keep any columns beyond x and y."""
    if kind not in ("^", "_"):
        raise ValueError(f"a script is '^' or '_', not {kind!r}")
    size, size2 = sizes
    out = [np.asarray(s, np.float32) for s in base]
    right = max(float(s[:, 0].max()) for s in out)
    strokes = [np.array(s, np.float32, copy=True) for s in script]
    points = np.concatenate([s[:, :2] for s in strokes])
    if prime:
        scale = size * rng.uniform(*PRIME_SIZE) / max(float(np.ptp(points, axis=0).max()), 1e-6)
    else:
        scale = size * rng.uniform(*SCRIPT_SCALE) / size2
    mid = float(points[:, 1].min() + points[:, 1].max()) / 2
    shift = size * rng.uniform(*SCRIPT_SHIFT)
    centre = anchor[0] - shift if kind == "^" else anchor[1] + shift
    left, lo = right + size * rng.uniform(*SCRIPT_GAP), float(points[:, 0].min())
    for s in strokes:
        s[:, 0] = (s[:, 0] - lo) * scale + left
        s[:, 1] = (s[:, 1] - mid) * scale + centre
    return out + strokes


def fit_into(target: Sequence[np.ndarray], donor: Sequence[np.ndarray], stretch: bool) -> list[np.ndarray]:
    """``donor``'s strokes scaled and moved onto the bounding box of ``target``'s. Each axis is
    fitted on its own where both shapes have extent on it; a thin axis (the height of a minus)
    follows the other's scale. Unless ``stretch``, the donor keeps its proportions within
    ``_ASPECT_SLACK``, and the box's centre is kept."""
    lo0, hi0 = _box(target)
    lo1, hi1 = _box(donor)
    size0, size1 = hi0 - lo0, hi1 - lo1
    big0, big1 = max(size0.max(), 1e-6), max(size1.max(), 1e-6)
    uniform = big0 / big1
    scale = np.full(2, uniform)
    for axis in range(2):
        if size0[axis] > _THIN * big0 and size1[axis] > _THIN * big1:
            scale[axis] = size0[axis] / size1[axis]
    if not stretch:
        mean = float(np.sqrt(scale[0] * scale[1]))
        scale = np.clip(scale, mean / _ASPECT_SLACK, mean * _ASPECT_SLACK)
    centre0, centre1 = (lo0 + hi0) / 2, (lo1 + hi1) / 2
    fitted = []
    for stroke in donor:
        s = np.array(stroke, dtype=np.float32, copy=True)
        s[:, :2] = (s[:, :2] - centre1) * scale + centre0
        fitted.append(s)
    return fitted


def augmented_render(strokes, rng: np.random.Generator, height: int = HEIGHT, max_width: int = MAX_WIDTH,
                     strength: float = 1.0, elastic: float = 0.0, pen: bool = False,
                     pen_dropout: float = 0.0) -> np.ndarray:
    """Another plausible handwriting of the same formula, as a model input ``(h, w)``. ``strength``
    scales the random rotation, slant, stretch and per-stroke shift (1: the default amounts);
    ``elastic`` > 0 first bends the ink by a smooth random field (``render.elastic_strokes``) of an
    amplitude drawn uniformly up to that fraction of a symbol's size. With ``pen``: ``(h, w, 4)``,
    the ink and what the pen did (``formula_input``), those three channels zero with probability
    ``pen_dropout`` (so that the model also reads pictures, which have none)."""
    if elastic > 0:
        strokes = elastic_strokes(strokes, rng, amplitude=float(rng.uniform(0.0, elastic)))
    ink = augment_strokes(strokes, rng, rotate_deg=3.0 * strength, shear=0.25 * strength,
                          scale=min(0.15 * strength, 0.5), jitter=0.008 * strength)
    # a random height fraction: the same formula written a little smaller within the frame
    inner = int(round(height * rng.uniform(0.8, 1.0)))
    width = float(rng.uniform(1.0, 2.4))
    image = render_strokes(ink, height=inner, max_width=max_width, stroke_width=width)
    arr = ink_array(image)
    if pen:
        moved = (pen_channels(ink, arr, max_width=max_width, stroke_width=width) if rng.uniform() >= pen_dropout
                 else np.zeros((*arr.shape, len(PEN_CHANNELS)), np.float32))
        arr = np.concatenate([arr[..., None], moved], -1)
    if inner < height:
        top = int(rng.integers(0, height - inner + 1))
        arr = np.pad(arr, ((top, height - inner - top),) + ((0, 0),) * (arr.ndim - 1))
    return arr


def pad_batch(images: Sequence[np.ndarray], step: int = WIDTH_STEP, margin: int = 0) -> np.ndarray:
    """Images of one height, left-aligned on blank paper to a common width (a multiple of ``step``,
    with at least ``margin`` blank columns after the widest), as ``(n, h, w, 1)`` float32; inputs
    ``(h, w, c)`` with pen channels (``formula_input``) as ``(n, h, w, c)``."""
    height = images[0].shape[0]
    channels = images[0].shape[2] if images[0].ndim == 3 else 1
    width = max(im.shape[1] for im in images) + margin
    width = int(np.ceil(width / step) * step)
    out = np.zeros((len(images), height, width, channels), np.float32)
    for i, im in enumerate(images):
        out[i, :, : im.shape[1]] = im.reshape(height, im.shape[1], channels)
    return out


def pad_tokens(sequences: Sequence[Sequence[int]], vocab: Vocabulary) -> tuple[np.ndarray, np.ndarray]:
    """Teacher-forcing pairs: decoder input ``<s> t1 .. tn`` and target ``t1 .. tn </s>``, padded with 0."""
    length = max(len(s) for s in sequences) + 1
    inputs = np.zeros((len(sequences), length), np.int32)
    targets = np.zeros((len(sequences), length), np.int32)
    for i, seq in enumerate(sequences):
        inputs[i, : len(seq) + 1] = [vocab.start_id, *seq]
        targets[i, : len(seq) + 1] = [*seq, vocab.end_id]
    return inputs, targets


def bucketed_batches(widths: Sequence[int], lengths: Sequence[int], batch_size: int,
                     rng: np.random.Generator, max_pixels: int | None = None) -> list[list[int]]:
    """Index batches of formulas of similar width and length, in random order. Sorting with a
    little noise keeps batches varied from epoch to epoch while padding stays small. With
    ``max_pixels``, wide batches hold fewer images so every step costs about the same."""
    noise = rng.uniform(0, WIDTH_STEP, len(widths))
    order = np.lexsort((np.asarray(lengths) + rng.uniform(0, 4, len(widths)), np.asarray(widths) + noise))
    batches, current, widest = [], [], 0
    for i in order:
        widest_new = max(widest, int(widths[i]))
        if current and (len(current) >= batch_size or (max_pixels and widest_new * (len(current) + 1) > max_pixels)):
            batches.append(current)
            current, widest_new = [], int(widths[i])
        current.append(int(i))
        widest = widest_new
    if current:
        batches.append(current)
    rng.shuffle(batches)
    return batches


class BatchSource:
    """An endless (or one-pass) source of bucketed batches ``((images, tokens_in), targets)``:
    formulas of similar width and length go together, in a new random order every epoch.
    Subclasses say how formula ``i`` becomes an image (``image``); widths for bucketing are those
    of the plain images, and ``pad_batch`` rounds each batch up to its own widest image."""

    def __init__(self, token_ids: Sequence[Sequence[int]], widths: Sequence[int], vocab: Vocabulary,
                 batch_size: int, seed: int, height: int, max_pixels: int, token_dropout: float = 0.0,
                 pad_margin: int = 0, reverse: bool = False):
        # ``reverse``: targets read right to left (last token first), for a right-to-left model
        self.ids = [list(ids)[::-1] for ids in token_ids] if reverse else [list(ids) for ids in token_ids]
        self.widths = list(widths)
        self.lengths = [len(ids) for ids in self.ids]
        self.vocab = vocab
        self.batch_size = batch_size
        self.height = height
        self.max_pixels = max_pixels  # e.g. 32 formulas 256 wide, or fewer wider ones
        if not 0 <= token_dropout < 1:
            raise ValueError(f"token dropout must be in [0, 1), not {token_dropout}")
        self.token_dropout = token_dropout
        if pad_margin < 0:
            raise ValueError(f"the padding margin is a number of blank columns, 0 or more, not {pad_margin}")
        # each batch gets 0..pad_margin blank columns after its widest formula, so the model also
        # learns from inputs with blank paper after the ink, as it reads them (formula_decode.MARGIN)
        self.pad_margin = pad_margin
        self.reverse = reverse
        self.rng = np.random.default_rng(seed)

    channels = 1  # of the images: the ink (with pen channels: 1 + len(PEN_CHANNELS))

    def image(self, i: int) -> np.ndarray:
        raise NotImplementedError

    def example(self, i: int) -> tuple[np.ndarray, list[int]]:
        """Formula ``i`` as the model reads it and its target token ids (a subclass may change both)."""
        return self.image(i), self.ids[i]

    def epoch_batches(self) -> list[list[int]]:
        return bucketed_batches(self.widths, self.lengths, self.batch_size, self.rng, self.max_pixels)

    def steps_per_epoch(self) -> int:
        return len(bucketed_batches(self.widths, self.lengths, self.batch_size, np.random.default_rng(0),
                                    self.max_pixels))

    def make_batch(self, batch: Sequence[int]):
        images, ids = zip(*(self.example(i) for i in batch))
        tokens_in, targets = pad_tokens(ids, self.vocab)
        if self.token_dropout:
            # the decoder sees <unk> for some of the previous tokens, so it must read them from the
            # image instead of reciting formulas it has memorised (the start token is kept)
            hide = (self.rng.uniform(size=tokens_in.shape) < self.token_dropout) & (tokens_in != self.vocab.pad_id)
            hide[:, 0] = False
            tokens_in = np.where(hide, self.vocab.unk_id, tokens_in).astype(np.int32)
        margin = int(self.rng.integers(0, self.pad_margin + 1)) if self.pad_margin else 0
        return (pad_batch(images, margin=margin), tokens_in), targets

    def __iter__(self) -> Iterator:
        while True:
            yield from self.one_epoch()

    def one_epoch(self) -> Iterator:
        for batch in self.epoch_batches():
            yield self.make_batch(batch)

    def dataset(self, repeat: bool = True):
        """A ``tf.data.Dataset`` over this source (endless, or one pass with ``repeat=False``),
        prefetching so rendering overlaps training."""
        import tensorflow as tf

        spec = ((tf.TensorSpec((None, self.height, None, self.channels), tf.float32), tf.TensorSpec((None, None), tf.int32)),
                tf.TensorSpec((None, None), tf.int32))
        source = (lambda: iter(self)) if repeat else (lambda: self.one_epoch())
        return tf.data.Dataset.from_generator(source, output_signature=spec).prefetch(4)


class TrainingBatches(BatchSource):
    """Batches of handwritten formulas, re-rendered from augmented ink every time (``augment``)
    or rendered once."""

    def __init__(self, formulas: Sequence[InkFormula], vocab: Vocabulary, batch_size: int = 32,
                 max_tokens: int = 120, seed: int = 0, augment: bool = True, height: int = HEIGHT,
                 max_width: int = MAX_WIDTH, token_dropout: float = 0.0, augment_strength: float = 1.0,
                 swap_symbols: float = 0.0, pad_margin: int = 0, reverse: bool = False, relabel: float = 0.0,
                 concat: float = 0.0, stack: float = 0.0, script: float = 0.0, synth: float = 0.0,
                 synth_formulas: Sequence[Sequence[str]] | None = None, elastic: float = 0.0,
                 pen: bool = False, pen_dropout: float = 0.0):
        kept = [f for f in formulas if 0 < len(f.tokens) <= max_tokens]
        # with ``pen``, images ``(h, w, 4)``: the ink and what the pen did (``formula_input``); with
        # augmentation those three channels are zero in a ``pen_dropout`` share of the examples
        if not 0 <= pen_dropout <= 1:
            raise ValueError(f"the pen dropout must be in [0, 1], not {pen_dropout}")
        self.pen, self.pen_dropout = pen, pen_dropout
        self.channels = 1 + len(PEN_CHANNELS) if pen else 1
        self.formulas = kept
        self.augment = augment
        self.augment_strength = augment_strength
        if not 0 <= elastic <= 0.5:
            raise ValueError(f"the elastic amplitude must be in [0, 0.5] (a fraction of a symbol's size), not {elastic}")
        # with augmentation, the ink is bent by a smooth random field up to this fraction of a symbol
        self.elastic = elastic
        if not 0 <= swap_symbols <= 1:
            raise ValueError(f"the symbol swap rate must be in [0, 1], not {swap_symbols}")
        # with augmentation, each symbol is written by another hand with this probability
        self.swap_symbols = swap_symbols
        if not 0 <= relabel <= 1:
            raise ValueError(f"the relabelling rate must be in [0, 1], not {relabel}")
        # with augmentation, each replaceable symbol is replaced throughout by another of its group
        # with this probability (SymbolBank.relabel), and the targets follow
        self.relabel = relabel
        if not 0 <= concat <= 1:
            raise ValueError(f"the concatenation rate must be in [0, 1], not {concat}")
        # with augmentation, this share of each epoch's examples are two formulas written on one line
        # (``concatenate``), joined by another writer's operator or side by side, the tokens following
        self.concat = concat
        if not 0 <= stack <= 1:
            raise ValueError(f"the fraction rate must be in [0, 1], not {stack}")
        # with augmentation, this share of the examples that are not pairs become fractions of two
        # short formulas (``stack``), half of them after a third and an operator: ``y = \frac{a}{b}``
        self.stack = stack
        if not 0 <= script <= 1:
            raise ValueError(f"the script rate must be in [0, 1], not {script}")
        # with augmentation, this share of the examples still single become a short formula with a
        # made-up superscript or subscript (``attach_script``): another short formula, or a prime
        self.script = script
        if not 0 <= synth <= 1:
            raise ValueError(f"the made-up formula rate must be in [0, 1], not {synth}")
        # with augmentation, this share of the examples still single become a formula of
        # ``synth_formulas`` (default: the training formulas' own tokens) laid out by a typesetter and
        # written symbol by symbol in other writers' strokes (``formula_synth``)
        self.synth = synth
        pool = [f.tokens for f in kept] if synth_formulas is None else synth_formulas
        self._synth_pool = [tuple(t) for t in pool
                            if 0 < len(t) <= max_tokens and all(token in vocab for token in t)]
        self._layouts: dict[int, object] = {}
        self.max_tokens = max_tokens
        self.bank = (SymbolBank(kept) if augment and (swap_symbols > 0 or relabel > 0 or concat > 0 or stack > 0
                                                      or script > 0 or synth > 0) else None)
        self.max_width = max_width
        widths = [render_formula(f.strokes, height, max_width).width for f in kept]
        super().__init__([vocab.encode(f.tokens) for f in kept], widths, vocab, batch_size, seed, height,
                         max_pixels=batch_size * 256, token_dropout=token_dropout, pad_margin=pad_margin,
                         reverse=reverse)
        self._plain = None if augment else [formula_input(f.strokes, height, max_width, pen=pen) for f in kept]
        self._lines: dict[int, tuple[float, float]] = {}
        self._joiners = [j for j in JOINERS if j is None or (self.bank and self.bank.instances.get(j) and j in vocab)]
        # the parts of fractions: short formulas without a relation (a numerator is not an equation)
        self._parts = [k for k, f in enumerate(kept)
                       if len(f.tokens) <= self.PART_TOKENS and not RELATIONS.intersection(f.tokens)]
        self._bars = (self.bank.instances.get("-", []) if self.bank else []) if "\\frac" in vocab else []
        # made-up scripts: bases end in a symbol a script may follow, scripts are a few tokens long
        self._bases = [k for k, f in enumerate(kept)
                       if len(f.tokens) <= self.PART_TOKENS and scriptable(f.tokens[-1])]
        self._scripts = [k for k in self._parts if len(kept[k].tokens) <= self.SCRIPT_TOKENS]
        self._primes = ((self.bank.instances.get("\\prime", []) if self.bank else [])
                        if {"\\prime", "^", "{", "}"} <= set(vocab.index) else [])

    # pairs of formulas leave this much room for the gap between them, in pixels at the model's height
    PAIR_GAP = 32
    # numerators and denominators of made-up fractions have at most this many tokens
    PART_TOKENS = 12
    # a fraction is about this many lines high: its parts render this much narrower than alone
    FRACTION_LINES = 2.2
    # made-up scripts have at most this many tokens; this share of the superscripts are primes
    SCRIPT_TOKENS = 4
    PRIME_SHARE = 0.3

    def epoch_items(self) -> list[int | tuple[int, int]]:
        """This epoch's examples: each formula once, a ``concat`` share of them as ``(i, j)``, the
        formula followed by another whose plain width and length leave the pair within the model's
        widest input and ``max_tokens``."""
        items: list[int | tuple[int, int]] = list(range(len(self.formulas)))
        if not (self.augment and self.concat > 0 and len(self.formulas) > 1):
            return items
        order = np.argsort(self.widths, kind="stable")
        sorted_widths = np.asarray(self.widths)[order]
        for i in range(len(items)):
            if self.rng.uniform() >= self.concat:
                continue
            room = self.max_width - self.widths[i] - self.PAIR_GAP
            fits = int(np.searchsorted(sorted_widths, room, side="right"))
            for _ in range(4):
                if fits == 0:
                    break
                j = int(order[int(self.rng.integers(fits))])
                if j != i and self.lengths[i] + self.lengths[j] + 1 <= self.max_tokens:
                    items[i] = (i, j)
                    break
        return items

    def _stacked(self, items: list) -> list:
        """``items`` with a ``stack`` share of its single formulas made fractions ``("frac", p, j, k)``:
        ``j`` over ``k``, after formula ``p`` and an operator where ``p`` is not -1."""
        if not (self.augment and self.stack > 0 and len(self._parts) > 1 and self._bars):
            return items
        parts = self._parts
        for n, item in enumerate(items):
            if not isinstance(item, int) or self.rng.uniform() >= self.stack:
                continue
            j, k = (parts[int(self.rng.integers(len(parts)))] for _ in range(2))
            p = parts[int(self.rng.integers(len(parts)))] if self.rng.uniform() < 0.5 else -1
            fraction = ("frac", p, j, k)
            if self._size(fraction)[1] <= self.max_tokens:
                items[n] = fraction
        return items

    def _scripted(self, items: list) -> list:
        """``items`` with a ``script`` share of its single formulas made ``("script", p, s, kind, q)``:
        base formula ``p`` with formula ``s`` (-1: a prime) as its ``kind`` script ("^" or "_"),
        followed by an operator and formula ``q`` where ``q`` is not -1."""
        kinds = [k for k in ("^", "_") if k in self.vocab]
        if not (self.augment and self.script > 0 and self._bases and self._scripts and kinds):
            return items
        pick = lambda pool: pool[int(self.rng.integers(len(pool)))]  # noqa: E731
        for n, item in enumerate(items):
            if not isinstance(item, int) or self.rng.uniform() >= self.script:
                continue
            kind = kinds[int(self.rng.integers(len(kinds)))]
            prime = kind == "^" and self._primes and self.rng.uniform() < self.PRIME_SHARE
            q = pick(self._parts) if self._parts and self.rng.uniform() < 0.5 else -1
            scripted = ("script", pick(self._bases), -1 if prime else pick(self._scripts), kind, q)
            width, length = self._size(scripted)
            if width <= self.max_width and length <= self.max_tokens:
                items[n] = scripted
        return items

    def _layout(self, n: int):
        """The layout of made-up formula ``n`` of the pool (cached), or None where it has none or
        the bank lacks one of its symbols."""
        if n not in self._layouts:
            from mathocr.formula_synth import layout

            lay = layout(self._synth_pool[n])
            if lay is not None and not all(self.bank.instances.get(label) for label in set(lay.labels)):
                lay = None
            self._layouts[n] = lay
        return self._layouts[n]

    # a made-up formula renders about this much wider than its layout's aspect (formula_synth.SPREAD)
    SYNTH_SPREAD = 1.17
    # formulas of the pool drawn for one example before it is left as it was (many long im2latex
    # formulas are too wide for the model's input)
    SYNTH_TRIES = 4

    def _synthesized(self, items: list) -> list:
        """``items`` with a ``synth`` share of its single formulas made ``("synth", n)``: formula ``n``
        of the made-up pool, laid out and written anew (``formula_synth``); where ``SYNTH_TRIES`` draws
        from the pool do not fit the model's widest input, or cannot be laid out, the item stays as it was."""
        if not (self.augment and self.synth > 0 and self._synth_pool and self.bank is not None):
            return items
        for k, item in enumerate(items):
            if not isinstance(item, int) or self.rng.uniform() >= self.synth:
                continue
            for _ in range(self.SYNTH_TRIES):
                n = int(self.rng.integers(len(self._synth_pool)))
                if self._layout(n) is not None and self._size(("synth", n))[0] <= self.max_width:
                    items[k] = ("synth", n)
                    break
        return items

    def _size(self, item) -> tuple[int, int]:
        """An example's width (estimated, for bucketing) and target length."""
        if isinstance(item, int):
            return self.widths[item], self.lengths[item]
        if item[0] == "synth":
            return (int(self._layout(item[1]).aspect * self.height * self.SYNTH_SPREAD),
                    len(self._synth_pool[item[1]]))
        if item[0] == "script":
            _, p, k, _, q = item
            width = self.widths[p] + (self.widths[k] * 0.65 if k >= 0 else 8)
            length = self.lengths[p] + (self.lengths[k] + 3 if k >= 0 else 4)
            if q >= 0:
                width += self.widths[q] + self.PAIR_GAP
                length += self.lengths[q] + 1
            return int(width), length
        if item[0] == "frac":
            _, p, j, k = item
            width = max(self.widths[j], self.widths[k]) / self.FRACTION_LINES
            length = self.lengths[j] + self.lengths[k] + 5
            if p >= 0:
                width += (self.widths[p] + self.PAIR_GAP) / self.FRACTION_LINES
                length += self.lengths[p] + 1
            return min(int(width), self.max_width), length
        return self.widths[item[0]] + self.widths[item[1]] + self.PAIR_GAP, self.lengths[item[0]] + self.lengths[item[1]] + 1

    def epoch_batches(self) -> list[list]:
        items = self._synthesized(self._scripted(self._stacked(self.epoch_items())))
        if all(isinstance(item, int) for item in items):
            return super().epoch_batches()
        # bucketed by the pairs' and fractions' widths (the pairs': at most the sum of both and the gap) and lengths
        widths, lengths = zip(*(self._size(t) for t in items))
        return [[items[k] for k in batch]
                for batch in bucketed_batches(widths, lengths, self.batch_size, self.rng, self.max_pixels)]

    def image(self, i: int) -> np.ndarray:
        return self.example(i)[0]

    def example(self, i: int | tuple[int, int]) -> tuple[np.ndarray, list[int]]:
        """Formula ``i`` (or the pair ``(i, j)`` of ``epoch_items``, written on one line) as the
        model reads it, newly written, and its target token ids; or a fraction ``("frac", p, j, k)``."""
        if isinstance(i, tuple) and i[0] == "frac":
            return self._fraction(*i[1:])
        if isinstance(i, tuple) and i[0] == "script":
            return self._script(*i[1:])
        if isinstance(i, tuple) and i[0] == "synth":
            return self._made_up(i[1])
        if isinstance(i, tuple):
            (strokes, tokens), (second, tokens2) = self._written(i[0]), self._written(i[1])
            joiner = self._joiners[int(self.rng.integers(len(self._joiners)))] if self._joiners else None
            # relabelled symbols fill the boxes of those they replace: the original's line still holds
            lines = (self._line(i[0]), self._line(i[1]))
            if joiner is None:
                strokes = concatenate(strokes, second, self.rng, lines)
                tokens = tokens + tokens2
            else:
                donors = self.bank.instances[joiner]
                strokes = concatenate(strokes, second, self.rng, lines, donors[int(self.rng.integers(len(donors)))][1])
                tokens = tokens + [joiner] + tokens2
            ids = self.vocab.encode(tokens)
            ids = ids[::-1] if self.reverse else ids
            return self._render(strokes), ids
        if not self.augment:
            return self._plain[i], self.ids[i]
        strokes, tokens = self._written(i)
        ids = self.ids[i]
        if tokens != self.formulas[i].tokens:
            ids = self.vocab.encode(tokens)
            ids = ids[::-1] if self.reverse else ids
        return self._render(strokes), ids

    def _fraction(self, p: int, j: int, k: int) -> tuple[np.ndarray, list[int]]:
        (top, tokens), (bottom, tokens2) = self._written(j), self._written(k)
        bar = self._bars[int(self.rng.integers(len(self._bars)))][1]
        size = self._line(j)[0]
        strokes, bar_y = stack(top, bottom, bar, self.rng, (size, self._line(k)[0]))
        tokens = ["\\frac", "{", *tokens, "}", "{", *tokens2, "}"]
        if p >= 0:
            before, tokens0 = self._written(p)
            joiners = [j for j in self._joiners if j is not None]
            joiner = joiners[int(self.rng.integers(len(joiners)))] if joiners else None
            donors = self.bank.instances[joiner] if joiner else None
            strokes = concatenate(before, strokes, self.rng, (self._line(p), (size, bar_y)),
                                  donors[int(self.rng.integers(len(donors)))][1] if donors else None)
            tokens = tokens0 + ([joiner] if joiner else []) + tokens
        ids = self.vocab.encode(tokens)
        ids = ids[::-1] if self.reverse else ids
        return self._render(strokes), ids

    def _script(self, p: int, k: int, kind: str, q: int) -> tuple[np.ndarray, list[int]]:
        base, tokens = self._written(p)
        # relabelled symbols fill the boxes of those they replace: the original's last symbol still stands
        line, anchor = self._line(p), last_symbol(self.formulas[p])
        if not scriptable(tokens[-1]):  # relabelling keeps a symbol's kind; a guard all the same
            tokens = list(self.formulas[p].tokens)
            base = self.formulas[p].strokes
        if k < 0:
            prime = self._primes[int(self.rng.integers(len(self._primes)))][1]
            strokes = attach_script(base, prime, self.rng, (line[0], 1.0), anchor, "^", prime=True)
            tokens = tokens + ["^", "{", "\\prime", "}"]
        else:
            small, tokens2 = self._written(k)
            strokes = attach_script(base, small, self.rng, (line[0], self._line(k)[0]), anchor, kind)
            tokens = tokens + [kind, "{", *tokens2, "}"]
        if q >= 0:
            after, tokens3 = self._written(q)
            joiners = [j for j in self._joiners if j is not None]
            joiner = joiners[int(self.rng.integers(len(joiners)))] if joiners else None
            donors = self.bank.instances[joiner] if joiner else None
            strokes = concatenate(strokes, after, self.rng, (line, self._line(q)),
                                  donors[int(self.rng.integers(len(donors)))][1] if donors else None)
            tokens = tokens + ([joiner] if joiner else []) + tokens3
        ids = self.vocab.encode(tokens)
        ids = ids[::-1] if self.reverse else ids
        return self._render(strokes), ids

    def _made_up(self, n: int) -> tuple[np.ndarray, list[int]]:
        from mathocr.formula_synth import relabel, write

        lay = relabel(self._layout(n), self.rng, self.relabel, self.bank.instances)
        ids = self.vocab.encode(list(lay.tokens))
        ids = ids[::-1] if self.reverse else ids
        strokes = write(lay, self.bank.instances, self.rng)
        return self._render(strokes), ids

    def _render(self, strokes) -> np.ndarray:
        return augmented_render(strokes, self.rng, self.height, self.max_width, self.augment_strength, self.elastic,
                                self.pen, self.pen_dropout)

    def _line(self, i: int) -> tuple[float, float]:
        if i not in self._lines:
            self._lines[i] = writing_line(self.formulas[i])
        return self._lines[i]

    def _written(self, i: int) -> tuple[list[np.ndarray], list[str]]:
        """Formula ``i``'s strokes and tokens, relabelled and restyled as configured."""
        formula = self.formulas[i]
        strokes, tokens = formula.strokes, list(formula.tokens)
        if self.bank is not None and self.relabel > 0:
            strokes, tokens = self.bank.relabel(formula, self.rng, self.relabel, source=i)
            if tokens != formula.tokens:
                formula = InkFormula(formula.id, strokes, tokens)  # its segmentation is stale: not restyled
        if self.bank is not None and self.swap_symbols > 0:
            strokes = self.bank.restyle(formula, self.rng, self.swap_symbols, source=i)
        return strokes, tokens


def plain_images(formulas: Sequence[InkFormula], height: int = HEIGHT, max_width: int = MAX_WIDTH,
                 pen: bool = False) -> list[np.ndarray]:
    """Un-augmented model inputs, as evaluation sees them (with ``pen``: and what the pen did)."""
    return [formula_input(f.strokes, height, max_width, pen=pen) for f in formulas]


# The made-up training formulas, by the name the app shows and the TrainingBatches rate that makes them
MADE_UP_KINDS = {
    "relabelled": "relabel",
    "two on a line": "concat",
    "fractions": "stack",
    "scripts": "script",
    "typeset layouts": "synth",
}


def made_up_source(formulas: Sequence[InkFormula], synth_formulas: Sequence[Sequence[str]] | None = None,
                   height: int = HEIGHT, max_width: int = MAX_WIDTH) -> TrainingBatches:
    """Training batches over ``formulas`` (which need their segmentation) that ``made_up_examples``
    makes examples of every kind from (building it renders every formula once: keep it)."""
    vocab = Vocabulary.from_sequences([f.tokens for f in formulas] + [list(t) for t in synth_formulas or ()])
    return TrainingBatches(formulas, vocab, batch_size=8, height=height, max_width=max_width, synth=1.0,
                           synth_formulas=synth_formulas)


def made_up_examples(source: TrainingBatches, kind: str, n: int = 6, seed: int = 0
                     ) -> list[tuple[np.ndarray, list[str]]]:
    """``n`` training examples of one ``MADE_UP_KINDS`` kind, as a training run with that option at its
    full rate makes them (``source``: ``made_up_source``): each an image ``(h, w)`` (ink 1 on 0) and
    its target tokens, left to right. Fewer where the formulas allow fewer (no fraction without two
    short formulas free of relations, say)."""
    if kind not in MADE_UP_KINDS:
        raise ValueError(f"unknown kind of made-up formula {kind!r}: one of {', '.join(MADE_UP_KINDS)}")
    for rate in MADE_UP_KINDS.values():
        setattr(source, rate, 1.0 if rate == MADE_UP_KINDS[kind] else 0.0)
    source.rng = np.random.default_rng(seed)
    if kind == "typeset layouts":  # only a few laid out (a few ms each), not a whole epoch's
        picks = source.rng.choice(len(source.widths), size=min(4 * n, len(source.widths)), replace=False)
        items = source._synthesized([int(i) for i in picks])
    else:
        items = [item for batch in source.epoch_batches() for item in batch]
    if kind != "relabelled":
        items = [item for item in items if isinstance(item, tuple)]
    out = []  # batches are bucketed by width: a random few, not the narrowest
    for k in sorted(source.rng.permutation(len(items))[:n]):
        item = items[int(k)]
        image, ids = source.example(item)
        out.append((image, source.vocab.decode(ids)))
    return out
