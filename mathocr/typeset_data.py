"""Typeset formulas as a model reads them: im2latex's formulas rendered once (``mathocr.typeset``),
cached on disk, scaled to the model's height, in bucketed batches.

The rendered set lives in ``<cache>/im2latex-<engine>-<dpi>dpi/`` (``<id>.png`` and ``index.json``
with the failures and their reasons); rendering it again only draws what is missing. The split
(train/validation/test, 90/5/5 by a fixed seed) is ``data.load_im2latex``'s: the held-out test
formulas are never trained on, whichever images exist.

Model inputs come from ``formula_bitmap`` (``render.fit_bitmap``): the ink cropped and scaled to
``TYPESET_HEIGHT`` pixels, at most ``TYPESET_MAX_WIDTH`` wide, the same path an uploaded
screenshot takes in the app. Training adds light augmentation (a slightly smaller formula placed
at a random height, a little blur or a bolder stroke), since screenshots differ in size and
sharpness.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image, ImageFilter

from mathocr import data as data_mod
from mathocr.formula_data import BatchSource
from mathocr.latex import Vocabulary
from mathocr.render import fit_bitmap, ink_array
from mathocr.typeset import RenderedSet, default_engine, render_formula_set

TYPESET_HEIGHT = 48
TYPESET_MAX_WIDTH = 1024  # 99 % of im2latex's formulas at 200 dpi fit unscaled
DPI = 200


@dataclass
class TypesetFormula:
    """One rendered formula: its image file and canonical tokens."""

    id: str
    image_path: Path
    tokens: list[str]
    latex: str  # as distributed


def rendered_dir(engine: str | None = None, dpi: int = DPI) -> Path:
    return data_mod.cache_dir() / f"im2latex-{engine or default_engine()}-{dpi}dpi"


def render_im2latex(root=None, engine: str | None = None, dpi: int = DPI, workers: int | None = None,
                    progress: Callable[[int, int], None] | None = None, directory: str | os.PathLike | None = None,
                    limit: int | None = None, retry_failed: bool = False,
                    split: str | None = None) -> RenderedSet:
    """Render every im2latex formula (or those of one ``split``, or the first ``limit``) into the
    cache, resumably."""
    formulas = data_mod.load_im2latex(root, split)
    if limit is not None:
        formulas = formulas[:limit]
    target = Path(directory) if directory else rendered_dir(engine, dpi)
    return render_formula_set([(f.id, f.latex) for f in formulas], target, engine=engine, dpi=dpi,
                              workers=workers, progress=progress, retry_failed=retry_failed)


def load_typeset_formulas(split: str, root=None, directory: str | os.PathLike | None = None,
                          engine: str | None = None, dpi: int = DPI) -> list[TypesetFormula]:
    """The rendered formulas of one im2latex split (those that failed to render are left out;
    ``index.json`` counts them). Raises ``DataMissing`` when nothing of the split is rendered."""
    folder = Path(directory) if directory else rendered_dir(engine, dpi)
    out = []
    for f in data_mod.load_im2latex(root, split):
        path = folder / f"{Path(f.id).stem}.png"
        if path.exists() and f.tokens:
            out.append(TypesetFormula(f.id, path, f.tokens.split(), f.latex))
    if not out:
        raise data_mod.DataMissing(
            f"no rendered im2latex {split} formulas in {folder}: run `python -m mathocr data render` first")
    return out


def typeset_array(image: Image.Image, height: int = TYPESET_HEIGHT, max_width: int = TYPESET_MAX_WIDTH) -> np.ndarray:
    """A typeset formula image (paper-like: dark ink on light) as a model input ``(h, w)``."""
    return ink_array(fit_bitmap(image, height=height, max_width=max_width))


def load_array(path: Path, height: int = TYPESET_HEIGHT, max_width: int = TYPESET_MAX_WIDTH) -> np.ndarray:
    with Image.open(path) as image:
        return typeset_array(image, height, max_width)


def augmented_array(image: Image.Image, rng: np.random.Generator, height: int = TYPESET_HEIGHT,
                    max_width: int = TYPESET_MAX_WIDTH) -> np.ndarray:
    """The same formula as another screenshot might show it: 80-100 % of the frame height at a
    random vertical place, sometimes blurred or bolder."""
    choice = rng.uniform()
    if choice < 0.2:
        image = image.filter(ImageFilter.GaussianBlur(float(rng.uniform(0.5, 1.5))))
    elif choice < 0.35:
        image = image.filter(ImageFilter.MinFilter(3))  # thicker strokes
    inner = int(round(height * rng.uniform(0.8, 1.0)))
    arr = ink_array(fit_bitmap(image, height=inner, max_width=max_width))
    if inner < height:
        top = int(rng.integers(0, height - inner + 1))
        arr = np.pad(arr, ((top, height - inner - top), (0, 0)))
    return arr


class TypesetBatches(BatchSource):
    """Bucketed batches of rendered formulas, with the same shapes as the handwritten ones (so
    the same model and training loop serve). The images are read once and kept in memory."""

    def __init__(self, formulas: Sequence[TypesetFormula], vocab: Vocabulary, batch_size: int = 32,
                 max_tokens: int = 160, seed: int = 0, augment: bool = True, height: int = TYPESET_HEIGHT,
                 max_width: int = TYPESET_MAX_WIDTH, progress: Callable[[int, int], None] | None = None,
                 token_dropout: float = 0.0, also: Sequence[str | os.PathLike] = (), also_share: float = 0.5,
                 pad_margin: int = 0, reverse: bool = False):
        """``also``: folders with other renderings of the same formulas (other fonts, ``data render
        --engine mathtext-dejavusans``); with augmentation, a formula is drawn from one of them a
        ``also_share`` of the time, else from its main rendering. Buckets follow the main one."""
        kept = [f for f in formulas if 0 < len(f.tokens) <= max_tokens]
        self.formulas = kept
        self.augment = augment
        self.max_width = max_width
        self.also_share = also_share
        self.sources: list[Image.Image] = []
        self.variants: list[list[Image.Image]] = []
        self.plain: list[np.ndarray] = []
        folders = [Path(folder) for folder in also]
        for i, f in enumerate(kept):
            with Image.open(f.image_path) as image:
                image = image.convert("L")
            if augment:
                self.sources.append(image)
                others = []
                for folder in folders:
                    path = folder / Path(f.image_path).name
                    if path.exists():
                        with Image.open(path) as other:
                            others.append(other.convert("L"))
                self.variants.append(others)
            self.plain.append(typeset_array(image, height, max_width))
            if progress and (i % 500 == 0 or i == len(kept) - 1):
                progress(i + 1, len(kept))
        super().__init__([vocab.encode(f.tokens) for f in kept], [a.shape[1] for a in self.plain], vocab,
                         batch_size, seed, height, max_pixels=batch_size * 480, token_dropout=token_dropout,
                         pad_margin=pad_margin, reverse=reverse)

    def image(self, i: int) -> np.ndarray:
        if self.augment:
            source = self.sources[i]
            if self.variants[i] and self.rng.uniform() < self.also_share:
                source = self.variants[i][int(self.rng.integers(len(self.variants[i])))]
            return augmented_array(source, self.rng, self.height, self.max_width)
        return self.plain[i]
