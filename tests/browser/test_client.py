"""``client.js`` in the browser against the demo gateway: refresh-and-retry-once, bearer sockets.

The demo bot's ``/demo/token`` plays the website's backend (what ``jwtFn`` calls); with
``expired=1`` it signs a token that expired ten minutes ago, beyond the gateway's leeway.
Each test counts what the page sent by wrapping ``window.fetch``, which the client calls.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

import pytest

from tests.browser.conftest import Demo

if TYPE_CHECKING:
    from playwright.sync_api import BrowserContext, Page

# Counts the page's requests by kind, and a jwtFn that follows a script of tokens
# ("expired", "fresh" or "none"; the last entry repeats).
HARNESS = """
window.calls = { jwt: 0, exchange: 0, chat: 0, profile: 0 };
const realFetch = window.fetch.bind(window);
window.realFetch = realFetch;
window.fetch = (input, init) => {
    const url = String(input);
    const method = (init && init.method) || "GET";
    if (url.endsWith("/auth/session") && method === "POST") window.calls.exchange++;
    if (url.endsWith("/api/chat")) window.calls.chat++;
    if (url.endsWith("/api/profile/me")) window.calls.profile++;
    return realFetch(input, init);
};
window.scriptedJwt = (script) => async () => {
    const kind = script[Math.min(window.calls.jwt, script.length - 1)];
    window.calls.jwt++;
    if (kind === "none") return null;
    const response = await realFetch("/demo/token?user=alice"
                                     + (kind === "expired" ? "&expired=1" : ""));
    return response.text();
};
window.chatMessage = (gw, text) => gw.fetch("/api/chat", {
    method: "POST",
    headers: { "Content-Type": "application/json" },
    body: JSON.stringify({ sender: "mallory", message: text }),
}).then(async (r) => ({ status: r.status, body: await r.json() }));
"""


@pytest.fixture
def page(context: BrowserContext, demo: Demo) -> Iterator[Page]:
    page = context.new_page()
    page.goto(f"{demo.url}/healthz")  # a page of the gateway's origin without scripts
    page.add_script_tag(url="/auth/client.js")
    page.evaluate(f"() => {{ {HARNESS} }}")
    yield page
    page.close()


def run(page: Page, script: str) -> Any:
    return page.evaluate(f"async () => {{ {script} }}")


def test_an_expired_token_costs_one_jwt_call_and_one_retry(page: Page) -> None:
    result = run(page, """
        const gw = createGatewayClient({ jwtFn: scriptedJwt(["expired", "fresh"]) });
        const answer = await chatMessage(gw, "hi");
        return { answer, calls: window.calls };
    """)
    assert result["answer"]["status"] == 200
    assert result["answer"]["body"]["sender"] == "alice"  # the refreshed login, not mallory
    assert result["answer"]["body"]["seen"]["level"] == "authenticated"
    # The stale token, then exactly one fresh one; two exchanges; the message sent once.
    assert result["calls"] == {"jwt": 2, "exchange": 2, "chat": 1, "profile": 0}


def test_a_token_that_stays_expired_is_retried_once_then_returned(page: Page) -> None:
    result = run(page, """
        const gw = createGatewayClient({ jwtFn: scriptedJwt(["expired"]) });
        const answer = await chatMessage(gw, "hi");
        return { answer, calls: window.calls };
    """)
    assert result["answer"]["status"] == 401
    assert result["answer"]["body"]["error"] == "token_expired"
    # No loop: one refresh, and the message never went out on a session it did not have.
    assert result["calls"] == {"jwt": 2, "exchange": 2, "chat": 0, "profile": 0}


def test_a_session_lost_between_messages_is_refreshed_once(page: Page) -> None:
    result = run(page, """
        const gw = createGatewayClient({ jwtFn: scriptedJwt(["fresh"]) });
        const first = await gw.fetch("/api/profile/me");
        const before = { ...window.calls };
        // The session dies behind the client's back (idle timeout, logout in another tab).
        await realFetch("/auth/session", { method: "DELETE" });
        const second = await gw.fetch("/api/profile/me");
        return { first: first.status, second: second.status, user: (await second.json()).user_id,
                 before, after: window.calls };
    """)
    assert (result["first"], result["second"], result["user"]) == (200, 200, "alice")
    assert result["before"] == {"jwt": 1, "exchange": 1, "chat": 0, "profile": 1}
    # token_missing → exactly one more jwtFn call, one exchange, one retry.
    assert result["after"] == {"jwt": 2, "exchange": 2, "chat": 0, "profile": 3}


def test_a_visitor_without_a_site_login_is_not_retried(page: Page) -> None:
    result = run(page, """
        const gw = createGatewayClient({ jwtFn: scriptedJwt(["none"]) });
        const profile = await gw.fetch("/api/profile/me");
        const answer = await chatMessage(gw, "hi");
        return { profile: profile.status, answer, calls: window.calls };
    """)
    assert result["profile"] == 401
    assert result["answer"]["status"] == 200
    assert result["answer"]["body"]["sender"].startswith("anon-")
    # jwtFn is asked again after the 401 (the user may have signed in), but with no token
    # there is nothing to exchange and nothing to retry.
    assert result["calls"] == {"jwt": 2, "exchange": 0, "chat": 1, "profile": 1}


def test_otp_helpers_and_logout(page: Page, demo: Demo) -> None:
    seen = len(demo.codes())
    run(page, """
        window.otpCalls = 0;
        window.gw = createGatewayClient({
            onOtpRequired: (step) => {
                window.otpCalls++;
                if (window.otpCalls > 1) return null;  // the second time, the user cancels
                window.step = step;
                return new Promise((resolve) => { window.finish = resolve; });
            },
        });
        window.pending = window.gw.fetch("/api/account/balance");
        while (!window.step) await new Promise((r) => setTimeout(r, 20));
        window.sent = await window.step.send("C-1002");
    """)
    assert page.evaluate("window.step.problem.error") == "otp_required"
    assert page.evaluate("window.sent.channel") == "email"
    code = demo.next_code(seen)
    wrong = "000000" if code != "000000" else "111111"
    result = run(page, f"""
        let refused;
        try {{ await window.step.verify("{wrong}"); }} catch (e) {{
            refused = {{ name: e.name, status: e.status, error: e.error,
                         left: e.body.attempts_left }};
        }}
        const verified = await window.step.verify("{code}");
        window.finish(await window.step.retry());
        const balance = await window.pending;
        const session = await window.gw.session();
        await window.gw.logout();
        const after = await window.gw.session();
        const again = await window.gw.fetch("/api/account/balance");
        return {{ refused, verified, balance: await balance.json(), session, after,
                 again: [again.status, (await again.json()).error, window.otpCalls] }};
    """)
    assert result["refused"] == {"name": "GatewayError", "status": 401, "error": "otp_invalid",
                                 "left": 4}
    assert result["verified"]["level"] == "otp"
    assert result["balance"] == {"user_id": "C-1002", "balance": "12,000.00 EUR"}
    assert result["session"]["user_id"] == "C-1002" and result["session"]["level"] == "otp"
    assert result["after"] is None
    # After the logout the balance is refused again; the cancelled dialog returns the 401.
    assert result["again"] == [401, "otp_required", 2]


def test_bearer_websocket_and_the_es_module(page: Page, context: BrowserContext) -> None:
    result = run(page, """
        const { createGatewayClient: fromModule } = await import("/auth/client.mjs");
        const gw = fromModule({ jwtFn: scriptedJwt(["fresh"]) });
        const ws = await gw.websocket("/ws", { bearer: true });
        const reply = await new Promise((resolve, reject) => {
            ws.onopen = () => ws.send(JSON.stringify({ sender: "mallory", message: "hi" }));
            ws.onmessage = (e) => resolve(JSON.parse(e.data));
            ws.onclose = (e) => reject(new Error("closed " + e.code));
        });
        const protocol = ws.protocol;
        ws.close();
        return { same: fromModule === window.createGatewayClient, reply, protocol,
                 url: ws.url, calls: window.calls };
    """)
    assert result["same"] is True
    assert result["protocol"] == "bearer"
    assert result["reply"]["sender"] == "alice"
    assert result["reply"]["seen"]["level"] == "authenticated"
    assert "eyJ" not in result["url"]  # the token rides in the subprotocol, never the URL
    assert result["calls"]["exchange"] == 0  # no cookie session was made for it
    assert [c for c in context.cookies() if c["name"] == "gw_session"] == []
