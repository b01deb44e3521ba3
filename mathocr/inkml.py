"""Reading CROHME InkML files into typed records.

An InkML file holds one handwritten expression: its pen strokes (``<trace>``), the LaTeX of the
whole expression (``<annotation type="truth">``), facts about the writer, and a segmentation into
symbols (nested ``<traceGroup>`` elements, each with a label and references to its strokes).
"""

from __future__ import annotations

import logging
import os
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterator

import numpy as np

log = logging.getLogger(__name__)

_NS = "{http://www.w3.org/2003/InkML}"
_XML_ID = "{http://www.w3.org/XML/1998/namespace}id"


class InkMLError(ValueError):
    """A file that cannot be read as a CROHME expression (empty, malformed XML, no strokes)."""


@dataclass(frozen=True)
class Symbol:
    """One segmented symbol: its LaTeX label and the indices (into ``Ink.strokes``) of its strokes."""

    label: str
    stroke_indices: tuple[int, ...]


@dataclass
class Ink:
    """A handwritten expression: strokes in pen order, each an ``(n, 2)`` float32 array of x, y
    (y grows downwards), the truth LaTeX as written in the file, metadata and the symbols."""

    strokes: list[np.ndarray]
    truth: str = ""
    meta: dict[str, str] = field(default_factory=dict)
    symbols: list[Symbol] = field(default_factory=list)
    path: str = ""

    @property
    def expression_id(self) -> str:
        return Path(self.path).stem if self.path else self.meta.get("UI", "")

    def symbol_strokes(self, symbol: Symbol) -> list[np.ndarray]:
        return [self.strokes[i] for i in symbol.stroke_indices]


def _tag(element: ET.Element) -> str:
    return element.tag.removeprefix(_NS)


def _parse_points(text: str | None) -> np.ndarray:
    points = []
    for chunk in (text or "").split(","):
        values = chunk.split()
        if len(values) >= 2:  # a third channel (time, pressure) is ignored; trailing commas leave empties
            points.append((float(values[0]), float(values[1])))
    return np.asarray(points, dtype=np.float32).reshape(-1, 2)


def parse_inkml(text: str | bytes, path: str = "") -> Ink:
    """Parse the text of one InkML file. Raises ``InkMLError`` with a reason when it is unusable."""
    if not (text.strip() if isinstance(text, str) else text.strip()):
        raise InkMLError("empty file")
    try:
        root = ET.fromstring(text)
    except ET.ParseError as err:
        raise InkMLError(f"malformed XML: {err}") from None
    if _tag(root) != "ink":
        raise InkMLError(f"root element is <{_tag(root)}>, not <ink>")

    meta: dict[str, str] = {}
    for ann in root.findall(f"{_NS}annotation") + root.findall("annotation"):
        kind = ann.get("type", "")
        if kind and kind not in meta:
            meta[kind] = (ann.text or "").strip()
    truth = meta.pop("truth", "")

    strokes: list[np.ndarray] = []
    trace_index: dict[str, int] = {}
    for trace in root.iter():
        if _tag(trace) != "trace":
            continue
        try:
            points = _parse_points(trace.text)
        except ValueError as err:
            raise InkMLError(f"bad coordinates in trace {trace.get('id')}: {err}") from None
        if len(points) == 0:
            continue
        trace_id = trace.get("id") or trace.get(_XML_ID) or str(len(strokes))
        trace_index[trace_id] = len(strokes)
        strokes.append(points)
    if not strokes:
        raise InkMLError("no strokes")

    symbols: list[Symbol] = []
    for group in root.iter():
        if _tag(group) != "traceGroup":
            continue
        label = None
        refs: list[int] = []
        for child in group:
            if _tag(child) == "annotation" and child.get("type") == "truth":
                label = (child.text or "").strip()
            elif _tag(child) == "traceView":
                ref = child.get("traceDataRef")
                if ref in trace_index:
                    refs.append(trace_index[ref])
        if label and refs and label != "Segmentation":
            symbols.append(Symbol(label=label, stroke_indices=tuple(refs)))

    return Ink(strokes=strokes, truth=truth, meta=meta, symbols=symbols, path=str(path))


def read_inkml(path: str | os.PathLike) -> Ink:
    """Read one InkML file. Raises ``InkMLError`` (with the reason) when it is unusable."""
    data = Path(path).read_bytes()
    return parse_inkml(data, path=str(path))


@dataclass
class ReadReport:
    """What reading a directory found: how many files were usable, and why the others were not."""

    read: int = 0
    skipped: dict[str, str] = field(default_factory=dict)  # path -> reason

    @property
    def reasons(self) -> Counter:
        return Counter(reason.split(":")[0] for reason in self.skipped.values())


def inkml_files(directory: str | os.PathLike) -> list[Path]:
    """Every ``.inkml`` file under a directory, recursively, in a stable order."""
    return sorted(Path(directory).rglob("*.inkml"))


def iter_inkml(paths, report: ReadReport | None = None) -> Iterator[Ink]:
    """Read many files, skipping (and logging, and counting in ``report``) the unusable ones."""
    for path in paths:
        try:
            ink = read_inkml(path)
        except (InkMLError, OSError) as err:
            log.warning("skipping %s: %s", path, err)
            if report is not None:
                report.skipped[str(path)] = str(err)
            continue
        if report is not None:
            report.read += 1
        yield ink
