"""Where the data is, its splits, and a cached index of it.

The data directory comes from ``MATHOCR_DATA``, else ``data/`` in the repository (git-ignored).
Inside it, CROHME 2016 and im2latex keep the layout they are distributed with::

    crohme2016/TrainINKML/<source>/*.inkml   train (8,834 usable expressions)
    crohme2016/TestINKMLGT/*.inkml           validation (CROHME 2013 test set, 671)
    crohme2016/TestEM2014GT/*.inkml          test (CROHME 2014 test set, 986; the published figures)
    im2latex/im2latex_test.csv, im2latex_validate.csv   formulas, tokenised (split here by a fixed seed)

The index (one row per expression, one per symbol) is built once, with progress reported, and
cached under ``.cache/`` (or ``MATHOCR_CACHE``); it is rebuilt when any file's size or time changes.
"""

from __future__ import annotations

import csv
import gzip
import hashlib
import json
import os
import random
import shutil
import tempfile
import time
import zipfile
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Callable

from mathocr.inkml import ReadReport, inkml_files, iter_inkml
from mathocr.latex import normalize_symbol, normalize_tokens, tokenize_latex

REPO_ROOT = Path(__file__).resolve().parent.parent
DATA_ENV = "MATHOCR_DATA"
CACHE_ENV = "MATHOCR_CACHE"
CROHME_DIR = "crohme2016"
CROHME_SPLITS = {"train": "TrainINKML", "validation": "TestINKMLGT", "test": "TestEM2014GT"}
IM2LATEX_DIR = "im2latex"
IM2LATEX_FILES = ("im2latex_test.csv", "im2latex_validate.csv")
IM2LATEX_SEED = 1234
IM2LATEX_FRACTIONS = {"train": 0.9, "validation": 0.05, "test": 0.05}
INDEX_VERSION = 2  # bump when the index's content changes (parser, normal form)

CROHME_HELP = (
    "CROHME 2016 is the dataset of the Competition on Recognition of Online Handwritten Mathematical "
    "Expressions (TC-11, https://tc11.cvc.uab.es/datasets/ICFHR-CROHME-2016_1). Download it, then either "
    "set the environment variable MATHOCR_DATA to the folder that holds `crohme2016/` "
    "(with `TrainINKML/`, `TestINKMLGT/` and `TestEM2014GT/` inside), or import the download with "
    "`python -m mathocr data import PATH` (a folder or a .zip), which copies it to `data/` in the repository."
)

ProgressFn = Callable[[int, int], None]


class DataMissing(FileNotFoundError):
    """The data a feature needs is not where mathocr looks. The message says what to do."""


def data_dir(root: str | os.PathLike | None = None) -> Path:
    """The data directory: ``root`` if given, else ``$MATHOCR_DATA``, else ``data/`` in the repo."""
    if root:
        return Path(root).expanduser()
    env = os.environ.get(DATA_ENV)
    return Path(env).expanduser() if env else REPO_ROOT / "data"


def cache_dir() -> Path:
    env = os.environ.get(CACHE_ENV)
    path = Path(env).expanduser() if env else REPO_ROOT / ".cache"
    path.mkdir(parents=True, exist_ok=True)
    return path


def crohme_split_dir(split: str, root: str | os.PathLike | None = None) -> Path:
    """The folder of one CROHME split; raises ``DataMissing`` with instructions if it is absent."""
    if split not in CROHME_SPLITS:
        raise ValueError(f"unknown split {split!r}; choose from {', '.join(CROHME_SPLITS)}")
    path = data_dir(root) / CROHME_DIR / CROHME_SPLITS[split]
    if not path.is_dir():
        raise DataMissing(f"CROHME's {split} split is not at {path}. {CROHME_HELP}")
    return path


def crohme_available(root: str | os.PathLike | None = None) -> bool:
    return all((data_dir(root) / CROHME_DIR / sub).is_dir() for sub in CROHME_SPLITS.values())


def crohme_files(split: str, root: str | os.PathLike | None = None) -> list[Path]:
    return inkml_files(crohme_split_dir(split, root))


