"""The live dashboard in a real headless Chromium, served by the running demo.

Needs Debian's ``chromium`` and ``chromium-driver`` (no browser is downloaded at test time).
With ``SURFACES_SCREENSHOT=path`` the test also keeps its screenshot there (how
``docs/img/ui.png`` is made).
"""

from __future__ import annotations

import io
import os
import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from .servers import demo

pytestmark = pytest.mark.e2e

CHROMEDRIVER = shutil.which("chromedriver")
CHROMIUM = shutil.which("chromium")


def _missing(reason: str) -> NoReturn:
    if os.environ.get("CI"):
        pytest.fail(f"{reason} (CI must install chromium and chromium-driver)")
    pytest.skip(reason)


@pytest.fixture
def dashboard() -> Iterator[str]:
    with demo(240) as (port, printed):
        # The demo prints the dashboard's address before anything else.
        assert printed[0] == f"Dashboard:    http://127.0.0.1:{port}/metrics/ui\n", printed
        yield printed[0].split()[-1]


@pytest.fixture
def browser() -> Iterator[Any]:
    if CHROMEDRIVER is None or CHROMIUM is None:
        _missing("chromium / chromium-driver are not installed")
    try:
        from selenium import webdriver
        from selenium.webdriver.chrome.service import Service
    except ImportError:
        _missing("selenium is not installed (the test extra)")

    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu",
                     "--disable-dev-shm-usage", "--window-size=1400,1100"):
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def wait_for(driver: Any, script: str, timeout: float = 60) -> Any:
    deadline = time.monotonic() + timeout
    while True:
        result = driver.execute_script(script)
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError(f"not reached: {script}")
        time.sleep(0.1)


CHARTS_WITH_DATA = """
return window.dashboard && window.dashboard.charts.length === 6 &&
  window.dashboard.charts.every(function (c) {
    return c.chart.data[0].length > 0 && c.chart.data.slice(1).some(function (s) {
      return s.some(function (v) { return v !== null && v !== undefined; });
    });
  });
"""


def test_dashboard_in_chromium(dashboard: str, browser: Any) -> None:
    from PIL import Image, ImageStat

    browser.get(dashboard)
    assert browser.title == "asgi-mcp-metrics: live"
    wait_for(browser, "return window.dashboard && window.dashboard.updates >= 3")
    wait_for(browser, CHARTS_WITH_DATA)
    # Under the demo client's load a number on the page changes within seconds.
    tools = browser.find_element("css selector", "#tools tbody")
    wait_for(browser, "return document.querySelectorAll('#tools tbody tr').length === 3")
    before = tools.text
    wait_for(browser, f"return document.querySelector('#tools tbody').innerText !== "
                      f"{before!r}", timeout=30)
    assert "search-index" in browser.find_element("css selector", "#backends").text
    scope = browser.find_element("css selector", "#scope").text
    assert scope.startswith("showing one worker (pid ")
    keep = os.environ.get("SURFACES_SCREENSHOT")
    if keep:
        wait_for(browser, "return window.dashboard.updates >= 40", timeout=120)
    png = browser.get_screenshot_as_png()

    # The time-range picker switches to history.
    from selenium.webdriver.support.ui import Select

    Select(browser.find_element("id", "range")).select_by_value("3600")
    wait_for(browser, "return document.body.getAttribute('data-range') === '3600'")
    status = browser.find_element("id", "status").text
    assert status == "history, 1 s points", status
    wait_for(browser, CHARTS_WITH_DATA)

    severe = [entry for entry in browser.get_log("browser") if entry["level"] == "SEVERE"]
    assert severe == []
    assert browser.execute_script("return window.dashboard.errors") == []

    image = Image.open(io.BytesIO(png)).convert("L")
    assert image.size[0] >= 1000
    assert ImageStat.Stat(image).stddev[0] > 10  # not a blank page
    if keep:
        Path(keep).write_bytes(png)
