"""Widgets more than one page uses. Not a page itself: app.py does not list it.

``ink_input(key, height, width)`` is the one input for handwriting: a drawing canvas, or an
uploaded picture (PNG, JPEG, BMP; any size, colour or transparency); ``draw=False`` offers the
upload alone (for typeset formulas). It returns an ``InkInput``:

* ``strokes``: the canvas's pen strokes (``render.strokes_from_fabric`` of its ``json_data``), in
  canvas pixels, y down; empty when nothing is drawn (or the canvas was cleared);
* ``picture``: a paper-like grayscale PIL image (``render.load_image``) of an upload, or of the
  canvas itself when ``canvas_image=True`` (for models that read pixels, not strokes);
* ``source``: ``"canvas"`` or ``"upload"``, the input the user chose (also while it is empty);
* ``error``: a message for the user when the upload is not a usable image (``None`` otherwise).

``InkInput.empty`` is true when there is nothing to recognize, so a page can show a hint.

``formula_recognizer(kind)`` is the formula model of a kind ("handwritten" or "typeset"), loaded
once, or ``None`` after a message saying how to get one.
Tests drive the canvas through ``AppTest`` by setting ``session_state[f"{key}_canvas"]`` (see
``canvas_state``) before ``run()``.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import streamlit as st
from PIL import Image

from mathocr.render import ImageError, load_image, paper_image, strokes_from_fabric

UPLOAD_TYPES = ["png", "jpg", "jpeg", "bmp"]


@dataclass
class InkInput:
    strokes: list[np.ndarray] = field(default_factory=list)
    picture: Image.Image | None = None
    source: str = ""  # "canvas" or "upload"
    error: str | None = None

    @property
    def empty(self) -> bool:
        return not self.strokes and self.picture is None


def canvas_state(json_data: dict) -> dict:
    """What the canvas component keeps in session state after a drawing: a test sets
    ``at.session_state[f"{key}_canvas"] = canvas_state(fabric_json)`` to inject one."""
    return {"drawing": {"raw": json_data, "data": None}, "backgroundFit": None}


def _lowercase_types(json_data: dict | None) -> dict | None:
    """fabric.js 7 (inside streamlit-drawable-canvas 0.13) names a free-drawn path ``"Path"``, older
    versions ``"path"``; ``strokes_from_fabric`` reads the lower-case name."""
    if not json_data:
        return json_data
    objects = [dict(obj, type=str(obj.get("type", "")).lower()) for obj in json_data.get("objects", [])]
    return dict(json_data, objects=objects)


def ink_input(key: str, height: int = 280, width: int = 280, stroke_width: int = 10,
              canvas_image: bool = False, upload: bool = True, draw: bool = True,
              upload_label: str = "A picture of handwriting (PNG, JPEG or BMP)", formula: bool = False) -> InkInput:
    """A canvas to draw on (with ``draw``), or a file to upload (with ``upload``); see the module
    docstring. With ``formula``, a photo askew on paper without lines is turned level by its writing
    (``render.load_image(..., writing=True)``; a lone symbol's strokes have slopes of their own)."""
    modes = (["Draw"] if draw else []) + (["Upload an image"] if upload else [])
    mode = modes[0]
    if len(modes) > 1:
        mode = st.radio("Input", modes, horizontal=True, key=f"{key}_mode", label_visibility="collapsed")
    if mode == "Draw":
        from streamlit_drawable_canvas import st_canvas

        result = st_canvas(stroke_width=stroke_width, stroke_color="#000000", background_color="#FFFFFF",
                           height=height, width=width, drawing_mode="freedraw", key=f"{key}_canvas",
                           return_image_data=canvas_image)
        strokes = strokes_from_fabric(_lowercase_types(result.json_data))
        if not strokes:
            return InkInput(source="canvas")
        picture = None
        if canvas_image and result.image_data is not None:
            picture = paper_image(Image.fromarray(np.asarray(result.image_data, dtype=np.uint8)))
        return InkInput(strokes=strokes, picture=picture, source="canvas")

    uploaded = st.file_uploader(upload_label, type=UPLOAD_TYPES, key=f"{key}_upload")
    if uploaded is None:
        return InkInput(source="upload")
    report = {}
    try:
        picture = load_image(uploaded.getvalue(), report, writing=formula)
    except ImageError as err:
        return InkInput(source="upload", error=f"{uploaded.name}: {err}")
    st.image(picture, caption=f"{uploaded.name} ({picture.width} x {picture.height})", width=min(width, picture.width))
    done = [what for key, what in CLEANING.items() if report.get(key)]
    if report.get("turned"):
        what = "its writing runs" if report.get("turned_by") == "writing" else "the paper's lines run"
        done.append(f"turned {abs(report['turned']):.1f}° {'counter-' if report['turned'] > 0 else ''}clockwise, "
                    f"so that {what} level")
    if done:
        st.caption("Before reading it: " + "; ".join(done) + ".")
    return InkInput(picture=picture, source="upload")


# What ``render.paper_image`` may do to an upload, as a user is told it
CLEANING = {"inverted": "light ink on a dark ground inverted",
            "flattened": "the photo's gray, unevenly lit paper made white",
            "ruling_removed": "the lines of ruled or squared paper taken away"}


def model_directory(kind: str, env_var: str, quiet: bool = False) -> str:
    """The model directory a recognizer page loads: ``env_var`` if set (tests, experiments), else
    the model promoted on the Training page, else the one shipped in ``models/<kind>/``. A caption
    says which (unless ``quiet``), so a user knows what answers."""
    from mathocr import jobs

    override = os.environ.get(env_var)
    directory = override or str(jobs.active_model_dir(kind))
    shipped = Path(directory).resolve() == (jobs.MODELS_DIR / kind).resolve()
    where = "the shipped model" if shipped and not override else f"the model in `{directory}`"
    if not quiet:
        st.caption(f"Using {where}.")
    return directory


# The formula models: "handwritten" (CROHME ink) and "typeset" (im2latex as LaTeX draws it), each
# with its Training page kind and the environment variable that points a page at another one
FORMULA_MODELS = {"handwritten": ("formulas", "MATHOCR_FORMULA_MODEL"), "typeset": ("typeset", "MATHOCR_TYPESET_MODEL")}
MISSING_MODEL_HELP = {
    "handwritten": "Train one with `python -m training.formulas` and export it to models/formulas "
                   "(see models/formulas/MODEL_CARD.md).",
    "typeset": "To get one: render im2latex's formulas (`python -m mathocr data render`), train a model on them "
               "(`python -m training.formulas --dataset im2latex --export models/typeset`, or the Training page's "
               "typeset kind, then *Use this model*), or point `MATHOCR_TYPESET_MODEL` at a model directory.",
}


@st.cache_resource(show_spinner="Loading the formula model...")
def load_formula_recognizer(directory: str):
    """A formula model, its compiled searches traced once, so a user's first formula is fast."""
    from mathocr.formula_decode import FormulaRecognizer

    return FormulaRecognizer.load(directory).warm_up()


def formula_recognizer(kind: str, quiet: bool = False):
    """The active formula model of ``kind``, or None after an error that says how to get one. A
    model trained on the other kind of formula is used, with a warning. ``quiet``: a second
    opinion, without captions or errors (None when there is no model of that kind)."""
    jobs_kind, env_var = FORMULA_MODELS[kind]
    directory = model_directory(jobs_kind, env_var, quiet)
    try:
        recognizer = load_formula_recognizer(directory)
    except (FileNotFoundError, OSError, ValueError) as err:
        if not quiet:
            st.error(f"There is no usable {kind} formula model: {err}. {MISSING_MODEL_HELP[kind]}")
        return None
    if quiet:
        return recognizer if recognizer.kind == kind else None
    if recognizer.kind != kind:
        st.warning(f"This model was trained on {recognizer.kind} formulas, not {kind} ones: expect poor answers.")
    return recognizer
