"""Ink to images: rendering strokes, augmenting them, canvas drawings, uploaded bitmaps."""

import io
import struct
import zlib

import numpy as np
import pytest
from PIL import Image

from fixtures import glyph
from mathocr.render import (
    MAX_UPLOAD_PIXELS,
    ImageError,
    augment_strokes,
    elastic_strokes,
    fit_bitmap,
    ink_array,
    load_image,
    render_strokes,
    strokes_from_fabric,
)

SQUARE = [np.array([[0, 0], [10, 0], [10, 10], [0, 10], [0, 0]], dtype=float)]


def ink_box(image: Image.Image, threshold: int = 128) -> tuple[int, int, int, int]:
    """left, top, right, bottom (inclusive) of the pixels darker than ``threshold``."""
    ys, xs = np.nonzero(np.asarray(image.convert("L")) < threshold)
    assert len(xs), "no ink"
    return int(xs.min()), int(ys.min()), int(xs.max()), int(ys.max())


def assert_centred(image: Image.Image, tolerance: int = 1) -> None:
    left, top, right, bottom = ink_box(image)
    width, height = image.size
    assert abs(left - (width - 1 - right)) <= tolerance, (left, right, width)
    assert abs(top - (height - 1 - bottom)) <= tolerance, (top, bottom, height)


# ---------------------------------------------------------------------------------------------
# render_strokes


def test_fixed_size_symbol_is_paper_like_and_centred():
    image = render_strokes(SQUARE, 32, 32)
    assert image.mode == "L" and image.size == (32, 32)
    arr = np.asarray(image)
    assert arr.max() == 255 and arr.min() == 0  # white paper, black ink
    assert arr[0, 0] == 255
    assert_centred(image)
    left, top, right, bottom = ink_box(image)
    assert left <= 3 and right >= 28  # fills the box up to the margin


def test_fixed_size_keeps_the_aspect_ratio():
    wide = [np.array([[0, 0], [40, 0], [40, 10], [0, 10], [0, 0]], dtype=float)]
    image = render_strokes(wide, 32, 32)
    assert image.size == (32, 32)
    left, top, right, bottom = ink_box(image)
    assert (right - left) / (bottom - top) == pytest.approx(4, rel=0.25)
    assert_centred(image)


def test_free_width_follows_the_ink():
    wide = [np.array([[0, 0], [30, 0], [30, 10], [0, 10], [0, 0]], dtype=float)]
    image = render_strokes(wide, height=40)
    width, height = image.size
    assert height == 40 and 90 < width < 120  # three times the height, less the margins
    left, top, right, bottom = ink_box(image)
    assert (right - left) / (bottom - top) == pytest.approx(3, rel=0.1)
    assert_centred(image)


def test_max_width_caps_a_long_expression():
    long = [np.array([[0, 0], [100, 0], [100, 10], [0, 10], [0, 0]], dtype=float)]
    image = render_strokes(long, height=40, max_width=120)
    assert image.size == (120, 40)
    left, top, right, bottom = ink_box(image)
    assert (right - left) / (bottom - top) == pytest.approx(10, rel=0.3)
    assert_centred(image)
    assert render_strokes(SQUARE, height=40, max_width=400).size == (40, 40)  # not stretched to the cap


def test_a_single_point_is_a_dot_in_the_middle():
    for image in (render_strokes([np.array([[5.0, 7.0]])], 32, 32), render_strokes([[[5, 7]]], height=32)):
        assert image.size[1] == 32
        assert np.asarray(image).min() < 128
        assert_centred(image)


def test_a_horizontal_line():
    line = [np.array([[0, 5], [50, 5]], dtype=float)]
    symbol = render_strokes(line, 32, 32)
    left, top, right, bottom = ink_box(symbol)
    assert right - left >= 24 and bottom - top <= 3  # a minus sign stays thin and spans the box
    assert_centred(symbol)
    free = render_strokes(line, height=32)
    assert free.size[1] == 32 and free.size[0] > 8
    assert_centred(free)


