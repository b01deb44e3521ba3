"""The data layer on a synthetic CROHME tree and im2latex CSVs: index, cache, splits, import, CLI."""

import json
import shutil
import zipfile
from pathlib import Path

import pytest

from fixtures import (
    IM2LATEX_ROWS,
    SYNTHETIC_BROKEN,
    SYNTHETIC_EXPRESSIONS,
    glyph,
    synthetic_counts,
    write_crohme,
    write_im2latex,
    write_inkml,
)
from mathocr import cli, data


def test_data_dir_precedence(tmp_path, monkeypatch):
    monkeypatch.delenv("MATHOCR_DATA", raising=False)
    assert data.data_dir() == data.REPO_ROOT / "data"
    monkeypatch.setenv("MATHOCR_DATA", str(tmp_path / "env"))
    assert data.data_dir() == tmp_path / "env"
    assert data.data_dir(tmp_path / "given") == tmp_path / "given"


def test_index_counts_expressions_symbols_and_skipped_files(synthetic_data):
    progress = []
    index = data.build_crohme_index(progress=lambda done, total: progress.append((done, total)))
    assert index.split_counts() == synthetic_counts() == {"train": 5, "validation": 2, "test": 2}
    n_files = len(SYNTHETIC_EXPRESSIONS) + len(SYNTHETIC_BROKEN)
    assert progress[-1] == (n_files, n_files) and len(progress) == n_files
    assert {path: why.split(":")[0] for path, why in index.skipped.items()} == {
        f"crohme2016/{name}": reason for name, (_, reason) in SYNTHETIC_BROKEN.items()
    }
    labels = {split: sum(len(labels) for folder, _, _, labels, _, _ in SYNTHETIC_EXPRESSIONS
                         if data.CROHME_SPLITS[split] == folder) for split in data.CROHME_SPLITS}
    assert {split: sum(index.symbol_counts(split).values()) for split in data.CROHME_SPLITS} == labels
    assert len(index.symbols) == sum(labels.values())
    assert index.symbol_counts("train") == {"+": 2, "2": 2, "1": 2, "a": 2, "b": 2, "x": 2, "(": 1, ")": 1, "-": 1, "=": 1}
    assert list(index.symbol_counts())[:2] == ["x", "+"]  # most frequent first (4 and 3)


def test_index_rows(synthetic_data):
    index = data.build_crohme_index()
    by_id = {e.id: e for e in index.expressions}
    h2 = by_id["synth_h2"]
    assert (h2.split, h2.source, h2.writer) == ("train", "HAMEX", "writer2")
    assert h2.path == "crohme2016/TrainINKML/HAMEX/synth_h2.inkml"
    assert (h2.truth, h2.tokens, h2.n_tokens, h2.n_symbols, h2.n_strokes) == ("$x^{2}$", "x ^ { 2 }", 5, 2, 3)
    assert index.path_of(h2).exists()
    assert by_id["synth_k2"].tokens == "\\frac { 1 } { 2 }"
    assert {e.source for e in index.expressions} == {"HAMEX", "KAIST", "MfrDB", "CROHME2013", "CROHME2014"}
    assert {by_id["synth_v1"].split, by_id["synth_t1"].split} == {"validation", "test"}
    first = index.symbols[0]
    assert index.expressions[first.expression].split == first.split
    alpha = [s for s in index.symbols if s.label == "\\alpha"]
    assert {s.split for s in alpha} == {"validation", "test"}


def test_index_is_cached_and_rebuilt_when_a_file_changes(synthetic_data, monkeypatch, tmp_path):
    built = []
    real_build = data.build_crohme_index

    def counting_build(*args, **kwargs):
        built.append(1)
        return real_build(*args, **kwargs)

    monkeypatch.setattr(data, "build_crohme_index", counting_build)
    first = data.load_crohme_index()
    assert len(built) == 1 and list((tmp_path / "cache").glob("crohme-index-*.json.gz"))
    second = data.load_crohme_index()
    assert len(built) == 1  # from the cache
    assert second.expressions == first.expressions and second.symbols == first.symbols
    assert second.skipped == first.skipped and second.root == first.root

    path = synthetic_data / "crohme2016/TestINKMLGT/synth_v1.inkml"
    write_inkml(path, [("x", glyph("x")), ("-", glyph("-", x=130)), ("1", glyph("1", x=260))], "x-1")
    third = data.load_crohme_index()
    assert len(built) == 2
    assert {e.id: e.tokens for e in third.expressions}["synth_v1"] == "x - 1"

    data.load_crohme_index(rebuild=True)
    assert len(built) == 3

    (synthetic_data / "crohme2016/TestINKMLGT/synth_v1.inkml").unlink()
    assert data.load_crohme_index().split_counts()["validation"] == 1
    assert len(built) == 4


