"""Every page of the app, in a real browser: it runs to the end with no exception and no error.

The pages are discovered from the sidebar's navigation, so a page added to app.py is covered
without touching this test. Each page's screenshot is saved in screenshots/.
"""

import re

import pytest

from app_browser import SCREENSHOTS, assert_no_errors, open_page

pytestmark = pytest.mark.browser


def navigation_links(page) -> dict[str, str]:
    """Title -> URL of every page in the sidebar's navigation."""
    more = page.locator('[data-testid="stSidebarNavViewButton"]')
    if more.count() and "more" in more.first.inner_text().lower():
        more.first.click()
    links = page.locator('[data-testid="stSidebarNavLink"]')
    # a link's text is its icon's name, then its title
    return {link.inner_text().strip().splitlines()[-1]: link.get_attribute("href") for link in links.all()}


def test_every_page_runs_without_errors(page, app_url):
    open_page(page, app_url)
    links = navigation_links(page)
    assert "Home" in links and "Datasets" in links, links
    SCREENSHOTS.mkdir(exist_ok=True)
    page.set_viewport_size({"width": 1400, "height": 1800})  # the app scrolls inside: a tall window shows more
    failures = []
    for title, url in links.items():
        open_page(page, url)
        name = re.sub(r"[^a-z0-9]+", "-", title.lower()).strip("-")
        page.screenshot(path=SCREENSHOTS / f"{name}.png", full_page=True)
        try:
            assert_no_errors(page)
        except AssertionError as err:
            failures.append(f"{title}: {err}")
    assert not failures, "\n".join(failures)
