"""Photos of paper: what a phone's picture of a written formula adds to the ink, and taking it away.

A photo's paper is gray rather than white, lit unevenly (brighter near the lamp, darker in a
corner), and noisy; its ink is a dark gray. The models were trained on white paper and black ink,
and ``render.fit_bitmap`` takes every pixel darker than 200 for ink: on a photo whose paper is
darker than that in a corner, the crop is the whole picture and the model reads noise.

``flatten_paper`` fits the paper's light as a smooth surface (a cubic polynomial of the position,
fitted to the pixels that are not ink, ink being the dark outliers), divides it out, and stretches
the ink back to black; clean paper (a drawing on the canvas, a screenshot, a scan) is left as it
is. ``simulated_photo`` makes such photos from clean pictures, so that what flattening gains can be
measured on CROHME (``evaluate formulas --as-picture H,PEN --as-photo``).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

# The paper's light is fitted on a copy at most this many pixels on its longer side.
FIT_SIDE = 96
# Paper at least this bright, everywhere, with less noise than NOISE_CLEAN, is clean: left alone.
CLEAN_PAPER = 248
NOISE_CLEAN = 1.5
# The surface: every monomial x^i y^j with i + j <= DEGREE (10 terms).
DEGREE = 3


def _monomials(h: int, w: int) -> np.ndarray:
    """``(h * w, terms)``: the monomials of the pixel positions scaled to [-1, 1]."""
    ys, xs = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    xs, ys = xs.ravel(), ys.ravel()
    return np.stack([xs ** i * ys ** j for i in range(DEGREE + 1) for j in range(DEGREE + 1 - i)], axis=1)


def paper_light(gray: Image.Image) -> np.ndarray:
    """The paper's brightness under the ink, fitted on a small copy of ``gray`` (``(h, w)`` of that
    copy). Fitted first to the brighter half of the pixels (the paper is the majority), then to
    what does not lie well below the last fit (the ink lies well below), up to 6 rounds."""
    w, h = gray.size
    scale = min(1.0, FIT_SIDE / max(w, h))
    small = gray.resize((max(2, round(w * scale)), max(2, round(h * scale))), Image.Resampling.BOX)
    values = np.asarray(small, dtype=np.float64)
    sh, sw = values.shape
    terms, target = _monomials(sh, sw), values.ravel()
    paper = target >= np.median(target)
    for _ in range(6):
        chosen = terms[paper]  # least squares by the normal equations (10 x 10: a photo's fit in milliseconds)
        gram = chosen.T @ chosen
        coef = np.linalg.solve(gram + 1e-9 * np.trace(gram) * np.eye(len(gram)), chosen.T @ target[paper])
        residual = target - terms @ coef
        spread = float(1.4826 * np.median(np.abs(residual[paper])))
        keep = residual > -max(3.0 * spread, 4.0)
        if keep.sum() < 0.25 * keep.size or np.array_equal(keep, paper):
            break
        paper = keep
    return (terms @ coef).reshape(sh, sw)


def flatten_paper(gray: Image.Image) -> Image.Image:
    """``gray`` (an ``"L"`` image with light paper) with its paper made white and even and its ink
    black: the paper's light (``paper_light``) divided out, the noise smoothed (a 3 x 3 median where
    there is any), what is paper set to white, and the ink stretched so that its darkest pixels
    are black. Clean paper, bright everywhere and without noise, comes back unchanged."""
    gray = gray.convert("L")
    light = paper_light(gray)
    w, h = gray.size
    surface = Image.fromarray(np.clip(light, 1.0, 255.0).astype(np.float32), mode="F").resize((w, h), Image.BILINEAR)
    surface = np.asarray(surface, np.float64)
    values = np.asarray(gray, np.float64)
    residual = values - surface
    # the pixels' noise about the paper's light (the ink, far below it, left out)
    noise = float(1.4826 * np.median(np.abs(residual[residual > -40.0])))
    if light.min() >= CLEAN_PAPER and noise < NOISE_CLEAN:
        return gray
    flat = np.clip(values / surface * 255.0, 0.0, 255.0)
    noise *= 255.0 / max(float(np.median(light)), 1.0)  # in the flattened image's units
    if noise >= NOISE_CLEAN:
        flat = np.asarray(Image.fromarray(np.round(flat).astype(np.uint8)).filter(ImageFilter.MedianFilter(3)),
                          np.float64)
        noise /= 2.0  # about what a 3 x 3 median leaves of pixel noise
    paper = flat > 255.0 - max(4.0 * noise, 12.0)
    flat[paper] = 255.0
    ink = flat[~paper]
    if ink.size:
        dark = float(np.percentile(ink, 5))
        if dark < 250.0:
            flat = np.clip((flat - dark) / (255.0 - dark) * 255.0, 0.0, 255.0)
    return Image.fromarray(np.round(flat).astype(np.uint8))


def simulated_photo(picture: Image.Image, rng: np.random.Generator, jpeg: bool = True) -> Image.Image:
    """A phone's photo of ``picture`` (white paper, black ink): paper all round it (a quarter of its
    height), the paper gray (140-230) and the ink dark gray (15-90), lit by a gradient across the
    page (up to 35 % darker on one side) and a soft vignette, blurred a little, with sensor noise
    (standard deviation 2-8) and, with ``jpeg``, saved as a JPEG of quality 50-90."""
    picture = picture.convert("L")
    pad = max(4, picture.size[1] // 4)
    page = Image.new("L", (picture.size[0] + 2 * pad, picture.size[1] + 2 * pad), 255)
    page.paste(picture, (pad, pad))
    ink = 1.0 - np.asarray(page, np.float64) / 255.0
    h, w = ink.shape
    paper, pen = rng.uniform(140, 230), rng.uniform(15, 90)
    values = paper - (paper - pen) * ink
    ys, xs = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    along = (np.cos(angle) * xs * w + np.sin(angle) * ys * h) / max(w, h)  # in [-1, 1] along the light
    light = 1.0 - rng.uniform(0.0, 0.35) * (along + 1.0) / 2.0
    light *= 1.0 - rng.uniform(0.0, 0.15) * (xs ** 2 + ys ** 2) / 2.0
    values = values * light
    image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    noisy = np.asarray(image, np.float64) + rng.normal(0.0, rng.uniform(2.0, 8.0), (h, w))
    image = Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    if jpeg:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(50, 91)))
        image = Image.open(io.BytesIO(buffer.getvalue()))
        image.load()
    return image
