"""The kiosk page in a real browser (issue 6): headless Chromium driven by selenium.

Open the page, tap an item, see "also bought" change, end the session, see it wiped.
Screenshots are kept as test artefacts: in the test's tmp dir (the path is printed) and in
`test-artifacts/kiosk/` (gitignored). Skipped, with the reason, where no Chromium and
ChromeDriver are installed: `scripts/check.sh` installs Debian's when it runs as root.
"""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable, Iterator
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from client_sdk import Recommender
from client_sdk.kiosk import KioskSession
from tests.client_sdk.kiosk_shop import write_kiosk_shop_bundle
from tests.client_sdk.shop import (
    BATTERIES,
    CAMERA,
    CAMERA_BAG,
    KETTLE,
    SHOP_IDS,
    TEAPOT_RED,
    FixedClock,
)

ROOT = Path(__file__).resolve().parent.parent
ARTIFACTS = ROOT / "test-artifacts" / "kiosk"
CHROME_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1280,960",
)
WAIT_SECONDS = 20


def _find(*names: str) -> str | None:
    return next((path for name in names if (path := shutil.which(name))), None)


CHROMIUM = _find("chromium", "chromium-browser", "google-chrome")
CHROMEDRIVER = _find("chromedriver")
webdriver = pytest.importorskip("selenium.webdriver", reason="selenium is not installed")

NO_BROWSER = (
    "no chromium / chromedriver on PATH (Debian: apt-get install chromium chromium-driver; "
    "scripts/check.sh does it when run as root)"
)
# CI runs as root, so check.sh has installed them there: a missing browser fails CI, not skips.
IN_CI = os.environ.get("CI", "").lower() == "true"
pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif((CHROMIUM is None or CHROMEDRIVER is None) and not IN_CI, reason=NO_BROWSER),
]


@pytest.fixture
def kiosk(tmp_path: Path, signing_key: Ed25519PrivateKey) -> Iterator[KioskSession]:
    bundle = write_kiosk_shop_bundle(tmp_path / "bundle", signing_key)
    clock = FixedClock(datetime(2026, 12, 10, 10, tzinfo=timezone.utc))
    with Recommender.ephemeral(
        bundle, trusted_keys=[signing_key.public_key()], clock=clock, watch_idle=False
    ) as session:
        yield session


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[Any]:
    from selenium.webdriver.chrome.options import Options
    from selenium.webdriver.chrome.service import Service

    if CHROMIUM is None or CHROMEDRIVER is None:
        pytest.fail(NO_BROWSER)
    options = Options()
    options.binary_location = CHROMIUM
    for flag in CHROME_FLAGS:
        options.add_argument(flag)
    options.add_argument(f"--user-data-dir={tmp_path / 'chromium-profile'}")
    driver = webdriver.Chrome(service=Service(executable_path=CHROMEDRIVER), options=options)
    try:
        yield driver
    finally:
        driver.quit()


def _ids(driver: Any, selector: str) -> list[str]:
    """The data-id of every match, read in one script: the page re-renders its lists on every
    answer, so element handles held across two calls could go stale."""
    script = "return Array.from(document.querySelectorAll(arguments[0])).map(e => e.dataset.id)"
    ids: list[str] = driver.execute_script(script, selector)
    return ids


def _text(driver: Any, selector: str) -> str:
    found = driver.execute_script(
        "const e = document.querySelector(arguments[0]); return e ? e.innerText : null", selector
    )
    return str(found)


def _wait(driver: Any, condition: Callable[[Any], bool], what: str) -> None:
    from selenium.webdriver.support.ui import WebDriverWait

    WebDriverWait(driver, WAIT_SECONDS).until(condition, message=f"waiting for {what}")


def test_tap_see_also_bought_change_end_session(
    kiosk: KioskSession, browser: Any, tmp_path: Path
) -> None:
    from selenium.webdriver.common.by import By

    from examples.kiosk.kiosk_app import create_kiosk_app
    from server.wsgi import start_service

    shots = tmp_path / "screenshots"
    shots.mkdir()

    def screenshot(name: str) -> None:
        path = shots / f"{name}.png"
        assert browser.save_screenshot(str(path))
        print(f"screenshot: {path}")

    def tap(item_id: str) -> None:
        browser.find_element(By.CSS_SELECTOR, f'#catalog li.item[data-id="{item_id}"]').click()

    with start_service(create_kiosk_app(kiosk), threads=2) as service:
        browser.get(service.url)
        _wait(browser, lambda d: len(_ids(d, "#catalog li.item")) == len(SHOP_IDS), "catalog")
        _wait(browser, lambda d: _ids(d, "#for-you li.card")[:1] == [CAMERA], "popular list")
        assert _text(browser, "#for-you li.card .why") == "popular this December"
        assert _ids(browser, "#also-bought li.card") == []
        screenshot("1-popular-now")

        tap(CAMERA)
        _wait(
            browser,
            lambda d: _ids(d, "#also-bought li.card") == [BATTERIES, CAMERA_BAG],
            "the list",
        )
        assert _text(browser, "#also-title") == "People who bought Cobalt Camera also bought"
        screenshot("2-tapped-camera")

        tap(KETTLE)
        _wait(browser, lambda d: _ids(d, "#also-bought li.card") == [TEAPOT_RED], "a new list")
        assert _text(browser, "#status") == "2 tap(s) this visit"
        assert len(json.loads(kiosk.export_data())["events"]) == 2
        screenshot("3-tapped-kettle")

        browser.find_element(By.ID, "end-session").click()
        session_shown = "return document.body.dataset.session"
        _wait(browser, lambda d: d.execute_script(session_shown) == "1", "the wiped session")
        assert _text(browser, "#status") == "New visit"
        assert _ids(browser, "#also-bought li.card") == []
        assert _ids(browser, "#for-you li.card")[:1] == [CAMERA]
        screenshot("4-session-ended")
    assert kiosk.generation == 1
    assert json.loads(kiosk.export_data())["events"] == []
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    for shot in shots.iterdir():
        shutil.copy(shot, ARTIFACTS / shot.name)
