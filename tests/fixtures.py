"""Synthetic data for tests: InkML files, a small CROHME tree in the real layout, im2latex CSVs.

Plain functions, so any test (or a session-scoped fixture) can call them; ``conftest.py`` wraps
them in pytest fixtures. Nothing here reads the real data.

* ``write_inkml(path, strokes_by_symbol, truth)``: one InkML file with symbol segmentation.
* ``glyph(label, x, y, size)``: strokes that look roughly like a symbol, placed in a box.
* ``write_synthetic_data(root)``: ``SYNTHETIC_EXPRESSIONS`` as CROHME InkML files under
  ``root/crohme2016/`` (plus one empty and one malformed training file) and ``IM2LATEX_ROWS``
  as ``root/im2latex/*.csv``; returns ``root``.
"""

from __future__ import annotations

import csv
from pathlib import Path
from typing import Sequence

import numpy as np

Stroke = np.ndarray  # (n, 2) x, y; y grows downwards


def _circle(cx: float, cy: float, r: float, start: float = 0.0, end: float = 2 * np.pi, n: int = 16) -> Stroke:
    t = np.linspace(start, end, n)
    return np.stack([cx + r * np.cos(t), cy + r * np.sin(t)], axis=1)


# Each glyph is drawn in the unit box: x right, y down, (0, 0) top left.
_GLYPHS: dict[str, list[Stroke]] = {
    "x": [np.array([[0, 0], [1, 1]]), np.array([[1, 0], [0, 1]])],
    "y": [np.array([[0, 0], [0.5, 0.55]]), np.array([[1, 0], [0.2, 1]])],
    "a": [_circle(0.45, 0.6, 0.4, 0.3, 2 * np.pi + 0.3), np.array([[0.85, 0.2], [0.85, 1]])],
    "b": [np.array([[0.15, 0], [0.15, 1]]), _circle(0.5, 0.7, 0.35, np.pi, 3 * np.pi)],
    "1": [np.array([[0.3, 0.2], [0.55, 0], [0.55, 1]])],
    "2": [np.array([[0.1, 0.25], [0.3, 0.03], [0.7, 0.03], [0.9, 0.3], [0.1, 1], [0.95, 1]])],
    "+": [np.array([[0, 0.5], [1, 0.5]]), np.array([[0.5, 0], [0.5, 1]])],
    "-": [np.array([[0, 0.5], [1, 0.5]])],
    "=": [np.array([[0, 0.35], [1, 0.35]]), np.array([[0, 0.65], [1, 0.65]])],
    "(": [_circle(1.0, 0.5, 0.55, 2.0, 4.3)],
    ")": [_circle(0.0, 0.5, 0.55, -1.15, 1.15)],
    "\\alpha": [np.concatenate([_circle(0.4, 0.55, 0.35, 0.6, 2 * np.pi - 0.3), [[1, 1]]])],
}


def glyph(label: str, x: float = 0.0, y: float = 0.0, size: float = 100.0) -> list[Stroke]:
    """Strokes for ``label`` (one of ``GLYPH_LABELS``) scaled into the box at ``(x, y)``, side ``size``."""
    return [np.asarray(s, dtype=np.float64) * size + (x, y) for s in _GLYPHS[label]]


GLYPH_LABELS = tuple(_GLYPHS)


def symbols_in_a_row(labels: Sequence[str], size: float = 100.0, y_offsets: Sequence[float] | None = None):
    """``strokes_by_symbol`` for labels written left to right (an offset of -0.5 raises a symbol
    half a size, as for a superscript)."""
    out = []
    for i, label in enumerate(labels):
        dy = (y_offsets[i] if y_offsets is not None else 0.0) * size
        out.append((label, glyph(label, x=i * 1.3 * size, y=dy, size=size)))
    return out


def inkml_text(
    strokes_by_symbol: Sequence[tuple[str, Sequence[Stroke]]],
    truth: str,
    *,
    writer: str = "writer1",
    meta: dict[str, str] | None = None,
    channels: int = 2,
    decimals: int = 2,
    trailing_comma: bool = False,
) -> str:
    """The text of a CROHME-style InkML file: header, annotations (truth, writer, ``meta``),
    one ``<trace>`` per stroke and a segmentation ``<traceGroup>`` with one group per symbol.
    ``channels=3`` adds a time channel; ``trailing_comma`` ends each trace with ``,``."""
    names = ["X", "Y", "T"][:channels]
    lines = ['<ink xmlns="http://www.w3.org/2003/InkML">', "<traceFormat>"]
    lines += [f'<channel name="{n}" type="decimal"/>' for n in names]
    lines.append("</traceFormat>")
    annotations = {"truth": truth, "writer": writer, **(meta or {})}
    lines += [f'<annotation type="{k}">{_escape(v)}</annotation>' for k, v in annotations.items()]
    trace_id = 0
    groups = []
    for label, strokes in strokes_by_symbol:
        refs = []
        for stroke in strokes:
            points = []
            for t, (x, y) in enumerate(np.asarray(stroke, dtype=float).reshape(-1, 2)):
                values = [f"{x:.{decimals}f}", f"{y:.{decimals}f}"] + ([str(t * 10)] if channels == 3 else [])
                points.append(" ".join(values))
            lines.append(f'<trace id="{trace_id}">\n' + ", ".join(points) + ("," if trailing_comma else "") + "\n</trace>")
            refs.append(trace_id)
            trace_id += 1
        groups.append((label, refs))
    lines.append(f'<traceGroup xml:id="{trace_id}">')
    lines.append('\t<annotation type="truth">Segmentation</annotation>')
    for n, (label, refs) in enumerate(groups, trace_id + 1):
        lines.append(f'\t<traceGroup xml:id="{n}">')
        lines.append(f'\t\t<annotation type="truth">{_escape(label)}</annotation>')
        lines += [f'\t\t<traceView traceDataRef="{r}"/>' for r in refs]
        lines.append("\t</traceGroup>")
    lines += ["</traceGroup>", "</ink>", ""]
    return "\n".join(lines)


