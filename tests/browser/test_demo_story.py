"""The demo's story in a real browser: `gateway demo`, its chat page, and a person's clicks.

Chat anonymously → ask for the balance → the page asks for the customer number → the code
(read off the gateway's console) → the balance → log out → the balance is refused again.
The last screen is saved as a screenshot; with GATEWAY_UPDATE_SCREENSHOT=1 it replaces
docs/demo.png, the README's screenshot (otherwise every run would change a tracked file).
"""

from __future__ import annotations

import itertools
import os
from pathlib import Path
from typing import TYPE_CHECKING

from tests.browser.conftest import Demo
from tests.support.procs import ROOT

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

SCREENSHOT = ROOT / "docs" / "demo.png"


def open_chat(context: BrowserContext, demo: Demo, query: str = "") -> Page:
    page = context.new_page()
    errors: list[str] = []
    page.on("pageerror", lambda error: errors.append(str(error)))
    page.goto(f"{demo.url}/{query}")
    page.wait_for_selector("body[data-ready='1']")
    assert errors == []
    return page


def chat(page: Page, text: str) -> str:
    """Send a message and return the bot's answer bubble (text and caption)."""
    replies = int(page.evaluate("document.body.dataset.replies || '0'"))
    page.fill("#message", text)
    page.click("#send")
    page.wait_for_selector(f"body[data-replies='{replies + 1}']")
    return page.locator("#log li.bot").last.inner_text()


def status_becomes(page: Page, text: str) -> str:
    """The status line once it reads ``text``: the page updates it after the log line appears."""
    page.wait_for_function("s => document.getElementById('status').textContent === s", arg=text)
    return page.inner_text("#status")


def log_text(page: Page) -> str:
    return page.inner_text("#log")


def test_the_demo_story(context: BrowserContext, demo: Demo, tmp_path: Path) -> None:
    page = open_chat(context, demo)

    # 1. Chatting anonymously, over the WebSocket: the bot sees the gateway's anonymous id.
    status = page.inner_text("#status")
    assert status.endswith("· anonymous"), status
    anonymous_id = status.split(" ")[0]
    assert anonymous_id.startswith("anon-")
    assert page.evaluate("document.body.dataset.socket") == "open"
    answer = chat(page, "hello")
    assert "You said: hello" in answer
    assert f"the bot saw sender {anonymous_id}" in answer

    # 2. Asking for the balance in the chat: the bot points at the account button.
    assert "use the account button" in chat(page, "what is my balance?")

    # 3. The account button: 401 otp_required → the page asks for the customer number.
    seen = len(demo.codes())
    page.click("#balance")
    page.wait_for_selector("#otp-panel[data-stage='number']")
    assert "The balance needs a one-time code." in log_text(page)
    page.fill("#otp-number", "C-1001")
    page.click("#otp-send")
    page.wait_for_selector("#otp-panel[data-stage='code']")
    assert "Code sent by SMS to +49" in log_text(page)

    # 4. The code, as the user reads it on the gateway's console (the demo's SMS).
    code = demo.next_code(seen)
    page.fill("#otp-code", code)
    page.click("#otp-verify")
    page.wait_for_selector("text=Balance of C-1001: 87.10 EUR")
    assert page.is_hidden("#otp-panel")
    assert status_becomes(page, "C-1001 · otp") == "C-1001 · otp"
    # The socket was reopened on the rotated session: the bot now sees the customer.
    assert "the bot saw sender C-1001" in chat(page, "thanks")

    # 5. Log out: the session is gone, the page is anonymous again (a new anonymous id).
    page.click("#logout")
    page.wait_for_selector("text=Logged out: the session is gone on the gateway.")
    page.wait_for_function(
        "document.getElementById('status').textContent.endsWith('· anonymous')")
    assert not page.inner_text("#status").startswith(anonymous_id)

    # 6. The balance is refused again: the page asks for a code, the user gives up.
    page.click("#balance")
    page.wait_for_selector("#otp-panel[data-stage='number']")
    page.click("#otp-cancel")
    page.wait_for_selector("text=Balance refused (otp_required).")
    text = log_text(page)
    assert text.count("87.10 EUR") == 1
    assert text.count("The balance needs a one-time code.") == 2

    # Nothing secret is reachable from the page's scripts.
    assert page.evaluate("document.cookie") == ""  # the session cookie is HttpOnly
    assert page.evaluate("window.localStorage.length + window.sessionStorage.length") == 0

    target = SCREENSHOT if os.environ.get("GATEWAY_UPDATE_SCREENSHOT") else tmp_path / "demo.png"
    target.parent.mkdir(exist_ok=True)
    page.screenshot(path=str(target))
    assert target.stat().st_size > 10_000  # a rendered page, not a blank image
    page.close()


