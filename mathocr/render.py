"""Ink to images: the one way pen strokes, canvas drawings and uploaded bitmaps reach a model.

Every image here is a PIL ``"L"`` image the way a person sees it: white paper (255), black ink
(0). ``ink_array`` turns one into what the models read: float32 ink intensity in [0, 1].
"""

from __future__ import annotations

import io
import math
from typing import Iterable, Sequence

import numpy as np
from PIL import Image, ImageDraw, ImageOps, UnidentifiedImageError

from mathocr.photo import flatten_paper, level_writing, remove_ruling

# Above this many pixels an upload is refused before it is decoded (a 12,000 x 12,000 scan).
MAX_UPLOAD_PIXELS = 150_000_000
# Uploads are shrunk to at most this side before any processing.
MAX_WORKING_SIDE = 2048


class ImageError(ValueError):
    """An image that cannot be used: not an image, corrupt, empty, or absurdly large."""


def _as_strokes(strokes: Iterable[np.ndarray]) -> list[np.ndarray]:
    out = []
    for stroke in strokes:
        arr = np.asarray(stroke, dtype=np.float32).reshape(-1, 2)
        if len(arr):
            out.append(arr)
    return out


def _placement(strokes: list[np.ndarray], height: int, width: int | None, max_width: int | None,
               stroke_width: float, margin: int) -> tuple[np.ndarray, float, float, float, int]:
    """Where ``render_strokes`` puts the ink: ``(lo, scale, offset_x, offset_y, out_w)``, a point
    ``p`` of the ink lands at pixel ``(p - lo) * scale + (offset_x, offset_y)`` of an image ``out_w``
    wide."""
    points = np.concatenate(strokes)
    lo, hi = points.min(axis=0), points.max(axis=0)
    extent_w, extent_h = float(hi[0] - lo[0]), float(hi[1] - lo[1])

    pad = margin + stroke_width / 2
    box_h = max(height - 2 * pad, 1.0)
    box_w = None if width is None else max(width - 2 * pad, 1.0)
    if width is None and max_width is not None:
        box_w = max(max_width - 2 * pad, 1.0)

    candidates = []
    if extent_h > 0:
        candidates.append(box_h / extent_h)
    if extent_w > 0 and box_w is not None:
        candidates.append(box_w / extent_w)
    if not candidates:  # a single point, or a horizontal line with no width limit
        candidates.append(box_h / extent_w if extent_w > 0 else 1.0)
    scale = min(candidates)

    out_w = width if width is not None else int(math.ceil(extent_w * scale + 2 * pad))
    out_w = max(out_w, 1)
    return lo, scale, (out_w - extent_w * scale) / 2, (height - extent_h * scale) / 2, out_w


def render_strokes(
    strokes: Iterable[np.ndarray],
    height: int = 64,
    width: int | None = None,
    max_width: int | None = None,
    stroke_width: float = 2.0,
    margin: int = 2,
    supersample: int = 3,
) -> Image.Image:
    """Draw strokes into a grayscale image, scaled to fit, aspect ratio kept, centred.

    With ``width`` the image is ``height x width`` (a symbol: ``render_strokes(s, 32, 32)``);
    without it the width follows the ink's aspect ratio (an expression), capped at ``max_width``.
    ``stroke_width`` is in output pixels, so thin and thick pens can be simulated.
    """
    strokes = _as_strokes(strokes)
    if not strokes:
        raise ValueError("no ink to render")
    lo, scale, offset_x, offset_y, out_w = _placement(strokes, height, width, max_width, stroke_width, margin)

    s = supersample
    canvas = Image.new("L", (out_w * s, height * s), 255)
    draw = ImageDraw.Draw(canvas)
    line_w = max(1, int(round(stroke_width * s)))
    radius = line_w / 2
    for stroke in strokes:
        xy = (stroke - lo) * scale
        xy[:, 0] += offset_x
        xy[:, 1] += offset_y
        xy *= s
        pts = [tuple(p) for p in xy.tolist()]
        if len(pts) > 1:
            draw.line(pts, fill=0, width=line_w, joint="curve")
        for x, y in (pts[0], pts[-1]):  # round caps, and dots for one-point strokes
            draw.ellipse((x - radius, y - radius, x + radius, y + radius), fill=0)
    if s > 1:
        canvas = canvas.resize((out_w, height), Image.Resampling.BOX)
    return canvas


