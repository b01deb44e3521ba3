"""Reading InkML: a valid file becomes an ``Ink``; an unusable one is skipped with its reason."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from fixtures import glyph, inkml_text, write_inkml
from mathocr.inkml import Ink, InkMLError, ReadReport, inkml_files, iter_inkml, parse_inkml, read_inkml

VALID = """<?xml version="1.0" encoding="UTF-8"?>
<ink xmlns="http://www.w3.org/2003/InkML">
<traceFormat>
<channel name="X" type="decimal"/>
<channel name="Y" type="decimal"/>
</traceFormat>
<annotation type="UI">2011_TEST_E001</annotation>
<annotation type="writer">w042</annotation>
<annotation type="age">31</annotation>
<annotation type="truth">$x^{2} &lt; 1$</annotation>
<annotationXML type="truth" encoding="Content-MathML"><math><mi xml:id="x_1">x</mi></math></annotationXML>
<trace id="0">10 10, 20 20, 30 30</trace>
<trace id="1">30 10, 10 30,</trace>
<trace id="2">40 0 100, 45 -5 110, 50 0 120</trace>
<trace id="3">60 10, 70 10</trace>
<trace id="4">
80 5.5, 80.25 25
</trace>
<traceGroup xml:id="5">
  <annotation type="truth">Segmentation</annotation>
  <traceGroup xml:id="6">
    <annotation type="truth">x</annotation>
    <traceView traceDataRef="0"/>
    <traceView traceDataRef="1"/>
    <annotationXML href="x_1"/>
  </traceGroup>
  <traceGroup xml:id="7">
    <annotation type="truth">2</annotation>
    <traceView traceDataRef="2"/>
  </traceGroup>
  <traceGroup xml:id="8">
    <annotation type="truth">\\lt</annotation>
    <traceView traceDataRef="3"/>
  </traceGroup>
  <traceGroup xml:id="9">
    <annotation type="truth">1</annotation>
    <traceView traceDataRef="4"/>
  </traceGroup>