def test_a_vertical_line_and_empty_strokes():
    line = [np.array([[5, 0], [5, 50]], dtype=float), np.zeros((0, 2))]
    image = render_strokes(line, 32, 32)
    left, top, right, bottom = ink_box(image)
    assert bottom - top >= 24 and right - left <= 3
    with pytest.raises(ValueError, match="no ink"):
        render_strokes([])
    with pytest.raises(ValueError, match="no ink"):
        render_strokes([np.zeros((0, 2))])


def test_a_thicker_pen_makes_more_ink():
    ink = [ink_array(render_strokes(SQUARE, 32, 32, stroke_width=w)).sum() for w in (1, 2, 4)]
    assert ink[0] < ink[1] < ink[2]


def test_y_grows_downwards():
    # a stroke from top left to bottom right: ink at the image's top left corner
    image = render_strokes([np.array([[0, 0], [10, 10]], dtype=float)], 32, 32)
    arr = np.asarray(image)
    assert arr[3:8, 3:8].min() < 128 and arr[3:8, -8:-3].min() > 200


def test_ink_array_is_ink_intensity():
    arr = ink_array(render_strokes(SQUARE, 32, 32))
    assert arr.dtype == np.float32 and arr.shape == (32, 32)
    assert arr.min() == 0.0 and arr.max() == 1.0 and arr[0, 0] == 0.0


# ---------------------------------------------------------------------------------------------
# augment_strokes


def test_augment_keeps_strokes_and_their_shapes():
    strokes = glyph("x") + glyph("2", x=120) + [np.array([[300.0, 40.0]])]
    out = augment_strokes(strokes, np.random.default_rng(0))
    assert len(out) == len(strokes)
    assert [s.shape for s in out] == [s.shape for s in strokes]
    assert all(np.isfinite(s).all() for s in out)
    assert any(not np.allclose(a, b) for a, b in zip(out, strokes))
    # a plausible other handwriting: the ink moves by a small fraction of its size
    before, after = np.concatenate(strokes), np.concatenate(out)
    assert np.abs(after - before).max() < 0.5 * np.ptp(before[:, 0])


def test_augment_is_reproducible_and_the_identity_without_noise():
    strokes = glyph("a")
    one = augment_strokes(strokes, np.random.default_rng(7))
    two = augment_strokes(strokes, np.random.default_rng(7))
    assert all(np.array_equal(a, b) for a, b in zip(one, two))
    same = augment_strokes(strokes, np.random.default_rng(7), rotate_deg=0, shear=0, scale=0, jitter=0)
    assert all(np.allclose(a, b, atol=1e-4) for a, b in zip(same, strokes))


def test_elastic_bends_each_symbol_smoothly_and_keeps_the_layout():
    # three symbols 100 units high in a row, a small script above the last
    strokes = glyph("x") + glyph("2", x=120) + glyph("y", x=240) + [s * 0.4 + (360, -40) for s in glyph("1")]
    out = elastic_strokes(strokes, np.random.default_rng(3), amplitude=0.1)
    assert [s.shape for s in out] == [s.shape for s in strokes]
    before, after = np.concatenate(strokes), np.concatenate(out)
    moved = after - before
    symbol = np.median([np.ptp(s, axis=0).max() for s in strokes])
    assert np.abs(moved).max() > 0.01 * symbol  # it bends ...
    assert np.abs(moved).max() < 0.5 * symbol  # ... a fraction of a symbol, not the layout
    # smooth: points close together move alike (a bend, not noise)
    for a, b in zip(strokes, out):
        step, shift = np.linalg.norm(np.diff(a, axis=0), axis=1), np.linalg.norm(np.diff(b - a, axis=0), axis=1)
        assert (shift <= 0.6 * step + 1e-3).all()
    # each stroke stays where it was: its centre moves by a small part of a symbol
    for a, b in zip(strokes, out):
        assert np.abs(b.mean(axis=0) - a.mean(axis=0)).max() < 0.15 * symbol
    # reproducible, and the identity at amplitude 0
    again = elastic_strokes(strokes, np.random.default_rng(3), amplitude=0.1)
    assert all(np.array_equal(a, b) for a, b in zip(out, again))
    assert all(np.allclose(a, b) for a, b in zip(elastic_strokes(strokes, np.random.default_rng(3), 0.0), strokes))
    assert elastic_strokes([], np.random.default_rng(0)) == []


