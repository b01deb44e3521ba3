"""CROHME's symbols as small images, cached, and the tf.data pipeline that feeds them to a model.

Every segmented symbol of an InkML file (one ``<traceGroup>``: its strokes and its label) is drawn
by the shared renderer, ``render_strokes(strokes, size, size, stroke_width=...)``, so a symbol from
CROHME, a drawing on the canvas and an upload (``fit_bitmap``) all reach the model the same way.
Labels are in canonical spelling (``normalize_symbol``: ``\\lt`` is ``<``).

Rendering ~100,000 symbols takes a minute or two, so a split's images are rendered once and kept
in ``.cache/`` as one ``.npz`` (uint8 ink, labels as strings), keyed by the files and the render
settings. Augmentation happens on the fly in tf.data, on the cached images: a random affine map
(rotation, shear, scale, shift) and a random thinner or thicker pen.

Scaling every symbol to fill its square throws away how big it was and where it sat, which is
all that tells ``p`` from ``P``, ``x`` from ``\\times`` or ``,`` from ``)``. So each symbol also
gets a *context*: its height, width and vertical position relative to the other symbols of its
expression (``symbol_context``). A model may read it beside the image; the first value says
whether it is known (a symbol drawn alone on the canvas has no expression around it: all zeros).
"""

from __future__ import annotations

import hashlib
import io
import os
import zlib
from dataclasses import dataclass
from multiprocessing import Pool
from pathlib import Path
from typing import Callable, Iterable, Sequence

import numpy as np
from PIL import Image

from mathocr.data import atomic_write, cache_dir, crohme_files
from mathocr.inkml import ReadReport, iter_inkml
from mathocr.latex import normalize_symbol
from mathocr.render import fit_bitmap, ink_array, render_strokes

CACHE_VERSION = 2  # bump when rendering or the context changes
DEFAULT_SIZE = 32
# The pen width every symbol is drawn with, in output pixels at DEFAULT_SIZE; it scales with size.
STROKE_WIDTH_AT_32 = 1.6


def stroke_width_for(size: int) -> float:
    return STROKE_WIDTH_AT_32 * size / 32


def symbol_image(strokes: Sequence[np.ndarray], size: int = DEFAULT_SIZE) -> np.ndarray:
    """One symbol's strokes as a model input: float32 ``(size, size)`` ink in [0, 1]."""
    return ink_array(render_strokes(strokes, size, size, stroke_width=stroke_width_for(size)))


def picture_image(picture: Image.Image, size: int = DEFAULT_SIZE, pen_normalise: bool = True) -> np.ndarray:
    """One symbol's picture (a paper-like image, ``render.load_image``'s output) as a model input:
    cropped to its ink and fitted like ink, strokes thinner than the training pen first thickened to
    it (``formula_data.normalise_pen``) unless ``pen_normalise`` is off. Thicker strokes are left
    alone: the model, trained with pens up to half again as thick, reads them better than thinned
    ones, whose closed loops and merged strokes stay blobs. CROHME 2014's symbols drawn 150 pixels
    square (``evaluate symbols --as-picture 150,PEN [--no-pen-normalise]``): see the model card."""
    if pen_normalise:
        from mathocr.formula_data import normalise_pen

        picture = normalise_pen(picture, size, size, stroke_width_for(size), thin=False)
    return ink_array(fit_bitmap(picture, size, size))


def _draw_symbol(strokes: Sequence[np.ndarray], size: int, picture: tuple[int, float] | None,
                 pen_normalise: bool, photo_seed: int | None = None, flatten: bool = True, paper: str = "plain",
                 ruling: bool = True, tilt: float = 0.0, level: bool = True) -> np.ndarray:
    """``symbol_image``, or with ``picture`` (side, pen width in pixels) the strokes drawn as a
    square picture that size and read as an upload is (``picture_image``); with ``photo_seed`` too,
    the picture made a phone's photo of ``paper`` first (``photo.photo_of_paper``) and read as an uploaded file is
    (``render.paper_image``; its paper flattened unless ``flatten`` is False, its lines taken away
    unless ``ruling`` is False), the photo taken ``tilt`` degrees askew (and turned level by its lines unless
    ``level`` is False)."""
    if picture is None:
        return symbol_image(strokes, size)
    side, pen = picture
    image = render_strokes(strokes, side, side, stroke_width=pen)
    if photo_seed is not None:
        from mathocr.photo import photo_of_paper
        from mathocr.render import ImageError, paper_image

        image = paper_image(photo_of_paper(image, photo_seed, paper, tilt), flatten=flatten, ruling=ruling, level=level)
        try:
            return picture_image(image, size, pen_normalise)
        except ImageError:  # what a user would be told (no ink found): a blank input, a miss
            return np.zeros((size, size), np.float32)
    return picture_image(image, size, pen_normalise)


