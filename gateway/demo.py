"""``gateway demo``: the gateway in front of the demo chatbot, on embedded defaults.

Everything the demo needs is made here: a fresh HS256 secret (never written to disk), the demo
bot as a child process, and a token for the printed ``curl`` line. The token is printed on
purpose (it is the demo's instruction to the user) and is never logged.
"""

from __future__ import annotations

import os
import secrets
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import jwt

from gateway.errors import ConfigError
from gateway.settings import load_settings

DEMO_ISSUER = "https://demo.chatbot.example"
DEMO_AUDIENCE = "chatbot"
DEMO_KID = "demo-1"
SECRET_ENV = "GATEWAY_DEMO_JWT_SECRET"  # noqa: S105 - a variable name, not a secret


def find_examples() -> Path:
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = base / "examples" / "demo_bot" / "bot.py"
        if candidate.exists():
            return candidate
    raise SystemExit("gateway demo runs from a source checkout (examples/demo_bot/bot.py).")


def find_policies() -> str:
    for base in (Path.cwd(), Path(__file__).resolve().parent.parent):
        candidate = base / "policies"
        if (candidate / "default.yaml").exists():
            return str(candidate)
    raise SystemExit("gateway demo needs the policies/ folder of a source checkout.")


def _wait_for_port(port: int, timeout: float = 10.0) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return True
        time.sleep(0.1)
    return False


def demo_config(gateway_port: int, bot_port: int, admin_port: int = 9090) -> dict[str, object]:
    customers = find_examples().parent / "customers.yaml"
    return {
        "mode": "dev",
        "directory": {"kind": "file", "path": str(customers)},
        # Codes are printed on this console: the demo's stand-in for SMS and e-mail.
        "senders": {"email": {"kind": "console"}, "sms": {"kind": "console"}},
        "listen": {"host": "127.0.0.1", "port": gateway_port},
        # /healthz, /readyz and /metrics; 0 turns the admin listener off.
        "admin": {"enabled": admin_port != 0, "port": admin_port or 9090},
        "upstream": {"url": f"http://127.0.0.1:{bot_port}"},
        "policies_dir": find_policies(),
        "jwt": {
            "issuers": [
                {
                    "issuer": DEMO_ISSUER,
                    "audience": DEMO_AUDIENCE,
                    "keys": [{"kid": DEMO_KID, "alg": "HS256", "secret_env": SECRET_ENV}],
                }
            ]
        },
    }


def _exit_on_sigterm(signum: int, frame: object) -> None:
    raise SystemExit(0)


def run_demo(gateway_port: int = 8080, bot_port: int = 9000, admin_port: int = 9090) -> int:
    from gateway.app import create_app
    from gateway.observe import configure_logging
    from gateway.server import serve

    secret = secrets.token_urlsafe(48)
    environ = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    environ[SECRET_ENV] = secret
    try:
        settings = load_settings(environ=environ,
                                 base=demo_config(gateway_port, bot_port, admin_port))
        app = create_app(settings)
    except ConfigError as error:
        for line in error.errors:
            print(f"  - {line}", file=sys.stderr)
        return 2
    # The bot plays the website's backend too: its /demo/token signs JWTs for the chat page's
    # jwtFn with the same demo key (handed over in its environment, never on disk).
    bot_env = {**os.environ, "DEMO_BOT_JWT_SECRET": secret, "DEMO_BOT_JWT_ISSUER": DEMO_ISSUER,
               "DEMO_BOT_JWT_AUDIENCE": DEMO_AUDIENCE, "DEMO_BOT_JWT_KID": DEMO_KID}
    bot = subprocess.Popen(  # noqa: S603 - our own interpreter and script
        [sys.executable, str(find_examples()), "--port", str(bot_port), "--exit-with-parent"],
        env=bot_env,
    )
    # uvicorn stops on SIGTERM and then re-raises it; with the default action that would end
    # this process before the `finally` below stops the bot, leaving it running. Raising
    # SystemExit instead unwinds through it (SIGINT already does, as KeyboardInterrupt).
    signal.signal(signal.SIGTERM, _exit_on_sigterm)
    try:
        if not _wait_for_port(bot_port):
            print(f"The demo bot did not start on port {bot_port}.", file=sys.stderr)
            return 1
        now = int(time.time())
        token = jwt.encode(
            {
                "iss": DEMO_ISSUER,
                "aud": DEMO_AUDIENCE,
                "sub": "alice",
                "iat": now,
                "exp": now + 3600,
                "name": "Alice",
                "email": "alice@example.com",
                "email_verified": True,
            },
            secret.encode(),
            algorithm="HS256",
            headers={"kid": DEMO_KID},
        )
        base = f"http://127.0.0.1:{gateway_port}"
        print(
            f"\nDemo gateway on {base} in front of the demo bot on 127.0.0.1:{bot_port}.\n\n"
            f"Open the chat page in a browser:  {base}/\n"
            "  chat anonymously, press 'Show balance', enter customer number C-1001, type the\n"
            "  code printed on this console, see the balance, log out: it is refused again.\n\n"
            f"A token for user 'alice' (valid 1 h), ready to paste:\n\n"
            f"  curl -s {base}/api/chat -H 'Authorization: Bearer {token}' "
            f"-H 'Content-Type: application/json' "
            f'-d \'{{"sender": "mallory", "message": "hello"}}\'\n\n'
            f"The bot answers with sender 'alice': the gateway overwrote the spoofed sender.\n\n"
            f"The anonymous visitor's story (a cookie jar keeps the session):\n"
            f"  J='-s -c /tmp/gw-demo.jar -b /tmp/gw-demo.jar -H Content-Type:application/json'\n"
            f"  curl $J {base}/api/chat -d '{{\"message\": \"what is my balance?\"}}'\n"
            f"  curl $J {base}/api/account/balance          # 401 otp_required\n"
            f"  curl $J {base}/auth/otp/send -d '{{\"user_id\": \"C-1001\"}}'\n"
            f"  # the code appears on this console (the demo's SMS), then:\n"
            f"  curl $J {base}/auth/otp/verify -d '{{\"code\": \"<the code>\"}}'\n"
            f"  curl $J {base}/api/account/balance          # now the balance\n"
            f"  curl $J -X DELETE {base}/auth/session       # logout\n"
            f"  curl $J {base}/api/account/balance          # 401 otp_required again\n\n"
            f"Stop with Ctrl-C.\n",
            flush=True,
        )
        configure_logging("info")
        serve(app, host=settings.listen_host, port=settings.listen_port)
    finally:
        bot.terminate()
        try:
            bot.wait(timeout=5)
        except subprocess.TimeoutExpired:
            bot.kill()
    return 0
