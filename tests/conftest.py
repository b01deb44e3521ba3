"""Fixtures shared by every test. The data they write lives in ``fixtures.py`` as plain functions.

* ``synthetic_data``: a data directory holding a small CROHME tree in the real layout (see
  ``fixtures.SYNTHETIC_EXPRESSIONS``: 5 readable training files in 3 sources, 2 unreadable ones,
  2 validation and 2 test files, each with symbol segmentation) and two small im2latex CSVs.
  ``MATHOCR_DATA`` points at it and ``MATHOCR_CACHE`` at an empty folder for the test's duration.
  Returns the data directory.
* ``empty_data``: the same with an empty data directory.
* ``real_data``: the real data directory from ``MATHOCR_DATA``; skips the test when it is unset.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from fixtures import write_synthetic_data


@pytest.fixture
def synthetic_data(tmp_path, monkeypatch) -> Path:
    root = write_synthetic_data(tmp_path / "data")
    monkeypatch.setenv("MATHOCR_DATA", str(root))
    monkeypatch.setenv("MATHOCR_CACHE", str(tmp_path / "cache"))
    return root


@pytest.fixture
def empty_data(tmp_path, monkeypatch) -> Path:
    root = tmp_path / "nodata"
    root.mkdir()
    monkeypatch.setenv("MATHOCR_DATA", str(root))
    monkeypatch.setenv("MATHOCR_CACHE", str(tmp_path / "cache"))
    return root


@pytest.fixture(scope="session")
def real_data() -> Path:
    root = os.environ.get("MATHOCR_DATA")
    if not root:
        pytest.skip("MATHOCR_DATA is not set: point it at the real data (e.g. ../shared/data) to run this test")
    return Path(root)