# known (1/0), log(height / expression scale), log(width / expression scale), vertical offset of
# the centre from the expression's median centre, in expression scales
CONTEXT_FEATURES = 4
NO_CONTEXT = np.zeros(CONTEXT_FEATURES, np.float32)


def symbol_context(symbol_strokes: Sequence[Sequence[np.ndarray]]) -> np.ndarray:
    """``(n, CONTEXT_FEATURES)`` context of each of an expression's symbols (given as their strokes).
    The expression's scale is the median symbol height (at least a tenth of the tallest)."""
    boxes = []
    for strokes in symbol_strokes:
        points = np.concatenate([np.asarray(s, np.float32).reshape(-1, 2) for s in strokes])
        lo, hi = points.min(axis=0), points.max(axis=0)
        boxes.append((hi[0] - lo[0], hi[1] - lo[1], (lo[1] + hi[1]) / 2))
    boxes = np.asarray(boxes, np.float64).reshape(-1, 3)
    if len(boxes) == 0:
        return np.zeros((0, CONTEXT_FEATURES), np.float32)
    widths, heights, centres = boxes.T
    scale = max(float(np.median(heights)), 0.1 * float(heights.max()), 1e-6)
    floor = 0.02 * scale  # a dot or a stroke of no height
    context = np.stack([
        np.ones(len(boxes)),
        np.log(np.maximum(heights, floor) / scale),
        np.log(np.maximum(widths, floor) / scale),
        (centres - np.median(centres)) / scale,
    ], axis=1)
    return np.clip(context, -4, 4).astype(np.float32)


@dataclass
class SymbolSet:
    """Rendered symbols: ``images`` uint8 ``(n, size, size)`` (255 = ink), ``labels`` their LaTeX,
    ``sources`` the expression file each came from, ``context`` float32 ``(n, CONTEXT_FEATURES)``."""

    images: np.ndarray
    labels: np.ndarray
    sources: np.ndarray
    context: np.ndarray | None = None

    def __post_init__(self):
        if self.context is None:
            self.context = np.zeros((len(self.labels), CONTEXT_FEATURES), np.float32)

    def __len__(self) -> int:
        return len(self.labels)

    def float_images(self) -> np.ndarray:
        return self.images.astype(np.float32) / 255.0


def _render_file(job: tuple) -> tuple[list[np.ndarray], list[str], list[np.ndarray]]:
    path, size, picture, pen_normalise, photo, flatten, ruling, tilt, level = job
    images, labels, contexts = [], [], []
    for ink in iter_inkml([path], ReadReport()):
        symbols = [(s, ink.symbol_strokes(s)) for s in ink.symbols]
        symbols = [(s, strokes) for s, strokes in symbols if any(len(stroke) for stroke in strokes)]
        context = symbol_context([strokes for _, strokes in symbols])
        for n, ((symbol, strokes), row) in enumerate(zip(symbols, context)):
            # a photo's randomness from the file's name and the symbol's place in it: the same in any worker
            seed = zlib.crc32(f"{Path(path).name}:{n}".encode()) if photo else None
            image = _draw_symbol(strokes, size, picture, pen_normalise, seed, flatten, photo or "plain", ruling,
                                 tilt, level)
            images.append(np.round(image * 255).astype(np.uint8))
            labels.append(normalize_symbol(symbol.label))
            contexts.append(row)
    return images, labels, contexts