def source_of(path: Path, split_dir: Path) -> str:
    """Where an expression comes from: the training set's subfolder, or the test set's year."""
    rel = path.relative_to(split_dir)
    if len(rel.parts) > 1:
        return rel.parts[0]
    return {"TestINKMLGT": "CROHME2013", "TestEM2014GT": "CROHME2014"}.get(split_dir.name, split_dir.name)


# ---------------------------------------------------------------------------------------------
# The index


@dataclass
class Expression:
    id: str
    split: str
    source: str
    path: str  # relative to the data directory
    truth: str  # as written in the file
    tokens: str  # canonical form, space separated
    n_tokens: int
    n_symbols: int
    n_strokes: int
    writer: str


@dataclass
class SymbolRow:
    expression: int  # row in the expression table
    index: int  # which of the expression's symbols
    split: str
    label: str  # canonical spelling


@dataclass
class CrohmeIndex:
    expressions: list[Expression]
    symbols: list[SymbolRow]
    skipped: dict[str, str] = field(default_factory=dict)
    build_seconds: float = 0.0
    root: str = ""

    def split_counts(self) -> dict[str, int]:
        counts = {split: 0 for split in CROHME_SPLITS}
        for e in self.expressions:
            counts[e.split] += 1
        return counts

    def symbol_counts(self, split: str | None = None) -> dict[str, int]:
        counts: dict[str, int] = {}
        for s in self.symbols:
            if split is None or s.split == split:
                counts[s.label] = counts.get(s.label, 0) + 1
        return dict(sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])))

    def path_of(self, expression: Expression) -> Path:
        return Path(self.root) / expression.path


def _fingerprint(files: list[Path]) -> str:
    digest = hashlib.sha256(f"v{INDEX_VERSION}".encode())
    for path in files:
        stat = path.stat()
        digest.update(f"{path}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return digest.hexdigest()[:16]


def build_crohme_index(root: str | os.PathLike | None = None, progress: ProgressFn | None = None) -> CrohmeIndex:
    """Read every InkML file of the three splits into an index. Unusable files are counted in
    ``skipped`` with their reason."""
    root_path = data_dir(root)
    start = time.perf_counter()
    jobs = []
    for split in CROHME_SPLITS:
        split_dir = crohme_split_dir(split, root_path)
        jobs += [(split, split_dir, path) for path in inkml_files(split_dir)]
    expressions: list[Expression] = []
    symbols: list[SymbolRow] = []
    report = ReadReport()
    for done, (split, split_dir, path) in enumerate(jobs, 1):
        for ink in iter_inkml([path], report):
            tokens = normalize_tokens(tokenize_latex(ink.truth))
            row = len(expressions)
            expressions.append(Expression(
                id=path.stem, split=split, source=source_of(path, split_dir),
                path=str(path.relative_to(root_path)), truth=ink.truth, tokens=" ".join(tokens),
                n_tokens=len(tokens), n_symbols=len(ink.symbols), n_strokes=len(ink.strokes),
                writer=ink.meta.get("writer", ""),
            ))
            symbols += [SymbolRow(row, i, split, normalize_symbol(s.label)) for i, s in enumerate(ink.symbols)]
        if progress is not None:
            progress(done, len(jobs))
    skipped = {str(Path(p).relative_to(root_path)): why for p, why in report.skipped.items()}
    return CrohmeIndex(expressions, symbols, skipped, time.perf_counter() - start, str(root_path))


def load_crohme_index(
    root: str | os.PathLike | None = None, progress: ProgressFn | None = None, rebuild: bool = False
) -> CrohmeIndex:
    """The index, from the cache when the data has not changed since it was built."""
    root_path = data_dir(root).resolve()
    files = [p for split in CROHME_SPLITS for p in inkml_files(crohme_split_dir(split, root_path))]
    key = _fingerprint(files)
    cached = cache_dir() / f"crohme-index-{key}.json.gz"
    if cached.exists() and not rebuild:
        data = json.loads(gzip.decompress(cached.read_bytes()))
        return CrohmeIndex(
            [Expression(**e) for e in data["expressions"]],
            [SymbolRow(*s) for s in data["symbols"]],
            data["skipped"], data["build_seconds"], str(root_path),
        )
    index = build_crohme_index(root_path, progress)
    payload = {
        "expressions": [asdict(e) for e in index.expressions],
        "symbols": [[s.expression, s.index, s.split, s.label] for s in index.symbols],
        "skipped": index.skipped,
        "build_seconds": index.build_seconds,
    }
    atomic_write(cached, gzip.compress(json.dumps(payload).encode()))
    return index


def atomic_write(path: Path, data: bytes) -> None:
    """Write a file so that a reader never sees half of it, through a temporary file of its own:
    two processes filling the same cache at once (two training runs started together) both succeed."""
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=path.name, suffix=".tmp")
    with os.fdopen(fd, "wb") as handle:
        handle.write(data)
    os.replace(tmp, path)


