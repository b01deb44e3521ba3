"""A formula to LaTeX: draw one (or upload a picture of handwriting, or a screenshot of a typeset
formula), get its LaTeX, its rendering, the other beam candidates, and what sympy makes of it.

Drawn ink goes to the handwritten model; an upload goes to the model the user chooses, or to the
one that ``formula_kind.guess_formula_kind`` picks from the picture."""

import streamlit as st

from mathocr.formula_kind import guess_formula_kind, settle
from mathocr.formula_math import sympy_reading
from mathocr.render import ImageError
from pages.common import formula_recognizer, ink_input

LAST_KEY = "formula_last"  # the latest recognition, for the attention viewer
LAST_KIND_KEY = "formula_last_kind"  # and which model made it
GUESS = "Guess from the image"
READ_AS = {GUESS: None, "Handwritten": "handwritten", "Typeset": "typeset"}


def recognize(recognizer, ink, beam_width: int):
    """The recognition of the canvas strokes or the uploaded picture (None, with a warning, when
    the picture holds no ink)."""
    try:
        if ink.strokes:
            return recognizer.recognize_strokes(ink.strokes, beam_width)
        return recognizer.recognize_image(ink.picture, beam_width)
    except ImageError as err:
        st.warning(f"No formula found in the picture: {err}.")
        return None


# Which model reads the input: the canvas is handwriting; an upload is what the user says, or a guess
def formula_kind(ink):
    """The kind of model to read the input with, and the rule's guess when it was asked (else None)."""
    if ink.source == "canvas":
        return "handwritten", None
    choice = st.radio("Read it as", list(READ_AS), horizontal=True, key="formulas_kind",
                      help="A typeset formula (a screenshot of LaTeX, a PDF, a web page) goes to the typeset model, "
                           "handwriting to the handwritten one.")
    if READ_AS[choice]:
        return READ_AS[choice], None
    guess = guess_formula_kind(ink.picture)
    return guess.kind, guess


def recognize_guessed(guess, recognizer, ink, beam_width: int):
    """The recognition of an upload whose kind was guessed: when the stroke widths leave it open,
    both models read it and the surer one answers (``formula_kind.settle``). Returns the guess as
    settled and the recognition."""
    result = recognize(recognizer, ink, beam_width)
    other_kind = "typeset" if guess.kind == "handwritten" else "handwritten"
    other = formula_recognizer(other_kind, quiet=True) if guess.unsure and result is not None else None
    if other is not None:
        other_result = recognize(other, ink, beam_width)
        if other_result is not None:
            readings = {guess.kind: result, other_kind: other_result}
            guess = settle(guess, {kind: r.extra["per_token"] for kind, r in readings.items()})
            result = readings[guess.kind]
    return guess, result


# The answer: LaTeX to copy, its rendering, confidence, other candidates, sympy's reading
def show_answer(result, beam_width: int) -> None:
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
        margin, readings = result.extra.get("margin"), result.extra.get("readings", 1)
        if margin is not None:
            st.caption(f"The ink with at least {margin} blank columns after it"
                       + (f": the likeliest of {readings} readings with different margins." if readings > 1 else "."))
        if "rescored" in result.extra:
            ways = {"r2l": "right to left", "l2r": "left to right"}
            reader = ways.get(result.extra.get("rescorer"), "another way")
            finder = ("the second model's" if result.extra.get("found_by") == result.extra.get("rescorer")
                      else "this model's")
            st.caption(f"A second model, one that reads {reader}, searched too; the candidates of both were ranked "
                       f"by the two models' confidence together: where they agree, the answer is likelier right. "
                       f"This answer came from {finder} search.")
        st.caption("The Formula attention page shows where the model looked for each token.")


st.title("Formulas")
st.caption("Write a whole formula, or upload a picture of one (handwritten or typeset); its LaTeX appears, ready "
           "to copy, with the model's confidence and its other guesses.")

beam_width = st.sidebar.slider("Beam width", 1, 10, 5, help="1 is greedy decoding: fastest")

# The input: a wide canvas (undo and clear are in its toolbar), or an uploaded picture
ink = ink_input("formulas", height=260, width=900, stroke_width=5,
                upload_label="A photo or scan of handwriting, or a screenshot of a typeset formula (PNG, JPEG or BMP)", formula=True)

if ink.error:
    st.error(f"That file could not be used. {ink.error}")
    st.stop()
if ink.empty and ink.source == "upload":
    st.info("Upload a photo or scan of a handwritten formula, or a screenshot of a typeset one (from a PDF, a web "
            "page, LaTeX).")
    st.stop()

kind, guess = ("handwritten", None) if ink.empty else formula_kind(ink)
recognizer = formula_recognizer(kind)  # loaded (and warmed up) while the canvas is still empty
if recognizer is None:
    st.stop()
if ink.empty:
    st.info("Write a formula on the canvas, for example  x^2 - 1 = 0  or  \\frac{a}{b},  or upload a photo, scan "
            "or screenshot of one. Use the canvas's toolbar to undo a stroke or clear it.")
    st.stop()

with st.spinner("Recognizing..."):
    if guess is None:
        result = recognize(recognizer, ink, beam_width)
    else:
        guess, result = recognize_guessed(guess, recognizer, ink, beam_width)
        kind = guess.kind
        st.caption(f"Read as **{guess.kind}**: {guess.reason}.")
if result is not None:
    st.session_state[LAST_KEY] = result
    st.session_state[LAST_KIND_KEY] = kind
    show_answer(result, beam_width)
