"""Headless Chromium for the browser tests: Debian's ``chromium`` and ``chromium-driver``
(installed by ``.ci/run``), driven by Selenium, with every request that would leave the host
refused, and the pages' requests recorded (:func:`page_requests`).
Tests skip when Chromium is missing, except under CI=true, where they fail.
Screenshots go to ``test-artifacts/`` at the repository root (or ``$TUNER_TEST_ARTIFACTS``)."""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest

CHROMIUM = os.environ.get("TUNER_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("TUNER_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")
REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("TUNER_TEST_ARTIFACTS", REPO / "test-artifacts"))

FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-dev-shm-usage",
    "--window-size=1400,1000",
    # No request leaves the host: every name but the loopback fails to resolve, and anything
    # else goes to a proxy that is not there (the loopback is never proxied).
    "--host-resolver-rules=MAP * ~NOTFOUND, EXCLUDE 127.0.0.1, EXCLUDE localhost",
    "--proxy-server=http://127.0.0.1:9",
)


def require_chromium() -> None:
    missing = [p for p in (CHROMIUM, CHROMEDRIVER) if not shutil.which(p)]
    if not missing:
        return
    msg = f"{', '.join(missing)} missing: apt-get install chromium chromium-driver"
    if os.environ.get("CI", "").lower() in ("1", "true", "yes"):
        pytest.fail(msg)
    pytest.skip(msg)


@contextmanager
def chromium() -> Iterator[Any]:
    """A headless Chromium (Selenium WebDriver) with a fresh profile, offline but for the
    loopback, recording the pages' network requests (see :func:`page_requests`)."""
    require_chromium()
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="chromium-profile-")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    options.set_capability("goog:loggingPrefs", {"performance": "ALL"})
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    try:
        driver.set_page_load_timeout(60)
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


def screenshot(driver: Any, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"{name}.png"
    driver.save_screenshot(str(path))
    return path


def wait_for(driver: Any, what: str, predicate: Callable[[Any], Any], timeout: float = 60) -> Any:
    """Poll ``predicate(driver)`` until it is truthy; fail with a screenshot otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate(driver)
        if value:
            return value
        if time.monotonic() > deadline:
            shot = screenshot(driver, "timeout-" + "".join(c if c.isalnum() else "-" for c in what))
            raise AssertionError(f"timed out waiting for {what} (screenshot: {shot})")
        time.sleep(0.25)


def page_requests(driver: Any) -> list[str]:
    """Network URLs the pages asked the network for since the last call (from the DevTools
    log; the browser's own background traffic is not in it). A request that the page's
    Content-Security-Policy blocked was never sent and is left out; a request that failed
    because the network is blocked was sent, and is in."""
    sent: dict[str, str] = {}
    blocked: set[str] = set()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            sent[params["requestId"]] = params["request"]["url"]
        elif message["method"] == "Network.loadingFailed" and params.get("blockedReason"):
            blocked.add(params["requestId"])
    return [
        url for rid, url in sent.items()
        if rid not in blocked and url.split(":", 1)[0] in ("http", "https", "ws", "wss")
    ]
