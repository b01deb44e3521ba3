"""Inside the symbol network: each convolution's feature maps, and where the evidence lies (Grad-CAM)."""

import matplotlib.pyplot as plt
import numpy as np
import streamlit as st

from mathocr import data
from mathocr.symbol_explain import feature_maps, grad_cam
from mathocr.symbol_model import conv_layer_names
from mathocr.symbol_plots import feature_map_figure, grad_cam_figure
from mathocr.symbols import ModelMissing, SymbolRecognizer, display_latex
from pages.common import ink_input, model_directory

MODEL_ENV = "MATHOCR_SYMBOL_MODEL"


@st.cache_resource(show_spinner="Loading the symbol model...")
def load_recognizer(directory: str) -> SymbolRecognizer:
    return SymbolRecognizer(directory)


@st.cache_data(show_spinner="Rendering CROHME's validation symbols (once)...")
def dataset_symbols(size: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    from mathocr.symbol_data import load_crohme_symbols

    symbols = load_crohme_symbols("validation", size)
    return symbols.images, symbols.labels, symbols.context


def show(fig) -> None:
    st.pyplot(fig, clear_figure=True)
    plt.close(fig)


st.title("Symbol activations")
st.caption("What each convolution of the symbol network responds to, and which part of the input "
           "made it choose its answer.")

try:
    recognizer = load_recognizer(model_directory("symbols", MODEL_ENV))
except ModelMissing as err:
    st.error(str(err))
    st.stop()
model = recognizer.model

# The symbol: drawn, uploaded, or one of CROHME's validation symbols
source = st.radio("Symbol", ["Draw or upload", "From the dataset"], horizontal=True, key="act_source")
image, truth, context = None, None, None  # context: the symbol's place in its expression, if known
if source == "Draw or upload":
    ink = ink_input("activations", height=220, width=220, stroke_width=9)
    if ink.error:
        st.error(f"That file could not be used. {ink.error}")
    elif ink.strokes:
        image = recognizer.image_from_strokes(ink.strokes)
    elif ink.picture is not None:
        try:
            image = recognizer.image_from_picture(ink.picture)
        except ValueError as err:
            st.warning(f"No symbol found in the picture: {err}.")
elif not data.crohme_available():
    st.info(f"Dataset symbols need CROHME. {data.CROHME_HELP}")
else:
    images, labels, contexts = dataset_symbols(recognizer.size)
    classes = sorted(set(labels.tolist()))
    pick_col, index_col = st.columns(2)
    label = pick_col.selectbox("Class", classes, index=classes.index("x") if "x" in classes else 0)
    rows = np.flatnonzero(labels == label)
    which = index_col.number_input(f"Example (of {len(rows)})", 1, len(rows), 1)
    image, truth = images[rows[which - 1]].astype(np.float32) / 255.0, label
    context = contexts[rows[which - 1]]

if image is None:
    st.info("Draw a symbol, upload a picture, or pick one from the dataset to look inside the network.")
    st.stop()

# The prediction, beside the truth when there is one
candidates = recognizer.top_k(image, k=5, context=context)
cols = st.columns([1, 3])
cols[0].image(1 - image, caption="model input", width=128, clamp=True)
with cols[1]:
    st.markdown("**Prediction:** " + ", ".join(f"`{c.label}` {c.probability:.1%}" for c in candidates))
    st.latex(display_latex(candidates[0].label))
    if truth is not None:
        st.markdown(f"**Truth:** `{truth}`" + (" ✓" if truth == candidates[0].label else " ✗"))

# Feature maps, for the convolutions chosen
st.header("Feature maps")
layers = conv_layer_names(model)
chosen = st.multiselect("Convolution layers", layers, default=layers[:2], key="act_layers")
for name in chosen:
    maps = feature_maps(model, image, name)
    show(feature_map_figure(maps, title=f"{name}: {maps.shape[-1]} maps of {maps.shape[0]} x {maps.shape[1]}"))

# Grad-CAM for the predicted class (or another one)
st.header("Class activation (Grad-CAM)")
st.caption("Red: the regions whose features raise the chosen class's score the most.")
class_col, layer_col = st.columns(2)
options = [c.label for c in candidates]
target = class_col.selectbox("Class", options, index=0, key="act_class")
target_layer = layer_col.selectbox("Layer", layers, index=len(layers) - 1, key="act_cam_layer")
heatmap = grad_cam(model, image, recognizer.index[target], target_layer, context=context)
show(grad_cam_figure(image, heatmap, title=f"evidence for {target} in {target_layer}"))
