"""A small demo chatbot backend: what the gateway protects in `make demo` and in the tests.

It trusts the identity the gateway injects (``X-User-Id``, ``X-Auth-Level``) and the ``sender``
field the gateway overwrites, exactly as a real Rasa or home-grown bot would.

Routes (each one behind a rule in ``policies/default.yaml``):

* ``GET /`` and ``/static/*``: the demo chat page (it uses only ``/auth/client.js``);
* ``POST /api/chat`` and the WebSocket ``/ws``: the chat itself (JSON ``{"message": ...}``);
* ``GET /api/chat/stream``: a server-sent "typing" stream;
* ``GET /api/account/balance``: the sensitive route (needs a one-time code);
* ``GET /demo/token?user=alice``: stands in for the website's own backend, which signs a JWT
  for its signed-in user (what the page's ``jwtFn`` calls). It signs with the demo key that
  ``gateway demo`` hands over in ``DEMO_BOT_JWT_SECRET``; without it the route answers 404.

Run: ``python examples/demo_bot/bot.py --port 9000``
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import threading
import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import jwt
import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import FileResponse, JSONResponse, PlainTextResponse, StreamingResponse
from starlette.routing import Mount, Route, WebSocketRoute
from starlette.staticfiles import StaticFiles
from starlette.websockets import WebSocket, WebSocketDisconnect

HERE = Path(__file__).resolve().parent
BALANCES = {"alice": "1,234.56 EUR", "C-1001": "87.10 EUR", "C-1002": "12,000.00 EUR"}
# The website's users the demo token endpoint signs for (the site's own login, simulated).
SITE_USERS = {"alice": ("Alice", "alice@example.com"), "bob": ("Bob", "bob@example.com")}

REPLIES = {
    "en": {
        "echo": "You said: {text}",
        "balance": "Your balance is sensitive: use the account button (Show balance). "
                   "It asks for a one-time code first.",
    },
    "de": {
        "echo": "Sie schrieben: {text}",
        "balance": "Ihr Kontostand ist vertraulich: Nutzen Sie den Konto-Knopf "
                   "(Kontostand zeigen). Er fragt zuerst nach einem Einmalcode.",
    },
}
TYPING = {"en": ("The", "bot", "is", "typing", "…"),
          "de": ("Der", "Bot", "schreibt", "gerade", "…")}


def _who(headers: Any) -> dict[str, str | None]:
    return {
        "user_id": headers.get("x-user-id"),
        "level": headers.get("x-auth-level"),
        "email": headers.get("x-user-email"),
        "name": headers.get("x-user-name"),
    }


def _reply(text: str, lang: Any) -> str:
    replies = REPLIES.get(str(lang), REPLIES["en"])
    if "balance" in text.lower() or "kontostand" in text.lower():
        return replies["balance"]
    return replies["echo"].format(text=text)


async def index(request: Request) -> FileResponse:
    return FileResponse(HERE / "static" / "index.html", headers={"cache-control": "no-cache"})


async def healthz(request: Request) -> JSONResponse:
    return JSONResponse({"ok": True})


async def chat(request: Request) -> JSONResponse:
    message = json.loads(await request.body() or b"{}")
    text = str(message.get("message", ""))
    return JSONResponse({"sender": message.get("sender"),
                         "reply": _reply(text, message.get("lang", "en")),
                         "seen": _who(request.headers)})


async def chat_socket(websocket: WebSocket) -> None:
    """The same chat over a WebSocket: one JSON reply per JSON message."""
    await websocket.accept()
    seen = _who(websocket.headers)
    try:
        while True:
            raw = await websocket.receive_text()
            try:
                message = json.loads(raw)
            except ValueError:
                message = {"message": raw}
            if not isinstance(message, dict):
                message = {"message": str(message)}
            text = str(message.get("message", ""))
            await websocket.send_json({"sender": message.get("sender"),
                                       "reply": _reply(text, message.get("lang", "en")),
                                       "seen": seen})
    except WebSocketDisconnect:
        pass


async def stream(request: Request) -> StreamingResponse:
    words = TYPING.get(request.query_params.get("lang", "en"), TYPING["en"])

    async def events() -> AsyncIterator[bytes]:
        for word in words:
            yield f"data: {json.dumps({'word': word}, ensure_ascii=False)}\n\n".encode()
            await asyncio.sleep(0.3)
        yield b"event: done\ndata: {}\n\n"

    return StreamingResponse(events(), media_type="text/event-stream",
                             headers={"cache-control": "no-cache"})


async def balance(request: Request) -> JSONResponse:
    user = request.headers.get("x-user-id", "")
    return JSONResponse({"user_id": user, "balance": BALANCES.get(user, "0.00 EUR")})


async def profile(request: Request) -> JSONResponse:
    return JSONResponse(_who(request.headers))


async def demo_token(request: Request) -> PlainTextResponse:
    """A JWT for one of the site's users: the website backend's job, simulated.

    ``expired=1`` signs one that expired 10 minutes ago (beyond the gateway's leeway), so tests
    can watch the client refresh it.
    """
    secret = os.environ.get("DEMO_BOT_JWT_SECRET")
    user = request.query_params.get("user", "")
    if not secret:
        return PlainTextResponse("the demo token endpoint runs under `gateway demo`", 404)
    if user not in SITE_USERS:
        return PlainTextResponse(f"unknown demo user; try one of {sorted(SITE_USERS)}", 400)
    name, email = SITE_USERS[user]
    now = int(time.time())
    if request.query_params.get("expired") == "1":
        issued, expires = now - 900, now - 600
    else:
        issued, expires = now, now + 300
    token = jwt.encode(
        {"iss": os.environ["DEMO_BOT_JWT_ISSUER"], "aud": os.environ["DEMO_BOT_JWT_AUDIENCE"],
         "sub": user, "iat": issued, "exp": expires, "name": name, "email": email,
         "email_verified": True},
        secret.encode(), algorithm="HS256", headers={"kid": os.environ["DEMO_BOT_JWT_KID"]},
    )
    return PlainTextResponse(token, headers={"cache-control": "no-store"})


def _exit_with_parent(parent: int) -> None:
    """`gateway demo` stops the bot on its way out; this covers a demo that was killed."""
    while os.getppid() == parent:
        time.sleep(1)
    os._exit(0)


app = Starlette(
    routes=[
        Route("/", index),
        Mount("/static", StaticFiles(directory=HERE / "static"), name="static"),
        Route("/healthz", healthz),
        Route("/api/chat", chat, methods=["POST"]),
        Route("/api/chat/stream", stream),
        WebSocketRoute("/ws", chat_socket),
        Route("/api/account/balance", balance),
        Route("/api/profile/me", profile),
        Route("/demo/token", demo_token),
    ]
)

if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=9000)
    parser.add_argument("--exit-with-parent", action="store_true",
                        help="stop when the process that started this one is gone")
    args = parser.parse_args()
    if args.exit_with_parent:
        threading.Thread(target=_exit_with_parent, args=(os.getppid(),), daemon=True).start()
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")