# ---------------------------------------------------------------------------------------------
# strokes_from_fabric


def fabric_path(points, left=None, top=None, stroke_width=3):
    """A fabric.js free-draw path object as streamlit-drawable-canvas returns it: the path in
    canvas coordinates, its bounding box at left/top, and pathOffset at the box's centre."""
    pts = np.asarray(points, dtype=float)
    lo, hi = pts.min(axis=0), pts.max(axis=0)
    path = [["M", *pts[0]]] + [["Q", *pts[i - 1], *pts[i]] for i in range(1, len(pts) - 1)] + [["L", *pts[-1]]]
    natural_left, natural_top = lo[0] - stroke_width / 2, lo[1] - stroke_width / 2
    return {
        "type": "path", "path": path, "strokeWidth": stroke_width,
        "left": natural_left if left is None else left, "top": natural_top if top is None else top,
        "width": hi[0] - lo[0] + stroke_width, "height": hi[1] - lo[1] + stroke_width,
        "pathOffset": {"x": (lo[0] + hi[0]) / 2, "y": (lo[1] + hi[1]) / 2},
    }


def test_strokes_from_fabric_paths():
    first = [[10, 10], [12, 14], [15, 20], [20, 30]]
    second = [[50, 10], [40, 30]]
    data = {"version": "4.4.0", "objects": [fabric_path(first), {"type": "rect", "left": 0}, fabric_path(second)]}
    strokes = strokes_from_fabric(data)
    assert len(strokes) == 2
    np.testing.assert_allclose(strokes[0], first, atol=1e-4)  # M, Q end points, L
    np.testing.assert_allclose(strokes[1], second, atol=1e-4)


def test_strokes_from_fabric_follows_a_moved_path():
    moved = fabric_path([[10, 10], [20, 30]], left=108.5, top=8.5)  # dragged 100 px to the right
    np.testing.assert_allclose(strokes_from_fabric({"objects": [moved]})[0], [[110, 10], [120, 30]], atol=1e-4)


@pytest.mark.parametrize("data", [None, {}, {"objects": []}, {"objects": [{"type": "path", "path": []}]},
                                  {"objects": [{"type": "path", "path": [["z"]]}]}])
def test_strokes_from_fabric_without_paths(data):
    assert strokes_from_fabric(data) == []


def test_strokes_from_fabric_without_path_offset_keeps_coordinates():
    data = {"objects": [{"type": "path", "path": [["M", 1, 2], ["L", 3, 4]]}]}
    np.testing.assert_allclose(strokes_from_fabric(data)[0], [[1, 2], [3, 4]])


# ---------------------------------------------------------------------------------------------
# load_image and fit_bitmap


def drawing(mode: str = "L", size=(60, 40), ink=0, paper=255) -> Image.Image:
    """A dark bar on light paper (or the reverse), in any PIL mode."""
    arr = np.full((size[1], size[0]), paper, dtype=np.uint8)
    arr[15:25, 10:50] = ink
    image = Image.fromarray(arr)
    return image.convert(mode) if mode != "L" else image


def encode(image: Image.Image, fmt: str, **options) -> bytes:
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **options)
    return buffer.getvalue()


def assert_paper_like_bar(image: Image.Image, size=(60, 40)) -> None:
    assert image.mode == "L" and image.size == size
    arr = np.asarray(image)
    assert arr[0, 0] > 200 and arr[20, 30] < 60  # white paper, dark ink
    assert ink_box(image) == (10, 15, 49, 24)


