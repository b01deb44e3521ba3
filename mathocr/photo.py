"""Photos of paper: what a phone's picture of a written formula adds to the ink, and taking it away.

A photo's paper is gray rather than white, lit unevenly (brighter near the lamp, darker in a
corner), and noisy; its ink is a dark gray. The models were trained on white paper and black ink,
and ``render.fit_bitmap`` takes every pixel darker than 200 for ink: on a photo whose paper is
darker than that in a corner, the crop is the whole picture and the model reads noise.

``flatten_paper`` fits the paper's light as a smooth surface (a cubic polynomial of the position,
fitted to the pixels that are not ink, ink being the dark outliers), divides it out, and stretches
the ink back to black; clean paper (a drawing on the canvas, a screenshot, a scan) is left as it
is. ``simulated_photo`` makes such photos from clean pictures, so that what flattening gains can be
measured on CROHME (``evaluate formulas --as-picture H,PEN --as-photo``).

Ruled paper adds lines across the whole page, lighter than the ink or as dark; ``fit_bitmap`` would
crop to them and the model would read them as fraction bars and minus signs. ``remove_ruling``
finds straight lines, nearly horizontal, that run from one edge of the picture to the other, and
whitens them except where the writing crosses them or is darker than they are
(``evaluate formulas --as-photo ruled`` measures it); on such a page, squared paper's lines down it
too (``--as-photo squared``). A page whose lines lie more than ``LEVEL_FROM`` degrees askew was
photographed askew: it is then turned so that they run level, and the writing with them
(``--photo-tilt DEGREES`` takes the simulated photos askew, ``--keep-tilt`` leaves them so).
"""

from __future__ import annotations

import io

import numpy as np
from PIL import Image, ImageFilter

# The paper's light is fitted on a copy at most this many pixels on its longer side.
FIT_SIDE = 96
# Paper at least this bright, everywhere, with less noise than NOISE_CLEAN, is clean: left alone.
CLEAN_PAPER = 248
NOISE_CLEAN = 1.5
# The surface: every monomial x^i y^j with i + j <= DEGREE (10 terms).
DEGREE = 3
# Ruling: lines at most this many degrees from horizontal (a photo taken a little askew), each dark (below
# RULE_DARK, gaps up to RULE_GAP pixels bridged) over at least RULE_COVER of the picture's width and reaching
# within RULE_EDGE of its width of both its edges; or, where the page has two lines or more, within RULE_LOOSE
# times that, if no thicker than RULE_THIN rows (a photo's lines fade towards its corners; writing is thicker).
RULE_MAX_TILT = 10.0
RULE_DARK = 235
RULE_COVER = 0.45
RULE_EDGE = 0.02
# Writing on a ruling is kept where it is this much darker than the line, where it goes on above or
# below it (darker than RULE_STROKE three rows beyond the line), or where it lies along the line, the
# ink there thicker than the line (looking this many rows either side of it).
RULE_CONTRAST = 40
RULE_STROKE = 160
RULE_LOOK = 12
RULE_ALONG = 6  # columns at least, side by side: writing along a line is a stroke, not a blot
RULE_SPAN = 50  # the line's gray is the median over this many columns either side
RULE_GAP = 16  # a faint line is broken into dashes where flattening whitened the paper
RULE_LOOSE = 5
RULE_THIN = 5
RULE_CROSSING = 4  # squared paper: where lines cross, darker pixels in runs narrower than this are the crossing
# A page whose lines lie more than this many degrees askew was photographed askew: turned so they run level.
# Lines up to this far askew are left as they are (writing need not follow a page's lines that closely).
LEVEL_FROM = 2.0
# Writing on paper without lines tells its own slope (``writing_slope``): looked for up to WRITING_MAX_TILT
# degrees, and a formula more than WRITING_LEVEL_FROM degrees askew is turned level (``level_writing``).
WRITING_MAX_TILT = 12.0
WRITING_LEVEL_FROM = 2.0
WRITING_POINTS = 40_000  # ink pixels looked at, at most (evenly spaced)


