"""Photos of paper: simulated ones, and their paper flattened on the way into the models."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from fixtures import symbols_in_a_row
from mathocr.photo import (flatten_paper, level_writing, paper_light, photo_of_paper, remove_ruling, ruling_lines,
                           simulated_photo, writing_slope)
from mathocr.render import fit_bitmap, ink_array, light_paper, load_image, paper_image, render_strokes


def formula_picture(height: int = 150, pen: float = 5.0) -> Image.Image:
    """``x + 2 = a`` written in a row, drawn as a clean picture (white paper, black ink)."""
    strokes = [s for _, symbol in symbols_in_a_row(["x", "+", "2", "=", "a"]) for s in symbol]
    return render_strokes(strokes, height=height, max_width=40 * height, stroke_width=pen)


def model_input(image: Image.Image) -> np.ndarray:
    return ink_array(fit_bitmap(image, height=48, max_width=448))


def test_clean_paper_is_left_exactly_as_it_is():
    clean = formula_picture()
    assert flatten_paper(clean) is clean and remove_ruling(clean) is clean  # nothing done, nothing copied
    report = {}
    assert np.array_equal(np.asarray(paper_image(clean, report=report)), np.asarray(clean))
    assert report == {"inverted": False, "flattened": False, "ruling_removed": False, "turned": 0.0, "turned_by": None}
    assert np.array_equal(np.asarray(paper_image(clean.convert("RGB"))), np.asarray(clean))
    bar = np.full((40, 60), 255, np.uint8)
    bar[15:25, 10:50] = 0  # a thick stroke that fills a sixth of the picture is ink, not shadow
    assert np.array_equal(np.asarray(flatten_paper(Image.fromarray(bar))), bar)


def test_a_simulated_photo_is_gray_uneven_noisy_paper_and_the_same_for_a_seed():
    clean = formula_picture()
    photo = simulated_photo(clean, np.random.default_rng(3))
    again = simulated_photo(clean, np.random.default_rng(3))
    other = simulated_photo(clean, np.random.default_rng(4))
    assert np.array_equal(np.asarray(photo), np.asarray(again)) and not np.array_equal(np.asarray(photo), np.asarray(other))
    pad = clean.size[1] // 4
    assert photo.size == (clean.size[0] + 2 * pad, clean.size[1] + 2 * pad)
    arr = np.asarray(photo, np.float64)
    paper = arr[: pad // 2]  # a band of paper above the writing
    assert np.median(paper) < 235 and paper.std() > 1.0
    # without flattening, paper darker than fit_bitmap's threshold of 200 somewhere reads as ink
    assert paper_light(photo).min() < 235


@pytest.mark.parametrize("seed", range(6))
def test_a_photo_reaches_the_model_as_the_clean_picture_does(seed):
    clean = formula_picture()
    photo = simulated_photo(clean, np.random.default_rng(seed))
    want = model_input(clean)
    got = model_input(load_image(_png(photo)))
    assert abs(got.shape[1] - want.shape[1]) <= 2, (got.shape, want.shape)
    width = min(got.shape[1], want.shape[1])
    assert np.abs(got[:, :width] - want[:, :width]).mean() < 0.05
    assert got.max() > 0.9 and (got > 0.5).mean() == pytest.approx((want > 0.5).mean(), abs=0.03)
    # the same photo without flattening: its paper is read as ink (the test can fail)
    raw = model_input(paper_image(photo, flatten=False))
    assert raw.shape[1] != want.shape[1] or np.abs(raw - want).mean() > 0.1


@pytest.mark.parametrize("seed", range(6))
def test_a_photo_of_ruled_paper_reaches_the_model_as_the_clean_picture_does(seed):
    clean = formula_picture()
    photo = simulated_photo(clean, np.random.default_rng(seed), ruling=np.random.default_rng([seed, 1]))
    assert ruling_lines(np.asarray(flatten_paper(photo)))[1]  # it has lines, found
    want = model_input(clean)
    got = model_input(load_image(_png(photo)))
    assert abs(got.shape[1] - want.shape[1]) <= 2, (got.shape, want.shape)
    width = min(got.shape[1], want.shape[1])
    assert np.abs(got[:, :width] - want[:, :width]).mean() < 0.05
    # flattened but with its lines: they widen the crop (the test can fail)
    kept = model_input(paper_image(photo, ruling=False))
    assert abs(kept.shape[1] - want.shape[1]) > 2


@pytest.mark.parametrize("line", [150, 0])  # lines lighter than the ink, and as dark
@pytest.mark.parametrize("slope", [0.0, 0.02, -0.03])
def test_ruling_goes_and_the_writing_across_it_stays(line, slope):
    h, w = 120, 400
    page = np.full((h, w), 255, np.uint8)
    xs = np.arange(w)
    for row in (30, 70, 110):
        for dy in (0, 1):
            ys = np.round(row + dy + slope * (xs - w / 2)).astype(int)
            ok = (ys >= 0) & (ys < h)
            page[ys[ok], xs[ok]] = line
    page[8:116, 200:204] = 0  # a stroke down across every line
    page[50:53, 100:300] = 0  # a fraction bar between two lines, far from both edges
    page[68:73, 120:180] = 0  # a bar drawn along the middle line, over it, not 3 rows beyond it
    found_slope, lines = ruling_lines(page)
    assert len(lines) == 3 and found_slope == pytest.approx(slope, abs=0.003)
    out = np.asarray(remove_ruling(Image.fromarray(page)))
    assert (out[8:116, 200:204] == 0).all() and (out[50:53, 100:300] == 0).all() and (out[68:73, 120:180] == 0).all()
    writing = np.zeros_like(page, bool)
    writing[8:116, 200:204] = writing[50:53, 100:300] = writing[68:73, 120:180] = True
    near = np.asarray(Image.fromarray(writing.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(3))) > 0
    assert not (out < 200)[~near].any(), np.argwhere((out < 200) & ~near)[:5]  # of the lines, only what touches the writing is left
    # without lines, nothing happens: the same picture comes back, bar and all
    bare = np.full((h, w), 255, np.uint8)
    bare[50:53, 12:388] = 0  # a long bar, but short of the edges (by 3 %; a ruling reaches within 2 %)
    bare[8:116, 200:204] = 0
    image = Image.fromarray(bare)
    assert ruling_lines(bare) == (0.0, []) and remove_ruling(image) is image


@pytest.mark.parametrize("seed", range(6))
def test_a_photo_of_squared_paper_reaches_the_model_as_the_clean_picture_does(seed):
    clean = formula_picture()
    photo = photo_of_paper(clean, seed, "squared")
    flat = np.asarray(flatten_paper(photo))
    assert len(ruling_lines(flat)[1]) >= 2 and len(ruling_lines(flat.T)[1]) >= 4  # lines across and down, found
    want = model_input(clean)
    got = model_input(load_image(_png(photo)))
    # a little of a line may stay beside the writing (for 2 of 12 seeds a few pixels: a crop 3 % narrower)
    assert abs(got.shape[1] - want.shape[1]) <= 8, (got.shape, want.shape)
    width = min(got.shape[1], want.shape[1])
    assert np.abs(got[:, :width] - want[:, :width]).mean() < 0.09
    # with the lines across taken away but not those down, the crop is the whole page (the test can fail)
    across_only = np.asarray(flatten_paper(photo)).copy()
    slope, lines = ruling_lines(across_only)
    from mathocr.photo import _whiten_lines

    half = model_input(Image.fromarray(_whiten_lines(across_only, slope, lines)[0]))
    assert abs(half.shape[1] - want.shape[1]) > 2 or np.abs(half[:, :width] - want[:, :width]).mean() > 0.05


def test_photos_of_each_paper_share_their_randomness_and_differ_in_their_lines():
    clean = formula_picture()
    plain, ruled, squared = (np.asarray(photo_of_paper(clean, 7, paper), np.float64)
                             for paper in ("plain", "ruled", "squared"))
    assert np.array_equal(plain, np.asarray(simulated_photo(clean, np.random.default_rng(7)), np.float64))
    assert np.array_equal(ruled, np.asarray(simulated_photo(clean, np.random.default_rng(7),
                                                            ruling=np.random.default_rng([7, 1])), np.float64))
    # the lines only darken the page: most pixels as in the plain photo, none much lighter, some darker,
    # squared paper's (lines both ways, closer) several times as many as ruled paper's
    for lined in (ruled, squared):
        assert np.median(np.abs(lined - plain)) < 1 and (lined > plain + 10).mean() == 0
    assert 0.002 < (ruled < plain - 10).mean() < 0.5 * (squared < plain - 10).mean()
    # squared paper has lines down the page too: its columns' darkest pixels are darker than the ruled page's
    assert ruling_lines(np.asarray(flatten_paper(Image.fromarray(squared.astype(np.uint8)))).T)[1]
    assert not ruling_lines(np.asarray(flatten_paper(Image.fromarray(ruled.astype(np.uint8)))).T)[1]
    with pytest.raises(ValueError, match="paper must be one of"):
        photo_of_paper(clean, 7, "graph")


@pytest.mark.parametrize("slope", [0.0, 0.03])
def test_squared_papers_lines_go_both_ways_and_the_writing_stays(slope):
    h, w = 160, 420
    page = np.full((h, w), 255, np.uint8)
    xs, ys = np.arange(w), np.arange(h)
    for row in range(10, h, 40):  # across, tilted by slope
        rows = np.round(row + slope * (xs - w / 2)).astype(int)
        ok = (rows >= 0) & (rows < h)
        page[rows[ok], xs[ok]] = 150
    for col in range(15, w, 40):  # down, square to them
        cols = np.round(col - slope * (ys - h / 2)).astype(int)
        ok = (cols >= 0) & (cols < w)
        page[ys[ok], cols[ok]] = 150
    page[60:64, 60:360] = 0  # a bar across several lines down
    page[70:130, 134:139] = 0  # a stroke drawn along a line down (x = 135), thicker than it
    page[95:125, 240:244] = 0  # a short stroke down, across a line across
    out = np.asarray(remove_ruling(Image.fromarray(page)))
    writing = np.zeros_like(page, bool)
    writing[60:64, 60:360] = writing[70:130, 134:139] = writing[95:125, 240:244] = True
    assert (out[writing] == 0).all()
    near = np.asarray(Image.fromarray(writing.astype(np.uint8) * 255).filter(ImageFilter.MaxFilter(5))) > 0
    assert not (out < 200)[~near].any(), np.argwhere((out < 200) & ~near)[:5]  # every line and crossing gone


def test_a_long_bar_drawn_on_a_line_stays():
    # a fraction bar (or a square root's overline) drawn right on a line, longer than the span over which
    # the line's gray is measured: only the page's other lines tell that the bar is darker than a line
    h, w = 160, 500
    page = np.full((h, w), 255, np.uint8)
    for row in (20, 70, 120):
        page[row:row + 2, :] = 170
    page[69:73, 100:380] = 0  # the bar, on the middle line, 280 columns long
    page[30:62, 230:234] = 0  # a numerator above it, a denominator below
    page[80:112, 230:234] = 0
    out = np.asarray(remove_ruling(Image.fromarray(page)))
    assert (out[69:73, 100:380] == 0).all()
    assert (out[70:72, :95] == 255).all() and (out[70:72, 385:] == 255).all()  # the line either side goes
    assert (out[20:22] == 255).all() and (out[120:122] == 255).all()


def test_a_faint_lines_darker_dashes_go_with_it():
    # a faint line (the flattening leaves it light, with darker dashes): the dashes are darker than the line's
    # own gray, but not than the page's lines, so they are line, not writing
    h, w = 160, 500
    page = np.full((h, w), 255, np.uint8)
    for row in (20, 120):
        page[row:row + 2, :] = 170
    page[70:72, :] = 225
    for col in range(0, w, 12):
        page[70:72, col:col + 4] = 175
    page[40:100, 250:254] = 0  # a stroke down across it
    out = np.asarray(remove_ruling(Image.fromarray(page)))
    assert (out[70:72, :240] == 255).all() and (out[70:72, 265:] == 255).all()
    assert (out[40:100, 250:254] == 0).all()


def test_a_ruled_pages_margin_line_goes_too():
    h, w = 150, 400
    page = np.full((h, w), 255, np.uint8)
    for row in (20, 75, 130):
        page[row:row + 2, :] = 170
    page[:, 30:32] = 120  # the margin: one line down, darker than the ruling
    page[60:90, 31:36] = 0  # writing begun on the margin line, along it
    page[40:110, 100:104] = 0  # and a stroke down across a line, right of it
    out = np.asarray(remove_ruling(Image.fromarray(page)))
    assert (out[:, 30:32][np.r_[0:56, 94:150]] == 255).all()  # the margin line gone, away from the writing
    assert (out[60:90, 31:36] == 0).all() and (out[40:110, 100:104] == 0).all()


def test_lines_down_are_looked_for_only_on_paper_ruled_across():
    # a tightly cropped picture: a 1 and a bar from its top edge to its bottom edge, no ruling across
    page = np.full((120, 300), 255, np.uint8)
    page[0:120, 40:43] = 0
    page[0:120, 200:202] = 90
    page[50:54, 80:160] = 0
    image = Image.fromarray(page)
    assert ruling_lines(page.T)[1]  # they look like lines down the page
    assert remove_ruling(image) is image  # but on unruled paper they are writing: left alone


def test_dim_paper_is_not_taken_for_a_blackboard():
    dim = np.full((60, 200), 110, np.uint8)
    dim[20:40, 30:170:7] = 30  # dark strokes on dim paper
    assert light_paper(dim)
    out = np.asarray(paper_image(Image.fromarray(dim)))
    assert out[5, 5] == 255 and out[30, 30] < 60
    chalk = 255 - dim  # light strokes on a dark board
    assert not light_paper(chalk)
    out = np.asarray(paper_image(Image.fromarray(chalk)))
    assert out[5, 5] > 200 and out[30, 30] < 60


def _png(image: Image.Image) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format="PNG")
    return buffer.getvalue()


def test_bridged_fills_short_gaps_along_rows_and_nothing_beyond_the_ends():
    from mathocr.photo import _bridged

    row = np.zeros((1, 30), bool)
    row[0, [3, 4, 7, 15, 16]] = True  # gaps of 2 (5-6) and 8 (8-14)
    assert np.flatnonzero(_bridged(row, 2)[0]).tolist() == [3, 4, 5, 6, 7, 15, 16]
    assert np.flatnonzero(_bridged(row, 8)[0]).tolist() == list(range(3, 17))
    assert np.array_equal(_bridged(row, 0), row)


def test_a_faint_line_broken_into_dashes_is_found_and_goes():
    # flattening a photo whitens a faint line's lighter stretches: what is left is dashes, dark over a third
    # of the line's length (less than RULE_COVER), its gaps short
    h, w = 150, 480
    page = np.full((h, w), 255, np.uint8)
    for row in (25, 75, 125):
        for col in range(0, w, 12):
            page[row:row + 2, col:col + 4] = 200
    page[40:110, 240:244] = 0  # a stroke down across the middle line
    slope, lines = ruling_lines(page)
    assert [first for first, _ in lines] == [25, 75, 125]
    out = np.asarray(remove_ruling(Image.fromarray(page)))
    writing = np.zeros_like(page, bool)
    writing[40:110, 240:244] = True
    assert (out[writing] == 0).all() and (out[~writing] == 255).all()


def test_lines_fading_before_the_edges_count_where_the_page_has_several_but_one_bar_does_not():
    # a photo's lines fade out towards its corners: they stop short of the edges (here 5 % of the width)
    h, w = 150, 400
    page = np.full((h, w), 255, np.uint8)
    for row in (25, 75, 125):
        page[row:row + 2, 20:380] = 170
    assert len(ruling_lines(page)[1]) == 3
    out = np.asarray(remove_ruling(Image.fromarray(page)))
    assert (out == 255).all()
    # one long bar (a fraction's) as far from the edges is writing, not a ruling
    bar = np.full((h, w), 255, np.uint8)
    bar[74:78, 20:380] = 0
    assert ruling_lines(bar) == (0.0, [])


@pytest.mark.parametrize("paper,tilt", [("squared", 5.0), ("squared", -7.0), ("ruled", 6.0)])
def test_a_photo_taken_askew_loses_its_lines_and_is_turned_level(paper, tilt):
    # a phone held a little askew turns the page, lines and writing alike, beyond the 1.5 degrees the lines
    # themselves may lie askew on the page: the lines are still found, at the photo's slope, taken away, and the
    # picture turned back by that slope, so that the writing is as level as the lines were on the page
    clean = formula_picture()
    photo = photo_of_paper(clean, 3, paper, tilt=tilt)
    assert photo.size != photo_of_paper(clean, 3, paper).size  # turned, so larger
    slope, lines = ruling_lines(np.asarray(flatten_paper(photo)))
    assert lines and abs(np.degrees(np.arctan(-slope)) - tilt) <= 1.6
    report = {}
    got = model_input(load_image(_png(photo), report))
    turned = report["turned"]
    assert report["ruling_removed"] and turned == pytest.approx(np.degrees(np.arctan(slope)), abs=0.01)
    # what is left askew is the lines' own tilt on the page: read as the clean picture turned by that much
    want = model_input(clean.rotate(tilt + turned, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255))
    assert abs(got.shape[1] - want.shape[1]) <= 8, (got.shape, want.shape)  # (a line's few pixels may stay)
    width = min(got.shape[1], want.shape[1])
    assert np.abs(got[:, :width] - want[:, :width]).mean() < 0.09
    # not turned, the writing reaches the model askew: the clean picture as photographed (the test can fail)
    kept = model_input(paper_image(photo, level=False))
    askew = model_input(clean.rotate(tilt, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255))
    assert abs(kept.shape[1] - askew.shape[1]) <= 8 and abs(kept.shape[1] - want.shape[1]) > 30
    # turned further than lines are looked for (RULE_MAX_TILT, 10 degrees), the lines stay, and so does the tilt
    askew_photo = photo_of_paper(clean, 3, paper, tilt=tilt + np.sign(tilt) * 10)
    assert not ruling_lines(np.asarray(flatten_paper(askew_photo)))[1]
    report = {}
    load_image(_png(askew_photo), report)
    assert report["turned"] == 0.0


def test_a_line_is_counted_once():
    # a squared page 13 degrees askew, beyond the search: rows lined up along the grid's crossings at the steepest
    # slope grew into each other and were counted twice (two "lines" where there was one band)
    _, lines = ruling_lines(np.asarray(flatten_paper(photo_of_paper(formula_picture(), 3, "squared", tilt=13.0))))
    assert all(last < first_next for (_, last), (first_next, _) in zip(lines, lines[1:])), lines


def test_a_page_askew_is_turned_so_its_lines_run_level_and_one_nearly_level_is_not():
    h, w = 200, 500
    xs = np.arange(w)
    for degrees, turned in ((4.0, True), (-6.0, True), (1.5, False)):
        page = np.full((h, w), 255, np.uint8)
        slope = -np.tan(np.radians(degrees))  # rising to the right for a page turned counter-clockwise
        for row in (40, 100, 160):
            rows = np.round(row + slope * (xs - w / 2)).astype(int)
            ok = (rows >= 0) & (rows < h)
            page[rows[ok], xs[ok]] = 170
        bar = np.round(85 + slope * (xs - w / 2)).astype(int)  # a fraction bar written along the lines
        for dy in range(4):
            page[bar[150:350] + dy, xs[150:350]] = 0
        report = {}
        out = np.asarray(remove_ruling(Image.fromarray(page), level=True, report=report))
        ys, cols = np.nonzero(out < 128)
        assert cols.min() > 0 and cols.max() < out.shape[1] - 1  # the bar, and only the bar, is left
        if turned:
            assert report["turned"] == pytest.approx(-degrees, abs=0.2) and out.shape != page.shape
            assert ys.max() - ys.min() <= 5  # level: its four rows, and a row of blur either side
            assert (out[:, 0] == 255).all() and (out[0] == 255).all()  # the corners turned in are white
        else:
            assert report["turned"] == 0.0 and out.shape == page.shape
        plain = remove_ruling(Image.fromarray(page))  # not asked to: as it was
        assert plain.size == (w, h)


def test_one_long_stroke_askew_is_not_a_ruling_but_one_light_line_is():
    # a narrow picture (a sum sign): its long bottom stroke, askew, runs out at a corner like a tilted line would
    h, w = 200, 180
    page = np.full((h, w), 255, np.uint8)
    xs = np.arange(w)
    rows = np.round(150 + 0.09 * xs).astype(int)  # 5 degrees, from the left edge out through the bottom
    for dy in range(4):
        ok = rows + dy < h
        page[rows[ok] + dy, xs[ok]] = 0
    page[40:60, 60:64] = 0  # more writing, as dark
    assert ruling_lines(page) == (0.0, [])
    # the same line as light as a ruling, alone on the page, is one
    page[page == 0] = 255
    for dy in range(2):
        ok = rows + dy < h
        page[rows[ok] + dy, xs[ok]] = 170
    page[40:60, 60:64] = 0
    slope, lines = ruling_lines(page)
    assert len(lines) == 1 and slope == pytest.approx(0.09, abs=0.005)


@pytest.mark.parametrize("tilt", [0.0, 4.0, -9.0])
def test_the_writings_own_slope_is_found(tilt):
    clean = formula_picture().rotate(tilt, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    assert writing_slope(np.asarray(clean)) == pytest.approx(tilt, abs=1.0)
    assert writing_slope(np.full((60, 200), 255, np.uint8)) == 0.0  # no ink, no slope


def test_a_formula_photographed_askew_on_plain_paper_is_turned_level_by_its_writing():
    clean = formula_picture()
    want = model_input(clean)
    photo = photo_of_paper(clean, 4, "plain", tilt=8.0)
    report = {}
    got = model_input(paper_image(photo, writing=True, report=report))
    assert report["turned_by"] == "writing" and report["turned"] == pytest.approx(-8.0, abs=1.0)
    assert not report["ruling_removed"]
    assert abs(got.shape[1] - want.shape[1]) <= 8, (got.shape, want.shape)
    width = min(got.shape[1], want.shape[1])
    assert np.abs(got[:, :width] - want[:, :width]).mean() < 0.09
    # a symbol's strokes have slopes of their own: not turned unless asked (writing=False, the default)
    report = {}
    kept = model_input(paper_image(photo, report=report))
    assert report["turned"] == 0.0 and report["turned_by"] is None and abs(kept.shape[1] - want.shape[1]) > 30
    # nor with level=False
    assert paper_image(photo, writing=True, level=False).size == paper_image(photo).size
    # a level photo is left level; a clean picture (a scan, a screenshot) is never turned
    report = {}
    paper_image(photo_of_paper(clean, 4, "plain"), writing=True, report=report)
    assert report["turned"] == 0.0
    askew = clean.rotate(8.0, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    report = {}
    assert paper_image(askew, writing=True, report=report).size == askew.size and report["turned"] == 0.0
    # on squared paper the lines tell the slope, not the writing
    report = {}
    paper_image(photo_of_paper(clean, 4, "squared", tilt=8.0 - 1.5), writing=True, report=report)
    assert report["turned_by"] == "lines"


def test_level_writing_turns_only_beyond_its_threshold():
    from mathocr.photo import WRITING_LEVEL_FROM

    clean = formula_picture()
    for tilt, turned in ((WRITING_LEVEL_FROM - 1.0, False), (WRITING_LEVEL_FROM + 2.0, True)):
        askew = clean.rotate(tilt, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        report = {}
        out = level_writing(askew, report)
        assert (out is not askew) == turned and (report["turned"] != 0.0) == turned
        if turned:
            assert report["turned"] == pytest.approx(-tilt, abs=1.0) and out.size != askew.size
            assert np.asarray(out)[0, 0] == 255  # the corners turned in are white
