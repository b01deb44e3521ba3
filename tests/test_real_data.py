"""The real datasets hold what ../shared/README.md says they hold. Runs when MATHOCR_DATA is set."""

import pytest

from mathocr import data
from mathocr.latex import normalize_latex

pytestmark = pytest.mark.data


@pytest.fixture(scope="module")
def index(real_data):
    # the default cache (.cache/ or MATHOCR_CACHE): building takes several seconds, loading well under one
    return data.load_crohme_index(real_data)


def test_crohme_splits(index):
    assert index.split_counts() == {"train": 8834, "validation": 671, "test": 986}


def test_crohme_unreadable_training_files(index):
    assert {path: why.split(":")[0] for path, why in index.skipped.items()} == {
        "crohme2016/TrainINKML/MfrDB/MfrDB3088.inkml": "empty file",
        "crohme2016/TrainINKML/MfrDB/MfrDB0104.inkml": "malformed XML",
    }


def test_crohme_training_symbols(index):
    counts = index.symbol_counts("train")
    assert sum(counts.values()) == 85_782
    assert len(counts) == 101
    assert "\\lt" not in counts and "<" in counts  # labels in canonical spelling
    assert {e.source for e in index.expressions if e.split == "train"} == {
        "HAMEX", "KAIST", "MathBrush", "MfrDB", "expressmatch", "extension"}


def test_crohme_truths_are_in_normal_form(index):
    for expression in index.expressions:
        assert normalize_latex(expression.tokens) == expression.tokens, expression.path
    by_id = {e.id: e for e in index.expressions}
    assert by_id["formulaire001-equation001"].tokens == "\\phi ( x )"


def test_im2latex_formulas(real_data):
    formulas = data.load_im2latex(real_data)
    assert len(formulas) == 18_158
    counts = {s: sum(f.split == s for f in formulas) for s in data.IM2LATEX_FRACTIONS}
    assert counts == {"train": 16342, "validation": 907, "test": 909}