# What the pen did, beside the ink, for a model that reads it (``pen_channels``): the direction it
# moved in (cosine and sine, image axes: x right, y down) and where it was put down or lifted.
PEN_CHANNELS = ("pen x", "pen y", "pen ends")
_PEN_STEP = 0.5  # strokes are sampled every half pixel
_PEN_REACH = 2  # a pixel takes the pen's direction from the samples within this many pixels


def _box_sum(a: np.ndarray, reach: int) -> np.ndarray:
    """Each pixel's sum over the ``(2 reach + 1)`` square around it (zeros beyond the edges)."""
    c = np.pad(a, reach).cumsum(0).cumsum(1)
    c = np.pad(c, ((1, 0), (1, 0)))
    k = 2 * reach + 1
    return c[k:, k:] - c[:-k, k:] - c[k:, :-k] + c[:-k, :-k]


def pen_channels(strokes: Iterable[np.ndarray], ink: np.ndarray, width: int | None = None,
                 max_width: int | None = None, stroke_width: float = 2.0, margin: int = 2) -> np.ndarray:
    """What the pen did where the ink of ``render_strokes(strokes, ink.shape[0], width, max_width,
    stroke_width, margin)`` is (``ink``: its ``ink_array``), as float32 ``(h, w, 3)``
    (``PEN_CHANNELS``): the direction the pen moved there, a unit vector averaged over the strokes
    that pass within ``_PEN_REACH`` pixels, times the ink; and 1 around where each stroke begins
    and ends (a lone dot's too). Only pen strokes have these; a picture of ink does not, and a model
    trained with them reads it with the three channels zero."""
    strokes = _as_strokes(strokes)
    if not strokes:
        raise ValueError("no ink to render")
    height, out_w = ink.shape
    lo, scale, offset_x, offset_y, _ = _placement(strokes, height, width, max_width, stroke_width, margin)
    placed = [(s - lo) * scale + np.array([offset_x, offset_y], np.float32) for s in strokes]
    size = height * out_w

    def pixel(xy: np.ndarray) -> np.ndarray:
        ix = np.clip(np.floor(xy[:, 0]).astype(np.int64), 0, out_w - 1)
        iy = np.clip(np.floor(xy[:, 1]).astype(np.int64), 0, height - 1)
        return iy * out_w + ix

    ends = np.bincount(pixel(np.concatenate([s[[0, -1]] for s in placed])), minlength=size).reshape(height, out_w)
    out = np.zeros((height, out_w, 3), np.float32)
    out[..., 2] = np.minimum(_box_sum(ends.astype(np.float32), 1), 1.0)
    # every segment of every stroke, sampled every _PEN_STEP pixels, with its direction
    starts = np.concatenate([s[:-1] for s in placed if len(s) > 1] or [np.zeros((0, 2), np.float32)])
    moves = np.concatenate([np.diff(s, axis=0) for s in placed if len(s) > 1] or [np.zeros((0, 2), np.float32)])
    lengths = np.hypot(moves[:, 0], moves[:, 1])
    keep = lengths > 1e-6
    starts, moves, lengths = starts[keep], moves[keep], lengths[keep]
    if len(lengths) == 0:
        return out
    n = np.ceil(lengths / _PEN_STEP).astype(np.int64)
    segment = np.repeat(np.arange(len(n)), n)
    t = (np.arange(n.sum()) - np.repeat(np.cumsum(n) - n, n) + 0.5) / np.repeat(n, n)
    samples = starts[segment] + moves[segment] * t[:, None]
    unit = moves[segment] / lengths[segment, None]
    where = pixel(samples)
    count = _box_sum(np.bincount(where, minlength=size).reshape(height, out_w).astype(np.float32), _PEN_REACH)
    inked = np.clip(ink, 0.0, 1.0) / np.maximum(count, 1.0)
    for k in range(2):
        total = np.bincount(where, weights=unit[:, k], minlength=size).reshape(height, out_w).astype(np.float32)
        out[..., k] = _box_sum(total, _PEN_REACH) * inked
    return out


