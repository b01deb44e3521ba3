"""Pictures of what the formula model does: attention laid over its input, encoder feature maps.

Plain numpy and PIL (no matplotlib), so a page can show dozens of small images quickly.
"""

from __future__ import annotations

import numpy as np
from PIL import Image

from mathocr.formula_model import ENCODER_STRIDE


def attention_heatmap(alpha: np.ndarray, height: int, width: int) -> np.ndarray:
    """One step's attention ``(hf, wf)`` spread over the input's pixels ``(height, width)``, scaled
    to [0, 1]. Each grid cell covers ``ENCODER_STRIDE`` pixels square of the (padded) input."""
    cells = np.kron(alpha, np.ones((ENCODER_STRIDE, ENCODER_STRIDE), np.float32))
    heat = np.zeros((height, width), np.float32)
    h, w = min(height, cells.shape[0]), min(width, cells.shape[1])
    heat[:h, :w] = cells[:h, :w]
    peak = heat.max()
    return heat / peak if peak > 0 else heat


def attention_overlay(array: np.ndarray, alpha: np.ndarray, scale: int = 2) -> Image.Image:
    """The model input ``array`` (ink = 1) as dark ink on paper, with one step's attention in red."""
    height, width = array.shape
    heat = attention_heatmap(alpha, height, width)
    paper = 1.0 - 0.85 * np.clip(array, 0, 1)
    rgb = np.stack([paper, paper, paper], -1)
    red = np.array([1.0, 0.1, 0.1], np.float32)
    rgb = rgb * (1 - 0.65 * heat[..., None]) + red * 0.65 * heat[..., None]
    image = Image.fromarray((np.clip(rgb, 0, 1) * 255).astype(np.uint8))
    return image.resize((width * scale, height * scale), Image.Resampling.NEAREST) if scale != 1 else image


def feature_map_tiles(maps: np.ndarray, count: int = 16, scale: int = 2) -> list[Image.Image]:
    """The first ``count`` channels of ``(h, w, channels)`` maps, each scaled to [0, 255] on its
    own, enlarged so that a map of the small last layers is still visible."""
    tiles = []
    for c in range(min(count, maps.shape[-1])):
        m = maps[..., c].astype(np.float32)
        lo, hi = float(m.min()), float(m.max())
        m = (m - lo) / (hi - lo) if hi > lo else np.zeros_like(m)
        image = Image.fromarray((m * 255).astype(np.uint8))
        factor = max(scale, int(np.ceil(96 / max(m.shape[0], 1))))
        tiles.append(image.resize((m.shape[1] * factor, m.shape[0] * factor), Image.Resampling.NEAREST))
    return tiles