@pytest.mark.parametrize("fmt, mode", [("PNG", "L"), ("PNG", "RGB"), ("JPEG", "RGB"), ("BMP", "RGB"), ("PNG", "P")])
def test_load_image_formats(fmt, mode):
    assert_paper_like_bar(load_image(encode(drawing(mode), fmt)))


def test_load_image_transparent_background_becomes_paper():
    rgba = Image.new("RGBA", (60, 40), (0, 0, 0, 0))  # transparent black: must not read as ink
    rgba.paste((20, 20, 20, 255), (10, 15, 50, 25))
    assert_paper_like_bar(load_image(encode(rgba, "PNG")))


def test_load_image_palette_with_transparency():
    palette = drawing("P")
    palette.info["transparency"] = palette.getpixel((0, 0))
    assert_paper_like_bar(load_image(encode(palette, "PNG", transparency=palette.getpixel((0, 0)))))


def test_load_image_16_bit():
    arr = np.full((40, 60), 60000, dtype=np.uint16)
    arr[15:25, 10:50] = 1000
    image = Image.fromarray(arr)
    assert image.mode.startswith("I")
    assert_paper_like_bar(load_image(encode(image, "PNG")))


def test_load_image_inverts_light_ink_on_dark_paper():
    assert_paper_like_bar(load_image(encode(drawing("RGB", ink=240, paper=10), "PNG")))


def test_load_image_shrinks_very_large_images():
    big = Image.new("L", (4000, 1000), 255)
    image = load_image(encode(big, "PNG"))
    assert max(image.size) == 2048


@pytest.mark.parametrize(
    "data, message",
    [
        (b"", "empty"),
        (b"%PDF-1.4 this is not an image at all", "not an image"),
        ("just some text, not pixels".encode(), "not an image"),
        (b"\x89PNG\r\n\x1a\n" + b"\x00" * 20, "not an image"),  # a truncated PNG
    ],
)
def test_load_image_refuses_what_it_cannot_read(data, message):
    with pytest.raises(ImageError, match=message) as info:
        load_image(data)
    assert "Traceback" not in str(info.value) and len(str(info.value)) < 300


def png_header(width: int, height: int) -> bytes:
    """A PNG that claims ``width x height`` pixels but holds no pixel data."""
    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 0, 0, 0, 0)) + chunk(b"IEND", b"")


@pytest.mark.filterwarnings("ignore::PIL.Image.DecompressionBombWarning")
@pytest.mark.parametrize("width, height", [(13_000, 12_000), (100_000, 100_000)])
def test_load_image_refuses_huge_dimensions_before_decoding(width, height):
    assert width * height > MAX_UPLOAD_PIXELS
    with pytest.raises(ImageError, match="pixels") as info:
        load_image(png_header(width, height))
    assert "not an image" not in str(info.value)


def test_fit_bitmap_crops_to_the_ink_and_centres_it():
    page = Image.new("L", (400, 300), 255)
    page.paste(0, (250, 200, 290, 220))  # a 40 x 20 bar far from the centre
    fitted = fit_bitmap(page, height=32, width=64)
    assert fitted.size == (64, 32)
    assert_centred(fitted)
    left, top, right, bottom = ink_box(fitted)
    assert (right - left + 1) / (bottom - top + 1) == pytest.approx(2, rel=0.15)
    free = fit_bitmap(page, height=32)
    assert free.size[1] == 32 and free.size[0] == pytest.approx(2 * 28 + 4, abs=2)


def test_fit_bitmap_refuses_a_blank_image():
    with pytest.raises(ImageError, match="blank"):
        fit_bitmap(Image.new("L", (50, 50), 255))


def test_strokes_from_fabric_reads_fabric_7_paths():
    # streamlit-drawable-canvas 0.13 ships fabric.js 7, whose objects say "Path"
    data = {"objects": [{"type": "Path", "path": [["M", 10, 20], ["Q", 12, 22, 14, 24], ["L", 30, 40]]}]}
    [stroke] = strokes_from_fabric(data)
    assert stroke.tolist() == [[10, 20], [14, 24], [30, 40]]
