"""The WebSocket bridge: every client message re-checks the session and the route (CONTRACT §7).

Other auth proxies check a socket once, at the handshake, so a user who logs out or whose
elevation ends keeps talking. Here each client message first re-reads the session (or the
token's expiry): logged out or idle → close 4401, level no longer met → close 4403, and that
message never reaches the backend. ``body_user_id`` pointers are overwritten in JSON text frames
as they are in HTTP bodies.

Whether a socket may open at all (policy, credentials, Origin) is decided in
:mod:`gateway.forward.websocket_handshake`; this module refuses or accepts the upgrade with that
answer, then relays.

The backend side is a ``websockets`` client (it ships with ``uvicorn[standard]``); flow control
is the libraries' own: each side's send is awaited before the next message is read, so a slow
peer stalls its sender instead of growing a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections.abc import Callable
from typing import Any

from websockets.asyncio.client import ClientConnection, connect
from websockets.exceptions import ConnectionClosed, InvalidHandshake, InvalidStatus
from websockets.typing import Subprotocol

from gateway.errors import BadRequest, GatewayError, StoreUnavailable, render
from gateway.forward.websocket_handshake import BEARER, SocketAuth, SocketHandshake
from gateway.identity.model import Identity
from gateway.identity.resolver import Resolver
from gateway.observe import RequestLog
from gateway.policy.decide import decide
from gateway.policy.model import PolicySet, Rule
from gateway.policy.paths import encode_path
from gateway.rewrite.body import load_object, remove_pointers, set_pointers
from gateway.rewrite.headers import HeaderRewriter

log = logging.getLogger("gateway.websocket")

CLOSE_UNAUTHENTICATED = 4401
CLOSE_FORBIDDEN = 4403
CLOSE_TOO_BIG = 1009
CLOSE_POLICY = 1008
CLOSE_BACKEND_DOWN = 1011
# Handshake headers the backend connection sets itself.
_WS_OWN = frozenset(
    {b"sec-websocket-key", b"sec-websocket-version", b"sec-websocket-extensions",
     b"sec-websocket-protocol", b"sec-websocket-accept", b"host"}
)


class WebSocketBridge(SocketHandshake):
    def __init__(
        self,
        *,
        policies: Callable[[], PolicySet],
        resolver: Resolver,
        rewriter: HeaderRewriter,
        upstream_url: str,
        request_log: RequestLog,
        max_message_bytes: int,
        allowed_origins: frozenset[str],
        open_timeout: float = 10.0,
    ) -> None:
        self._policies = policies
        self.resolver = resolver
        self.rewriter = rewriter
        self.upstream_ws = "ws://" + upstream_url.split("://", 1)[1]
        self.request_log = request_log
        self.max_message_bytes = max_message_bytes
        self.allowed_origins = allowed_origins
        self.open_timeout = open_timeout

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        started = time.perf_counter()
        record: dict[str, Any] = {"method": "WEBSOCKET", "path": "-", "rule": None,
                                  "decision": "refuse", "level": None}
        message = await receive()
        if message["type"] != "websocket.connect":
            return
        headers = [(name.lower(), value) for name, value in scope["headers"]]
        try:
            rule, auth, subprotocols, set_cookie = await self._handshake(scope, headers, record)
        except GatewayError as error:
            record.update(error=error.code, reason=error.reason, status=error.status)
            await _refuse(scope, send, error)
            self._log(record, started)
            return
        record["decision"] = "allow"
        if auth.identity is not None:
            record["level"] = auth.identity.level
            record["user"] = auth.identity.user_id  # hashed (or dropped) by the request log
        code = await self._bridge(scope, receive, send, headers, rule, auth, subprotocols,
                                  set_cookie)
        record["close_code"] = code
        record["status"] = 101
        self._log(record, started)

    def _log(self, record: dict[str, Any], started: float) -> None:
        record["ms"] = round((time.perf_counter() - started) * 1000, 3)
        self.request_log.emit(record)

    async def _bridge(
        self,
        scope: dict[str, Any],
        receive: Any,
        send: Any,
        headers: list[tuple[bytes, bytes]],
        rule: Rule | None,
        auth: SocketAuth,
        subprotocols: list[str],
        set_cookie: bytes | None,
    ) -> int:
        client = scope.get("client")
        upstream_headers = [
            (n.decode("latin-1"), v.decode("latin-1"))
            for n, v in self.rewriter.request_headers(
                [(n, v) for n, v in headers if n not in _WS_OWN], auth.identity,
                client_ip=client[0] if client else None, scheme="http",
            )
            if n not in _WS_OWN
        ]
        target = encode_path(scope["gateway.path"]).decode()
        query = scope.get("query_string") or b""
        uri = self.upstream_ws + target + ("?" + query.decode("latin-1") if query else "")
        try:
            backend = await connect(
                uri, additional_headers=upstream_headers,
                subprotocols=[Subprotocol(p) for p in subprotocols] or None,
                open_timeout=self.open_timeout, max_size=self.max_message_bytes,
                compression=None, user_agent_header=None,
            )
        except (OSError, InvalidHandshake, TimeoutError) as exc:
            status = exc.response.status_code if isinstance(exc, InvalidStatus) else None
            log.warning("websocket backend refused", extra={"event": {"status": status}})
            await send({"type": "websocket.close", "code": CLOSE_BACKEND_DOWN})
            return CLOSE_BACKEND_DOWN
        chosen = backend.subprotocol
        accept: dict[str, Any] = {"type": "websocket.accept",
                                  "subprotocol": chosen if chosen else None,
                                  "headers": [(b"set-cookie", set_cookie)] if set_cookie else []}
        if chosen is None and len(scope.get("subprotocols") or []) >= 2 and \
                scope["subprotocols"][0].lower() == BEARER:
            # The browser requires one of its offers back; the backend picked none of the rest.
            accept["subprotocol"] = scope["subprotocols"][0]
        await send(accept)
        pointers = rule.body_user_id if rule is not None else ()
        require = rule.require if rule is not None else self._policies().default
        to_backend = asyncio.ensure_future(
            self._client_to_backend(receive, send, backend, auth, require, pointers))
        to_client = asyncio.ensure_future(_backend_to_client(backend, send))
        await asyncio.wait({to_backend, to_client},
                           return_when=asyncio.FIRST_COMPLETED)
        for task in (to_backend, to_client):
            if not task.done():
                task.cancel()
        results = await asyncio.gather(to_backend, to_client, return_exceptions=True)
        with contextlib.suppress(Exception):
            await backend.close()
        for result in results:
            if isinstance(result, int):
                return result
        return 1000

    async def _client_to_backend(
        self, receive: Any, send: Any, backend: ClientConnection, auth: SocketAuth,
        require: str, pointers: tuple[str, ...],
    ) -> int:
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                code = int(message.get("code", 1000))
                reason = message.get("reason") or ""
                with contextlib.suppress(Exception):
                    await backend.close(code if _forwardable(code) else 1000, reason)
                return code
            if message["type"] != "websocket.receive":
                continue
            refusal = await self._recheck(auth, require)
            if refusal is not None:
                await send({"type": "websocket.close", "code": refusal})
                return refusal
            text = message.get("text")
            data = message.get("bytes")
            if text is not None and pointers:
                try:
                    document = load_object(text.encode("utf-8"))
                    if auth.identity is not None:
                        set_pointers(document, pointers, auth.identity.user_id)
                    else:
                        # No trusted id to write: a client may not choose one either.
                        remove_pointers(document, pointers)
                except BadRequest:
                    # A frame the gateway cannot rewrite one way is never passed on.
                    await send({"type": "websocket.close", "code": CLOSE_POLICY,
                                "reason": "JSON object expected"})
                    return CLOSE_POLICY
                text = json.dumps(document, ensure_ascii=False, separators=(",", ":"))
            elif data is not None and pointers:
                await send({"type": "websocket.close", "code": CLOSE_POLICY,
                            "reason": "text frames only"})
                return CLOSE_POLICY
            payload = text if text is not None else data
            if payload is None:
                continue
            if len(payload) > self.max_message_bytes:
                await send({"type": "websocket.close", "code": CLOSE_TOO_BIG})
                return CLOSE_TOO_BIG
            try:
                await backend.send(payload)
            except ConnectionClosed:
                return 1000

    async def _recheck(self, auth: SocketAuth, require: str) -> int | None:
        """The close code this message earns, or None when the caller may still talk."""
        sessions = self.resolver.sessions
        now = sessions.clock()
        identity: Identity | None
        if auth.session_id is not None:
            try:
                session = await sessions.load(auth.session_id, cached=True)
            except StoreUnavailable:
                return CLOSE_UNAUTHENTICATED
            if session is None:
                return CLOSE_UNAUTHENTICATED
            identity = session.record.identity(now, sessions.settings.absolute_timeout)
        else:
            if auth.token_expires_at is not None and now >= auth.token_expires_at:
                return CLOSE_FORBIDDEN
            identity = auth.identity
        if require == "public" or identity is None:
            return None
        if not decide(require, identity.level).allowed:
            return CLOSE_FORBIDDEN
        return None


async def _backend_to_client(backend: ClientConnection, send: Any) -> int:
    try:
        async for message in backend:
            if isinstance(message, str):
                await send({"type": "websocket.send", "text": message})
            else:
                await send({"type": "websocket.send", "bytes": message})
    except ConnectionClosed:
        pass
    code = backend.close_code if backend.close_code is not None else 1000
    reason = backend.close_reason or ""
    await send({"type": "websocket.close", "code": code if _forwardable(code) else 1000,
                "reason": reason})
    return code


def _forwardable(code: int) -> bool:
    """Codes an endpoint may send in a close frame (RFC 6455 §7.4)."""
    return code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011) or 3000 <= code < 5000


async def _refuse(scope: dict[str, Any], send: Any, error: GatewayError) -> None:
    """Refuse before the upgrade: with the error's JSON body where the server supports it."""
    if "websocket.http.response" in (scope.get("extensions") or {}):
        status, headers, body = render(error)
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": headers})
        await send({"type": "websocket.http.response.body", "body": body})
        return
    await send({"type": "websocket.close", "code": CLOSE_POLICY})