def _escape(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def write_inkml(
    path: str | Path,
    strokes_by_symbol: Sequence[tuple[str, Sequence[Stroke]]],
    truth: str,
    **options,
) -> Path:
    """Write one InkML file (see ``inkml_text`` for the options); returns its path."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(inkml_text(strokes_by_symbol, truth, **options), encoding="utf-8")
    return path


# (split folder, file name relative to it, truth, labels, vertical offsets or None, options)
SYNTHETIC_EXPRESSIONS = [
    ("TrainINKML", "HAMEX/synth_h1.inkml", "$x+1$", ["x", "+", "1"], None, {}),
    ("TrainINKML", "HAMEX/synth_h2.inkml", "$x^{2}$", ["x", "2"], [0, -0.5], {"writer": "writer2"}),
    ("TrainINKML", "KAIST/synth_k1.inkml", "a=b", ["a", "=", "b"], None, {"channels": 3}),
    ("TrainINKML", "KAIST/synth_k2.inkml", "\\frac{1}{2}", ["1", "-", "2"], [-0.6, 0, 0.6],
     {"trailing_comma": True}),
    ("TrainINKML", "MfrDB/synth_m1.inkml", "$(a+b)$", ["(", "a", "+", "b", ")"], None, {"decimals": 0}),
    ("TestINKMLGT", "synth_v1.inkml", "x-y", ["x", "-", "y"], None, {}),
    ("TestINKMLGT", "synth_v2.inkml", "\\alpha+1", ["\\alpha", "+", "1"], None, {}),
    ("TestEM2014GT", "synth_t1.inkml", "y=x", ["y", "=", "x"], None, {}),
    ("TestEM2014GT", "synth_t2.inkml", "2\\alpha", ["2", "\\alpha"], None, {}),
]
# Training files that cannot be read, and the reason the index gives
SYNTHETIC_BROKEN = {
    "TrainINKML/MfrDB/synth_empty.inkml": ("", "empty file"),
    "TrainINKML/MfrDB/synth_malformed.inkml": ('<ink xmlns="http://www.w3.org/2003/InkML">\n<trace id="0">1 2, 3 4', "malformed XML"),
}
SPLIT_OF_FOLDER = {"TrainINKML": "train", "TestINKMLGT": "validation", "TestEM2014GT": "test"}

IM2LATEX_ROWS = [
    (f"\\frac {{ {i} }} {{ x _ {{ {i % 3} }} }}" if i % 2 else f"x ^ {{ {i} }} + \\alpha", f"img{i:03d}.png")
    for i in range(40)
]


def segmented_formulas(folder: str | Path, rows: Sequence[tuple[Sequence[str], str]]):
    """``(formulas, vocabulary)``: each row (labels written in a row, truth) written as an InkML file
    in ``folder`` and read back with its segmentation, as training reads CROHME."""
    from mathocr.formula_data import load_inkml_formulas
    from mathocr.latex import Vocabulary

    folder = Path(folder)
    for i, (labels, truth) in enumerate(rows):
        write_inkml(folder / f"e{i}.inkml", symbols_in_a_row(labels), truth)
    formulas, _ = load_inkml_formulas(sorted(folder.glob("e*.inkml")))
    return formulas, Vocabulary.from_sequences(f.tokens for f in formulas)


def synthetic_counts() -> dict[str, int]:
    """Expressions per split in the synthetic CROHME tree."""
    counts = {split: 0 for split in SPLIT_OF_FOLDER.values()}
    for folder, *_ in SYNTHETIC_EXPRESSIONS:
        counts[SPLIT_OF_FOLDER[folder]] += 1
    return counts


def write_crohme(root: str | Path) -> Path:
    """The synthetic CROHME tree under ``root/crohme2016``; returns ``root``."""
    root = Path(root)
    crohme = root / "crohme2016"
    for folder, name, truth, labels, offsets, options in SYNTHETIC_EXPRESSIONS:
        write_inkml(crohme / folder / name, symbols_in_a_row(labels, y_offsets=offsets), truth, **options)
    for name, (text, _) in SYNTHETIC_BROKEN.items():
        (crohme / name).parent.mkdir(parents=True, exist_ok=True)
        (crohme / name).write_text(text)
    return root


def write_im2latex(root: str | Path, rows: Sequence[tuple[str, str]] = IM2LATEX_ROWS) -> Path:
    """``rows`` of (formula, image) split over im2latex's two CSV files; returns ``root``."""
    folder = Path(root) / "im2latex"
    folder.mkdir(parents=True, exist_ok=True)
    half = len(rows) // 2
    for name, part in (("im2latex_test.csv", rows[:half]), ("im2latex_validate.csv", rows[half:])):
        with (folder / name).open("w", newline="", encoding="utf-8") as handle:
            writer = csv.writer(handle)
            writer.writerow(["formula", "image"])
            writer.writerows(part)
    return Path(root)


def write_synthetic_data(root: str | Path) -> Path:
    """A complete synthetic data directory (CROHME and im2latex); returns ``root``."""
    write_crohme(root)
    write_im2latex(root)
    return Path(root)
