"""Photos of paper: simulated ones, and their paper flattened on the way into the models."""

import io

import numpy as np
import pytest
from PIL import Image, ImageFilter

from fixtures import symbols_in_a_row
from mathocr.photo import flatten_paper, paper_light, remove_ruling, ruling_lines, simulated_photo
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
    assert report == {"inverted": False, "flattened": False, "ruling_removed": False}
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
