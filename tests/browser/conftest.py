"""Fixtures for tests that drive the real app in a real browser (Debian's chromium, Playwright's
sync API; never ``playwright install``). Every test here is skipped when /usr/bin/chromium is missing.

* ``app_url`` (session): the app, started once with ``.venv/bin/python -m streamlit run app.py``
  on a free port, answering at the returned URL (``http://127.0.0.1:PORT``). Its data is
  ``MATHOCR_DATA`` when the environment sets it, else a synthetic dataset written here
  (``fixtures.write_synthetic_data``; ``app_data`` gives that directory). The server's output
  is in ``<tmp>/streamlit.log``; the server is stopped when the session ends. Its root page is
  opened once before any test, so deep links (``/datasets``) get app.py's navigation. Its runs
  directory (``MATHOCR_RUNS``) is an empty temporary folder.
* ``synthetic_app_url`` (session): another app, always on the synthetic dataset (quick training runs).
* ``browser`` (session): a headless chromium with the flags that work on these machines.
* ``page`` (function): a fresh tab (1400 x 1000) in its own context, closed after the test.

Helpers to import in a test (``from app_browser import ...``, module ``app_browser.py`` here):

* ``open_page(page, app_url + "/datasets")`` loads a page and waits until the app has finished
  running (``wait_for_app(page)`` waits for that after a click or a drawing);
* ``assert_no_errors(page)``: no exception element and no ``st.error`` alert on the page;
* ``SCREENSHOTS``: the git-ignored folder ``screenshots/`` at the repository root.

A test that draws on a canvas: ``page.locator("canvas.upper-canvas")`` reaches the drawable
canvas (it sits in an open shadow root); draw with ``page.mouse.move/down/up``, then call
``wait_for_app(page)`` for the app's answer.
"""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from contextlib import contextmanager
from pathlib import Path

import pytest

from app_browser import CHROMIUM, CHROMIUM_ARGS, REPO, open_page

START_TIMEOUT_S = 90


def pytest_collection_modifyitems(items):
    if Path(CHROMIUM).exists():
        return
    skip = pytest.mark.skip(reason=f"{CHROMIUM} is missing: install Debian's chromium (./test.sh does) "
                                   "to run the browser tests")
    for item in items:
        if item.path.is_relative_to(Path(__file__).parent):
            item.add_marker(skip)


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return response.status == 200
    except OSError:
        return False


@pytest.fixture(scope="session")
def app_data(tmp_path_factory) -> Path:
    """The data directory the app runs on: MATHOCR_DATA, else a synthetic dataset."""
    if os.environ.get("MATHOCR_DATA"):
        return Path(os.environ["MATHOCR_DATA"])
    from fixtures import write_synthetic_data

    return write_synthetic_data(tmp_path_factory.mktemp("app-data"))


@contextmanager
def serve_app(browser, data_dir: Path, tmp_path_factory, cache_dir: Path | None = None):
    """Run the real app on a free port, with its own empty runs directory, until the block ends."""
    # an empty runs directory: the Training page shows no runs of this machine's, and a test's runs land there
    env = dict(os.environ, MATHOCR_DATA=str(data_dir), MATHOCR_RUNS=str(tmp_path_factory.mktemp("app-runs")),
               TF_CPP_MIN_LOG_LEVEL="2")
    if cache_dir is not None:
        env["MATHOCR_CACHE"] = str(cache_dir)
    python = REPO / ".venv" / "bin" / "python"
    port = _free_port()
    log_path = tmp_path_factory.mktemp("app-log") / "streamlit.log"
    command = [
        str(python if python.exists() else sys.executable), "-m", "streamlit", "run", "app.py",
        "--server.headless", "true", "--server.port", str(port), "--server.address", "127.0.0.1",
        "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none",
    ]
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while not _answers(f"{url}/_stcore/health"):
            if server.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError(f"the app did not start ({' '.join(command)}):\n{log_path.read_text()[-3000:]}")
            time.sleep(0.25)
        # Until app.py has run once, Streamlit treats pages/ as a legacy (v1) pages folder and
        # serves a deep link such as /datasets without app.py's navigation; open / first.
        warm_up = browser.new_page()
        open_page(warm_up, url)
        warm_up.close()
        yield url
    finally:
        server.terminate()
        try:
            server.wait(timeout=10)
        except subprocess.TimeoutExpired:
            server.kill()


@pytest.fixture(scope="session")
def app_url(app_data, browser, tmp_path_factory):
    # the synthetic data's index must not land in .cache/
    cache = None if os.environ.get("MATHOCR_DATA") else tmp_path_factory.mktemp("app-cache")
    with serve_app(browser, app_data, tmp_path_factory, cache) as url:
        yield url


@pytest.fixture(scope="session")
def synthetic_app_url(browser, tmp_path_factory):
    """A second app, always on the synthetic dataset (for training runs that must be quick even
    where MATHOCR_DATA is the real data)."""
    from fixtures import write_synthetic_data

    data = write_synthetic_data(tmp_path_factory.mktemp("synthetic-app-data"))
    with serve_app(browser, data, tmp_path_factory, tmp_path_factory.mktemp("synthetic-app-cache")) as url:
        yield url


@pytest.fixture(scope="session")
def browser():
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS, headless=True)
        yield browser
        browser.close()


@pytest.fixture
def page(browser):
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    page = context.new_page()
    yield page
    context.close()