def _monomials(h: int, w: int) -> np.ndarray:
    """``(h * w, terms)``: the monomials of the pixel positions scaled to [-1, 1]."""
    ys, xs = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    xs, ys = xs.ravel(), ys.ravel()
    return np.stack([xs ** i * ys ** j for i in range(DEGREE + 1) for j in range(DEGREE + 1 - i)], axis=1)


def paper_light(gray: Image.Image) -> np.ndarray:
    """The paper's brightness under the ink, fitted on a small copy of ``gray`` (``(h, w)`` of that
    copy). Fitted first to the brighter half of the pixels (the paper is the majority), then to
    what does not lie well below the last fit (the ink lies well below), up to 6 rounds."""
    w, h = gray.size
    scale = min(1.0, FIT_SIDE / max(w, h))
    small = gray.resize((max(2, round(w * scale)), max(2, round(h * scale))), Image.Resampling.BOX)
    values = np.asarray(small, dtype=np.float64)
    sh, sw = values.shape
    terms, target = _monomials(sh, sw), values.ravel()
    paper = target >= np.median(target)
    for _ in range(6):
        chosen = terms[paper]  # least squares by the normal equations (10 x 10: a photo's fit in milliseconds)
        gram = chosen.T @ chosen
        coef = np.linalg.solve(gram + 1e-9 * np.trace(gram) * np.eye(len(gram)), chosen.T @ target[paper])
        residual = target - terms @ coef
        spread = float(1.4826 * np.median(np.abs(residual[paper])))
        keep = residual > -max(3.0 * spread, 4.0)
        if keep.sum() < 0.25 * keep.size or np.array_equal(keep, paper):
            break
        paper = keep
    return (terms @ coef).reshape(sh, sw)


def flatten_paper(gray: Image.Image) -> Image.Image:
    """``gray`` (an ``"L"`` image with light paper) with its paper made white and even and its ink
    black: the paper's light (``paper_light``) divided out, the noise smoothed (a 3 x 3 median where
    there is any), what is paper set to white, and the ink stretched so that its darkest pixels
    are black. Clean paper, bright everywhere and without noise, comes back unchanged (the same
    image, when it is already ``"L"``)."""
    if gray.mode != "L":
        gray = gray.convert("L")
    light = paper_light(gray)
    w, h = gray.size
    surface = Image.fromarray(np.clip(light, 1.0, 255.0).astype(np.float32), mode="F").resize((w, h), Image.BILINEAR)
    surface = np.asarray(surface, np.float64)
    values = np.asarray(gray, np.float64)
    residual = values - surface
    # the pixels' noise about the paper's light (the ink, far below it, left out)
    noise = float(1.4826 * np.median(np.abs(residual[residual > -40.0])))
    if light.min() >= CLEAN_PAPER and noise < NOISE_CLEAN:
        return gray
    flat = np.clip(values / surface * 255.0, 0.0, 255.0)
    noise *= 255.0 / max(float(np.median(light)), 1.0)  # in the flattened image's units
    if noise >= NOISE_CLEAN:
        flat = np.asarray(Image.fromarray(np.round(flat).astype(np.uint8)).filter(ImageFilter.MedianFilter(3)),
                          np.float64)
        noise /= 2.0  # about what a 3 x 3 median leaves of pixel noise
    paper = flat > 255.0 - max(4.0 * noise, 12.0)
    flat[paper] = 255.0
    ink = flat[~paper]
    if ink.size:
        dark = float(np.percentile(ink, 5))
        if dark < 250.0:
            flat = np.clip((flat - dark) / (255.0 - dark) * 255.0, 0.0, 255.0)
    return Image.fromarray(np.round(flat).astype(np.uint8))


