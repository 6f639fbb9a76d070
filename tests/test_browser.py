"""Reports in a real browser: headless Chromium (Debian's ``chromium`` and
``chromium-driver``, installed by ``make browser``) opens the committed
example report and a freshly built one, served from 127.0.0.1, and checks
what a reader would see: no console errors, every image loaded, nothing wider
than a 1400-pixel window. Full-page screenshots are kept under
``tests/artifacts/browser/`` (git-ignored) for a human to look at.
"""

from __future__ import annotations

import functools
import shutil
import tempfile
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

import sim
from sim.report import build_report

from conftest import crash_scenario

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "reports" / "example"
ARTIFACTS = ROOT / "tests" / "artifacts" / "browser"
CHROMIUM = Path("/usr/bin/chromium")
CHROMEDRIVER = Path("/usr/bin/chromedriver")
WIDTH, HEIGHT = 1400, 900
# Loopback only, no network features, a fresh profile: nothing leaves the machine.
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
    f"--window-size={WIDTH},{HEIGHT}",
)


@dataclass(frozen=True)
class Seen:
    """What the browser reported about one page."""

    errors: list[str]
    broken_images: list[str]
    images: int
    page_width: int
    window_width: int
    wide_boxes: int  # tables wider than their box, scrolling inside it


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass  # no request log in the test output


@pytest.fixture(scope="module")
def browser() -> Iterator[Any]:
    if not (CHROMIUM.exists() and CHROMEDRIVER.exists()):
        pytest.fail(
            f"headless Chromium is needed for the browser test: {CHROMIUM} or {CHROMEDRIVER} is missing; "
            "run `make browser` (apt-get install chromium chromium-driver)"
        )
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service

    profile = tempfile.mkdtemp(prefix="sagasim-chromium-")
    options = webdriver.ChromeOptions()
    options.binary_location = str(CHROMIUM)
    for flag in (*FLAGS, f"--user-data-dir={profile}"):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    # A driver path given: Selenium Manager has nothing to look up or download.
    driver = webdriver.Chrome(service=Service(executable_path=str(CHROMEDRIVER)), options=options)
    try:
        yield driver
    finally:
        driver.quit()
        shutil.rmtree(profile, ignore_errors=True)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, Path]]:
    """A web server on 127.0.0.1 (an ephemeral port) serving a folder that holds both reports."""
    root = tmp_path_factory.mktemp("site")
    shutil.copytree(EXAMPLE, root / "example")
    # A fresh report: two protocols, a coordinator crash (rejected arrivals), two seeds.
    result = sim.run(crash_scenario(), protocol=["orchestration", "2pc"], seed=[1, 2])
    build_report(result.save(tmp_path_factory.mktemp("result") / "fresh"), root / "fresh")
    handler = functools.partial(_Quiet, directory=str(root))
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", root
    finally:
        server.shutdown()
        server.server_close()


def look(driver: Any, url: str, screenshot: Path) -> Seen:
    """Open ``url`` at 1400 pixels, wait for its images, read what the page says about itself."""
    driver.set_window_size(WIDTH, HEIGHT)
    driver.get_log("browser")  # nothing from the page before
    driver.get(url)
    # Images are data URIs, decoded asynchronously: wait until every one is decoded (or failed).
    broken = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        Promise.all(Array.from(document.images).map(img => img.decode().then(() => null, () => img.alt)))
            .then(() => done(Array.from(document.images)
                .filter(img => !(img.complete && img.naturalWidth > 0)).map(img => img.alt || img.src.slice(0, 40))));
        """
    )
    sizes = driver.execute_script(
        """
        const boxes = Array.from(document.querySelectorAll('.table-box'));
        return [document.documentElement.scrollWidth, document.documentElement.clientWidth, document.images.length,
                boxes.filter(b => b.scrollWidth > b.clientWidth).length];
        """
    )
    errors = [entry["message"] for entry in driver.get_log("browser") if entry["level"] == "SEVERE"]
    screenshot.parent.mkdir(parents=True, exist_ok=True)
    height = int(driver.execute_script("return document.documentElement.scrollHeight"))
    driver.set_window_size(WIDTH, min(max(height, HEIGHT), 16000))  # the whole page in one picture
    driver.save_screenshot(str(screenshot))
    driver.set_window_size(WIDTH, HEIGHT)
    return Seen(errors, list(broken), int(sizes[2]), int(sizes[0]), int(sizes[1]), int(sizes[3]))


@pytest.mark.parametrize("report", ["example", "fresh"])
def test_report_renders_cleanly_in_chromium(browser: Any, served: tuple[str, Path], report: str) -> None:
    base, root = served
    seen = look(browser, f"{base}/{report}/index.html", ARTIFACTS / f"{report}.png")
    assert seen.errors == []
    assert seen.broken_images == []
    assert seen.images == len(list((root / report).glob("*.png"))) > 5
    assert seen.page_width <= seen.window_width <= WIDTH, "the page scrolls sideways at 1400 px"
    assert (ARTIFACTS / f"{report}.png").stat().st_size > 10_000


def test_the_browser_check_catches_a_broken_page(browser: Any, served: tuple[str, Path]) -> None:
    """The checks above can fail: a missing image, a script error and a page wider than the window are seen."""
    base, root = served
    broken = root / "broken"
    broken.mkdir(exist_ok=True)
    (broken / "index.html").write_text(
        "<!DOCTYPE html><html><body><img src='missing.png' alt='gone'>"
        "<div style='width: 2000px'>wide</div><script>undefined_function();</script></body></html>",
        encoding="utf-8",
    )
    seen = look(browser, f"{base}/broken/index.html", ARTIFACTS / "broken.png")
    assert seen.broken_images == ["gone"]
    assert any("undefined_function" in e for e in seen.errors)
    assert any("missing.png" in e for e in seen.errors)  # the 404 of the image
    assert seen.page_width > WIDTH


def test_a_wide_table_scrolls_in_its_box_not_the_page(browser: Any, served: tuple[str, Path]) -> None:
    base, root = served
    page = root / "fresh" / "index.html"
    wide = root / "wide"
    wide.mkdir(exist_ok=True)
    # The fresh report with forty extra columns in its summary table.
    extra = "".join(f"<th>an extra column {i}</th>" for i in range(40))
    (wide / "index.html").write_text(page.read_text(encoding="utf-8").replace("<th>", extra + "<th>", 1))
    seen = look(browser, f"{base}/wide/index.html", ARTIFACTS / "wide.png")
    assert seen.wide_boxes >= 1
    assert seen.page_width <= seen.window_width
