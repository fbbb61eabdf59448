"""Headless Chromium through Selenium, from the Debian packages `chromium` and `chromium-driver` (no
driver is downloaded): for the tests that open pages and for the README's screenshots."""

from __future__ import annotations

import shutil


def missing() -> str | None:
    """Why a browser cannot be started here, or None."""
    if not (shutil.which("chromium") or shutil.which("chromium-browser")) or not shutil.which("chromedriver"):
        return "Chromium and its driver are not installed (Debian packages `chromium`, `chromium-driver`)"
    try:
        import selenium  # noqa: F401
    except ImportError:
        return "selenium is not installed"
    return None


def chromium(window: tuple[int, int] | None = None):
    """A headless Chromium driven by Selenium (`missing()` must be None)."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    options = webdriver.ChromeOptions()
    options.binary_location = shutil.which("chromium") or shutil.which("chromium-browser")
    for flag in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage"):
        options.add_argument(flag)
    if window:
        options.add_argument(f"--window-size={window[0]},{window[1]}")
    return webdriver.Chrome(service=Service(shutil.which("chromedriver")), options=options)


def until(condition, seconds: float = 180.0, every: float = 0.05, what: str = "the page"):
    """Call `condition` every `every` seconds until it returns something true, and return that;
    TimeoutError after `seconds`."""
    import time
    deadline = time.time() + seconds
    while time.time() < deadline:
        got = condition()
        if got:
            return got
        time.sleep(every)
    raise TimeoutError(f"timed out after {seconds:g} s waiting for {what}")


def fill(browser, values: dict) -> None:
    """Type each value into the page's input of that id (its earlier text cleared)."""
    for name, value in values.items():
        box = browser.find_element("id", name)
        box.clear()
        box.send_keys(str(value))


def wait_for(url: str, seconds: float = 120.0) -> bool:
    """Poll `url` until it answers (a page whose process is still starting); False after `seconds`."""
    import urllib.request

    def answers() -> bool:
        try:
            urllib.request.urlopen(url, timeout=1).close()
            return True
        except OSError:
            return False
    try:
        return until(answers, seconds, every=0.1, what=url)
    except TimeoutError:
        return False