def ruling_lines(values: np.ndarray, edge: float | None = None) -> tuple[float, list[tuple[int, int]]]:
    """The ruling of a grayscale picture with white paper (``(h, w)`` array): its slope (rows per
    column) and its lines, each as the first and last row where it crosses column 0 (rows may lie
    outside the picture when the line is tilted). No lines: ``(0.0, [])``.

    Every slope up to ``RULE_MAX_TILT`` degrees is tried (coarse, then fine): the dark pixels are
    counted along each sheared row (gaps of up to ``RULE_GAP`` pixels along a row bridged: a faint line
    comes out of ``flatten_paper`` as dashes), and a ruling is a sheared row dark over ``RULE_COVER`` of its
    length in the picture (at least a third of the width), whose dark pixels reach both ends of it,
    with the rows beside it dark at least half as often as its darkest row (its blurred edges). A fraction bar or a
    minus sign short of either edge is never taken for one, nor one line alone as dark as the writing
    (``_ink_gray``: a long stroke, askew). ``edge``: how near (pixels) a ruling's ends
    come to the picture's edges (default ``RULE_EDGE`` of its width); where two lines or more are found,
    thin ones (``RULE_THIN`` rows at most) may end ``RULE_LOOSE`` times as far from them (a photo's lines fade
    towards its corners)."""
    h, w = values.shape
    if w < 32 or h < 4:
        return 0.0, []
    dark = _bridged(values < RULE_DARK, RULE_GAP)
    slack = RULE_EDGE * w if edge is None else edge
    edge = max(1, int(RULE_LOOSE * slack))
    if not (dark[:, :edge].any() and dark[:, -edge:].any()):  # a ruling reaches both sides
        return 0.0, []
    ys, xs = np.nonzero(dark)
    if len(xs) < RULE_COVER * w / 3:
        return 0.0, []
    steepest = np.tan(np.radians(RULE_MAX_TILT))
    reach = int(np.ceil(steepest * w)) + 1  # rows a sheared row can move: its index never falls outside

    def sheared(slope: float, every: int = 1) -> np.ndarray:
        return ys[::every] - np.round(xs[::every] * slope).astype(np.int64) + reach

    def counts(slope: float, every: int = 1) -> np.ndarray:
        return np.bincount(sheared(slope, every), minlength=h + 2 * reach)

    def likeliest(slopes: np.ndarray, every: int = 1) -> float:  # the middle of the slopes lining up the most dark pixels
        peaks = np.array([counts(s, every).max() for s in slopes])
        tied = slopes[peaks == peaks.max()]
        return float(tied[len(tied) // 2])

    coarse = np.linspace(-steepest, steepest, 2 * int(np.ceil(RULE_MAX_TILT / 0.15)) + 1)  # 0.15 degrees apart
    step = coarse[1] - coarse[0]
    # the coarse search on every fourth dark pixel (a line's peak stands out as well), the fine one on all
    slope = likeliest(np.clip(likeliest(coarse, 4) + np.linspace(-step, step, 21), -steepest, steepest))
    if abs(slope) * w < 0.5:
        slope = 0.0
    row_counts = counts(slope)
    # each sheared row's length inside the picture, and where it enters and leaves it
    shift = np.round(np.arange(w) * slope).astype(np.int64)
    rows = np.arange(h + 2 * reach)[:, None] - reach + shift[None, :]  # (sheared rows, w): the picture's row
    inside = (rows >= 0) & (rows < h)
    length = inside.sum(axis=1)
    enters = np.where(length > 0, inside.argmax(axis=1), 0)
    leaves = np.where(length > 0, w - 1 - inside[:, ::-1].argmax(axis=1), 0)
    # a line across a corner (in and out through adjacent edges) is short: it counts beside a long one
    candidate = np.flatnonzero((length >= max(32, w / 10)) & (row_counts >= RULE_COVER * np.maximum(length, 1)))
    order = sheared(slope)
    lines = []
    for band in np.split(candidate, np.flatnonzero(np.diff(candidate) > 1) + 1) if len(candidate) else []:
        first, last = int(band[0]), int(band[-1])
        if last - first > 8:  # thicker than any ruling: writing, not a line
            continue
        peak = row_counts[first:last + 1].max()
        while first > 0 and row_counts[first - 1] >= 0.5 * peak and last - first < 8:
            first -= 1
        while last + 1 < len(row_counts) and row_counts[last + 1] >= 0.5 * peak and last - first < 8:
            last += 1
        if lines and first - reach <= lines[-1][1]:  # grown into the line before: the same line, counted once
            continue
        on_line = (order >= first) & (order <= last)
        core = int(band[len(band) // 2])
        gap = max(xs[on_line].min() - enters[core], leaves[core] - xs[on_line].max())
        if gap <= slack or (gap <= RULE_LOOSE * slack and last - first <= RULE_THIN):
            lines.append((first - reach, last - reach, gap <= slack))
    # a thin line may fade out further from the edges where the page has others: one bar is not a ruling
    if len(lines) < 2:
        lines = [line for line in lines if line[2]]
    lines = [(first, last) for first, last, _ in lines]
    if not any(length[first + reach:last + reach + 1].max() >= w / 3 for first, last in lines):
        return 0.0, []
    # one line alone as dark as the writing is more likely writing (a long stroke, askew) than a ruling
    if len(lines) == 1 and _page_gray(values, shift, lines) < _ink_gray(values) + RULE_CONTRAST:
        return 0.0, []
    return slope, lines


def _bridged(dark: np.ndarray, gap: int) -> np.ndarray:
    """``dark`` (``(h, w)``, bool) with its gaps along each row of at most ``gap`` pixels filled: a pixel
    with dark ones no more than ``gap`` to its left and to its right (a row's dark runs do not grow)."""
    if gap < 1:
        return dark
    h, w = dark.shape
    columns = np.arange(w)
    before = np.maximum.accumulate(np.where(dark, columns, -w - gap), axis=1)
    after = np.minimum.accumulate(np.where(dark, columns, 2 * w + gap)[:, ::-1], axis=1)[:, ::-1]
    return dark | ((columns - before <= gap) & (after - columns <= gap))


def remove_ruling(gray: Image.Image, level: bool = False, report: dict | None = None) -> Image.Image:
    """``gray`` (an ``"L"`` image with white paper, as ``flatten_paper`` leaves a photo) with the
    lines of ruled paper whitened (``ruling_lines``), except where the writing is darker than the
    line (by ``RULE_CONTRAST``, and nearer the writing's gray than the line's: ``_ink_gray``; a noisy
    faint line's darker stretches are line), goes on across it (ink three rows beyond it) or lies along it (the
    ink through the line more than two pixels thicker than the line's own for ``RULE_ALONG`` columns
    or more: a fraction bar or the bar of a 4 drawn on the line), and so in the two rows either side (the line's blurred edges, or
    where its rows round the other way). Without a ruling the same image comes back.

    A line's gray is the median of its darkest pixels over ``RULE_SPAN`` columns either side; where
    writing lies along it for longer than that (a long fraction bar, a square root's overline) that
    median is the writing's own gray, and where it is far darker than the page's lines (by twice
    ``RULE_CONTRAST``; ``_page_gray``: all the lines' median) the page's gray stands in for it.

    Squared paper: on a page ruled across, lines down it (top edge to bottom edge, up to
    ``RULE_MAX_TILT`` from vertical, ending as near the edges as lines across do; a margin's line too)
    are then whitened the same way. They are looked for only there, and unless the page has two lines
    down or more, only as thin as its lines across (a row or two more), so that on a tightly cropped
    picture a tall stroke from edge to edge (a 1, a bar) is never taken for one. Where lines cross, the first pass keeps the crossing (ink goes on beyond the
    line across), and so does the second (what the first kept goes on beside the line down): a third
    pass over the lines across, with those down gone, takes it.

    With ``level``, a page whose lines across lie more than ``LEVEL_FROM`` degrees askew (a photo taken
    askew: page and writing turned alike) is then turned so that they run level, the picture grown to
    hold it all and the corners white; ``report["turned"]``, if given, is the angle turned (degrees,
    counter-clockwise; 0.0 when not)."""
    values = np.asarray(gray.convert("L"))
    slope, lines = ruling_lines(values)
    if report is not None:
        report["turned"] = 0.0
    if not lines:
        return gray
    ink = _ink_gray(values)
    out, levels = _whiten_lines(values, slope, lines, ink=ink)
    # a line down ends as near the page's edges as one across does (a photo's lines fade near them)
    down_slope, down = ruling_lines(out.T, edge=RULE_EDGE * max(out.shape))
    # as thin as the lines across (the same paper): a stroke from edge to edge of a tight crop is thicker;
    # on a grid (two thin lines down or more) a line down with writing along it is thicker too, and stays one
    thickest = max(last - first for first, last in lines)
    if sum(last - first <= thickest + 1 for first, last in down) < 2:
        down = [(first, last) for first, last in down if last - first <= thickest + 1]
    if down:
        out = np.ascontiguousarray(_whiten_lines(np.ascontiguousarray(out.T), down_slope, down, ink=ink)[0].T)
        # the crossings, kept by the first pass, now lines alone; the lines' gray as the first pass saw it
        out = _whiten_lines(out, slope, lines, levels, narrowest=RULE_CROSSING, ink=ink)[0]
    image = Image.fromarray(out)
    angle = float(np.degrees(np.arctan(slope)))  # rows grow downwards: a line rising to the right has slope < 0
    if level and abs(angle) > LEVEL_FROM:
        image = image.rotate(angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
        if report is not None:
            report["turned"] = round(angle, 2)
    return image


def writing_slope(values: np.ndarray, max_tilt: float = WRITING_MAX_TILT) -> float:
    """How far the writing of a grayscale picture with white paper (``(h, w)`` array) runs askew, in degrees
    counter-clockwise (rising to the right): the angle at which its ink (pixels darker than 128), counted row by
    row across the picture turned by it, lines up most sharply (the largest sum of squared counts: a formula's
    baseline, its bars and the tops and bottoms of its symbols fall into the fewest rows). Every half degree up
    to ``max_tilt`` either way, then every tenth of a degree around the best. 0.0 with less than 50 pixels of ink."""
    ys, xs = np.nonzero(np.asarray(values) < 128)
    if len(ys) < 50:
        return 0.0
    step = -(-len(ys) // WRITING_POINTS)
    ys, xs = ys[::step].astype(np.float64), xs[::step].astype(np.float64)
    xs -= xs.mean()

    def sharpness(degrees: float) -> float:
        rows = ys + np.tan(np.radians(degrees)) * xs  # a line rising to the right by that angle: one row
        counts = np.bincount(np.round(rows - rows.min()).astype(np.int64)).astype(np.float64)
        return float((counts ** 2).sum())

    coarse = np.arange(-max_tilt, max_tilt + 1e-9, 0.5)
    best = coarse[int(np.argmax([sharpness(d) for d in coarse]))]
    fine = np.arange(best - 0.5, best + 0.5 + 1e-9, 0.1)
    return round(float(fine[int(np.argmax([sharpness(d) for d in fine]))]), 1)


def level_writing(gray: Image.Image, report: dict | None = None) -> Image.Image:
    """``gray`` (white paper, as ``flatten_paper`` leaves a photo) turned so that its writing runs level
    where it runs more than ``WRITING_LEVEL_FROM`` degrees askew (``writing_slope``), the picture grown to hold
    it all and the corners white; else the same image. For a formula on paper without lines (a photo taken
    askew); not for a single symbol, whose strokes have slopes of their own. ``report["turned"]``, if given, is
    the angle turned (degrees, counter-clockwise; 0.0 when not)."""
    angle = writing_slope(np.asarray(gray.convert("L")))
    if report is not None:
        report["turned"] = 0.0
    if abs(angle) <= WRITING_LEVEL_FROM:
        return gray
    if report is not None:
        report["turned"] = -angle
    return gray.rotate(-angle, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)


def _whiten_lines(values: np.ndarray, slope: float, lines: list[tuple[int, int]],
                  levels: list[np.ndarray] | None = None, narrowest: int = 1, ink: float = 0.0) -> tuple[np.ndarray, list[np.ndarray]]:
    """``values`` (``(h, w)``, uint8) with the lines ``ruling_lines`` found whitened, as ``remove_ruling`` says,
    and each line's gray along it (``(w,)``, 255 where it is not seen), or with ``levels`` those grays.
    ``narrowest``: pixels darker than the line are kept only in runs at least this many columns long
    (where a line down crossed it, the crossing is darker than either line, and as narrow as that line)."""
    h, w = values.shape
    found = []
    out = values.copy()
    columns = np.arange(w)
    shift = np.round(columns * slope).astype(np.int64)

    def beyond(row: int) -> np.ndarray:
        rows = row + shift
        seen = (rows >= 0) & (rows < h)
        return seen & (values[np.clip(rows, 0, h - 1), columns] < RULE_STROKE)

    page = _page_gray(values, shift, lines) if levels is None else None
    for n, (first, last) in enumerate(lines):
        band = np.arange(first - 2, last + 3)[:, None] + shift[None, :]  # (rows of the line, w)
        inside = (band >= 0) & (band < h)
        cols = np.broadcast_to(columns, band.shape)
        pixels = values[np.clip(band, 0, h - 1), cols].astype(np.int64)
        # the line's gray along it: the darkest of its rows in each column, the median of that over
        # RULE_SPAN columns either side (writing over the line is the rarer, darker part)
        darkest = np.where(inside[2:-2], pixels[2:-2], 255).min(axis=0).astype(np.float64)
        darkest[darkest >= RULE_DARK] = np.nan  # the line is not seen there (outside, or too faint)
        windows = np.lib.stride_tricks.sliding_window_view(np.pad(darkest, RULE_SPAN, constant_values=np.nan),
                                                           2 * RULE_SPAN + 1)
        seen = ~np.isnan(windows).all(axis=1)
        level = np.full(w, 255.0)
        level[seen] = np.nanmedian(windows[seen], axis=1)
        # where writing lies along a line for longer than RULE_SPAN, the median there is the writing's
        # gray, far darker than the page's lines (a line's own gray varies less, even in a dark corner)
        if page is not None:
            writing = seen & (level < page - 2 * RULE_CONTRAST)
            level[writing] = page
        if levels is not None:
            level = levels[n]
        found.append(level)
        crossed = beyond(first - 3) | beyond(last + 3)
        # how thick the ink is through the line in each column (pixels darker than halfway from the
        # line's gray to white): the line's own thickness, or more where writing lies along it
        window = np.arange(first - RULE_LOOK, last + RULE_LOOK + 1)[:, None] + shift[None, :]
        dark = (window >= 0) & (window < h) & (values[np.clip(window, 0, h - 1), columns] < (level + 255.0) / 2)
        core = dark[RULE_LOOK:-RULE_LOOK]
        up = np.cumprod(dark[:RULE_LOOK][::-1], axis=0).sum(axis=0)
        down = np.cumprod(dark[-RULE_LOOK:], axis=0).sum(axis=0)
        thick = np.where(core.any(axis=0), core.sum(axis=0) + up + down, 0)
        typical = float(np.median(thick[thick > 0])) if thick.any() else 0.0
        along = _long_runs(thick > typical + 2, RULE_ALONG)  # writing, not a blot of the line
        # writing is darker than the line here and than the page's lines: a faint line's darker dashes are not
        darkest_line = level if page is None else np.minimum(level, page)
        cut = np.minimum(darkest_line - RULE_CONTRAST, (darkest_line + ink) / 2)
        darker = inside & (pixels < cut[None, :])
        # where the line leaves the picture its last pixels are often darker than its median gray (a
        # photo's corners, a thin line's aliasing): a short run of them there is the line's end
        within = np.flatnonzero(inside.any(axis=0))
        runs = darker.any(axis=0)
        stub = runs & ~_long_runs(runs, RULE_ALONG) & _runs_reaching(runs, within[0], within[-1])
        stub |= runs & ~_long_runs(runs, narrowest)
        keep = (darker & ~stub[None, :]) | (crossed | along)[None, :]
        whiten = inside & ~keep
        out[band[whiten], cols[whiten]] = 255
    return out, found


def _ink_gray(values: np.ndarray) -> float:
    """The writing's gray: the 5th percentile of the pixels darker than ``RULE_STROKE`` (0 without any)."""
    dark = values[values < RULE_STROKE]
    return float(np.percentile(dark, 5)) if dark.size else 0.0


def _page_gray(values: np.ndarray, shift: np.ndarray, lines: list[tuple[int, int]]) -> float:
    """The gray of a page's lines: the median, over all its lines and columns, of each line's darkest
    pixel in each column where it is seen (writing on a line is the rarer, darker part)."""
    h, w = values.shape
    grays = []
    for first, last in lines:
        band = np.arange(first, last + 1)[:, None] + shift[None, :]
        inside = (band >= 0) & (band < h)
        darkest = np.where(inside, values[np.clip(band, 0, h - 1), np.arange(w)[None, :]], 255).min(axis=0)
        grays.append(darkest[darkest < RULE_DARK])
    grays = np.concatenate(grays) if grays else np.zeros(0)
    return float(np.median(grays)) if len(grays) else 0.0


def _runs_reaching(mask: np.ndarray, first: int, last: int) -> np.ndarray:
    """``mask`` (1-D, bool) with only its runs of True that reach index ``first`` or ``last``."""
    out = np.zeros_like(mask)
    for end, step in ((first, 1), (last, -1)):
        i = end
        while 0 <= i < len(mask) and mask[i]:
            out[i] = True
            i += step
    return out


def _long_runs(mask: np.ndarray, shortest: int) -> np.ndarray:
    """``mask`` (1-D, bool) without its runs of True shorter than ``shortest``."""
    edges = np.flatnonzero(np.diff(np.concatenate([[False], mask, [False]]).astype(np.int8)))
    out = np.zeros_like(mask)
    for start, stop in zip(edges[::2], edges[1::2]):
        if stop - start >= shortest:
            out[start:stop] = True
    return out


def simulated_photo(picture: Image.Image, rng: np.random.Generator, jpeg: bool = True,
                    ruling: np.random.Generator | None = None, squared: bool = False,
                    tilt: float = 0.0) -> Image.Image:
    """A phone's photo of ``picture`` (white paper, black ink): paper all round it (a quarter of its
    height), the paper gray (140-230) and the ink dark gray (15-90), lit by a gradient across the
    page (up to 35 % darker on one side) and a soft vignette, blurred a little, with sensor noise
    (standard deviation 2-8) and, with ``jpeg``, saved as a JPEG of quality 50-90.

    With ``ruling`` (a generator of its own, so that the photo is otherwise the same), the paper is
    ruled: lines across the page every 0.5-1.5 of the picture's height, 1-3 pixels thick (at a
    height of 150), 20-60 % as dark as the ink, tilted up to 1.5 degrees, under the ink; with ``squared``
    too, squared paper: lines every 0.3-0.7 of the picture's height both across and down the page.
    ``tilt``: the photo taken askew, the writing and the ruling turned by that many degrees (counter-clockwise)."""
    picture = picture.convert("L")
    height = picture.size[1]
    pad = max(4, height // 4)
    if tilt:
        picture = picture.rotate(tilt, resample=Image.Resampling.BICUBIC, expand=True, fillcolor=255)
    page = Image.new("L", (picture.size[0] + 2 * pad, picture.size[1] + 2 * pad), 255)
    page.paste(picture, (pad, pad))
    ink = 1.0 - np.asarray(page, np.float64) / 255.0
    h, w = ink.shape
    if ruling is not None:
        ink = np.maximum(ink, _ruled(h, w, height, ruling, squared, tilt))
    paper, pen = rng.uniform(140, 230), rng.uniform(15, 90)
    values = paper - (paper - pen) * ink
    ys, xs = np.meshgrid(np.linspace(-1, 1, h), np.linspace(-1, 1, w), indexing="ij")
    angle = rng.uniform(0, 2 * np.pi)
    along = (np.cos(angle) * xs * w + np.sin(angle) * ys * h) / max(w, h)  # in [-1, 1] along the light
    light = 1.0 - rng.uniform(0.0, 0.35) * (along + 1.0) / 2.0
    light *= 1.0 - rng.uniform(0.0, 0.15) * (xs ** 2 + ys ** 2) / 2.0
    values = values * light
    image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8))
    image = image.filter(ImageFilter.GaussianBlur(rng.uniform(0.3, 1.0)))
    noisy = np.asarray(image, np.float64) + rng.normal(0.0, rng.uniform(2.0, 8.0), (h, w))
    image = Image.fromarray(np.clip(np.round(noisy), 0, 255).astype(np.uint8))
    if jpeg:
        buffer = io.BytesIO()
        image.save(buffer, format="JPEG", quality=int(rng.integers(50, 91)))
        image = Image.open(io.BytesIO(buffer.getvalue()))
        image.load()
    return image


def _ruled(h: int, w: int, height: int, rng: np.random.Generator, squared: bool = False,
           tilt: float = 0.0) -> np.ndarray:
    """A page's ruling as ink (0-1): lines every 0.5-1.5 ``height``, tilted up to 1.5 degrees (and turned by
    ``tilt`` degrees counter-clockwise); ``squared``: every 0.3-0.7 ``height``, and as many down the page, square to them."""
    spacing = rng.uniform(0.3, 0.7) * height if squared else rng.uniform(0.5, 1.5) * height
    thickness = max(1.0, rng.uniform(0.007, 0.02) * height)
    darkness = rng.uniform(0.2, 0.6)
    slope = np.tan(np.radians(rng.uniform(-1.5, 1.5) - tilt))
    ys, xs = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")

    def lines(distance: np.ndarray) -> np.ndarray:  # distance along the normal, from a line
        apart = np.abs((distance - rng.uniform(0, spacing) + spacing / 2) % spacing - spacing / 2)
        return apart <= thickness / 2

    on = lines(ys - slope * xs)  # distance down from a line, measured upright
    if squared:
        on |= lines(xs + slope * ys)
    return np.where(on, darkness, 0.0)


PAPERS = ("plain", "ruled", "squared")


def photo_of_paper(picture: Image.Image, seed: int, paper: str = "plain", tilt: float = 0.0) -> Image.Image:
    """``simulated_photo`` of ``picture`` on ``paper`` (one of ``PAPERS``), taken ``tilt`` degrees askew, its
    randomness from ``seed`` and its ruling's from ``[seed, 1]`` (so a ruled photo is the plain one with lines)."""
    if paper not in PAPERS:
        raise ValueError(f"paper must be one of {', '.join(PAPERS)}, not {paper!r}")
    ruling = np.random.default_rng([seed, 1]) if paper != "plain" else None
    return simulated_photo(picture, np.random.default_rng(seed), ruling=ruling, squared=paper == "squared", tilt=tilt)
