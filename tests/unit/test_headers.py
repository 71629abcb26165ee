from __future__ import annotations

from gateway.identity.model import Identity
from gateway.rewrite.header_names import HeaderNames
from gateway.rewrite.headers import HeaderRewriter
from gateway.rewrite.response_headers import response_headers

ALICE = Identity(user_id="alice", level="authenticated", expires_at=0.0, email="a@x.example")


def rewrite(
    headers: list[tuple[bytes, bytes]], identity: Identity | None = ALICE, **options: object
) -> list[tuple[bytes, bytes]]:
    rewriter = HeaderRewriter(upstream_host="backend:9000", cookie_names=("gw_session",), **options)  # type: ignore[arg-type]
    return rewriter.request_headers(headers, identity, client_ip="10.1.2.3", scheme="http")


def test_host_is_the_upstream_and_identity_is_appended() -> None:
    out = rewrite([(b"host", b"chat.example"), (b"accept", b"*/*")])
    assert out[0] == (b"host", b"backend:9000")
    assert (b"x-user-id", b"alice") in out
    assert (b"x-user-email", b"a@x.example") in out
    assert (b"x-forwarded-host", b"chat.example") in out


def test_configured_header_names_are_used_and_stripped() -> None:
    names = HeaderNames(user_id="X-Bot-User")
    out = rewrite([(b"x-bot-user", b"mallory"), (b"x_bot_user", b"eve")], names=names)
    assert [v for n, v in out if n == b"x-bot-user"] == [b"alice"]
    assert (b"x_bot_user", b"eve") not in out


def test_forwarding_headers_trusted_only_from_configured_proxies() -> None:
    incoming = [(b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-proto", b"https")]
    untrusted = rewrite(incoming)
    assert (b"x-forwarded-for", b"10.1.2.3") in untrusted
    assert (b"x-forwarded-proto", b"http") in untrusted
    trusted = rewrite(incoming, trusted_proxies=["10.0.0.0/8"])
    assert (b"x-forwarded-for", b"1.1.1.1, 10.1.2.3") in trusted
    assert (b"x-forwarded-proto", b"https") in trusted


def test_authorization_forwarding_is_configurable() -> None:
    headers = [(b"authorization", b"Bearer t")]
    assert all(n != b"authorization" for n, _ in rewrite(headers))
    assert (b"authorization", b"Bearer t") in rewrite(headers, forward_authorization=True)


def test_only_the_gateway_cookie_is_removed() -> None:
    out = rewrite([(b"cookie", b"a=1; gw_session=s3cr3t;b=2")])
    assert (b"cookie", b"a=1; b=2") in out
    only = rewrite([(b"cookie", b"gw_session=s3cr3t")])
    assert all(n != b"cookie" for n, _ in only)


def test_non_ascii_name_is_percent_encoded() -> None:
    identity = Identity(user_id="u", level="authenticated", expires_at=0.0, name="Zoë\r\nX: y")
    out = rewrite([], identity)
    assert (b"x-user-name", b"Zo%C3%AB%0D%0AX: y") in out


def test_response_keeps_every_set_cookie_and_drops_hop_by_hop() -> None:
    out = response_headers(
        [
            (b"set-cookie", b"a=1"),
            (b"connection", b"keep-alive, x-internal"),
            (b"x-internal", b"1"),
            (b"set-cookie", b"b=2"),
            (b"transfer-encoding", b"chunked"),
            (b"content-type", b"text/plain"),
        ]
    )
    assert out == [
        (b"set-cookie", b"a=1"),
        (b"set-cookie", b"b=2"),
        (b"content-type", b"text/plain"),
    ]
