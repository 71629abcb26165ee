"""The ``gateway`` command: run, demo, policies, token, users (CONTRACT §9)."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from typing import Any
from urllib.parse import quote

import jwt

from gateway.errors import BadRequest, ConfigError, StoreUnavailable
from gateway.settings import HMAC_ALGS, Settings, load_settings
from gateway.stores.redis import describe_url


def _fail(error: ConfigError) -> int:
    print("The configuration is invalid:", file=sys.stderr)
    for line in error.errors:
        print(f"  - {line}", file=sys.stderr)
    return 2


def cmd_run(args: argparse.Namespace) -> int:
    from gateway.app import create_app
    from gateway.observe import configure_logging
    from gateway.server import serve

    try:
        settings = load_settings(args.config)
        app = create_app(settings)
    except ConfigError as error:
        return _fail(error)
    configure_logging(args.log_level)
    if settings.workers > 1:
        from gateway.asgi import serve_workers

        # Every worker process reads the configuration again, from the same file.
        if args.config:
            os.environ["GATEWAY_CONFIG"] = os.path.abspath(args.config)
        serve_workers(app, host=settings.listen_host, port=settings.listen_port,
                      workers=settings.workers, log_level=args.log_level)
        return 0
    serve(app, host=settings.listen_host, port=settings.listen_port)
    return 0


MEMORY_USERS_ERROR = (
    "With store.url memory:// every session lives inside the running gateway process; this "
    "command asks it through its admin listener at {url}, which did not answer. Start the "
    "gateway with the same config (admin listener enabled), or use store.url: redis://…"
)


def _users_via_admin(settings: Settings, action: str, user_id: str) -> int:
    """The memory store's data is inside the running gateway: ask its admin listener."""
    import httpx

    admin = settings.ops.admin
    host = "127.0.0.1" if admin.host in ("0.0.0.0", "::", "") else admin.host  # noqa: S104
    base = f"http://{host}:{admin.port}"
    url = f"{base}/users/{quote(user_id, safe='')}" + ("/forget" if action == "forget" else "")
    try:
        response = httpx.request("POST" if action == "forget" else "GET", url, timeout=10)
    except httpx.HTTPError:
        print(MEMORY_USERS_ERROR.format(url=base), file=sys.stderr)
        return 1
    if response.status_code != 200:
        print(f"The gateway refused: {response.status_code} {response.text}", file=sys.stderr)
        return 1
    print(json.dumps(response.json(), indent=2, sort_keys=True))
    return 0


def cmd_users(args: argparse.Namespace) -> int:
    """``users show|forget ID``: read or erase what the store keeps about a user (GDPR)."""
    from gateway.identity.model import is_valid_user_id
    from gateway.observe import configure_logging
    from gateway.users import run_command

    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        return _fail(error)
    if not is_valid_user_id(args.user_id):
        print("A user id is 1-255 visible ASCII characters.", file=sys.stderr)
        return 2
    if settings.store_url.startswith("memory://"):
        return _users_via_admin(settings, args.users_command, args.user_id)
    # The "forget" audit event is a JSON line on stderr, as in the gateway's own log.
    configure_logging("info")
    try:
        result = asyncio.run(run_command(args.users_command, settings, args.user_id))
    except StoreUnavailable:
        print(f"The store is unreachable: {describe_url(settings.store_url)}", file=sys.stderr)
        return 1
    print(json.dumps(result, indent=2, sort_keys=True))
    return 0


def cmd_demo(args: argparse.Namespace) -> int:
    from gateway.demo import run_demo

    return run_demo(gateway_port=args.port, bot_port=args.bot_port, admin_port=args.admin_port)


def cmd_policies_check(args: argparse.Namespace) -> int:
    from gateway.policy.explain import check

    directory = args.dir or _policies_dir(args)
    code, text = check(directory)
    print(text, file=sys.stdout if code == 0 else sys.stderr)
    return code


