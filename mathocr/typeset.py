"""Typeset formulas to images: real LaTeX (latex + dvipng) where installed, else matplotlib's mathtext.

im2latex's formulas come without their images; they are rendered here, once, and cached on disk
(``render_formula_set``), in parallel across the cores. Every image is a paper-like grayscale PIL
image cropped to the ink with a small white margin, the same form ``mathocr.render`` gives ink.

Real LaTeX needs Debian's ``texlive-latex-base texlive-latex-extra texlive-fonts-recommended
cm-super-minimal dvipng`` (``./test.sh`` installs them). Without them, mathtext draws the formulas
it can (not ``\\begin{array}``, ``\\limits``, ``\\over`` and other macros it lacks) and each image
is marked with the engine that drew it.
"""

from __future__ import annotations

import io
import json
import os
import re
import shutil
import subprocess
import tempfile
import time
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np
from PIL import Image

LATEX_PREAMBLE = r"""\documentclass[12pt]{article}
\usepackage{amsmath,amssymb,amsfonts,bm}
\pagestyle{empty}
\begin{document}
"""
MATHTEXT_FONTS = ("cm", "stix", "stixsans", "dejavusans", "dejavuserif")
# "mathtext" draws in Computer Modern; "mathtext-<font>" in one of mathtext's other font sets (for
# training on the faces screenshots show: STIX is Times-like, DejaVu Sans a web page's sans-serif)
ENGINES = ("latex", "mathtext", *(f"mathtext-{font}" for font in MATHTEXT_FONTS[1:]))
TIMEOUT_S = 20


class TypesetError(ValueError):
    """A formula that the engine could not draw (the message says why)."""


def latex_available() -> bool:
    return shutil.which("latex") is not None and shutil.which("dvipng") is not None


def default_engine() -> str:
    return "latex" if latex_available() else "mathtext"


def _crop(image: Image.Image, margin: int = 4) -> Image.Image:
    gray = image.convert("L")
    arr = np.asarray(gray)
    ys, xs = np.nonzero(arr < 250)
    if len(xs) == 0:
        raise TypesetError("the formula renders to nothing")
    crop = gray.crop((int(xs.min()), int(ys.min()), int(xs.max()) + 1, int(ys.max()) + 1))
    out = Image.new("L", (crop.width + 2 * margin, crop.height + 2 * margin), 255)
    out.paste(crop, (margin, margin))
    return out


_DIMENSION_ARGS = re.compile(r"(\\(?:hspace|vspace|rule|raisebox|makebox|framebox|kern|hskip|vskip|mkern|mskip)\*?\s*)"
                             r"((?:\{[^{}]*\}\s*){1,2})")


def latex_source(formula: str) -> str:
    """im2latex's formulas are tokenised with spaces, also inside lengths (``\\hspace { 1 c m }``),
    which LaTeX refuses; the arguments of length-taking commands get their spaces back out."""
    return _DIMENSION_ARGS.sub(lambda m: m.group(1) + re.sub(r"\s+", "", m.group(2)), formula)


def render_latex(formula: str, dpi: int = 200) -> Image.Image:
    """Draw a formula (math mode content, no ``$``) with latex and dvipng."""
    if not latex_available():
        raise TypesetError("LaTeX is not installed (latex and dvipng are needed)")
    with tempfile.TemporaryDirectory(prefix="mathocr-tex-") as tmp:
        tex = Path(tmp) / "f.tex"
        tex.write_text(LATEX_PREAMBLE + "\\[\n" + latex_source(formula) + "\n\\]\n\\end{document}\n")
        try:
            result = subprocess.run(
                ["latex", "-interaction=nonstopmode", "-halt-on-error", "-no-shell-escape", "f.tex"],
                cwd=tmp, capture_output=True, timeout=TIMEOUT_S, text=True, errors="replace",
            )
        except subprocess.TimeoutExpired:
            raise TypesetError(f"latex took longer than {TIMEOUT_S} s") from None
        if result.returncode != 0 or not (Path(tmp) / "f.dvi").exists():
            errors = [line for line in result.stdout.splitlines()
                      if line.startswith("!") and "Emergency stop" not in line and "Fatal error" not in line]
            raise TypesetError(f"latex failed: {errors[0][1:].strip() if errors else 'it stopped without output'}")
        try:
            subprocess.run(["dvipng", "-T", "tight", "-D", str(dpi), "-bg", "White", "-fg", "Black", "-gray",
                            "-o", "f.png", "f.dvi"], cwd=tmp, capture_output=True, timeout=TIMEOUT_S, check=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired) as err:
            raise TypesetError(f"dvipng failed: {err}") from None
        with Image.open(Path(tmp) / "f.png") as png:
            return _crop(png.convert("L"))


