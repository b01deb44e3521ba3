"""Is a picture of a formula typeset or handwritten? One simple rule on the bitmap, so that the
Formulas page can pick the model for an upload, and say why.

The rule, in the order it is applied:

1. **Photo or scan.** A screenshot's paper is one flat colour; a photo's or a scan's is not (light
   falls unevenly, the camera adds noise). When fewer than ``FLAT_PAPER`` of the paper's pixels (those
   more than 2 pixels from the ink) lie within ``PAPER_TOLERANCE`` grey levels of its median, the
   picture is a photo or a scan of paper, taken to be handwriting. (A JPEG screenshot's ringing
   leaves 97-99 % flat at quality 60-75; a rendered PNG, 99.98 % or more.)
2. **Stroke width.** A pen draws every stroke with one width; a LaTeX font has thick stems and thin
   hairlines (Computer Modern, as LaTeX, MathJax and Wikipedia draw it). The width of the stroke
   at each pixel is the darkness summed across it, in the direction where that sum is least
   (horizontal, vertical or either diagonal; grey edge pixels count in part). When at least
   ``UNIFORM_WIDTH`` of the ink lies within 10 % of the median width, it is handwriting;
   otherwise typeset.

Measured on 300 CROHME validation expressions drawn by ``render.render_strokes`` (60 to 300 pixels
high, pens of 1.5 pixels to a fifteenth of the height) and 300 im2latex formulas drawn by LaTeX at
200 dpi and scaled by 0.5 to 2: with ``UNIFORM_WIDTH = 0.45``, 98 % of the handwriting and 95 % of
the typeset formulas are called right (0.5: 95 % and 98 %). What it gets wrong: sans-serif
typesetting (matplotlib's mathtext in DejaVu Sans has the even strokes of a pen), and a pen so
thick that strokes run together. The user can always choose the model instead.

3. **When the widths do not settle it, ask the models.** Between ``UNSURE`` (40 % to 70 % of the
   ink within the band, on clean paper) the guess is marked ``unsure``; the page then lets both
   formula models read the picture and ``settle`` keeps the kind whose model is surer of its
   reading (the higher log-probability per token). The band was chosen on the validation splits;
   ``python -m mathocr evaluate kind --split test`` (``mathocr.kind_eval``: 150 CROHME 2014
   expressions and 150 im2latex test formulas from each engine, scaled by 0.5 to 2; the models read
   with beam 5, as on the page) calls right, by the rule alone and with the models: handwriting
   96.0 % and 96.7 %, LaTeX 98.0 % and 100 %, mathtext's STIX 95.3 % and 99.3 %, DejaVu Sans 58.7 %
   and 90.0 % (validation: 98.0/100, 99.3/100, 98.0/98.7, 56.0/89.3 %). With session 11's handwritten
   models (less sure of type) and the typeset model's three margins: handwriting 95.3 %, LaTeX 100 %,
   STIX 100 %, DejaVu Sans 100 % with the models (test); with session 12's left-to-right model (less sure of
   handwriting too): handwriting 90.7 %, the typeset sources unchanged at 100 %. Comparing the models'
   confidence on every picture, without the rule, called fewer right (handwriting 92-95 %, greedy).

   Handwriting keeps an unsure picture unless the typeset model is surer by more than
   ``HANDWRITING_MARGIN`` (0.05 nats per token since session 27; 0.1 in sessions 15-26, 0.05 before). Chosen with ``evaluate kind --split validation
   --margins ...`` (the same readings scored at each margin): 0.02 and 0.05 tie there at 2 errors in
   600 (margin 0: 3; 0.1: 3; 0.2: 19), and the tie went to the larger one, handwriting being what the
   product is for. Test, session 12's models: handwriting 90.7 -> 95.3 %, LaTeX, STIX and DejaVu
   Sans still 100 % (0.1 would give 96.7, 99.3, 99.3, 98.7 %). Session 15's left-to-right model is
   surer of type: at 0.05 validation has 7 errors in 600 (handwriting 96.0 %), at 0.08 5, at 0.1 4,
   at 0.15 3, at 0.2 15 (DejaVu Sans 91.3 %); 0.1 was chosen, one error behind 0.15 but with good
   neighbours on both sides, where 0.15 is next to a cliff and the model changes every few sessions.
   Session 27's left-to-right model reads DejaVu Sans as surely as handwriting more often: on
   validation, errors in 600 at margin 0: 5, **0.05: 7** (handwriting 98.0 %, DejaVu Sans 97.3 %),
   0.1: 16 (100 %, 90.0 %), 0.15: 38, 0.2: 56, 0.3: 83. 0.05 was chosen, two errors behind 0 but one
   handwriting error fewer, handwriting being what the product is for (test: handwriting 97.3 -> 96.0 %,
   LaTeX 98.7 -> 99.3 %, STIX 98.7 -> 99.3 %, DejaVu Sans 89.3 -> 95.3 %).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
from PIL import Image

FLAT_PAPER = 0.97  # share of the paper within PAPER_TOLERANCE of its median colour
PAPER_TOLERANCE = 12  # grey levels
UNIFORM_WIDTH = 0.45  # share of the ink within WIDTH_BAND of the median stroke width
WIDTH_BAND = 0.1
UNSURE = (0.40, 0.70)  # uniform-width shares where the rule defers to the models (rule 3)
INK, CORE = 0.15, 0.6  # darkness that counts as ink, and as the middle of a stroke
HANDWRITING_MARGIN = 0.05  # nats per token by which the typeset model must be surer to take an unsure picture
MAX_SIDE = 1024  # larger pictures are measured at this size (the rule compares widths, not sizes)


@dataclass
class KindGuess:
    """``kind`` ("typeset" or "handwritten"), the measures it rests on, and why, in words."""

    kind: str
    flat_paper: float
    uniform_width: float
    reason: str
    unsure: bool = False  # the widths do not settle it: let both models read it (``settle``)


def _run_sums(mask: np.ndarray, darkness: np.ndarray) -> np.ndarray:
    """For every pixel, the darkness summed over its run of ink along axis 1 (0 off the ink)."""
    rows, cols = mask.shape
    ink = np.concatenate([mask, np.zeros((rows, 1), bool)], 1).ravel()  # a gap ends every row's last run
    dark = np.concatenate([darkness, np.zeros((rows, 1))], 1).ravel()
    starts = ink & ~np.concatenate([[False], ink[:-1]])
    labels = np.cumsum(starts) * ink
    sums = np.bincount(labels, weights=dark)
    sums[0] = 0.0
    return sums[labels].reshape(rows, cols + 1)[:, :cols]


def _sheared(array: np.ndarray, sign: int) -> np.ndarray:
    """Rows shifted one column each, so that one diagonal direction becomes vertical."""
    rows, cols = array.shape
    out = np.zeros((rows, cols + rows), array.dtype)
    for i in range(rows):
        shift = i if sign > 0 else rows - 1 - i
        out[i, shift:shift + cols] = array[i]
    return out


def _unsheared(array: np.ndarray, sign: int, cols: int) -> np.ndarray:
    rows = array.shape[0]
    return np.stack([array[i, (i if sign > 0 else rows - 1 - i):][:cols] for i in range(rows)])


def _grown(mask: np.ndarray, pixels: int) -> np.ndarray:
    """The mask grown by ``pixels`` in every direction (a square neighbourhood)."""
    out = mask.copy()
    for _ in range(pixels):
        grown = out.copy()
        grown[1:] |= out[:-1]
        grown[:-1] |= out[1:]
        grown[:, 1:] |= grown[:, :-1].copy()
        grown[:, :-1] |= grown[:, 1:].copy()
        out = grown
    return out


def stroke_widths(darkness: np.ndarray) -> np.ndarray:
    """The stroke width (pixels) at every pixel of the middle of a stroke: darkness in [0, 1]."""
    mask = darkness > INK
    cols = darkness.shape[1]
    sums = [_run_sums(mask, darkness), _run_sums(mask.T, darkness.T).T]
    for sign in (1, -1):  # diagonal runs: their length is sqrt(2) per pixel
        run = _run_sums(_sheared(mask, sign).T, _sheared(darkness, sign).T).T
        sums.append(_unsheared(run, sign, cols) * np.sqrt(2))
    return np.minimum.reduce(sums)[darkness > CORE]


def guess_formula_kind(image: Image.Image) -> KindGuess:
    """Typeset or handwritten, for a paper-like picture (``render.load_image``'s form: dark ink on
    light paper). A picture without ink counts as handwritten (the canvas's model)."""
    gray = image.convert("L")
    if max(gray.size) > MAX_SIDE:
        gray = gray.copy()
        gray.thumbnail((MAX_SIDE, MAX_SIDE), Image.Resampling.LANCZOS)
    darkness = 1.0 - np.asarray(gray, dtype=np.float64) / 255.0
    ink = darkness > INK
    if ink.sum() < 10:
        return KindGuess("handwritten", 1.0, 1.0, "there is hardly any ink to judge by")

    paper = darkness[~_grown(ink, 2)]  # the paper, away from the grey edges of the strokes
    paper_colour = np.median(paper)
    flat = float((np.abs(paper - paper_colour) * 255 <= PAPER_TOLERANCE).mean()) if paper.size else 1.0
    widths = stroke_widths(darkness)
    median = float(np.median(widths)) if widths.size else 0.0
    uniform = float((np.abs(widths - median) <= WIDTH_BAND * median).mean()) if widths.size else 1.0

    if flat < FLAT_PAPER:
        return KindGuess("handwritten", flat, uniform,
                         f"the paper is uneven ({flat:.0%} of it is one flat colour), as in a photo or a scan")
    unsure = UNSURE[0] <= uniform <= UNSURE[1]
    if uniform >= UNIFORM_WIDTH:
        return KindGuess("handwritten", flat, uniform,
                         f"the strokes have one width, as a pen draws them ({uniform:.0%} of the ink is within "
                         f"{WIDTH_BAND:.0%} of the median width)", unsure)
    return KindGuess("typeset", flat, uniform,
                     f"clean paper and strokes of varying width, as a font draws them (only {uniform:.0%} of "
                     f"the ink is within {WIDTH_BAND:.0%} of the median width)", unsure)


def settle(guess: KindGuess, per_token: dict[str, float], margin: float | None = None) -> KindGuess:
    """An ``unsure`` guess decided by the models: ``per_token`` holds, for "handwritten" and
    "typeset", the log-probability per token of that model's reading of the picture
    (``Recognition.extra["per_token"]``); the surer model's kind wins, handwriting by ties and within
    ``margin`` (nats per token; default ``HANDWRITING_MARGIN``). A sure guess is returned as it is."""
    if not guess.unsure:
        return guess
    margin = HANDWRITING_MARGIN if margin is None else margin
    hand, typeset = per_token["handwritten"], per_token["typeset"]
    kind = "handwritten" if hand + margin >= typeset else "typeset"
    other = "typeset" if kind == "handwritten" else "handwritten"
    open_ = (f"the stroke widths leave it open ({guess.uniform_width:.0%} of the ink is within {WIDTH_BAND:.0%} of "
             f"the median width), and ")
    odds = f"({math.exp(per_token[kind]):.0%} against {math.exp(per_token[other]):.0%} per token)"
    if per_token[kind] >= per_token[other]:
        reason = f"{open_}the {kind} model is surer of its reading than the {other} one {odds}"
    else:
        reason = (f"{open_}the handwritten model is nearly as sure of its reading as the typeset one {odds}: "
                  f"within the margin given to handwriting")
    return KindGuess(kind, guess.flat_paper, guess.uniform_width, reason, unsure=True)