def cmd_policies_explain(args: argparse.Namespace) -> int:
    from gateway.policy.explain import explain
    from gateway.policy.loader import load_policies
    from gateway.policy.paths import canonical_path

    try:
        policies = load_policies(args.dir or _policies_dir(args))
    except ConfigError as error:
        return _fail(error)
    try:
        path = canonical_path(args.path.encode("utf-8"))
    except BadRequest as error:
        print(f"refuse 400 bad_request: {error.message} (the path is checked before any rule)")
        return 0
    level = None if args.level == "none" else args.level
    print(explain(policies, args.method.upper(), path, level, websocket=args.websocket))
    return 0


def _policies_dir(args: argparse.Namespace) -> str:
    try:
        return load_settings(args.config).policies_dir
    except ConfigError:
        return Settings().policies_dir


def cmd_token_mint(args: argparse.Namespace) -> int:
    try:
        settings = load_settings(args.config)
    except ConfigError as error:
        return _fail(error)
    for issuer in settings.jwt.issuers:
        for key in issuer.keys:
            if key.kid == args.kid and key.alg in HMAC_ALGS and key.secret is not None:
                claims = _claims(args.claim)
                now = int(time.time())
                payload: dict[str, Any] = {
                    "iss": issuer.issuer,
                    issuer.subject_claim: args.sub,
                    "iat": now,
                    "exp": now + args.ttl,
                }
                if issuer.audience:
                    payload["aud"] = issuer.audience
                if issuer.required_scope:
                    payload["scope"] = issuer.required_scope
                payload.update(claims)
                print(jwt.encode(payload, key.secret, algorithm=key.alg, headers={"kid": key.kid}))
                return 0
    print(f"No HMAC key with kid '{args.kid}' is configured.", file=sys.stderr)
    return 1


def _claims(items: Sequence[str]) -> dict[str, Any]:
    claims: dict[str, Any] = {}
    for item in items:
        name, sep, raw = item.partition("=")
        if not sep or not name:
            raise SystemExit(f"--claim expects k=v, got '{item}'")
        try:
            claims[name] = json.loads(raw)
        except ValueError:
            claims[name] = raw
    return claims


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="gateway", description=__doc__)
    parser.add_argument("--config", help="YAML config file (default: $GATEWAY_CONFIG)")
    sub = parser.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="serve the gateway")
    run.add_argument("--log-level", default="info")
    run.set_defaults(func=cmd_run)

    demo = sub.add_parser("demo", help="the gateway in front of the demo chatbot")
    demo.add_argument("--port", type=int, default=8080)
    demo.add_argument("--bot-port", type=int, default=9000)
    demo.add_argument("--admin-port", type=int, default=9090, help="0 turns the admin port off")
    demo.set_defaults(func=cmd_demo)

    policies = sub.add_parser("policies", help="check or explain route policies")
    psub = policies.add_subparsers(dest="policies_command", required=True)
    check = psub.add_parser("check", help="validate a policy directory")
    check.add_argument("dir", nargs="?")
    check.set_defaults(func=cmd_policies_check)
    explain = psub.add_parser("explain", help="which rule decides a request, and why")
    explain.add_argument("method")
    explain.add_argument("path")
    explain.add_argument(
        "--level", default="none", choices=("none", "anonymous", "authenticated", "otp")
    )
    explain.add_argument("--websocket", action="store_true")
    explain.add_argument("--dir")
    explain.set_defaults(func=cmd_policies_explain)

    users = sub.add_parser("users", help="GDPR: show or forget what the store keeps about a user")
    usub = users.add_subparsers(dest="users_command", required=True)
    for name, text in (("show", "print the user's anonymous ids, sessions and OTP state (JSON)"),
                       ("forget", "delete the user's sessions, codes and links (JSON summary)")):
        command = usub.add_parser(name, help=text)
        command.add_argument("user_id", metavar="ID")
        command.set_defaults(func=cmd_users)

    token = sub.add_parser("token", help="mint test tokens")
    tsub = token.add_subparsers(dest="token_command", required=True)
    mint = tsub.add_parser("mint", help="sign a token with a configured HMAC key")
    mint.add_argument("--kid", required=True)
    mint.add_argument("--sub", required=True)
    mint.add_argument("--ttl", type=int, default=3600)
    mint.add_argument("--claim", action="append", default=[], metavar="K=V")
    mint.set_defaults(func=cmd_token_mint)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    result: int = args.func(args)
    return result


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