</traceGroup>
</ink>
"""


@pytest.fixture
def valid_file(tmp_path):
    path = tmp_path / "valid.inkml"
    path.write_text(VALID)
    return path


def test_valid_file_becomes_a_typed_record(valid_file):
    ink = read_inkml(valid_file)
    assert isinstance(ink, Ink)
    assert ink.truth == "$x^{2} < 1$"
    assert ink.meta["writer"] == "w042" and ink.meta["UI"] == "2011_TEST_E001" and ink.meta["age"] == "31"
    assert "truth" not in ink.meta
    assert ink.path == str(valid_file) and ink.expression_id == "valid"
    assert len(ink.strokes) == 5
    assert all(s.dtype == np.float32 and s.ndim == 2 and s.shape[1] == 2 for s in ink.strokes)


def test_trailing_comma_and_third_channel(valid_file):
    ink = read_inkml(valid_file)
    np.testing.assert_array_equal(ink.strokes[1], [[30, 10], [10, 30]])  # "30 10, 10 30,"
    np.testing.assert_array_equal(ink.strokes[2], [[40, 0], [45, -5], [50, 0]])  # time channel dropped
    np.testing.assert_allclose(ink.strokes[4], [[80, 5.5], [80.25, 25]])  # decimals, newlines


def test_nested_trace_groups_become_symbols(valid_file):
    ink = read_inkml(valid_file)
    assert [s.label for s in ink.symbols] == ["x", "2", "\\lt", "1"]  # "Segmentation" is not a symbol
    assert ink.symbols[0].stroke_indices == (0, 1)
    x_strokes = ink.symbol_strokes(ink.symbols[0])
    assert len(x_strokes) == 2 and x_strokes[1] is ink.strokes[1]


def test_trace_view_to_a_missing_trace_is_ignored():
    text = VALID.replace('traceDataRef="4"', 'traceDataRef="99"')
    ink = parse_inkml(text)
    assert [s.label for s in ink.symbols] == ["x", "2", "\\lt"]


def test_file_without_namespace_or_segmentation():
    ink = parse_inkml("<ink><annotation type='truth'>a</annotation><trace>1 2, 3 4</trace></ink>")
    assert ink.truth == "a" and len(ink.strokes) == 1 and ink.symbols == []


@pytest.mark.parametrize(
    "text, reason",
    [
        ("", "empty file"),
        ("  \n\t", "empty file"),
        ('<ink xmlns="http://www.w3.org/2003/InkML"><trace id="0">1 2, 3 4', "malformed XML"),
        ("<ink><trace>1 2</trace></ink></ink>", "malformed XML"),
        ('<ink xmlns="http://www.w3.org/2003/InkML"><annotation type="truth">x</annotation></ink>', "no strokes"),
        ("<ink><trace>  </trace><trace>7</trace></ink>", "no strokes"),
        ("<svg><trace>1 2</trace></svg>", "root element is <svg>"),
        ("<ink><trace>1 2, a b</trace></ink>", "bad coordinates"),
    ],
)
def test_unusable_text_raises_inkml_error_with_reason(text, reason):
    with pytest.raises(InkMLError, match=reason):
        parse_inkml(text)
    with pytest.raises(InkMLError, match=reason):
        parse_inkml(text.encode())


def test_iter_inkml_skips_and_counts_unusable_files(tmp_path, valid_file):
    (tmp_path / "empty.inkml").write_text("")
    (tmp_path / "malformed.inkml").write_text("<ink><trace>1 2")
    (tmp_path / "no_traces.inkml").write_text("<ink><annotation type='truth'>x</annotation></ink>")
    sub = tmp_path / "sub"
    write_inkml(sub / "other.inkml", [("x", glyph("x"))], "x")
    (tmp_path / "notes.txt").write_text("not InkML")

    files = inkml_files(tmp_path)
    assert [f.name for f in files] == ["empty.inkml", "malformed.inkml", "no_traces.inkml", "other.inkml", "valid.inkml"]
    report = ReadReport()
    inks = list(iter_inkml(files + [tmp_path / "gone.inkml"], report))
    assert [ink.expression_id for ink in inks] == ["other", "valid"]
    assert report.read == 2
    assert len(report.skipped) == 4
    assert report.skipped[str(tmp_path / "empty.inkml")] == "empty file"
    assert report.reasons["empty file"] == 1
    assert report.reasons["malformed XML"] == 1
    assert report.reasons["no strokes"] == 1
    assert "gone.inkml" in next(reason for path, reason in report.skipped.items() if path.endswith("gone.inkml"))


def test_iter_inkml_without_report_still_skips(tmp_path):
    (tmp_path / "empty.inkml").write_text("")
    assert list(iter_inkml([tmp_path / "empty.inkml"])) == []


def test_write_inkml_options(tmp_path):
    strokes_by_symbol = [("x", glyph("x", size=10)), ("+", glyph("+", x=15, size=10))]
    path = write_inkml(tmp_path / "a.inkml", strokes_by_symbol, "x+", channels=3, trailing_comma=True,
                       writer="me", meta={"UI": "u1"})
    ink = read_inkml(path)
    assert ink.truth == "x+" and ink.meta["writer"] == "me" and ink.meta["UI"] == "u1"
    assert [(s.label, s.stroke_indices) for s in ink.symbols] == [("x", (0, 1)), ("+", (2, 3))]


coordinates = st.floats(min_value=-1e4, max_value=1e4, allow_nan=False, allow_infinity=False)
strokes = st.lists(st.lists(st.tuples(coordinates, coordinates), min_size=1, max_size=6), min_size=1, max_size=4)


@settings(max_examples=40, deadline=None)
@given(strokes=strokes, channels=st.sampled_from([2, 3]), trailing_comma=st.booleans())
def test_written_strokes_read_back(strokes, channels, trailing_comma):
    arrays = [np.asarray(s, dtype=float) for s in strokes]
    text = inkml_text([("x", arrays)], "x", channels=channels, decimals=3, trailing_comma=trailing_comma)
    ink = parse_inkml(text)
    assert len(ink.strokes) == len(arrays)
    for got, want in zip(ink.strokes, arrays):
        np.testing.assert_allclose(got, want, atol=1e-3, rtol=1e-6)
    assert ink.symbols[0].stroke_indices == tuple(range(len(arrays)))
