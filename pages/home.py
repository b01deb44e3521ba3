"""The home page: what mathocr does, and where each part of it lives."""

import streamlit as st

from mathocr import data

st.title("mathocr")
st.markdown(
    "Handwritten mathematics to LaTeX, with TensorFlow, and a look inside the models that do it. "
    "Pick a page on the left."
)

# What the data directory holds, so a first-time user knows whether the dataset pages will work
root = data.data_dir()
if data.crohme_available(root):
    st.success(f"CROHME found in `{root}`.")
else:
    st.info(
        f"CROHME is not in `{root}`: the recognizers work without it, the dataset pages need it. "
        + data.CROHME_HELP
    )