def test_missing_crohme_says_what_to_do(empty_data):
    assert not data.crohme_available()
    with pytest.raises(data.DataMissing) as info:
        data.load_crohme_index()
    message = str(info.value)
    assert str(empty_data) in message and "MATHOCR_DATA" in message and "TrainINKML" in message
    assert data.CROHME_HELP in message
    with pytest.raises(data.DataMissing, match="validation"):
        data.crohme_split_dir("validation")
    with pytest.raises(ValueError, match="unknown split"):
        data.crohme_split_dir("dev")


def test_partial_crohme_is_missing(tmp_path):
    (tmp_path / "crohme2016" / "TrainINKML").mkdir(parents=True)
    assert not data.crohme_available(tmp_path)
    assert data.crohme_files("train", tmp_path) == []
    with pytest.raises(data.DataMissing, match="TestINKMLGT"):
        data.build_crohme_index(tmp_path)


# ---------------------------------------------------------------------------------------------
# im2latex


def test_im2latex_split_is_deterministic_and_complete(synthetic_data):
    formulas = data.load_im2latex()
    assert len(formulas) == len(IM2LATEX_ROWS)
    assert [(f.id, f.split) for f in formulas] == [(f.id, f.split) for f in data.load_im2latex()]
    counts = {s: sum(f.split == s for f in formulas) for s in data.IM2LATEX_FRACTIONS}
    assert counts == {"train": 36, "validation": 2, "test": 2}
    assert [f.id for f in data.load_im2latex(split="test")] == [f.id for f in formulas if f.split == "test"]
    by_id = {f.id: f for f in formulas}
    assert by_id["img001.png"].latex == IM2LATEX_ROWS[1][0]
    assert by_id["img001.png"].tokens == "\\frac { 1 } { x _ { 1 } }"
    assert by_id["img002.png"].tokens == "x ^ { 2 } + \\alpha"


def test_im2latex_split_does_not_depend_on_row_order(tmp_path):
    write_im2latex(tmp_path / "a", IM2LATEX_ROWS)
    write_im2latex(tmp_path / "b", IM2LATEX_ROWS[::-1])
    split_a = {f.id: f.split for f in data.load_im2latex(tmp_path / "a")}
    split_b = {f.id: f.split for f in data.load_im2latex(tmp_path / "b")}
    assert split_a == split_b


def test_im2latex_skips_empty_formulas_and_repeated_images(tmp_path):
    rows = [("x", "a.png"), ("", "b.png"), ("y", "a.png"), ("z", "c.png")]
    write_im2latex(tmp_path, rows)
    formulas = data.load_im2latex(tmp_path)
    assert sorted((f.id, f.latex) for f in formulas) == [("a.png", "x"), ("c.png", "z")]


def test_im2latex_missing(empty_data):
    assert not data.im2latex_available()
    with pytest.raises(data.DataMissing, match="im2latex_test.csv"):
        data.load_im2latex()


# ---------------------------------------------------------------------------------------------
# Importing a download


@pytest.fixture
def download(tmp_path) -> Path:
    """A CROHME download as it might be unpacked: the split folders one level down."""
    write_crohme(tmp_path / "unpacked")
    source = tmp_path / "download" / "CROHME2016_data"
    shutil.copytree(tmp_path / "unpacked" / "crohme2016", source)
    return tmp_path / "download"


def test_import_from_a_folder(download, tmp_path):
    target = data.import_crohme(download, tmp_path / "data")
    assert target == tmp_path / "data" / "crohme2016"
    assert data.crohme_available(tmp_path / "data")
    copied = sorted(p.relative_to(target).as_posix() for p in target.rglob("*.inkml"))
    assert copied == sorted([f"{folder}/{name}" for folder, name, *_ in SYNTHETIC_EXPRESSIONS] + list(SYNTHETIC_BROKEN))


