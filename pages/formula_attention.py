"""Where a formula model looked: for each emitted token, its attention over the input, and the
encoder's feature maps. Either model: handwritten (drawn, uploaded or CROHME ink) or typeset
(an uploaded screenshot or a rendered im2latex formula of the held-out test split)."""

import numpy as np
import streamlit as st
from PIL import Image

from mathocr import data
from mathocr.formula_plots import attention_overlay, feature_map_tiles
from mathocr.render import ImageError, pen_picture
from pages.common import formula_recognizer, ink_input

LAST_KEY = "formula_last"  # set by the Formulas page
LAST_KIND_KEY = "formula_last_kind"
MODELS = {"Handwritten": "handwritten", "Typeset": "typeset"}
PEN_CAPTION = ("what the pen did, as the model read it besides the ink: each stroke coloured by the direction the pen "
               "moved (red →, yellow-green ↓, cyan ←, violet ↑), gray around where a stroke begins or ends")
LAST = "Last formula recognized"
CROHME_TEST = "CROHME 2014 test formula"
IM2LATEX_TEST = "im2latex test formula"


@st.cache_data(show_spinner="Reading CROHME's 2014 test formulas (once)...")
def crohme_test_formulas() -> list[tuple[str, str, list]]:
    from mathocr.formula_data import load_crohme_formulas

    return [(f.id, " ".join(f.tokens), f.strokes) for f in load_crohme_formulas("test")]


@st.cache_data(show_spinner="Reading im2latex's rendered test formulas...")
def im2latex_test_formulas() -> list[tuple[str, str, str]]:
    from mathocr.typeset_data import load_typeset_formulas

    return [(f.id, " ".join(f.tokens), str(f.image_path)) for f in load_typeset_formulas("test")]


# A formula from a dataset's held-out split, chosen by number: its id, its truth and its recognition
def dataset_formula(recognizer, source: str, beam_width: int):
    if source == CROHME_TEST:
        if not data.crohme_available():
            st.info(f"CROHME is not available here. {data.CROHME_HELP}")
            return None, None
        formulas = crohme_test_formulas()
    else:
        if not data.im2latex_available():
            st.info(f"im2latex is not available here: its formulas would be in `{data.data_dir() / data.IM2LATEX_DIR}`.")
            return None, None
        try:
            formulas = im2latex_test_formulas()
        except data.DataMissing as err:
            st.info(f"im2latex's test formulas have no images yet ({err}).")
            return None, None
    index = st.number_input(f"Formula number (0 to {len(formulas) - 1})", 0, len(formulas) - 1, 0)
    ident, truth, strokes_or_path = formulas[int(index)]
    st.caption(ident)
    if source == CROHME_TEST:
        return recognizer.recognize_strokes(strokes_or_path, beam_width), truth
    with Image.open(strokes_or_path) as image:
        st.image(image, caption="the rendered formula")
        return recognizer.recognize_image(image, beam_width), truth


st.title("Formula attention")
st.caption("For every token the model wrote, the place in the input it attended to (red), so you can see "
           "where it looked when it wrote each symbol.")

kind = MODELS[st.radio("Model", list(MODELS), horizontal=True, key="attention_model")]
recognizer = formula_recognizer(kind)
if recognizer is None:
    st.stop()

# The input: a drawing or upload, a held-out dataset formula, or the Formulas page's last answer
if kind == "handwritten":
    sources = ["Draw or upload", CROHME_TEST]
else:
    sources = ["Upload", IM2LATEX_TEST]
if LAST_KEY in st.session_state and st.session_state.get(LAST_KIND_KEY, "handwritten") == kind:
    sources.insert(0, LAST)
source = st.radio("Formula", sources, horizontal=True)
beam_width = st.sidebar.slider("Beam width", 1, 10, 1, key="attention_beam")
result, truth = None, None
if source == LAST:
    result = st.session_state[LAST_KEY]
elif source in (CROHME_TEST, IM2LATEX_TEST):
    result, truth = dataset_formula(recognizer, source, beam_width)
else:
    ink = ink_input("formula_attention", height=220, width=900, stroke_width=5, draw=kind == "handwritten",
                    upload_label="A picture of a formula (PNG, JPEG or BMP)", formula=True)
    if ink.error:
        st.error(f"That file could not be used. {ink.error}")
    elif ink.empty:
        st.info("Write a formula on the canvas (or upload a picture), and the attention behind each token appears."
                if kind == "handwritten" else
                "Upload a screenshot of a typeset formula, and the attention behind each token appears.")
    else:
        try:
            result = (recognizer.recognize_strokes(ink.strokes, beam_width) if ink.strokes
                      else recognizer.recognize_image(ink.picture, beam_width))
        except ImageError as err:
            st.warning(f"No formula found in the picture: {err}.")

if result is None:
    st.stop()

# The answer, beside the truth when there is one
st.latex(result.latex or r"\text{(nothing)}")
st.code(result.latex, language="latex")
if truth is not None:
    st.markdown("**Truth**")
    st.code(truth, language="latex")
    st.write("Exact match" if truth == result.latex else "Differs from the truth")

# What the pen did, for a model that reads it beside the ink
if result.pen is not None:
    if np.abs(result.pen).max() > 0:
        st.image(pen_picture(result.image, result.pen), caption=PEN_CAPTION, width=min(3 * result.image.shape[1], 900))
    else:
        st.caption("This model also reads what the pen did (its direction, where strokes begin and end); a "
                   "picture has no pen strokes, so it read the ink alone.")

# The tokens, one attention map each
tokens = result.tokens + ["</s>"] if result.ended else list(result.tokens)
steps = min(len(tokens), len(result.attention))
if steps == 0:
    st.stop()
if result.extra.get("found_by") == "r2l":  # the twin's search found this answer: its maps, written backwards
    st.caption("This answer was found by the second model, which writes formulas from right to left: these are "
               "its attention maps, shown in reading order, though it wrote the last token first.")
view = st.radio("Show", ["One token at a time", "All tokens"], horizontal=True)
if view == "One token at a time":
    step = st.slider("Token", 1, steps, 1) - 1 if steps > 1 else 0
    st.markdown(" ".join(f"**`{t}`**" if i == step else f"`{t}`" for i, t in enumerate(tokens[:steps])))
    st.image(attention_overlay(result.image, result.attention[step], scale=3),
             caption=f"token {step + 1}: {tokens[step]}")
else:
    columns = st.columns(4)
    for i in range(steps):
        columns[i % 4].image(attention_overlay(result.image, result.attention[i], scale=1),
                             caption=f"{i + 1}: {tokens[i]}", width="stretch")

# The encoder's feature maps
with st.expander("Encoder feature maps"):
    layer = st.selectbox("Layer", recognizer.feature_layers(), index=2,
                         help="relu1 is the first convolution; the last layer (relu5, or the last residual "
                              "block res1, res2 .. after it) gives the grid the attention weighs")
    maps = recognizer.feature_maps(result.input, layer)
    most = min(64, maps.shape[-1])
    count = st.slider("Channels", 4, most, min(16, most)) if most > 4 else most
    st.caption(f"{layer}: {maps.shape[0]} x {maps.shape[1]} x {maps.shape[2]}")
    tile_columns = st.columns(4)
    for c, tile in enumerate(feature_map_tiles(maps, count)):
        tile_columns[c % 4].image(tile, caption=f"channel {c}", width="stretch")
    st.caption(f"mean activation per channel: {np.round(maps.mean(axis=(0, 1))[:count], 3).tolist()}")
