"""Recognizing one handwritten symbol: the recognizer object, and its evaluation.

``SymbolRecognizer`` loads a trained model and its label list (``symbols.keras`` + ``labels.json``
in one directory; the shipped one is ``models/symbols/``) and turns pen strokes, a paper image or
a ready model input into the top-k ``(label, probability)`` candidates. The app's pages, the
evaluation and the benchmark commands are thin fronts on it.
"""

from __future__ import annotations

import json
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Sequence

import numpy as np
from PIL import Image

from mathocr.data import REPO_ROOT
from mathocr.symbol_data import CONTEXT_FEATURES, SymbolSet, picture_image, symbol_image

SHIPPED_MODEL_DIR = REPO_ROOT / "models" / "symbols"
MODEL_FILE = "symbols.keras"
LABELS_FILE = "labels.json"


class ModelMissing(FileNotFoundError):
    """No trained symbol model where one was expected; the message says how to make one."""


def save_recognizer_files(model, labels: Sequence[str], directory: str | Path, config: dict | None = None) -> Path:
    """Write what a ``SymbolRecognizer`` loads: the model (without optimizer state) and its labels."""
    import keras

    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    clean = keras.Model.from_config(model.get_config())  # uncompiled: no optimizer state in the file
    clean.set_weights(model.get_weights())
    clean.save(directory / MODEL_FILE)
    payload = {"labels": list(labels)}
    if config is not None:
        payload["config"] = config
    (directory / LABELS_FILE).write_text(json.dumps(payload, indent=1, ensure_ascii=False))
    return directory


# Labels that are not a complete formula on their own, and how to show them
_DISPLAY = {"\\sqrt": "\\sqrt{\\phantom{x}}", "\\frac": "\\frac{\\phantom{x}}{\\phantom{x}}",
            "{": "\\{", "}": "\\}", "COMMA": ","}


def display_latex(label: str) -> str:
    """LaTeX that renders one symbol label by itself (``\\sqrt`` needs an argument to render)."""
    return _DISPLAY.get(label, label)


@dataclass
class Candidate:
    label: str
    probability: float


class SymbolRecognizer:
    """A trained symbol model with its labels: strokes or an image in, top-k candidates out."""

    def __init__(self, directory: str | Path = SHIPPED_MODEL_DIR):
        import keras
        import tensorflow as tf

        self.directory = Path(directory)
        model_path, labels_path = self.directory / MODEL_FILE, self.directory / LABELS_FILE
        if not model_path.exists() or not labels_path.exists():
            raise ModelMissing(
                f"no symbol model in {self.directory} (expected {MODEL_FILE} and {LABELS_FILE}); "
                "train one with `python -m training.symbols` and pass its run's model/ directory"
            )
        self.model = keras.saving.load_model(model_path, compile=False)
        meta = json.loads(labels_path.read_text())
        self.labels: list[str] = list(meta["labels"])
        self.config: dict = meta.get("config", {})
        self.size = int(self.model.inputs[0].shape[1])
        if self.model.output_shape[-1] != len(self.labels):
            raise ValueError(f"{model_path} has {self.model.output_shape[-1]} outputs but {len(self.labels)} labels")
        self.index = {label: i for i, label in enumerate(self.labels)}
        self.pen_normalise = True  # pictures: strokes brought to the training pen (symbol_data.picture_image)
        # a second input: the symbol's size and place in its expression (symbol_data.symbol_context)
        self.uses_context = len(self.model.inputs) == 2
        # one compiled call for the interactive path: model.predict costs ~100 ms of overhead a call
        self._call = tf.function(lambda x, c: self.model([x, c] if self.uses_context else x, training=False),
                                 reduce_retracing=True)

    # -- inputs --------------------------------------------------------------------------------
    def image_from_strokes(self, strokes: Sequence[np.ndarray]) -> np.ndarray:
        """Pen strokes (any coordinates, y down) as this model's input ``(size, size)`` float32."""
        return symbol_image(strokes, self.size)

    def image_from_picture(self, picture: Image.Image) -> np.ndarray:
        """A paper-like image (``render.load_image``'s output) cropped to its ink and fitted like ink,
        its strokes brought to the training pen unless ``pen_normalise`` is off."""
        return picture_image(picture, self.size, self.pen_normalise)

    # -- outputs -------------------------------------------------------------------------------
    def probabilities(self, images: np.ndarray, context: np.ndarray | None = None) -> np.ndarray:
        """Class probabilities ``(n, classes)`` for model inputs ``(n, size, size)`` or one ``(size, size)``.
        ``context`` (``(n, CONTEXT_FEATURES)``) is used by a model that reads it; none means unknown."""
        batch = np.asarray(images, dtype=np.float32)
        if batch.ndim == 2:
            batch = batch[None]
        if context is None or not self.uses_context:
            context = np.zeros((len(batch), CONTEXT_FEATURES), np.float32)
        context = np.asarray(context, np.float32).reshape(len(batch), CONTEXT_FEATURES)
        return self._call(batch[..., None], context).numpy()

    def top_k(self, image: np.ndarray, k: int = 5, context: np.ndarray | None = None) -> list[Candidate]:
        probs = self.probabilities(image, context)[0]
        order = np.argsort(-probs)[:k]
        return [Candidate(self.labels[i], float(probs[i])) for i in order]

    def recognize_strokes(self, strokes: Sequence[np.ndarray], k: int = 5) -> list[Candidate]:
        return self.top_k(self.image_from_strokes(strokes), k)

    def recognize_picture(self, picture: Image.Image, k: int = 5) -> list[Candidate]:
        return self.top_k(self.image_from_picture(picture), k)


# ---------------------------------------------------------------------------------------------
# Evaluation


