"""Handwritten formula to LaTeX: draw a whole formula (or upload a picture of one), get its LaTeX,
its rendering, the other beam candidates, and what sympy makes of it."""

import streamlit as st

from mathocr.formula_decode import FormulaRecognizer
from mathocr.formula_math import sympy_reading
from mathocr.render import ImageError
from pages.common import ink_input, model_directory

MODEL_ENV = "MATHOCR_FORMULA_MODEL"  # another model directory than the shipped one (tests, experiments)
LAST_KEY = "formula_last"  # the latest recognition, for the attention viewer


@st.cache_resource(show_spinner="Loading the formula model...")
def load_recognizer(directory: str) -> FormulaRecognizer:
    return FormulaRecognizer.load(directory).warm_up()


def recognize(recognizer: FormulaRecognizer, ink, beam_width: int):
    """The recognition of the canvas strokes or the uploaded picture (None, with a warning, when
    the picture holds no ink)."""
    try:
        if ink.strokes:
            return recognizer.recognize_strokes(ink.strokes, beam_width)
        return recognizer.recognize_image(ink.picture, beam_width)
    except ImageError as err:
        st.warning(f"No formula found in the picture: {err}.")
        return None


st.title("Formulas")
st.caption("Write a whole formula; its LaTeX appears, ready to copy, with the model's confidence and its other guesses.")

model_dir = model_directory("formulas", MODEL_ENV)
try:
    recognizer = load_recognizer(model_dir)
except (FileNotFoundError, OSError, ValueError) as err:
    st.error(f"The formula model could not be loaded: {err}. Train one with `python -m training.formulas` "
             "and export it to models/formulas (see models/formulas/MODEL_CARD.md).")
    st.stop()

beam_width = st.sidebar.slider("Beam width", 1, 10, 5, help="1 is greedy decoding: fastest, one answer")

# The input: a wide canvas (undo and clear are in its toolbar), or an uploaded picture
ink = ink_input("formulas", height=260, width=900, stroke_width=5)

# The answer
if ink.error:
    st.error(f"That file could not be used. {ink.error}")
elif ink.empty:
    st.info("Write a formula on the canvas, for example  x^2 - 1 = 0  or  \\frac{a}{b},  or upload a photo, scan "
            "or screenshot of one. Use the canvas's toolbar to undo a stroke or clear it.")
else:
    with st.spinner("Recognizing..."):
        result = recognize(recognizer, ink, beam_width)
    if result is not None:
        st.session_state[LAST_KEY] = result
        st.subheader("LaTeX")
        if result.latex:
            st.latex(result.latex)
        st.code(result.latex or "(nothing recognized)", language="latex")
        conf_col, time_col, end_col = st.columns(3)
        conf_col.metric("Confidence", f"{result.confidence:.1%}", help="the model's probability of this whole sequence")
        time_col.metric("Time", f"{result.ms:.0f} ms", help="greedy" if beam_width == 1 else f"beam width {beam_width}")
        if not result.ended:
            end_col.warning("The answer was cut off at the length limit.")

        if len(result.candidates) > 1:
            st.subheader("Other candidates")
            for rank, candidate in enumerate(result.candidates[1:], 2):
                latex_col, code_col, prob_col = st.columns([2, 3, 1], vertical_alignment="center")
                if candidate.latex:
                    latex_col.latex(candidate.latex)
                code_col.code(candidate.latex, language="latex")
                prob_col.write(f"{candidate.probability:.1%}")

        # What sympy reads in it: simplified, evaluated, or solved
        reading = sympy_reading(result.latex)
        if reading is None:
            st.caption("Sympy cannot read this formula as mathematics it can compute with.")
        else:
            st.subheader("With sympy")
            st.latex(reading.parsed)
            st.markdown(f"**{reading.result_label}**")
            st.latex(reading.result)

        with st.expander("What the model saw"):
            st.image(1 - result.image, caption=f"{result.image.shape[0]} x {result.image.shape[1]} model input",
                     clamp=True)
            st.caption("The Formula attention page shows where the model looked for each token.")