def pen_picture(ink: np.ndarray, pen: np.ndarray) -> np.ndarray:
    """What ``pen_channels`` holds, for a person: RGB ``uint8 (h, w, 3)`` on white paper, each inked
    pixel coloured by the direction the pen moved there (hue: red rightwards, yellow-green downwards,
    cyan leftwards, violet upwards; black where strokes over it went opposite ways), the places where
    strokes begin and end haloed in gray. ``ink``: ``(h, w)`` in [0, 1]; ``pen``: ``(h, w, 3)``."""
    from matplotlib.colors import hsv_to_rgb

    ink = np.clip(np.asarray(ink, np.float32), 0.0, 1.0)
    dx, dy = pen[..., 0], pen[..., 1]
    strength = np.hypot(dx, dy) / np.maximum(ink, 1e-6)  # the direction's length before the ink weighed it
    hue = (np.arctan2(dy, dx) / (2 * np.pi)) % 1.0
    colour = hsv_to_rgb(np.stack([hue, np.ones_like(hue), np.full_like(hue, 0.9)], -1))
    colour *= np.clip(strength, 0.0, 1.0)[..., None]
    paper = np.where(pen[..., 2:3] > 0, 0.75, 1.0) * np.ones_like(colour)
    out = paper * (1.0 - ink[..., None]) + colour * ink[..., None]
    return np.round(np.clip(out, 0.0, 1.0) * 255).astype(np.uint8)


def ink_array(image: Image.Image) -> np.ndarray:
    """A model's input from a paper-like image: float32 ``(h, w)``, 1.0 where there is ink."""
    return 1.0 - np.asarray(image.convert("L"), dtype=np.float32) / 255.0


def augment_strokes(
    strokes: Sequence[np.ndarray],
    rng: np.random.Generator,
    rotate_deg: float = 5.0,
    shear: float = 0.2,
    scale: float = 0.1,
    jitter: float = 0.01,
) -> list[np.ndarray]:
    """A plausible other handwriting of the same ink: a random affine map (rotation, slant,
    anisotropic scale) of the whole, and a small random shift of each stroke (``jitter`` is a
    fraction of the ink's height)."""
    strokes = _as_strokes(strokes)
    points = np.concatenate(strokes)
    centre = (points.min(axis=0) + points.max(axis=0)) / 2
    size = float(max(np.ptp(points[:, 1]), np.ptp(points[:, 0]) / 4, 1e-6))
    angle = math.radians(rng.uniform(-rotate_deg, rotate_deg))
    rot = np.array([[math.cos(angle), -math.sin(angle)], [math.sin(angle), math.cos(angle)]])
    slant = np.array([[1.0, rng.uniform(-shear, shear)], [0.0, 1.0]])
    stretch = np.diag(1.0 + rng.uniform(-scale, scale, size=2))
    matrix = (rot @ slant @ stretch).astype(np.float32)
    out = []
    for stroke in strokes:
        shift = rng.normal(0.0, jitter * size, size=2).astype(np.float32)
        out.append((stroke - centre) @ matrix.T + centre + shift)
    return out