def test_the_signed_in_path(context: BrowserContext, demo: Demo) -> None:
    """The website's login: jwtFn fetches a JWT from the demo's token endpoint."""
    page = open_chat(context, demo)
    anonymous_id = page.inner_text("#status").split(" ")[0]
    page.click("#login")
    page.wait_for_selector("text=Signed in on the website as alice (authenticated).")
    assert status_becomes(page, "alice · authenticated") == "alice · authenticated"
    # The upgraded session keeps the conversation: the socket now speaks for alice.
    assert "the bot saw sender alice" in chat(page, "hi")
    assert anonymous_id.startswith("anon-")

    # A signed-in user is not asked for a number: the code goes to alice's own contact.
    seen = len(demo.codes())
    page.click("#balance")
    page.wait_for_selector("#otp-panel[data-stage='code']")
    assert page.is_hidden("#otp-number-row")
    page.fill("#otp-code", demo.next_code(seen))
    page.click("#otp-verify")
    page.wait_for_selector("text=Balance of alice: 1,234.56 EUR")
    assert status_becomes(page, "alice · otp") == "alice · otp"
    page.click("#logout")
    page.wait_for_function(
        "document.getElementById('status').textContent.endsWith('· anonymous')")
    assert page.is_visible("#login")
    page.close()


def test_the_page_speaks_german(context: BrowserContext, demo: Demo) -> None:
    page = open_chat(context, demo, "?lang=en")
    assert page.inner_text("#balance") == "Show balance"
    page.click("#lang-de")
    assert page.inner_text("#balance") == "Kontostand zeigen"
    assert page.get_attribute("html", "lang") == "de"
    assert "Sie schrieben: Hallo" in chat(page, "Hallo")
    assert "Einmalcode" in chat(page, "Wie ist mein Kontostand?")
    page.close()


def test_sse_arrives_event_by_event_in_the_browser(context: BrowserContext, demo: Demo) -> None:
    """The bot's typing stream (one event every 0.3 s) is not buffered by the gateway."""
    page = context.new_page()
    page.goto(f"{demo.url}/healthz")  # any page of the gateway's origin
    page.add_script_tag(url="/auth/client.js")  # the classic-script form
    arrivals = page.evaluate("""async () => {
        const gw = createGatewayClient({});
        const source = await gw.eventSource("/api/chat/stream");
        const started = performance.now();
        const seen = [];
        await new Promise((resolve, reject) => {
            source.onmessage = (e) => seen.push([performance.now() - started,
                                                 JSON.parse(e.data).word]);
            source.addEventListener("done", () => {
                seen.push([performance.now() - started, "done"]);
                source.close();
                resolve();
            });
            source.onerror = () => { source.close(); reject(new Error("stream failed")); };
        });
        return seen;
    }""")
    words = [word for _, word in arrivals]
    assert words == ["The", "bot", "is", "typing", "…", "done"]
    times = [at / 1000 for at, _ in arrivals]
    # The stream takes 1.5 s; its first event is in the page long before the end.
    assert times[-1] - times[0] > 1.0, times
    gaps = [later - earlier for earlier, later in itertools.pairwise(times)]
    assert all(gap > 0.15 for gap in gaps), times
    page.close()

