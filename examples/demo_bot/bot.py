"""A small demo chatbot backend: what the gateway protects in `make demo` and in the tests.

It trusts the identity the gateway injects (``X-User-Id``, ``X-Auth-Level``) and the ``sender``
field the gateway overwrites, exactly as a real Rasa or home-grown bot would.

Run: ``python examples/demo_bot/bot.py --port 9000``
"""

from __future__ import annotations

import argparse
import asyncio
import json
from collections.abc import AsyncIterator

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import HTMLResponse, JSONResponse, StreamingResponse
from starlette.routing import Route

BALANCES = {"alice": "1,234.56 EUR", "C-1001": "87.10 EUR", "C-1002": "12,000.00 EUR"}

PAGE = """<!doctype html><meta charset="utf-8"><title>Demo bot</title>
<h1>Demo chatbot</h1><p>Served by the demo backend through the gateway.
Try <code>POST /api/chat</code> with a token (see the terminal).</p>"""


def _who(request: Request) -> dict[str, str | None]:
    return {
        "user_id": request.headers.get("x-user-id"),
        "level": request.headers.get("x-auth-level"),
        "email": request.headers.get("x-user-email"),
        "name": request.headers.get("x-user-name"),
    }


async def index(request: Request) -> HTMLResponse:
    return HTMLResponse(PAGE)


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def chat(request: Request) -> JSONResponse:
    message = json.loads(await request.body() or b"{}")
    text = str(message.get("message", ""))
    reply = f"You said: {text}"
    if "balance" in text.lower():
        reply = "Your balance is sensitive: ask GET /api/account/balance (needs a one-time code)."
    return JSONResponse({"sender": message.get("sender"), "reply": reply, "seen": _who(request)})


async def stream(request: Request) -> StreamingResponse:
    async def events() -> AsyncIterator[bytes]:
        for word in ("The", "bot", "is", "typing", "…"):
            yield f"data: {json.dumps({'word': word})}\n\n".encode()
            await asyncio.sleep(0.3)
        yield b"event: done\ndata: {}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream")


async def balance(request: Request) -> JSONResponse:
    user = request.headers.get("x-user-id", "")
    return JSONResponse({"user_id": user, "balance": BALANCES.get(user, "0.00 EUR")})


async def profile(request: Request) -> JSONResponse:
    return JSONResponse(_who(request))


app = Starlette(
    routes=[
        Route("/", index),
        Route("/healthz", healthz),
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/chat/stream", stream),
        Route("/api/account/balance", balance),
        Route("/api/profile/me", profile),
    ]
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    args = parser.parse_args()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