def test_import_from_a_zip(download, tmp_path):
    archive = tmp_path / "crohme.zip"
    with zipfile.ZipFile(archive, "w") as handle:
        for path in download.rglob("*"):
            handle.write(path, path.relative_to(download.parent))
    progress = []
    target = data.import_crohme(archive, tmp_path / "data", progress=lambda d, t: progress.append((d, t)))
    assert data.crohme_available(tmp_path / "data")
    assert len(list(target.rglob("*.inkml"))) == progress[-1][0] == progress[-1][1]
    assert data.build_crohme_index(tmp_path / "data").split_counts() == synthetic_counts()


def test_import_refuses_what_is_not_crohme(tmp_path):
    with pytest.raises(data.DataMissing, match="does not exist"):
        data.import_crohme(tmp_path / "nowhere", tmp_path / "data")
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(ValueError, match="neither a folder nor a .zip"):
        data.import_crohme(tmp_path / "notes.txt", tmp_path / "data")
    (tmp_path / "partial" / "TrainINKML").mkdir(parents=True)
    with pytest.raises(data.DataMissing, match="no TestINKMLGT/ folder"):
        data.import_crohme(tmp_path / "partial", tmp_path / "data")


# ---------------------------------------------------------------------------------------------
# The command line


def test_cli_data_info(synthetic_data, capsys):
    assert cli.main(["data", "info"]) == 0
    out = capsys.readouterr().out
    assert f"data directory: {synthetic_data}" in out
    lines = {line.split()[1]: line.split() for line in out.splitlines() if line.startswith("CROHME ")}
    assert lines["train"][2:6] == ["5", "expressions", "16", "symbols"]
    assert lines["validation"][2:6] == ["2", "expressions", "6", "symbols"]
    assert lines["test"][2:6] == ["2", "expressions", "5", "symbols"]
    assert "training symbol classes: 10" in out
    assert "skipped crohme2016/TrainINKML/MfrDB/synth_empty.inkml: empty file" in out
    assert "im2latex formulas: 40 train 36, validation 2, test 2" in out


def test_cli_data_info_json(synthetic_data, capsys):
    assert cli.main(["data", "info", "--json", "--rebuild"]) == 0
    line = capsys.readouterr().out.splitlines()[1]
    report = json.loads(line)["crohme"]
    assert report["expressions"] == synthetic_counts()
    assert report["train_symbol_classes"] == 10 and len(report["skipped"]) == 2


def test_cli_data_info_without_data(empty_data, capsys):
    assert cli.main(["data", "info"]) == 0
    out = capsys.readouterr().out
    assert "CROHME: missing." in out and "MATHOCR_DATA" in out and "im2latex: missing" in out


def test_cli_data_import(download, tmp_path, capsys):
    assert cli.main(["data", "import", str(download), "--data", str(tmp_path / "data")]) == 0
    assert "imported into" in capsys.readouterr().out
    assert data.crohme_available(tmp_path / "data")
    assert cli.main(["data", "import", str(tmp_path / "nowhere"), "--data", str(tmp_path / "data")]) == 2
    assert "error:" in capsys.readouterr().err



def test_formula_cache_leaves_another_writers_temporary_file_alone(synthetic_data, tmp_path):
    """Two training runs started together both fill the cache: each writes a temporary file of its
    own (a shared temporary name let one run move the other's file away, and the other crash)."""
    from mathocr.formula_data import load_crohme_formulas

    first = load_crohme_formulas("train", synthetic_data)
    (cached,) = (tmp_path / "cache").iterdir()
    cached.unlink()
    others = [cached.with_suffix(".tmp"), cached.parent / (cached.name + ".tmp")]  # another writer's, half written
    for other in others:
        other.write_bytes(b"half")
    again = load_crohme_formulas("train", synthetic_data)
    assert [f.tokens for f in again] == [f.tokens for f in first] and len(first) == 5
    assert cached.exists() and all(other.read_bytes() == b"half" for other in others)
    assert sorted(p.name for p in cached.parent.iterdir()) == sorted([cached.name] + [o.name for o in others])
