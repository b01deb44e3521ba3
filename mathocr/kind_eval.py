"""How well an upload's kind is told (``formula_kind``): the stroke-width rule alone, and the rule
with both formula models settling the pictures it is unsure of, as the Formulas page does.

The pictures: CROHME expressions of a split drawn from their ink by ``render.render_strokes``
(augmented, 60 to 300 pixels high, pens of 1.5 pixels to a fifteenth of the height), and im2latex
formulas of the same split drawn by LaTeX and by mathtext in STIX and in DejaVu Sans, scaled by 0.5
to 2. Tune on ``validation``, report on ``test``::

    python -m mathocr evaluate kind --split test --json
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
from PIL import Image

HANDWRITTEN_SOURCE = "crohme"
TYPESET_ENGINES = ("latex", "mathtext", "mathtext-dejavusans")


@dataclass
class KindSample:
    kind: str  # the truth: "handwritten" or "typeset"
    source: str  # "crohme" or the engine that drew it
    id: str
    image: Image.Image


def kind_samples(split: str, per_source: int, root=None, seed: int = 0,
                 engines: tuple[str, ...] = TYPESET_ENGINES) -> list[KindSample]:
    """Up to ``per_source`` pictures from CROHME's ``split`` and from each engine on im2latex's
    ``split`` (formulas an engine cannot draw are passed over)."""
    from mathocr.data import load_im2latex
    from mathocr.formula_data import load_crohme_formulas
    from mathocr.render import augment_strokes, render_strokes
    from mathocr.typeset import render_formula

    rng = np.random.default_rng(seed)
    samples = []
    for f in load_crohme_formulas(split, root)[:per_source]:
        height = int(rng.integers(60, 300))
        pen = float(rng.uniform(1.5, max(1.6, height / 15)))
        image = render_strokes(augment_strokes(f.strokes, rng), height=height, max_width=3000, stroke_width=pen)
        samples.append(KindSample("handwritten", HANDWRITTEN_SOURCE, f.id, image))
    formulas = load_im2latex(root, split)
    for j, engine in enumerate(engines):
        drawn = 0
        start = (j * per_source) % max(len(formulas), 1)  # each engine draws other formulas, where there are enough
        for f in formulas[start:] + formulas[:start]:
            if drawn >= per_source:
                break
            try:
                image = render_formula(f.latex, engine)
            except Exception:  # noqa: BLE001  (LaTeX or mathtext rejects it: not a picture to judge)
                continue
            scale = float(rng.uniform(0.5, 2.0))
            image = image.resize((max(1, round(image.width * scale)), max(1, round(image.height * scale))),
                                 Image.Resampling.LANCZOS)
            samples.append(KindSample("typeset", engine, f.id, image))
            drawn += 1
    return samples


def evaluate_kind(samples: list[KindSample], recognizers: dict, beam_width: int = 1,
                  progress: Callable[[int, int], None] | None = None,
                  margins: tuple[float, ...] = ()) -> dict:
    """Per source: ``n``, the share called right by the rule (``rule``) and by the rule with the
    models settling unsure pictures (``settled``, with ``formula_kind.HANDWRITING_MARGIN``), and how
    many were ``unsure``; with ``margins``, also ``by_margin``: the settled share at each of those
    margins, from the same readings (to choose the margin on the validation split). ``recognizers``
    maps "handwritten" and "typeset" to a ``FormulaRecognizer``; a second model reads a picture only
    when the rule is unsure, as on the page."""
    from mathocr.formula_kind import guess_formula_kind, settle

    rows: dict[str, dict] = {}
    for k, sample in enumerate(samples):
        guess = guess_formula_kind(sample.image)
        row = rows.setdefault(sample.source, {"kind": sample.kind, "n": 0, "rule": 0, "settled": 0, "unsure": 0,
                                              **({"by_margin": {m: 0 for m in margins}} if margins else {})})
        calls = {m: guess for m in (None, *margins)}
        if guess.unsure:
            per_token = {kind: r.recognize_image(sample.image, beam_width).extra["per_token"]
                         for kind, r in recognizers.items()}
            calls = {m: settle(guess, per_token, m) for m in calls}
        row["n"] += 1
        row["rule"] += guess.kind == sample.kind
        row["settled"] += calls[None].kind == sample.kind
        row["unsure"] += guess.unsure
        for m in margins:
            row["by_margin"][m] += calls[m].kind == sample.kind
        if progress is not None:
            progress(k + 1, len(samples))
    for row in rows.values():
        row["rule"] = round(row["rule"] / row["n"], 4)
        row["settled"] = round(row["settled"] / row["n"], 4)
        for m in margins:
            row["by_margin"][m] = round(row["by_margin"][m] / row["n"], 4)
    return rows