def render_symbol_files(paths: Iterable[str | os.PathLike], size: int = DEFAULT_SIZE, workers: int | None = None,
                        progress: Callable[[int, int], None] | None = None, picture: tuple[int, float] | None = None,
                        pen_normalise: bool = True, photo: str | None = None, flatten: bool = True,
                        ruling: bool = True, tilt: float = 0.0, level: bool = True) -> SymbolSet:
    """Render every symbol of every InkML file (unusable files are skipped). With ``picture``
    (side, pen width in pixels) each is drawn as a square picture and read as an upload instead;
    with ``photo`` too (``"plain"``, ``"ruled"`` or ``"squared"`` paper), as a simulated phone photo of that picture
    (see ``_draw_symbol``; ``flatten`` False: its paper not flattened; ``ruling`` False: its lines kept; ``tilt``:
    taken that many degrees askew; ``level`` False: not turned level by its lines)."""
    if photo and picture is None:
        raise ValueError("photos are made from pictures: give --as-picture SIDE,PEN with --as-photo")
    if tilt and not photo:
        raise ValueError("tilt turns photos: give --as-photo [PAPER] with --photo-tilt")
    jobs = [(str(p), size, picture, pen_normalise, photo, flatten, ruling, tilt, level) for p in paths]
    workers = workers or min(2, os.cpu_count() or 1)
    images, labels, sources, contexts = [], [], [], []

    def collect(results):
        for done, ((path, *_), (im, lab, ctx)) in enumerate(zip(jobs, results), 1):
            images.extend(im)
            labels.extend(lab)
            sources.extend([path] * len(lab))
            contexts.extend(ctx)
            if progress is not None:
                progress(done, len(jobs))

    if workers > 1 and len(jobs) > 50:
        with Pool(workers) as pool:
            collect(pool.imap(_render_file, jobs, chunksize=16))
    else:
        collect(map(_render_file, jobs))
    stack = np.stack(images) if images else np.zeros((0, size, size), np.uint8)
    context = np.stack(contexts) if contexts else np.zeros((0, CONTEXT_FEATURES), np.float32)
    return SymbolSet(stack, np.asarray(labels, dtype=str), np.asarray(sources, dtype=str), context)


def _cache_key(paths: Sequence[Path], size: int) -> str:
    digest = hashlib.sha256(f"v{CACHE_VERSION}|{size}|{STROKE_WIDTH_AT_32}".encode())
    for path in paths:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def load_symbol_set(paths: Sequence[str | os.PathLike], size: int = DEFAULT_SIZE, name: str = "symbols",
                    progress: Callable[[int, int], None] | None = None) -> SymbolSet:
    """The rendered symbols of these files, from the cache when nothing has changed."""
    paths = [Path(p).resolve() for p in paths]
    cached = cache_dir() / f"{name}-{size}px-{_cache_key(paths, size)}.npz"
    if cached.exists():
        with np.load(cached) as data:
            return SymbolSet(data["images"], data["labels"], data["sources"], data["context"])
    symbols = render_symbol_files(paths, size, progress=progress)
    buffer = io.BytesIO()
    np.savez_compressed(buffer, images=symbols.images, labels=symbols.labels, sources=symbols.sources,
                        context=symbols.context)
    atomic_write(cached, buffer.getvalue())
    return symbols


def load_crohme_symbols(split: str, size: int = DEFAULT_SIZE, root=None,
                        progress: Callable[[int, int], None] | None = None) -> SymbolSet:
    """All symbols of one CROHME split (``train``, ``validation``, ``test``), rendered and cached."""
    return load_symbol_set(crohme_files(split, root), size, name=f"crohme-{split}", progress=progress)


# ---------------------------------------------------------------------------------------------
# tf.data


@dataclass
class Augmentation:
    """On-the-fly augmentation of rendered symbols; every range is symmetric around no change."""

    rotate_deg: float = 8.0
    shear: float = 0.15
    scale: float = 0.1
    shift: float = 0.06  # fraction of the image side
    pen: float = 0.5  # blend towards a dilated (thicker) or eroded (thinner) pen, at most this much

    def scaled(self, strength: float) -> "Augmentation":
        """Every range times ``strength`` (the pen blend capped at 1)."""
        return Augmentation(self.rotate_deg * strength, self.shear * strength, self.scale * strength,
                            self.shift * strength, min(1.0, self.pen * strength))


