"""A headless Chromium for tests that look at a page as a user does (Debian's `chromium` and
`chromium-driver`, driven by selenium): every request the page makes, failed ones and console errors
recorded, screenshots taken."""

from __future__ import annotations

import json
import shutil
from dataclasses import dataclass, field
from pathlib import Path

CHROMEDRIVER_PATHS = ("/usr/bin/chromedriver", "/usr/lib/chromium/chromedriver")


def chromedriver() -> str | None:
    found = shutil.which("chromedriver")
    return found or next((p for p in CHROMEDRIVER_PATHS if Path(p).is_file()), None)


@dataclass
class PageLoad:
    requests: list[str] = field(default_factory=list)  # every URL requested, the page itself first
    failed: list[str] = field(default_factory=list)  # requests that failed or were blocked, with the reason
    console_errors: list[str] = field(default_factory=list)


def open_page(path: Path, width: int = 1280, height: int = 900):
    """(driver, PageLoad) with `path` loaded; the caller quits the driver."""
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    options = webdriver.ChromeOptions()
    for argument in ("--headless=new", "--no-sandbox", "--disable-gpu", "--disable-dev-shm-usage",
                     f"--window-size={width},{height}", "--disable-background-networking"):  # fmt: skip
        options.add_argument(argument)
    options.set_capability("goog:loggingPrefs", {"performance": "ALL", "browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(chromedriver()))
    driver.get(Path(path).resolve().as_uri())
    load = PageLoad()
    for entry in driver.get_log("performance"):
        message = json.loads(entry["message"])["message"]
        params = message.get("params", {})
        if message["method"] == "Network.requestWillBeSent":
            load.requests.append(params["request"]["url"])
        elif message["method"] == "Network.loadingFailed":
            load.failed.append(f"{params.get('errorText')} {params.get('blockedReason') or ''}".strip())
    load.console_errors = [e["message"] for e in driver.get_log("browser") if e["level"] == "SEVERE"]
    return driver, load
