"""Browser tests: headless Debian chromium, driven by playwright (the pip package, as a driver).

Playwright's own browser download does not work on our machines, so the browser is the
system's chromium (``apt-get install chromium``; ``make test`` installs it when missing).
Without chromium or playwright these tests skip and say why, unless
``GATEWAY_TEST_REQUIRE_BROWSER=1`` (set by ``.ci/run``): then they fail.
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn

import pytest

from tests.support.procs import ROOT, free_port, stop, wait_for_port

if TYPE_CHECKING:
    from playwright.sync_api import Browser, BrowserContext

CHROMIUM = os.environ.get("GATEWAY_TEST_CHROMIUM", "/usr/bin/chromium")
# Without the background-networking flag chromium keeps dialling Google's hosts, which this
# network refuses; --no-sandbox because the tests run as root.
CHROMIUM_FLAGS = ["--headless", "--no-sandbox", "--disable-gpu",
                  "--disable-background-networking"]
VIEWPORT = {"width": 1000, "height": 700}
CODE_LINE = re.compile(r"one-time code for \S+: (\d{6})")


def _unavailable(reason: str) -> NoReturn:
    if os.environ.get("GATEWAY_TEST_REQUIRE_BROWSER") == "1":
        pytest.fail(f"GATEWAY_TEST_REQUIRE_BROWSER=1 but {reason}", pytrace=False)
    pytest.skip(reason)


def missing_browser() -> str | None:
    """Why the browser tests cannot run here, or None."""
    if importlib.util.find_spec("playwright") is None:
        return "playwright is not installed (pip install -e '.[dev]')"
    if not os.access(CHROMIUM, os.X_OK):
        return f"chromium not found at {CHROMIUM} (apt-get install chromium)"
    return None


# Package scope, not session: while playwright's sync API runs, the main thread counts as
# running an event loop, and the rest of the suite's asyncio.run() calls would fail.
@pytest.fixture(scope="package")
def browser() -> Iterator[Browser]:
    reason = missing_browser()
    if reason is not None:
        _unavailable(reason)
    from playwright.sync_api import Error, sync_playwright

    with sync_playwright() as driver:
        try:
            launched = driver.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_FLAGS)
        except Error as exc:
            _unavailable(f"chromium at {CHROMIUM} did not start: {exc}")
        try:
            yield launched
        finally:
            launched.close()


@pytest.fixture
def context(browser: Browser) -> Iterator[BrowserContext]:
    """A fresh browser profile per test: no cookies carried from one test to the next."""
    ctx = browser.new_context(viewport=VIEWPORT, locale="en-US")  # type: ignore[arg-type]
    ctx.set_default_timeout(15_000)
    try:
        yield ctx
    finally:
        ctx.close()


@dataclass
class Demo:
    """``gateway demo`` running as a user starts it, with its console in two files."""

    port: int
    proc: subprocess.Popen[bytes]
    stdout_path: Path
    stderr_path: Path

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def console(self) -> str:
        return (self.stdout_path.read_text(encoding="utf-8", errors="replace")
                + self.stderr_path.read_text(encoding="utf-8", errors="replace"))

    def codes(self) -> list[str]:
        return CODE_LINE.findall(self.console())

    def next_code(self, seen: int, timeout: float = 10.0) -> str:
        """The first code printed after ``seen`` codes: what a user reads off the console."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            codes = self.codes()
            if len(codes) > seen:
                return codes[seen]
            time.sleep(0.05)
        raise AssertionError(f"no new code on the console:\n{self.console()[-2000:]}")


@pytest.fixture(scope="package")
def demo(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Demo]:
    workdir = tmp_path_factory.mktemp("demo")
    port, bot_port = free_port(), free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    stdout_path, stderr_path = workdir / "demo.out", workdir / "demo.err"
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "demo", "--port", str(port),
             "--bot-port", str(bot_port), "--admin-port", "0"],
            cwd=ROOT, env=env, stdout=out, stderr=err,
        )
    running = Demo(port, proc, stdout_path, stderr_path)
    try:
        wait_for_port(port, proc, timeout=30)
        yield running
    finally:
        stop(proc)  # the demo stops its bot on the way out
