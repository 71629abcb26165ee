"""Real receivers for one-time codes: an SMTP server (aiosmtpd) and an SMS webhook endpoint."""

from __future__ import annotations

import json
import re
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from email import message_from_bytes
from email.message import Message
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aiosmtpd.controller import Controller

from tests.support.procs import free_port

CODE = re.compile(r"\b(\d{6})\b")


@dataclass
class Inbox:
    """Every message the fake providers received, newest last."""

    mails: list[Message] = field(default_factory=list)
    sms: list[dict[str, Any]] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def wait_code(self, destination: str, timeout: float = 10.0, after: int = 0) -> str:
        """The newest code sent to ``destination`` (e-mail address or phone number)."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            with self.lock:
                texts = [self.text_of(m) for m in self.mails if m["To"] == destination]
                texts += [s["text"] for s in self.sms if s.get("to") == destination]
            if len(texts) > after:
                match = CODE.search(texts[-1])
                assert match is not None, texts[-1]
                return match.group(1)
            time.sleep(0.05)
        raise AssertionError(f"no code reached {destination} within {timeout} s")

    def count(self, destination: str) -> int:
        with self.lock:
            return sum(1 for m in self.mails if m["To"] == destination) + sum(
                1 for s in self.sms if s.get("to") == destination
            )

    @staticmethod
    def text_of(message: Message) -> str:
        if message.is_multipart():
            return "\n".join(str(part.get_payload(decode=True) or b"", "utf-8")
                             for part in message.walk() if not part.is_multipart())
        payload = message.get_payload(decode=True)
        return payload.decode("utf-8") if isinstance(payload, bytes) else str(payload)


# Every inbox of the test session: the log scan at the end checks that no code they received
# appears in any gateway's logs (tests/support/log_scan.py).
INBOXES: list[Inbox] = []


def codes_received() -> set[str]:
    codes: set[str] = set()
    for inbox in INBOXES:
        with inbox.lock:
            texts = [s["text"] for s in inbox.sms] + [Inbox.text_of(m) for m in inbox.mails]
        codes.update(m.group(1) for text in texts for m in CODE.finditer(text))
    return codes


class _SmtpHandler:
    def __init__(self, inbox: Inbox) -> None:
        self.inbox = inbox

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        with self.inbox.lock:
            self.inbox.mails.append(message_from_bytes(envelope.content))
        return "250 Message accepted for delivery"


@contextmanager
def running_receivers() -> Iterator[tuple[Inbox, int, str]]:
    """(inbox, SMTP port, SMS webhook URL), both served on 127.0.0.1 until the block ends."""
    inbox = Inbox()
    INBOXES.append(inbox)
    smtp_port = free_port()
    controller = Controller(_SmtpHandler(inbox), hostname="127.0.0.1", port=smtp_port)
    controller.start()

    class Webhook(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            length = int(self.headers.get("content-length", "0"))
            payload = json.loads(self.rfile.read(length))
            with inbox.lock:
                inbox.sms.append(payload)
            self.send_response(202)
            self.send_header("content-length", "0")
            self.end_headers()

        def log_message(self, format: str, *args: object) -> None:
            return

    server = ThreadingHTTPServer(("127.0.0.1", 0), Webhook)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield inbox, smtp_port, f"http://127.0.0.1:{server.server_address[1]}/sms"
    finally:
        server.shutdown()
        server.server_close()
        controller.stop()
