"""mathocr: handwritten (and typeset) mathematics to LaTeX, with TensorFlow.

The library never imports Streamlit; ``app.py`` and ``pages/`` arrange widgets around it.
"""

__version__ = "0.1.0"