def _affine_transforms(batch: int, size: int, aug: Augmentation):
    """Per-image projective transforms (the output-to-input maps ImageProjectiveTransformV3 takes)
    of a random rotation, shear, scale and shift about the image centre."""
    import tensorflow as tf

    angle = tf.random.uniform([batch], -aug.rotate_deg, aug.rotate_deg) * (np.pi / 180)
    shear = tf.random.uniform([batch], -aug.shear, aug.shear)
    sx = 1 + tf.random.uniform([batch], -aug.scale, aug.scale)
    sy = 1 + tf.random.uniform([batch], -aug.scale, aug.scale)
    tx = tf.random.uniform([batch], -aug.shift, aug.shift) * size
    ty = tf.random.uniform([batch], -aug.shift, aug.shift) * size
    cos, sin = tf.cos(angle), tf.sin(angle)
    # forward map A = R @ Shear @ Scale; the op wants the inverse (output pixel -> input pixel)
    a00, a01 = cos * sx, (cos * shear - sin) * sy
    a10, a11 = sin * sx, (sin * shear + cos) * sy
    det = a00 * a11 - a01 * a10
    i00, i01, i10, i11 = a11 / det, -a01 / det, -a10 / det, a00 / det
    c = (size - 1) / 2
    # input = Inv @ (output - c - t) + c
    ox, oy = c + tx, c + ty
    b0 = c - (i00 * ox + i01 * oy)
    b1 = c - (i10 * ox + i11 * oy)
    zeros = tf.zeros([batch])
    return tf.stack([i00, i01, b0, i10, i11, b1, zeros, zeros], axis=1)


def augment_batch(images, aug: Augmentation):
    """Augment a batch of float images ``(b, h, w, 1)`` (ink 1, paper 0)."""
    import tensorflow as tf

    batch, size = tf.shape(images)[0], images.shape[1]
    images = tf.raw_ops.ImageProjectiveTransformV3(
        images=images, transforms=_affine_transforms(batch, size, aug), output_shape=tf.shape(images)[1:3],
        fill_value=0.0, interpolation="BILINEAR", fill_mode="CONSTANT")
    # pen width: blend towards max-pooled (thicker) or min-pooled (thinner) ink
    thick = tf.nn.max_pool2d(images, 3, 1, "SAME")
    thin = -tf.nn.max_pool2d(-images, 3, 1, "SAME")
    amount = tf.random.uniform([batch, 1, 1, 1], -aug.pen, aug.pen)
    images = tf.where(amount > 0, images + amount * (thick - images), images - amount * (thin - images))
    return tf.clip_by_value(images, 0.0, 1.0)


def make_dataset(images: np.ndarray, label_ids: np.ndarray, n_classes: int, batch_size: int = 128,
                 training: bool = False, augmentation: Augmentation | None = None, seed: int = 0,
                 context: np.ndarray | None = None, context_dropout: float = 0.0):
    """A tf.data pipeline of ``(image (b, s, s, 1) float32, one-hot label)`` batches from uint8
    images (one-hot, so the loss can smooth labels). Training shuffles each epoch and augments.

    With ``context`` the inputs are ``(image, context)``; in training a ``context_dropout``
    fraction of the symbols lose theirs (all zeros, as for a symbol drawn alone)."""
    import tensorflow as tf

    inputs = images if context is None else (images, context.astype(np.float32))
    ds = tf.data.Dataset.from_tensor_slices((inputs, label_ids.astype(np.int32))).cache()
    if training:
        ds = ds.shuffle(len(label_ids), seed=seed, reshuffle_each_iteration=True)
    ds = ds.batch(batch_size, drop_remainder=training)

    def prepare(x, y):
        image, ctx = (x, None) if context is None else x
        image = tf.cast(image, tf.float32)[..., None] / 255.0
        if training and augmentation is not None:
            image = augment_batch(image, augmentation)
        if ctx is None:
            return image, tf.one_hot(y, n_classes)
        if training and context_dropout:
            keep = tf.cast(tf.random.uniform([tf.shape(ctx)[0], 1]) >= context_dropout, tf.float32)
            ctx = ctx * keep
        return (image, ctx), tf.one_hot(y, n_classes)

    return ds.map(prepare, num_parallel_calls=tf.data.AUTOTUNE).prefetch(tf.data.AUTOTUNE)