def mathtext_source(formula: str) -> str:
    """The formula as mathtext reads it. im2latex's tokenised spelling puts a space after ``_`` and
    ``^`` (``x ^ { 2 }``): mathtext then drops the script silently and draws ``x 2``, so the
    spaces after a script operator go."""
    return re.sub(r"([_^])\s+", r"\1", formula)


def render_mathtext(formula: str, dpi: int = 200, font: str = "cm") -> Image.Image:
    """Draw a formula with matplotlib's mathtext (no TeX needed; not every macro), by default in
    Computer Modern like LaTeX's output (mathtext's own default is DejaVu Sans)."""
    if font not in MATHTEXT_FONTS:
        raise ValueError(f"unknown mathtext font set {font!r}; choose from {', '.join(MATHTEXT_FONTS)}")
    import matplotlib

    matplotlib.use("Agg")
    from matplotlib import mathtext
    from matplotlib.font_manager import FontProperties

    buffer = io.BytesIO()
    try:
        with matplotlib.rc_context({"mathtext.fontset": font}):
            mathtext.math_to_image(f"${mathtext_source(formula)}$", buffer, prop=FontProperties(size=12), dpi=dpi,
                                   format="png")
    except (ValueError, RuntimeError, KeyError) as err:
        message = str(err).strip().splitlines()
        raise TypesetError(f"mathtext cannot draw it: {message[-1] if message else type(err).__name__}") from None
    buffer.seek(0)
    with Image.open(buffer) as png:
        return _crop(png.convert("L"))


def render_formula(formula: str, engine: str | None = None, dpi: int = 200) -> Image.Image:
    """Draw a formula with the chosen engine (default: latex if installed, else mathtext)."""
    engine = engine or default_engine()
    if engine == "latex":
        return render_latex(formula, dpi)
    if engine == "mathtext" or engine in ENGINES and engine.startswith("mathtext-"):
        return render_mathtext(formula, dpi, engine.partition("-")[2] or "cm")
    raise ValueError(f"unknown engine {engine!r}; choose from {', '.join(ENGINES)}")


@dataclass
class RenderedSet:
    """Where a rendered formula set lives: ``<dir>/<id>.png`` and ``index.json`` (which ids were
    drawn, which failed and why, with which engine and how long it took)."""

    directory: Path
    engine: str
    rendered: list[str]
    failed: dict[str, str]
    seconds: float

    def image_path(self, formula_id: str) -> Path:
        return self.directory / f"{Path(formula_id).stem}.png"


