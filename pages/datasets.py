"""The datasets: CROHME's handwritten expressions and symbols, their statistics, im2latex's formulas
(with their images, where ``python -m mathocr data render`` has drawn them).

Everything comes from ``mathocr.data``'s index (built once with a progress bar, then cached on
disk and in memory); ink is read and rendered only for what is on screen.
"""

from __future__ import annotations

import json
import random
from dataclasses import asdict
from pathlib import Path

import altair as alt
import numpy as np
import pandas as pd
import streamlit as st

from mathocr import data
from mathocr.inkml import InkMLError, read_inkml
from mathocr.latex import LatexError, normalize_tokens, tokenize_latex
from mathocr.render import ink_array, pen_channels, pen_picture, render_strokes
from mathocr.typeset_data import rendered_dir

SYMBOL_SIDE = 48  # the grid's samples, rendered the way the symbol model sees them
GRID_SAMPLES = 60
GRID_COLUMNS = 12
FORMULAS_SHOWN = 8
EXPRESSION_COLUMNS = ["id", "split", "source", "tokens", "n_tokens", "n_symbols", "n_strokes", "writer"]


# ---------------------------------------------------------------------------------------------
# Cached loading and rendering


@st.cache_data(show_spinner=False, max_entries=4)
def crohme_tables(root: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """The CROHME index as tables (expressions, symbols) and the skipped files, with progress."""
    bar = st.progress(0.0, text="Reading CROHME's InkML files (once: the index is cached afterwards)...")
    shown = -1

    def progress(done: int, total: int) -> None:
        nonlocal shown
        if done * 50 // total != shown:  # 50 updates at most: each one is a message to the browser
            shown = done * 50 // total
            bar.progress(done / total, text=f"Reading CROHME's InkML files: {done:,} of {total:,}")

    index = data.load_crohme_index(root, progress=progress)
    bar.empty()
    expressions = pd.DataFrame([asdict(e) for e in index.expressions])
    symbols = pd.DataFrame([asdict(s) for s in index.symbols], columns=["expression", "index", "split", "label"])
    return expressions, symbols, index.skipped


@st.cache_data(show_spinner="Reading im2latex's formulas...", max_entries=4)
def im2latex_table(root: str) -> pd.DataFrame:
    table = pd.DataFrame([asdict(f) for f in data.load_im2latex(root)], columns=["id", "split", "latex", "tokens"])
    table["n_tokens"] = table["tokens"].str.split().str.len()
    return table


@st.cache_data(show_spinner=False, max_entries=256)
def read_expression(path: str) -> dict:
    """One InkML file's ink rendered, its symbols rendered one by one, and its annotations."""
    ink = read_inkml(path)
    image = render_strokes(ink.strokes, height=140, max_width=1100, stroke_width=2.5)
    return {
        "image": np.asarray(image),
        "pen": pen_picture(ink_array(image), pen_channels(ink.strokes, ink_array(image), max_width=1100,
                                                          stroke_width=2.5)),
        "symbols": [np.asarray(render_strokes(ink.symbol_strokes(s), SYMBOL_SIDE, SYMBOL_SIDE)) for s in ink.symbols],
        "labels": [s.label for s in ink.symbols],
        "meta": ink.meta,
    }


@st.cache_data(show_spinner=False, max_entries=32)
def symbol_sheet(root: str, samples: tuple[tuple[str, int], ...], columns: int = GRID_COLUMNS) -> np.ndarray:
    """Each (expression file, symbol index) drawn at ``SYMBOL_SIDE`` pixels a side, in a grid
    with grey lines between the cells, so each sample's frame shows."""
    tiles, inks = [], {}
    for path, index in samples:
        if path not in inks:
            inks[path] = read_inkml(Path(root) / path)
        ink = inks[path]
        tiles.append(np.asarray(render_strokes(ink.symbol_strokes(ink.symbols[index]), SYMBOL_SIDE, SYMBOL_SIDE)))
    rows = -(-len(tiles) // columns)
    cell = SYMBOL_SIDE + 1
    sheet = np.full((rows * cell + 1, min(len(tiles), columns) * cell + 1), 200, dtype=np.uint8)
    for i, tile in enumerate(tiles):
        top, left = (i // columns) * cell + 1, (i % columns) * cell + 1
        sheet[top:top + SYMBOL_SIDE, left:left + SYMBOL_SIDE] = tile
    return sheet


def show_latex(tokens: str, fallback_caption: str = "") -> None:
    """Typeset a formula; show it as code instead when it is not well formed (KaTeX would only
    print an error)."""
    try:
        normalize_tokens(tokenize_latex(tokens), strict=True)
    except LatexError:
        st.code(tokens, language="latex")
        if fallback_caption:
            st.caption(fallback_caption)
        return
    st.latex(tokens)


def token_filter(tokens: pd.Series, token: str | None) -> pd.Series:
    """Which rows hold ``token`` among their space-separated tokens."""
    if not token:
        return pd.Series(True, index=tokens.index)
    return tokens.str.split().apply(lambda row: token in row)


@st.cache_resource(show_spinner=False, max_entries=2)
def made_up_source(root: str):
    """Training batches over CROHME's training formulas, to make examples of each made-up kind from;
    the typeset layouts' formulas are CROHME's truths and im2latex's training formulas rewritten into
    CROHME's vocabulary, as ``training.formulas --synth 0.5 --synth-im2latex rewritten`` has them."""
    from mathocr.formula_data import load_crohme_formulas, made_up_source as make
    from mathocr.formula_synth import im2latex_formulas

    formulas = load_crohme_formulas("train", root)
    vocabulary = {t for f in formulas for t in f.tokens}
    return make(formulas, synth_formulas=[f.tokens for f in formulas] + im2latex_formulas(vocabulary, root, fit=True))


@st.cache_data(show_spinner=False, max_entries=64)
def made_up_examples(root: str, kind: str, seed: int, n: int) -> list[tuple[np.ndarray, str]]:
    from mathocr.formula_data import made_up_examples as make

    return [(((1.0 - image) * 255).astype(np.uint8), " ".join(tokens))
            for image, tokens in make(made_up_source(root), kind, n, seed)]


# ---------------------------------------------------------------------------------------------
# Sections


# The data directory: the configured one, or another one for this session
def choose_data_root() -> Path:
    configured = data.data_dir()
    typed = (st.session_state.get("datasets_root") or "").strip()
    root = Path(typed).expanduser() if typed else configured
    with st.expander(f"Data directory: `{root}`", expanded=not data.crohme_available(root)):
        st.text_input(
            "Another data directory for this session",
            key="datasets_root",
            placeholder=str(configured),
            help="A folder holding crohme2016/ (and im2latex/). Leave empty for the configured one "
                 f"(MATHOCR_DATA, else data/ in the repository): {configured}",
        )
        if typed and not root.is_dir():
            st.warning(f"`{root}` is not a folder on this machine.")
    return root


# What to do when CROHME is not there: what is missing, where to get it, where to put it
def explain_missing_crohme(root: Path) -> None:
    st.warning(f"CROHME 2016 is not in `{root}`, so there are no handwritten expressions to browse.")
    present = {sub: (root / data.CROHME_DIR / sub).is_dir() for sub in data.CROHME_SPLITS.values()}
    st.markdown(
        "**What is missing:** "
        + ", ".join(f"`{data.CROHME_DIR}/{sub}/` ({'found' if ok else 'missing'})" for sub, ok in present.items())
        + f" inside `{root}`.\n\n**Where to get it and where to put it:** {data.CROHME_HELP}\n\n"
        "Or type another data directory above to use it for this session."
    )


# The overview: how much there is in each split, and what could not be read
def show_overview(expressions: pd.DataFrame, symbols: pd.DataFrame, skipped: dict[str, str]) -> None:
    columns = st.columns(len(data.CROHME_SPLITS) + 1)
    for column, split in zip(columns, data.CROHME_SPLITS):
        n_expressions = int((expressions["split"] == split).sum())
        n_symbols = int((symbols["split"] == split).sum())
        column.metric(f"{split} expressions", f"{n_expressions:,}", f"{n_symbols:,} symbols",
                      delta_color="off", delta_arrow="off")
    columns[-1].metric("symbol classes (train)", symbols.loc[symbols["split"] == "train", "label"].nunique())
    if skipped:
        st.caption(f"{len(skipped)} file(s) could not be read and are left out: "
                   + "; ".join(f"`{path}` ({why})" for path, why in skipped.items()))


# Browsing expressions: filters, the table of matches, and the chosen one in detail
def browse_expressions(root: Path, expressions: pd.DataFrame) -> None:
    splits_col, sources_col, token_col, length_col = st.columns([1.2, 1.5, 1, 1.5])
    splits = splits_col.pills("Split", list(data.CROHME_SPLITS), selection_mode="multi",
                              default=list(data.CROHME_SPLITS), key="expr_splits")
    in_splits = expressions[expressions["split"].isin(splits)]
    sources = sources_col.multiselect("Source", sorted(in_splits["source"].unique()), key="expr_sources",
                                      placeholder="all sources")
    vocabulary = sorted({t for row in in_splits["tokens"] for t in row.split()})
    token = token_col.selectbox("Contains the token", vocabulary, index=None, key="expr_token",
                                placeholder="any token")
    longest = int(expressions["n_tokens"].max())
    low, high = length_col.slider("Length (canonical tokens)", 0, longest, (0, longest), key="expr_length")

    matches = in_splits[
        (in_splits["source"].isin(sources) if sources else True)
        & in_splits["n_tokens"].between(low, high)
        & token_filter(in_splits["tokens"], token)
    ].reset_index(drop=True)
    st.caption(f"{len(matches):,} of {len(expressions):,} expressions match. Select a row to see it.")
    if matches.empty:
        st.info("No expression matches these filters.")
        return
    event = st.dataframe(matches[EXPRESSION_COLUMNS], hide_index=True, height=250, on_select="rerun",
                         selection_mode="single-row", width="stretch")
    rows = [r for r in event.selection.rows if r < len(matches)]
    show_expression(root, matches.iloc[rows[0] if rows else 0])


PEN_CAPTION = ("how it was written: each stroke coloured by the direction the pen moved (red →, yellow-green ↓, "
               "cyan ←, violet ↑), gray around where a stroke begins or ends; what a model trained with --pen reads "
               "besides the ink")


# One expression: its ink, how it was written, its truth typeset, its tokens, its symbols and its metadata
def show_expression(root: Path, row: pd.Series) -> None:
    st.subheader(row["id"])
    try:
        expression = read_expression(str(Path(root) / row["path"]))
    except (InkMLError, OSError) as err:
        st.warning(f"`{row['path']}` cannot be read any more: {err}")
        return
    st.image(expression["image"], caption=f"the ink ({row['n_strokes']} strokes)")
    st.image(expression["pen"], caption=PEN_CAPTION)
    show_latex(row["tokens"], "This truth is not well-formed LaTeX, so it is shown as written.")
    tokens_col, meta_col = st.columns([3, 2])
    with tokens_col:
        st.markdown(f"**Canonical tokens** ({row['n_tokens']})")
        st.code(row["tokens"], language="latex", wrap_lines=True)
        st.markdown("**Truth as written in the file**")
        st.code(row["truth"], language="latex", wrap_lines=True)
        if expression["symbols"]:
            st.markdown(f"**Its {len(expression['symbols'])} symbols**, as the file segments them")
            st.image(expression["symbols"], caption=expression["labels"], width=SYMBOL_SIDE)
    with meta_col:
        meta = {"split": row["split"], "source": row["source"], "file": row["path"], **expression["meta"]}
        st.markdown("**Metadata**")
        st.dataframe(pd.DataFrame({"field": list(meta), "value": [str(v) for v in meta.values()]}),
                     hide_index=True, width="stretch")


# What training makes up from CROHME's formulas
MADE_UP_TEXT = {
    "relabelled": "Each digit, letter, operator, relation or function name replaced throughout its formula by another "
                  "of its kind, in other writers' strokes, the tokens following (`--relabel`).",
    "two on a line": "Two training formulas written on one line, the second at the first's size, joined by another "
                     "writer's `+`, `-` or `=` or side by side (`--concat`).",
    "fractions": "Two short formulas without a relation stacked over another writer's bar, half of them after a "
                 "third formula and an operator (`--stack`).",
    "scripts": "A short formula with another written smaller after its last symbol, raised or lowered, or another "
               "writer's prime (`--script`).",
    "typeset layouts": "A formula (CROHME's, or im2latex's rewritten into CROHME's symbols: accents and fonts dropped, "
                       "other letters for those CROHME lacks) laid out by matplotlib's mathtext, each symbol written in "
                       "a random writer's strokes fitted into its box, loosened a little (`--synth`, "
                       "`--synth-im2latex rewritten`).",
}
MADE_UP_SHOWN = 6
MADE_UP_WIDTH = 640  # pixels on screen at most: each image shown twice as large as the model reads it


def browse_made_up(root: Path) -> None:
    from mathocr.formula_data import MADE_UP_KINDS

    st.caption("CROHME has 8,834 training formulas from a few hundred writers, so the formula model also trains "
               "on formulas made up from their ink every epoch. Each is a new image with its own target tokens, "
               "made the way a training run makes them (with that option at its full rate, before augmentation).")
    kind_col, again_col = st.columns([4, 1], vertical_alignment="bottom")
    kind = kind_col.segmented_control("Kind", list(MADE_UP_KINDS), default="typeset layouts",
                                      key="made_up_kind") or "typeset layouts"
    if again_col.button("Others", key="made_up_again", icon=":material/refresh:"):
        st.session_state["made_up_seed"] = st.session_state.get("made_up_seed", 0) + 1
    st.markdown(MADE_UP_TEXT[kind])
    with st.spinner("Reading CROHME's training formulas and their symbols (once)..."):
        try:
            examples = made_up_examples(str(root), kind, st.session_state.get("made_up_seed", 0), MADE_UP_SHOWN)
        except (data.DataMissing, OSError) as err:
            st.warning(f"CROHME's training formulas could not be read: {err}")
            return
    if not examples:
        st.info("These training formulas are too few to make this kind from.")
        return
    for image, tokens in examples:
        image_col, latex_col = st.columns([3, 2], vertical_alignment="center")
        image_col.image(image, width=min(2 * image.shape[1], MADE_UP_WIDTH))
        with latex_col:
            show_latex(tokens, "The target, as tokens.")
            st.code(tokens, language="latex", wrap_lines=True)


# Browsing symbols: a grid of samples of one class
def browse_symbols(root: Path, expressions: pd.DataFrame, symbols: pd.DataFrame) -> None:
    split_col, class_col, again_col = st.columns([1, 2, 1], vertical_alignment="bottom")
    split = split_col.segmented_control("Split", list(data.CROHME_SPLITS), default="train", key="sym_split") or "train"
    counts = symbols.loc[symbols["split"] == split, "label"].value_counts()
    if counts.empty:
        st.info(f"The {split} split has no segmented symbols.")
        return
    label = class_col.selectbox("Class", list(counts.index), key="sym_class",
                                format_func=lambda name: f"{name}   ({counts[name]:,} samples)")
    if again_col.button("Other samples", key="sym_shuffle"):
        st.session_state["sym_seed"] = st.session_state.get("sym_seed", 0) + 1
    of_class = symbols[(symbols["split"] == split) & (symbols["label"] == label)]
    rows = sorted(random.Random(st.session_state.get("sym_seed", 0)).sample(
        range(len(of_class)), min(GRID_SAMPLES, len(of_class))))
    picked = of_class.iloc[rows]
    samples = tuple(zip(expressions.loc[picked["expression"], "path"], picked["index"].astype(int)))
    try:
        sheet = symbol_sheet(str(root), samples)
    except (InkMLError, OSError) as err:
        st.warning(f"Some files cannot be read any more: {err}")
        return
    show_latex(label)
    st.caption(f"{len(samples)} of the {len(of_class):,} samples of `{label}` in {split}, from "
               f"{picked['expression'].nunique()} expressions, each drawn at {SYMBOL_SIDE} x {SYMBOL_SIDE} "
               "pixels as the symbol model sees it (shown 1.5 times larger)")
    st.image(sheet, width=int(sheet.shape[1] * 1.5))


# Statistics: how often each class occurs, and how long the expressions are
def show_statistics(expressions: pd.DataFrame, symbols: pd.DataFrame) -> None:
    classes_col, lengths_col = st.columns([2, 3], gap="large")
    with classes_col:
        split = st.segmented_control("Split", list(data.CROHME_SPLITS), default="train", key="stats_split") or "train"
        counts = symbols.loc[symbols["split"] == split, "label"].value_counts().rename_axis("class").reset_index()
        st.markdown(f"**Symbol classes in {split}** ({len(counts)} classes, {int(counts['count'].sum()):,} symbols)")
        st.altair_chart(
            alt.Chart(counts).mark_bar().encode(
                y=alt.Y("class:N", sort="-x", title=None, axis=alt.Axis(labelOverlap=False, labelFontSize=11)),
                x=alt.X("count:Q", title="symbols", axis=alt.Axis(orient="top")),
                tooltip=["class", "count"],
            ).properties(height=14 * len(counts) + 30),
            width="stretch",
        )
    with lengths_col:
        cap = int(expressions["n_tokens"].quantile(0.995))  # a handful of very long ones would squash the rest
        shown = expressions[expressions["n_tokens"] <= cap]
        lengths = shown.groupby(["split", "n_tokens"]).size().rename("expressions").reset_index()
        st.markdown(f"**Expression lengths** (tokens in the canonical form): median "
                    f"{expressions['n_tokens'].median():.0f}; the {len(expressions) - len(shown)} longer than "
                    f"{cap} (up to {expressions['n_tokens'].max()}) are left out")
        st.altair_chart(
            alt.Chart(lengths).mark_bar().encode(
                x=alt.X("n_tokens:Q", bin=alt.Bin(step=2), title="tokens"),
                y=alt.Y("sum(expressions):Q", title="expressions", stack=True),
                color=alt.Color("split:N", sort=list(data.CROHME_SPLITS), legend=alt.Legend(orient="top-right")),
                tooltip=["split", alt.Tooltip("sum(expressions):Q", title="expressions")],
            ).properties(height=300),
            width="stretch",
        )
        st.markdown("**Expressions by source**")
        by_source = pd.crosstab(expressions["source"], expressions["split"])
        st.dataframe(by_source.reindex(columns=list(data.CROHME_SPLITS), fill_value=0), width="stretch")


# im2latex's images: how many are rendered and what failed, or how to render them
def im2latex_rendering(folder: Path, total: int) -> dict[str, str] | None:
    """The failures (id to reason) of the rendered set in ``folder``; None when nothing is rendered."""
    index_file = folder / "index.json"
    if not index_file.exists():
        st.info(f"Their images are not rendered yet, so only their LaTeX is shown. Render them once with "
                f"`python -m mathocr data render` (LaTeX and dvipng where installed, else matplotlib's mathtext; "
                f"about 7 minutes on 2 cores for the whole set), into `{folder}`.")
        return None
    index = json.loads(index_file.read_text())
    failed = index.get("failed", {})
    images = sum(1 for _ in folder.glob("*.png"))
    st.caption(f"{images:,} of the {total:,} formulas rendered by {index.get('engine')} at {index.get('dpi')} dpi "
               f"in `{folder}`; {len(failed):,} could not be rendered."
               + (" `python -m mathocr data render` draws the rest." if images + len(failed) < total else ""))
    if failed:
        with st.expander(f"The {len(failed):,} formulas that could not be rendered, and why"):
            reasons = pd.Series(failed, name="reason")
            st.dataframe(reasons.value_counts().rename_axis("reason").reset_index(), hide_index=True, width="stretch")
            st.dataframe(reasons.rename_axis("id").reset_index(), hide_index=True, height=200, width="stretch")
    return failed


# One im2latex formula: its rendered image and KaTeX's rendering beside its source and its tokens
def show_im2latex_formula(row: pd.Series, folder: Path, failed: dict[str, str] | None) -> None:
    st.markdown(f"`{row['id']}` ({row['split']}, {row['n_tokens']} tokens)")
    image_col, text_col = st.columns(2)
    with image_col:
        path = folder / f"{Path(row['id']).stem}.png"
        if failed is not None and path.exists():
            st.image(str(path), caption="as rendered for the typeset model")
        elif failed and row["id"] in failed:
            st.caption(f"Not rendered: {failed[row['id']]}")
        show_latex(row["latex"])
    with text_col:
        st.caption("LaTeX as distributed")
        st.code(row["latex"], language="latex", wrap_lines=True)
        st.caption("canonical tokens (what the model learns to write)")
        st.code(row["tokens"], language="latex", wrap_lines=True)


# im2latex: typeset formulas, filtered by split and token
def browse_im2latex(root: Path) -> None:
    if not data.im2latex_available(root):
        st.info(f"im2latex is not in `{root}`: its formulas would be `{data.IM2LATEX_DIR}/"
                f"{data.IM2LATEX_FILES[0]}` and `{data.IM2LATEX_FILES[1]}` (columns formula,image), "
                "from the im2latex-100k dataset.")
        return
    try:
        formulas = im2latex_table(str(root))
    except (data.DataMissing, OSError, ValueError) as err:
        st.warning(f"im2latex's formulas cannot be read: {err}")
        return
    folder = rendered_dir()
    failed = im2latex_rendering(folder, len(formulas))
    split_col, token_col = st.columns(2)
    split = split_col.segmented_control("Split", ["all", *data.IM2LATEX_FRACTIONS], default="all",
                                        key="im2_split") or "all"
    in_split = formulas if split == "all" else formulas[formulas["split"] == split]
    vocabulary = sorted({t for row in in_split["tokens"] for t in row.split()})
    token = token_col.selectbox("Contains the token", vocabulary, index=None, key="im2_token",
                                placeholder="any token")
    matches = in_split[token_filter(in_split["tokens"], token)].reset_index(drop=True)
    st.caption(f"{len(matches):,} of {len(formulas):,} formulas match; the first {FORMULAS_SHOWN} are shown.")
    for _, row in matches.head(FORMULAS_SHOWN).iterrows():
        show_im2latex_formula(row, folder, failed)
    st.dataframe(matches[["id", "split", "n_tokens", "latex"]], hide_index=True, height=250, width="stretch")


# ---------------------------------------------------------------------------------------------
# The page

st.title("Datasets")
st.caption("CROHME 2016's handwritten expressions (ink, truth, symbol segmentation) and im2latex's formulas.")

root = choose_data_root()
has_crohme = data.crohme_available(root)
if not has_crohme:
    explain_missing_crohme(root)
    if not data.im2latex_available(root):
        st.stop()

tables = None
if has_crohme:
    try:
        tables = crohme_tables(str(root))
    except (data.DataMissing, OSError) as err:
        st.warning(f"CROHME could not be indexed: {err}")

if tables is not None:
    show_overview(*tables)

# One tab a view; only the open one runs
views = {
    "Expressions": lambda: browse_expressions(root, tables[0]),
    "Symbols": lambda: browse_symbols(root, tables[0], tables[1]),
    "Statistics": lambda: show_statistics(tables[0], tables[1]),
    "Made up": lambda: browse_made_up(root),
    "im2latex": lambda: browse_im2latex(root),
}
for tab, (name, show) in zip(st.tabs(list(views), key="datasets_view", on_change="rerun"), views.items()):
    with tab:
        if not tab.open:
            continue
        if tables is None and name != "im2latex":
            st.info("This view needs CROHME: see above.")
            continue
        show()
