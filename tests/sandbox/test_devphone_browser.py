"""The dev phone in a real browser: headless Chromium (Debian packages) driven by Selenium.

The whole local loop from the page, no curl: text the app as the phone and see the bot's reply
with its receipts arrive live, start a verification, read the code from the page, check it,
drop receipts with a fault switch. ``./test.sh tests/sandbox/test_devphone_browser.py`` installs
and finds Chromium (scripts/services/browser.sh). Set DEVPHONE_SCREENSHOT=docs/img/dev-phone.png
to refresh the screenshot in the docs.
"""

from __future__ import annotations

import os
import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.fixtures.local_run import local_run

pytestmark = [pytest.mark.browser, pytest.mark.slow]

WAIT = 45.0  # seconds: generous, the machine may be loaded; every wait ends as soon as it holds
PHONE = {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}  # a phone's screen (CSS pixels)
LAPTOP = {"width": 1100, "height": 760, "deviceScaleFactor": 1, "mobile": False}  # for the docs' screenshot


@pytest.fixture
def browser() -> Iterator[object]:
    chromium, driver_path = os.environ.get("CHROMIUM_BIN"), os.environ.get("CHROMEDRIVER_BIN")
    if not chromium or not driver_path:
        pytest.skip("CHROMIUM_BIN/CHROMEDRIVER_BIN unset: run through ./test.sh, which installs headless Chromium")
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for argument in (
        "--headless=new",
        "--no-sandbox",  # root in a container has no user namespace for Chromium's sandbox
        "--disable-dev-shm-usage",
        "--disable-gpu",
        "--no-proxy-server",
        "--hide-scrollbars",  # a clean screenshot
        "--window-size=1100,900",
    ):
        options.add_argument(argument)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=driver_path))
    driver.set_page_load_timeout(WAIT)
    try:
        yield driver
    finally:
        driver.quit()


def _until(driver, condition, message):
    from selenium.webdriver.support.ui import WebDriverWait

    return WebDriverWait(driver, WAIT, poll_frequency=0.2).until(condition, message)


def _text(driver, css: str) -> str:
    """The visible text of every element matching ``css``, read in one step: the page's polling
    replaces its live parts, so a found element may be gone by the time it is read."""
    return driver.execute_script(
        "return [...document.querySelectorAll(arguments[0])].map(e => e.innerText).join('\\n')", css
    )


def test_the_whole_local_loop_from_the_dev_phone_page(browser, tmp_path: Path) -> None:
    driver = browser
    # Emulate a phone: its viewport, honouring the page's <meta name="viewport">.
    driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", PHONE)
    with local_run(tmp_path) as run:
        driver.get(run.phone_url)
        assert driver.title == "Dev phone +14155550123"

        # Text the app as the phone; the keyword bot's answer appears with its receipts.
        driver.find_element("id", "text").send_keys("hours")
        driver.find_element("css selector", "#phone-send button[type=submit]").click()
        _until(
            driver,
            lambda d: "We are open Monday to Friday" in _text(d, '[data-direction="to_phone"] .text'),
            "the bot's reply never appeared",
        )
        assert "hours" in _text(driver, '[data-direction="from_phone"] .text')
        # The newest message is announced to screen readers (a polite live region), once.
        _until(driver, lambda d: "We are open" in _text(d, "#announce"), "the reply was not announced")
        _until(
            driver,
            lambda d: "delivered ✓" in _text(d, '[data-direction="to_phone"] .state'),
            "the reply's delivery receipt never showed",
        )

        # Start a verification as the app, read the code on the phone, check it.
        driver.find_element("css selector", "#verify-start button[type=submit]").click()
        code = _until(
            driver,
            lambda d: (_text(d, ".codes .code").split("\n") or [""])[0],
            "no code arrived in the verify inbox",
        )
        assert re.fullmatch(r"\d{4,10}", code), code
        driver.find_element("id", "code").send_keys(code)
        driver.find_element("css selector", "#verify-check button[type=submit]").click()
        _until(
            driver,
            lambda d: '"status": "verified"' in _text(d, '[data-action="verify-check"]'),
            "the check did not verify",
        )
        assert "HTTP 200" in _text(driver, '[data-action="verify-check"]')

        # Drop receipts with the fault switch, send as the app: accepted, and no receipt comes.
        driver.find_element("id", "fault-drop_receipts").click()
        driver.find_element("css selector", "#faults button[type=submit]").click()
        _until(driver, lambda d: "drop_receipts" in d.find_element("id", "notice").text, "faults not applied")
        app_text = driver.find_element("id", "app-text")
        app_text.clear()
        app_text.send_keys("Receipts lost")
        driver.find_element("css selector", "#app-send button[type=submit]").click()
        def dropped_and_shown(d):
            last = _text(d, '[data-direction="to_phone"]:last-child')
            return "drop_receipts" in _text(d, '[data-region="log"] td') and "Receipts lost" in last and last

        last = _until(driver, dropped_and_shown, "the send with dropped receipts did not show")
        assert "no receipt yet" in last

        # Fits a phone: nothing wider than the screen (the request log now holds a long
        # /v2/verify/<id> path); every field reachable by its label.
        widths = driver.execute_script(
            "return {scroll: document.documentElement.scrollWidth, client: document.documentElement.clientWidth,"
            " right: Math.max(...[...document.querySelectorAll('section')].map(e => e.getBoundingClientRect().right)),"
            " inner: window.innerWidth}"
        )
        assert widths["client"] == PHONE["width"], widths
        assert widths["scroll"] <= widths["client"] and widths["right"] <= widths["inner"], widths
        unlabelled = driver.execute_script(
            "return [...document.querySelectorAll('input:not([type=hidden]),textarea')]"
            ".filter(e => e.labels.length === 0).map(e => e.name)"
        )
        assert unlabelled == []

        # The screenshot in the docs: a laptop-sized window shows both columns.
        driver.execute_cdp_cmd("Emulation.setDeviceMetricsOverride", LAPTOP)
        driver.execute_script("window.scrollTo(0, 0)")
        shot = tmp_path / "dev-phone.png"
        assert driver.save_screenshot(str(shot))
        assert shot.stat().st_size > 1000
        if os.environ.get("DEVPHONE_SCREENSHOT"):
            shutil.copyfile(shot, os.environ["DEVPHONE_SCREENSHOT"])