def _latex_pages(formulas: Sequence[str], dpi: int) -> list[Image.Image | TypesetError] | None:
    """Draw many formulas with one latex run, one page each; None when any formula broke the run
    (an error anywhere, or not one page per formula), as then no page can be trusted."""
    with tempfile.TemporaryDirectory(prefix="mathocr-tex-") as tmp:
        body = "".join(f"\\[\n{latex_source(formula)}\n\\]\n\\clearpage\n" for formula in formulas)
        (Path(tmp) / "f.tex").write_text(LATEX_PREAMBLE + body + "\\end{document}\n")
        try:
            result = subprocess.run(["latex", "-interaction=nonstopmode", "-no-shell-escape", "f.tex"], cwd=tmp,
                                    capture_output=True, timeout=5 + len(formulas) // 2, text=True,
                                    errors="replace")
        except subprocess.TimeoutExpired:
            return None
        if result.returncode != 0 or any(line.startswith("!") for line in result.stdout.splitlines()):
            return None
        try:
            subprocess.run(["dvipng", "-T", "tight", "-D", str(dpi), "-bg", "White", "-fg", "Black", "-gray",
                            "-o", "p%06d.png", "f.dvi"], cwd=tmp, capture_output=True,
                           timeout=5 + len(formulas) // 2, check=True)
        except (subprocess.CalledProcessError, subprocess.TimeoutExpired, FileNotFoundError):
            return None
        pages = sorted(Path(tmp).glob("p*.png"))
        if len(pages) != len(formulas):
            return None
        images: list[Image.Image | TypesetError] = []
        for page in pages:
            with Image.open(page) as png:
                try:
                    images.append(_crop(png.convert("L")))
                except TypesetError as err:
                    images.append(err)
        return images


def render_latex_batch(formulas: Sequence[str], dpi: int = 200) -> list[Image.Image | TypesetError]:
    """Draw formulas with as few latex runs as possible: all in one document, one page each; a
    document that fails is split in halves until each failing formula stands alone, and its
    error is that formula's own (``render_latex``'s message). A formula costs about 0.02 s this
    way, against 0.2-0.3 s for a run of its own."""
    if not latex_available():
        raise TypesetError("LaTeX is not installed (latex and dvipng are needed)")
    if not formulas:
        return []
    if len(formulas) == 1:
        try:
            return [render_latex(formulas[0], dpi)]
        except TypesetError as err:
            return [err]
    pages = _latex_pages(formulas, dpi)
    if pages is not None:
        return pages
    half = len(formulas) // 2
    return render_latex_batch(formulas[:half], dpi) + render_latex_batch(formulas[half:], dpi)


def _render_chunk(job: tuple[list[tuple[str, str]], str, int, str]) -> list[tuple[str, str | None]]:
    chunk, engine, dpi, directory = job
    if engine == "latex":
        results = render_latex_batch([latex for _, latex in chunk], dpi)
    else:
        results = []
        for _, latex in chunk:
            try:
                results.append(render_formula(latex, engine, dpi))
            except TypesetError as err:
                results.append(err)
    out = []
    for (formula_id, _), result in zip(chunk, results):
        if isinstance(result, TypesetError):
            out.append((formula_id, str(result)))
        else:
            result.save(Path(directory) / f"{Path(formula_id).stem}.png", optimize=True)
            out.append((formula_id, None))
    return out


def render_formula_set(formulas: Sequence[tuple[str, str]], directory: str | os.PathLike, engine: str | None = None,
                       dpi: int = 200, workers: int | None = None,
                       progress: Callable[[int, int], None] | None = None, chunk_size: int = 32,
                       retry_failed: bool = False) -> RenderedSet:
    """Render ``(id, latex)`` pairs into ``directory``, skipping those already there (so an
    interrupted rendering continues) and earlier failures (unless ``retry_failed``). Failures
    are counted with their reason, never raised.
    Work goes out in chunks of ``chunk_size`` formulas (one latex run each) to ``workers`` processes."""
    engine = engine or default_engine()
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    index_file = directory / "index.json"
    index = json.loads(index_file.read_text()) if index_file.exists() else {"failed": {}}
    if index.get("engine", engine) != engine:
        raise ValueError(f"{directory} holds images drawn by {index['engine']}, not {engine}")
    failed: dict[str, str] = {} if retry_failed else dict(index.get("failed", {}))
    todo = [(fid, latex) for fid, latex in formulas
            if fid not in failed and not (directory / f"{Path(fid).stem}.png").exists()]
    chunks = [(todo[i: i + chunk_size], engine, dpi, str(directory)) for i in range(0, len(todo), chunk_size)]
    start = time.perf_counter()
    done = len(formulas) - len(todo)
    if progress:
        progress(done, len(formulas))
    workers = workers or os.cpu_count() or 1
    with ProcessPoolExecutor(max_workers=workers) as pool:
        for i, results in enumerate(pool.map(_render_chunk, chunks), 1):
            for fid, error in results:
                if error:
                    failed[fid] = error
            done += len(results)
            if progress:
                progress(done, len(formulas))
            if i % 10 == 0:
                _write_index(index_file, engine, dpi, failed, index.get("seconds", 0) + time.perf_counter() - start)
    seconds = index.get("seconds", 0) + time.perf_counter() - start
    _write_index(index_file, engine, dpi, failed, seconds)
    rendered = [fid for fid, _ in formulas if fid not in failed and (directory / f"{Path(fid).stem}.png").exists()]
    return RenderedSet(directory, engine, rendered, failed, seconds)


def _write_index(path: Path, engine: str, dpi: int, failed: dict, seconds: float) -> None:
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps({"engine": engine, "dpi": dpi, "failed": failed, "seconds": round(seconds, 1)}))
    os.replace(tmp, path)
