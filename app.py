"""mathocr's app: the entry point that frames every page (``./run.sh`` starts it)."""

import streamlit as st

st.set_page_config(page_title="mathocr", page_icon=":material/functions:", layout="wide")

# Each page is a script in pages/; a page joins the app by being listed here.
PAGES = {
    "": [
        st.Page("pages/home.py", title="Home", icon=":material/home:", default=True),
    ],
    "Recognize": [
        st.Page("pages/formulas.py", title="Formulas", icon=":material/calculate:"),
        st.Page("pages/symbols.py", title="Symbols", icon=":material/draw:"),
    ],
    "Explore": [
        st.Page("pages/datasets.py", title="Datasets", icon=":material/dataset:"),
        st.Page("pages/formula_attention.py", title="Formula attention", icon=":material/center_focus_strong:"),
        st.Page("pages/symbol_activations.py", title="Symbol activations", icon=":material/visibility:"),
    ],
    "Train": [
        st.Page("pages/training.py", title="Training", icon=":material/model_training:"),
    ],
}

st.navigation({section: pages for section, pages in PAGES.items() if pages}).run()
