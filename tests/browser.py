"""Open a page in Debian's headless Chromium and report what a person's browser would see.

Playwright drives the system browser (/usr/bin/chromium, installed by scripts/ensure_chromium.sh)
through the DevTools protocol; no browser is ever downloaded. A report lists console errors,
uncaught page errors, every request the page made (and those that left the machine), and the
on-screen size of the elements matching the selectors asked for.

    report = open_page(path.as_uri(), screenshot=Path("target/x.png"), selectors=["svg.chart"])
    assert not report.console_errors and not report.external_requests
    assert all(w > 0 and h > 0 for w, h in report.elements["svg.chart"])

Several pages in one browser (one launch, about a second, instead of one per page):

    with ChromiumSession() as browser:
        for url in urls:
            report = browser.open_page(url)
"""

from __future__ import annotations

import os
import pathlib
import shutil
from collections.abc import Sequence
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any
from urllib.parse import urlsplit

CHROMIUM = pathlib.Path(os.environ.get("CHROMIUM", "/usr/bin/chromium"))
# Root in a container needs --no-sandbox; the machine is offline, so everything Chromium would
# fetch by itself (updates, sync, safe browsing lists) is switched off rather than left to fail.
CHROMIUM_ARGS = (
    "--no-sandbox",
    "--headless",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-dev-shm-usage",
)
LOCAL_SCHEMES = frozenset({"file", "data", "blob", "about"})
LOCAL_HOSTS = frozenset({"127.0.0.1", "localhost", "::1"})
DEFAULT_VIEWPORT = (1280, 900)
NAVIGATION_TIMEOUT_MS = 30_000

# Chromium reports every element's box; the script returns [width, height] per match.
_SIZES_JS = "els => els.map(e => { const r = e.getBoundingClientRect(); return [r.width, r.height]; })"


@dataclass
class PageReport:
    """What one page did while it loaded and settled."""

    url: str
    console_errors: list[str] = field(default_factory=list)  # console messages of type "error"
    page_errors: list[str] = field(default_factory=list)  # uncaught JavaScript exceptions
    requests: list[str] = field(default_factory=list)  # every URL requested, the page itself first
    external_requests: list[str] = field(default_factory=list)  # requests that would leave the machine
    failed_requests: list[str] = field(default_factory=list)  # "URL: reason" of requests that failed
    elements: dict[str, list[tuple[float, float]]] = field(default_factory=dict)  # selector -> sizes
    screenshot: pathlib.Path | None = None

    @property
    def problems(self) -> list[str]:
        """Every error, failed or external request, one line each: empty for a clean page."""
        return [
            *(f"console error: {m}" for m in self.console_errors),
            *(f"page error: {m}" for m in self.page_errors),
            *(f"failed request: {m}" for m in self.failed_requests),
            *(f"external request: {u}" for u in self.external_requests),
        ]


def chromium_available() -> bool:
    """True when the system Chromium and the Playwright package are both installed."""
    if not (CHROMIUM.is_file() and os.access(CHROMIUM, os.X_OK)):
        return False
    try:
        import playwright.sync_api  # noqa: F401, PLC0415 (optional until the browser tests run)
    except ImportError:
        return False
    return True


def is_external(url: str) -> bool:
    """True for a URL that is not the page's own files: not file:, data:, blob:, about: or loopback."""
    parts = urlsplit(url)
    if parts.scheme in LOCAL_SCHEMES:
        return False
    return (parts.hostname or "") not in LOCAL_HOSTS


class ChromiumSession:
    """One headless Chromium for several pages; each page gets a fresh context (no shared state)."""

    def __init__(self, viewport: tuple[int, int] = DEFAULT_VIEWPORT) -> None:
        self.viewport = viewport
        self._playwright: Any = None
        self._browser: Any = None

    def __enter__(self) -> ChromiumSession:
        if not chromium_available():
            raise RuntimeError(
                f"headless browser unavailable: need {CHROMIUM} (bash scripts/ensure_chromium.sh) "
                "and the playwright package (pip install -r requirements.txt)"
            )
        from playwright.sync_api import sync_playwright  # noqa: PLC0415 (see chromium_available)

        self._playwright = sync_playwright().start()
        try:
            # launch() gives every browser a fresh temporary profile (user-data-dir) and removes it.
            self._browser = self._playwright.chromium.launch(
                executable_path=str(CHROMIUM), headless=True, args=list(CHROMIUM_ARGS)
            )
        except Exception:
            self._playwright.stop()
            raise
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        try:
            if self._browser is not None:
                self._browser.close()
        finally:
            self._playwright.stop()
            self._browser = self._playwright = None

    def open_page(
        self,
        url: str,
        screenshot: pathlib.Path | None = None,
        wait_ms: int = 500,
        selectors: Sequence[str] = (),
        full_page: bool = True,
    ) -> PageReport:
        """Load url, let it settle for wait_ms, measure selectors, optionally save a PNG screenshot.

        External requests are recorded and then aborted, so an offline machine cannot stall the
        load; an aborted request also shows as a failed request and usually a console error.
        A page that cannot be loaded at all (no such file, server down) raises playwright's Error.
        """
        if self._browser is None:
            raise RuntimeError("ChromiumSession.open_page outside its `with` block")
        report = PageReport(url=url)
        context = self._browser.new_context(
            viewport={"width": self.viewport[0], "height": self.viewport[1]},
            service_workers="block",
        )
        try:
            context.route(is_external, lambda route: route.abort())
            page = context.new_page()
            page.on("console", lambda msg: _on_console(report, msg))
            page.on("pageerror", lambda err: report.page_errors.append(str(err)))
            context.on("request", lambda req: _on_request(report, req.url))
            context.on("requestfailed", lambda req: _on_failed(report, req))
            page.on("websocket", lambda ws: _on_request(report, ws.url))
            page.goto(url, wait_until="load", timeout=NAVIGATION_TIMEOUT_MS)
            page.wait_for_timeout(wait_ms)
            for selector in selectors:
                sizes = page.eval_on_selector_all(selector, _SIZES_JS)
                report.elements[selector] = [(float(w), float(h)) for w, h in sizes]
            if screenshot is not None:
                screenshot.parent.mkdir(parents=True, exist_ok=True)
                page.screenshot(path=str(screenshot), full_page=full_page)
                report.screenshot = screenshot
        finally:
            context.close()
        return report


def open_page(
    url: str,
    screenshot: pathlib.Path | None = None,
    wait_ms: int = 500,
    selectors: Sequence[str] = (),
    full_page: bool = True,
) -> PageReport:
    """Open one page in a browser of its own; see ChromiumSession.open_page."""
    with ChromiumSession() as browser:
        return browser.open_page(url, screenshot, wait_ms, selectors, full_page)


def copy_screenshot(report: PageReport, folder: pathlib.Path) -> pathlib.Path | None:
    """Copy the report's screenshot into folder (say, target/...) for a person to look at."""
    if report.screenshot is None:
        return None
    folder.mkdir(parents=True, exist_ok=True)
    return pathlib.Path(shutil.copy2(report.screenshot, folder / report.screenshot.name))


def _on_console(report: PageReport, msg: Any) -> None:
    if msg.type == "error":
        where = msg.location.get("url", "") if isinstance(msg.location, dict) else ""
        report.console_errors.append(f"{msg.text} ({where})" if where else msg.text)


def _on_request(report: PageReport, url: str) -> None:
    report.requests.append(url)
    if is_external(url):
        report.external_requests.append(url)


def _on_failed(report: PageReport, request: Any) -> None:
    report.failed_requests.append(f"{request.url}: {request.failure}")