def elastic_strokes(
    strokes: Sequence[np.ndarray],
    rng: np.random.Generator,
    amplitude: float = 0.1,
    wavelength: tuple[float, float] = (1.0, 2.0),
    waves: int = 3,
) -> list[np.ndarray]:
    """The same ink written by a slightly different hand: every point moved by a smooth random
    field (a sum of ``waves`` plane waves in random directions, per axis), so that each symbol's
    shape bends a little while the layout stays. ``amplitude`` and the ``wavelength`` range are
    fractions of the ink's typical symbol size (the median of its strokes' larger sides), so a
    fraction's small symbols bend as much as a single line's large ones."""
    strokes = _as_strokes(strokes)
    if not strokes or amplitude <= 0:
        return strokes
    points = np.concatenate(strokes)
    height = float(max(np.ptp(points[:, 1]), 1e-6))
    sides = [float(np.ptp(s, axis=0).max()) for s in strokes]
    symbol = float(np.clip(np.median(sides), 0.1 * height, height))
    lengths = rng.uniform(*wavelength, size=(2, waves)) * symbol
    angles = rng.uniform(0.0, 2 * math.pi, size=(2, waves))
    directions = np.stack([np.cos(angles), np.sin(angles)], axis=-1) / lengths[..., None]  # (2, waves, 2)
    phases = rng.uniform(0.0, 2 * math.pi, size=(2, waves))
    weights = rng.normal(0.0, amplitude * symbol / math.sqrt(waves), size=(2, waves))

    def moved(stroke: np.ndarray) -> np.ndarray:
        angle = 2 * math.pi * np.einsum("pc,awc->paw", stroke, directions) + phases  # (points, axis, waves)
        return (stroke + (np.sin(angle) * weights).sum(axis=-1)).astype(np.float32)

    return [moved(stroke) for stroke in strokes]


def strokes_from_fabric(json_data: dict | None) -> list[np.ndarray]:
    """Pen strokes from a fabric.js canvas description (what streamlit-drawable-canvas returns
    as ``json_data`` in free-draw mode). Paths are ``[["M", x, y], ["Q", cx, cy, x, y], ...,
    ["L", x, y]]``; each path becomes one stroke of its end points, offset by the object's
    position the way fabric.js places it."""
    strokes = []
    for obj in (json_data or {}).get("objects", []):
        if str(obj.get("type", "")).lower() != "path" or not obj.get("path"):  # fabric 7 says "Path"
            continue
        points = []
        for command in obj["path"]:
            if len(command) >= 3:
                points.append((float(command[-2]), float(command[-1])))
        if not points:
            continue
        arr = np.asarray(points, dtype=np.float32)
        # fabric stores a path's coordinates relative to its pathOffset, drawn at left/top
        if "pathOffset" in obj and obj["pathOffset"]:
            offset = obj["pathOffset"]
            origin_x = float(obj.get("left", 0)) + float(obj.get("width", 0)) / 2
            origin_y = float(obj.get("top", 0)) + float(obj.get("height", 0)) / 2
            arr = arr - np.float32([offset["x"], offset["y"]]) + np.float32([origin_x, origin_y])
        strokes.append(arr)
    return strokes


def load_image(data: bytes, report: dict | None = None, writing: bool = False) -> Image.Image:
    """Decode an uploaded file into a paper-like grayscale image (white background, dark ink).

    Transparent areas become white; a light-on-dark image (chalk, a dark-mode screenshot) is
    inverted; a photo's paper is flattened, ruled lines taken away and a page photographed askew turned
    level by them, or with ``writing`` (a formula), on paper without lines, by its writing (``paper_image``,
    which fills ``report``). Raises ``ImageError`` with a message a user can act on.
    """
    if not data:
        raise ImageError("the file is empty")
    try:
        with Image.open(io.BytesIO(data)) as probe:
            w, h = probe.size
            if w * h > MAX_UPLOAD_PIXELS:
                raise ImageError(f"the image is {w} x {h} pixels; the limit is {MAX_UPLOAD_PIXELS:,} pixels")
        image = Image.open(io.BytesIO(data))
        image.load()
    except ImageError:
        raise
    except Image.DecompressionBombError:  # Pillow's own limit, above ours: refused before decoding
        raise ImageError(f"the image has too many pixels; the limit is {MAX_UPLOAD_PIXELS:,} pixels") from None
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as err:
        raise ImageError(f"this file is not an image that can be read ({type(err).__name__}: {err})") from None
    image = ImageOps.exif_transpose(image)
    if max(image.size) > MAX_WORKING_SIDE:
        image.thumbnail((MAX_WORKING_SIDE, MAX_WORKING_SIDE), Image.Resampling.LANCZOS)
    return paper_image(image, writing=writing, report=report)