# ---------------------------------------------------------------------------------------------
# im2latex


@dataclass
class Formula:
    id: str  # the image name the formula came with
    split: str
    latex: str  # as distributed (already space-tokenised)
    tokens: str  # canonical form


def im2latex_available(root: str | os.PathLike | None = None) -> bool:
    return any((data_dir(root) / IM2LATEX_DIR / name).exists() for name in IM2LATEX_FILES)


def load_im2latex(root: str | os.PathLike | None = None, split: str | None = None) -> list[Formula]:
    """im2latex's formulas, split train/validation/test 90/5/5 by a fixed seed (the same split on
    every machine, for the same files)."""
    folder = data_dir(root) / IM2LATEX_DIR
    rows = []
    for name in IM2LATEX_FILES:
        path = folder / name
        if path.exists():
            with path.open(newline="", encoding="utf-8") as handle:
                rows += [(r["image"], r["formula"]) for r in csv.DictReader(handle) if r.get("formula")]
    if not rows:
        raise DataMissing(
            f"no im2latex formulas at {folder}: expected {' or '.join(IM2LATEX_FILES)} with columns formula,image"
        )
    ids = sorted({image for image, _ in rows})
    random.Random(IM2LATEX_SEED).shuffle(ids)
    n_train = int(len(ids) * IM2LATEX_FRACTIONS["train"])
    n_val = int(len(ids) * IM2LATEX_FRACTIONS["validation"])
    split_of = {image: ("train" if i < n_train else "validation" if i < n_train + n_val else "test")
                for i, image in enumerate(ids)}
    seen = set()
    formulas = []
    for image, latex in rows:
        if image in seen:
            continue
        seen.add(image)
        if split is None or split_of[image] == split:
            formulas.append(Formula(image, split_of[image], latex, " ".join(normalize_tokens(tokenize_latex(latex)))))
    return formulas


# ---------------------------------------------------------------------------------------------
# Importing a download


def import_crohme(source: str | os.PathLike, root: str | os.PathLike | None = None, progress: ProgressFn | None = None) -> Path:
    """Copy a CROHME 2016 download (a folder or a .zip holding TrainINKML, TestINKMLGT and
    TestEM2014GT somewhere inside) into ``<data dir>/crohme2016/``. Returns that folder."""
    source = Path(source).expanduser()
    target = data_dir(root) / CROHME_DIR
    if not source.exists():
        raise DataMissing(f"{source} does not exist")
    with tempfile.TemporaryDirectory() as tmp:
        if source.is_file():
            if not zipfile.is_zipfile(source):
                raise ValueError(f"{source} is neither a folder nor a .zip archive")
            with zipfile.ZipFile(source) as archive:
                archive.extractall(tmp)
            source = Path(tmp)
        found = {}
        for sub in CROHME_SPLITS.values():
            matches = sorted(p for p in source.rglob(sub) if p.is_dir())
            if not matches:
                raise DataMissing(f"no {sub}/ folder inside {source}. {CROHME_HELP}")
            found[sub] = matches[0]
        target.mkdir(parents=True, exist_ok=True)
        files = [(sub, f) for sub, folder in found.items() for f in folder.rglob("*.inkml")]
        for done, (sub, f) in enumerate(files, 1):
            dest = target / sub / f.relative_to(found[sub])
            dest.parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(f, dest)
            if progress is not None:
                progress(done, len(files))
    return target
