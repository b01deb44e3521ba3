"""Figures for the symbol recognizer (matplotlib, no display needed): the confusion matrix, a
grid of feature maps, and a Grad-CAM heatmap over the input."""

from __future__ import annotations

import math
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402


def confusion_figure(evaluation, max_classes: int | None = None):
    """The confusion matrix, rows normalised (each truth's row sums to 1), log colour scale so that
    rare confusions show. ``max_classes`` keeps the classes involved in the most errors."""
    labels = list(evaluation.confusion_labels)
    matrix = np.asarray(evaluation.confusion_matrix, dtype=float)
    if max_classes and len(labels) > max_classes:
        errors = matrix.sum(axis=0) + matrix.sum(axis=1) - 2 * np.diag(matrix)
        keep = np.sort(np.argsort(-errors)[:max_classes])
        matrix, labels = matrix[np.ix_(keep, keep)], [labels[i] for i in keep]
    rows = matrix.sum(axis=1, keepdims=True)
    norm = np.divide(matrix, rows, out=np.zeros_like(matrix), where=rows > 0)
    side = max(6.0, 0.16 * len(labels) + 2)
    fig, ax = plt.subplots(figsize=(side, side))
    shown = np.where(norm > 0, norm, np.nan)
    image = ax.imshow(shown, cmap="viridis", norm=matplotlib.colors.LogNorm(vmin=1e-3, vmax=1))
    # the LaTeX source as tick labels: mathtext cannot draw every label alone (\\sqrt)
    names = [label.replace("$", "\\$") for label in labels]
    ax.set_xticks(range(len(labels)), names, rotation=90, fontsize=6)
    ax.set_yticks(range(len(labels)), names, fontsize=6)
    ax.set_xlabel("predicted")
    ax.set_ylabel("truth")
    ax.set_title(f"symbol confusions (n={evaluation.n}, top-1 {evaluation.top1:.1%}); rows sum to 1")
    fig.colorbar(image, ax=ax, fraction=0.03)
    fig.tight_layout()
    return fig


def save_confusion_plot(evaluation, path: str | Path, max_classes: int | None = None) -> Path:
    fig = confusion_figure(evaluation, max_classes)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)


def feature_map_figure(maps: np.ndarray, title: str = "", max_maps: int = 64, columns: int = 8):
    """One small image per channel of ``(h, w, channels)`` feature maps, each on its own scale."""
    n = min(maps.shape[-1], max_maps)
    columns = min(columns, n)
    rows = math.ceil(n / columns)
    fig, axes = plt.subplots(rows, columns, figsize=(columns * 1.1, rows * 1.1 + 0.4), squeeze=False)
    for i, ax in enumerate(axes.flat):
        ax.axis("off")
        if i < n:
            ax.imshow(maps[..., i], cmap="magma")
            ax.set_title(str(i), fontsize=6, pad=1)
    shown = f" (first {n} of {maps.shape[-1]})" if n < maps.shape[-1] else ""
    fig.suptitle(f"{title}{shown}", fontsize=9)
    fig.tight_layout()
    return fig


def grad_cam_figure(image: np.ndarray, heatmap: np.ndarray, title: str = ""):
    """The input, the heatmap, and the heatmap laid over the input."""
    fig, axes = plt.subplots(1, 3, figsize=(7.5, 2.8))
    axes[0].imshow(1 - image, cmap="gray", vmin=0, vmax=1)
    axes[0].set_title("input", fontsize=9)
    axes[1].imshow(heatmap, cmap="jet", vmin=0, vmax=1)
    axes[1].set_title("Grad-CAM", fontsize=9)
    axes[2].imshow(1 - image, cmap="gray", vmin=0, vmax=1)
    axes[2].imshow(heatmap, cmap="jet", alpha=0.45, vmin=0, vmax=1)
    axes[2].set_title("overlay", fontsize=9)
    for ax in axes:
        ax.axis("off")
    if title:
        fig.suptitle(title, fontsize=10)
    fig.tight_layout()
    return fig