@dataclass
class SymbolEvaluation:
    """How a recognizer did on a set of symbols. ``ms_per_symbol`` is model time per symbol in
    batches of ``batch_size``; ``render_ms_per_symbol`` is what drawing the ink cost beforehand."""

    n: int
    top1: float
    top5: float
    ms_per_symbol: float
    context: bool = False  # whether the model read each symbol's place in its expression
    render_ms_per_symbol: float | None = None
    batch_size: int = 256
    unknown_labels: dict[str, int] = field(default_factory=dict)  # truths the model has no class for
    per_class: dict[str, dict] = field(default_factory=dict)  # label -> n, top1, top5
    confusions: list[tuple[str, str, int]] = field(default_factory=list)  # truth, predicted, count
    confusion_labels: list[str] = field(default_factory=list)
    confusion_matrix: list[list[int]] = field(default_factory=list)  # rows truth, columns predicted

    def summary(self) -> dict:
        return {"n": self.n, "top1": round(self.top1, 4), "top5": round(self.top5, 4), "context": self.context,
                "ms_per_symbol": round(self.ms_per_symbol, 4),
                "render_ms_per_symbol": None if self.render_ms_per_symbol is None else round(self.render_ms_per_symbol, 3),
                "batch_size": self.batch_size, "unknown_labels": self.unknown_labels}

    def to_dict(self, confusions: int = 30) -> dict:
        return {**self.summary(), "per_class": self.per_class,
                "confusions": [list(c) for c in self.confusions[:confusions]]}


def evaluate_symbols(recognizer: SymbolRecognizer, symbols: SymbolSet, batch_size: int = 256,
                     render_seconds: float | None = None, use_context: bool = True) -> SymbolEvaluation:
    """Top-1/top-5 accuracy, per-class accuracy and confusions of ``recognizer`` on rendered symbols.
    A truth the model has no class for counts as an error (and is listed in ``unknown_labels``).
    ``use_context=False`` hides each symbol's expression from a context model, as on the canvas."""
    if len(symbols) == 0:
        raise ValueError("no symbols to evaluate")
    if symbols.images.shape[1] != recognizer.size:
        raise ValueError(f"symbols are {symbols.images.shape[1]} px, the model reads {recognizer.size} px")
    images = symbols.float_images()
    context = symbols.context if use_context and recognizer.uses_context else np.zeros_like(symbols.context)
    recognizer.probabilities(images[:batch_size], context[:batch_size])  # trace once, outside the timing
    start = time.perf_counter()
    probs = np.concatenate([recognizer.probabilities(images[i:i + batch_size], context[i:i + batch_size])
                            for i in range(0, len(images), batch_size)])
    seconds = time.perf_counter() - start
    truth = np.array([recognizer.index.get(label, -1) for label in symbols.labels])
    top5 = np.argsort(-probs, axis=1)[:, :5]
    hit1 = top5[:, 0] == truth
    hit5 = (top5 == truth[:, None]).any(axis=1)

    per_class = {}
    for label in sorted(set(symbols.labels.tolist())):
        mask = symbols.labels == label
        per_class[label] = {"n": int(mask.sum()), "top1": float(hit1[mask].mean()), "top5": float(hit5[mask].mean())}
    predicted = [recognizer.labels[i] for i in top5[:, 0]]
    pairs = Counter((t, p) for t, p in zip(symbols.labels.tolist(), predicted) if t != p)
    labels = sorted(set(symbols.labels.tolist()) | set(predicted))
    position = {label: i for i, label in enumerate(labels)}
    matrix = np.zeros((len(labels), len(labels)), dtype=int)
    for t, p in zip(symbols.labels.tolist(), predicted):
        matrix[position[t], position[p]] += 1
    unknown = Counter(label for label, t in zip(symbols.labels.tolist(), truth) if t < 0)
    return SymbolEvaluation(
        n=len(symbols), top1=float(hit1.mean()), top5=float(hit5.mean()),
        ms_per_symbol=1000 * seconds / len(symbols), context=bool(use_context and recognizer.uses_context),
        render_ms_per_symbol=None if render_seconds is None else 1000 * render_seconds / len(symbols),
        batch_size=batch_size, unknown_labels=dict(unknown), per_class=per_class,
        confusions=[(t, p, c) for (t, p), c in pairs.most_common()],
        confusion_labels=labels, confusion_matrix=matrix.tolist(),
    )


def benchmark_latency(recognizer: SymbolRecognizer, repeats: int = 200, warmup: int = 20,
                      strokes: Sequence[np.ndarray] | None = None) -> dict:
    """Time to recognize one symbol at a time, as the app does: the compiled model call alone, and
    rendering + model call from strokes. Milliseconds: median, 90th percentile, mean."""
    if strokes is None:  # an "x": two crossing strokes
        strokes = [np.array([[0, 0], [10, 12], [20, 24]], np.float32), np.array([[20, 0], [10, 12], [0, 24]], np.float32)]
    image = recognizer.image_from_strokes(strokes)

    def timed(fn) -> dict:
        for _ in range(warmup):
            fn()
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            fn()
            times.append(1000 * (time.perf_counter() - start))
        arr = np.asarray(times)
        return {"median_ms": round(float(np.median(arr)), 3), "p90_ms": round(float(np.percentile(arr, 90)), 3),
                "mean_ms": round(float(arr.mean()), 3)}

    return {
        "model": timed(lambda: recognizer.probabilities(image)),
        "strokes_to_top5": timed(lambda: recognizer.recognize_strokes(strokes)),
        "repeats": repeats,
        "size": recognizer.size,
        "parameters": int(recognizer.model.count_params()),
    }
