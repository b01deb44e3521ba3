"""Detexify-style symbol lookup: draw one symbol (or upload a picture), get the LaTeX command."""

import streamlit as st

from mathocr.symbols import ModelMissing, SymbolRecognizer, display_latex
from pages.common import ink_input, model_directory

MODEL_ENV = "MATHOCR_SYMBOL_MODEL"  # another model directory than the shipped one (tests, experiments)


@st.cache_resource(show_spinner="Loading the symbol model...")
def load_recognizer(directory: str) -> SymbolRecognizer:
    return SymbolRecognizer(directory)


st.title("Symbols")
st.caption("Draw one symbol; the five likeliest LaTeX commands appear with their probabilities.")

try:
    recognizer = load_recognizer(model_directory("symbols", MODEL_ENV))
except ModelMissing as err:
    st.error(str(err))
    st.stop()

left, right = st.columns([1, 1], gap="large")

# The input: the canvas, or an uploaded picture
with left:
    ink = ink_input("symbols", height=280, width=280, stroke_width=10)

# The answer: top 5 candidates, each with its command to copy, its rendering and its probability
with right:
    if ink.error:
        st.error(f"That file could not be used. {ink.error}")
    elif ink.empty:
        st.info("Draw a symbol on the canvas (or upload a picture of one) and its LaTeX command appears here.")
    else:
        if ink.strokes:
            image = recognizer.image_from_strokes(ink.strokes)
        else:
            try:
                image = recognizer.image_from_picture(ink.picture)
            except ValueError as err:  # a blank picture
                st.warning(f"No symbol found in the picture: {err}.")
                st.stop()
        candidates = recognizer.top_k(image, k=5)
        st.subheader("Candidates")
        for rank, candidate in enumerate(candidates, 1):
            latex_col, code_col, bar_col = st.columns([1, 2, 3], vertical_alignment="center")
            latex_col.latex(display_latex(candidate.label))
            code_col.code(candidate.label, language="latex")
            bar_col.progress(min(max(candidate.probability, 0.0), 1.0), text=f"{candidate.probability:.1%}")
        with st.expander("What the model saw"):
            st.image(1 - image, caption=f"{recognizer.size} x {recognizer.size} model input", width=128, clamp=True)