def paper_image(image: Image.Image, flatten: bool = True, ruling: bool = True, level: bool = True,
                writing: bool = False, report: dict | None = None) -> Image.Image:
    """Any PIL image (RGB, RGBA, palette, 16-bit...) as grayscale with white paper and dark ink;
    with ``flatten``, a photo's uneven, gray paper made white (``photo.flatten_paper``; clean paper
    is left alone) and, with ``ruling`` too, ruled paper's lines taken away (``photo.remove_ruling``;
    a picture without them is left alone) and, with ``level`` too, a page photographed askew turned
    so that its lines run level (more than ``photo.LEVEL_FROM`` degrees askew). With ``writing`` (a
    formula, not a symbol) and ``level``, a photo (its paper flattened) without lines is turned so that
    its writing runs level instead (``photo.level_writing``). ``report``, if given, is filled with what
    was done: ``inverted``, ``flattened`` and ``ruling_removed`` (each true or false), ``turned``
    (degrees, counter-clockwise; 0.0 when not) and ``turned_by`` (``"lines"``, ``"writing"`` or ``None``)."""
    if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        image = Image.alpha_composite(background, rgba)
    if image.mode in ("I", "I;16", "F"):
        arr = np.asarray(image, dtype=np.float64)
        span = arr.max() - arr.min()
        arr = (arr - arr.min()) / span * 255 if span else np.full_like(arr, 255)
        image = Image.fromarray(arr.astype(np.uint8))
    gray = image.convert("L")
    done = {"inverted": not light_paper(np.asarray(gray)), "flattened": False, "ruling_removed": False, "turned": 0.0,
            "turned_by": None}
    if done["inverted"]:
        gray = ImageOps.invert(gray)
    out = gray
    if flatten:
        out = flatten_paper(gray)
        done["flattened"] = out is not gray
        if ruling:
            flat, out = out, remove_ruling(out, level=level, report=done)
            done["ruling_removed"] = out is not flat
            if done["turned"]:
                done["turned_by"] = "lines"
        if writing and level and done["flattened"] and not done["ruling_removed"]:
            out = level_writing(out, report=done)
            if done["turned"]:
                done["turned_by"] = "writing"
    if report is not None:
        report.update(done)
    return out


def light_paper(arr: np.ndarray) -> bool:
    """Whether the paper of a grayscale picture is lighter than its ink: whether the median of its
    border (the paper, where the writing does not reach the edge) is nearer the light end of the
    picture's range than the dark end. A dim photo of paper (paper 110, ink 30) is light paper,
    chalk on a board is not. Without contrast to judge by: light when the border is 128 or more."""
    low, high = np.percentile(arr, [1, 99])
    border = float(np.median(np.concatenate([arr[0], arr[-1], arr[:, 0], arr[:, -1]])))
    if high - low < 16:
        return border >= 128
    return high - border <= border - low


def fit_bitmap(
    image: Image.Image,
    height: int = 64,
    width: int | None = None,
    max_width: int | None = None,
    margin: int = 2,
    threshold: int = 200,
) -> Image.Image:
    """Crop a paper-like image to its ink and scale it the way ``render_strokes`` scales ink:
    aspect ratio kept, fitted to ``height`` (and ``width`` or ``max_width``), centred.
    Raises ``ImageError`` when there is no ink at all."""
    gray = image.convert("L")
    arr = np.asarray(gray)
    ys, xs = np.nonzero(arr < threshold)
    if len(xs) == 0:
        raise ImageError("the image is blank: no ink found")
    crop = gray.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    cw, ch = crop.size
    box_h = max(height - 2 * margin, 1)
    limit_w = width if width is not None else max_width
    scale = box_h / ch
    if limit_w is not None:
        scale = min(scale, max(limit_w - 2 * margin, 1) / cw)
    new_w, new_h = max(1, round(cw * scale)), max(1, round(ch * scale))
    resized = crop.resize((new_w, new_h), Image.Resampling.LANCZOS if scale < 1 else Image.Resampling.BICUBIC)
    out_w = width if width is not None else new_w + 2 * margin
    out = Image.new("L", (out_w, height), 255)
    out.paste(resized, ((out_w - new_w) // 2, (height - new_h) // 2))
    return out
