"""Sessions and OTP step-up through the real gateway process (CONTRACT §2, §3).

The codes travel for real: e-mail over SMTP to an aiosmtpd server, SMS to a webhook endpoint,
and the tests read them from there as a user reads their phone.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from collections.abc import Iterator
from typing import Any

import httpx
import pytest

from gateway.observe import salted_user_hash
from tests.conftest import gateway_config, gateway_env
from tests.security.jwt_cases import AttackKeys, valid_token
from tests.support.delivery import CODE, Inbox, running_receivers
from tests.support.procs import Gateway, Recorder, start_gateway, stop

LOG_SALT_ENV, LOG_SALT = "TEST_GATEWAY_LOG_SALT", "a-log-salt-for-the-otp-tests"
DIRECTORY = """
alice: {email: alice@example.com, channel: email, language: en}
bob: {email: bob@example.com, channel: email, language: de}
C-1001: {phone: "+4915100001001", channel: sms, language: de}
C-2002: {phone: "+4915100002002", channel: sms}
C-3003: {phone: "+4915100003003", channel: sms}
C-4004: {phone: "+4915100004004", channel: sms}
C-5005: {phone: "+4915100005005", channel: sms}
C-6006: {phone: "+4915100006006", channel: sms}
C-7007: {phone: "+4915100007007", channel: sms}
race-1: {email: race-1@example.com}
race-2: {email: race-2@example.com}
"""


@pytest.fixture(scope="module")
def otp_stack(
    keys: AttackKeys, recorder: Recorder, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[Gateway, Inbox]]:
    workdir = tmp_path_factory.mktemp("otp-gateway")
    directory = workdir / "customers.yaml"
    directory.write_text(DIRECTORY)
    with running_receivers() as (inbox, smtp_port, webhook_url):
        config = gateway_config(
            keys, workdir, recorder.url,
            directory={"kind": "file", "path": str(directory)},
            senders={
                "email": {"kind": "smtp", "host": "127.0.0.1", "port": smtp_port,
                          "from": "codes@gateway.example"},
                "sms": {"kind": "webhook", "url": webhook_url},
            },
            otp={"ip_send_limit": 10_000, "ip_verify_limit": 100_000},
            log={"user_hash_salt_env": LOG_SALT_ENV},
        )
        gw = start_gateway(workdir, config, {**gateway_env(keys), LOG_SALT_ENV: LOG_SALT})
        yield gw, inbox
        stop(gw.proc)


@pytest.fixture
def gw(otp_stack: tuple[Gateway, Inbox]) -> Gateway:
    return otp_stack[0]


@pytest.fixture
def inbox(otp_stack: tuple[Gateway, Inbox]) -> Inbox:
    return otp_stack[1]


def client(gw: Gateway) -> httpx.Client:
    return httpx.Client(base_url=gw.url, timeout=10)


def cookie_of(response: httpx.Response) -> str:
    for header in response.headers.get_list("set-cookie"):
        name, _, rest = header.partition("=")
        if name == "gw_session":
            return rest.split(";")[0]
    raise AssertionError(f"no session cookie in {response.headers}")


def seen_header(record: dict[str, Any], name: str) -> list[str]:
    return [v for n, v in record["headers"] if n.lower() == name]


def test_jwt_user_steps_up_with_an_emailed_code(
    gw: Gateway, inbox: Inbox, recorder: Recorder, keys: AttackKeys
) -> None:
    with client(gw) as c:
        token = valid_token(keys, sub="alice")
        login = c.post("/auth/session", headers={"Authorization": f"Bearer {token}"})
        assert login.status_code == 200
        assert login.json()["user_id"] == "alice" and login.json()["level"] == "authenticated"
        first_cookie = cookie_of(login)
        set_cookie = login.headers["set-cookie"]
        assert "HttpOnly" in set_cookie and "SameSite=Lax" in set_cookie and "Path=/" in set_cookie

        refused = c.get("/api/account/balance")
        assert refused.status_code == 401
        assert refused.json()["error"] == "otp_required"
        assert refused.json()["send"] == "/auth/otp/send"
        assert 'error="insufficient_user_authentication"' in refused.headers["www-authenticate"]

        before = inbox.count("alice@example.com")
        sent = c.post("/auth/otp/send", json={})
        assert sent.status_code == 202
        body = sent.json()
        assert body["channel"] == "email"
        assert body["destination"] != "alice@example.com" and body["destination"].endswith(
            "@example.com")
        assert body["expires_in"] == 300 and body["resend_in"] == 30
        code = inbox.wait_code("alice@example.com", after=before)

        verified = c.post("/auth/otp/verify", json={"code": code})
        assert verified.status_code == 200, verified.text
        assert verified.json()["level"] == "otp" and verified.json()["user_id"] == "alice"
        elevated_cookie = cookie_of(verified)
        assert elevated_cookie != first_cookie

        recorder.clear()
        allowed = c.get("/api/account/balance")
        assert allowed.status_code == 200
        [seen] = recorder.requests()
        assert seen_header(seen, "x-user-id") == ["alice"]
        assert seen_header(seen, "x-auth-level") == ["otp"]
        assert all("gw_session" not in v for v in seen_header(seen, "cookie"))

        shown = c.get("/auth/session").json()
        assert shown["level"] == "otp" and shown["otp_expires_at"] > shown["expires_at"] - 86400

    # The cookie from before the elevation died when the id rotated.
    old = httpx.get(f"{gw.url}/auth/session", cookies={"gw_session": first_cookie})
    assert old.status_code == 401 and old.json()["error"] == "session_missing"
    replay = httpx.post(f"{gw.url}/auth/otp/verify", json={"code": code},
                        cookies={"gw_session": elevated_cookie})
    assert replay.status_code == 401 and replay.json()["error"] == "otp_invalid"


def test_anonymous_visitor_proves_a_customer_number_by_sms(
    gw: Gateway, inbox: Inbox, recorder: Recorder
) -> None:
    with client(gw) as c:
        chat = c.post("/anon/chat", json={"message": "what is my balance?"})
        assert chat.status_code == 200
        anon_cookie = cookie_of(chat)
        [seen] = recorder.requests()
        anonymous_id = seen_header(seen, "x-user-id")[0]
        assert anonymous_id.startswith("anon-")
        assert seen_header(seen, "x-auth-level") == ["anonymous"]

        again = c.post("/anon/chat", json={"message": "still me"})
        assert "set-cookie" not in again.headers
        assert seen_header(recorder.requests()[-1], "x-user-id") == [anonymous_id]

        assert c.get("/api/account/balance").json()["error"] == "otp_required"
        before = inbox.count("+4915100001001")
        sent = c.post("/auth/otp/send", json={"user_id": "C-1001"})
        assert sent.status_code == 202 and sent.json()["channel"] == "sms"
        code = inbox.wait_code("+4915100001001", after=before)
        verified = c.post("/auth/otp/verify", json={"code": code})
        assert verified.status_code == 200
        assert verified.json()["user_id"] == "C-1001"
        assert cookie_of(verified) != anon_cookie

        recorder.clear()
        assert c.get("/api/account/balance").status_code == 200
        [seen] = recorder.requests()
        assert seen_header(seen, "x-user-id") == ["C-1001"]
        assert seen_header(seen, "x-auth-level") == ["otp"]

        elevated_cookie = c.cookies["gw_session"]
        logout = c.delete("/auth/session")
        assert logout.status_code == 204
        assert "Max-Age=0" in logout.headers["set-cookie"]

    recorder.clear()
    after = httpx.get(f"{gw.url}/api/account/balance", cookies={"gw_session": elevated_cookie})
    assert after.status_code == 401 and after.json()["error"] == "otp_required"
    assert recorder.requests() == []


def test_jwt_on_anonymous_session_upgrades_and_links_the_anonymous_id(
    gw: Gateway, recorder: Recorder, keys: AttackKeys
) -> None:
    with client(gw) as c:
        chat = c.post("/anon/chat", json={"message": "hi"})
        anon_cookie = cookie_of(chat)
        anonymous_id = seen_header(recorder.requests()[-1], "x-user-id")[0]
        token = valid_token(keys, sub="carol")
        upgraded = c.get("/api/x", headers={"Authorization": f"Bearer {token}"})
        assert upgraded.status_code == 200
        assert cookie_of(upgraded) != anon_cookie
        seen = recorder.requests()[-1]
        assert seen_header(seen, "x-user-id") == ["carol"]
        assert seen_header(seen, "x-anonymous-id") == [anonymous_id]
        # The session now carries the login without the token.
        assert c.get("/auth/session").json()["user_id"] == "carol"
    old = httpx.get(f"{gw.url}/auth/session", cookies={"gw_session": anon_cookie})
    assert old.status_code == 401


def test_post_auth_session_reports_the_linked_anonymous_id(
    gw: Gateway, recorder: Recorder, keys: AttackKeys
) -> None:
    with client(gw) as c:
        c.post("/anon/chat", json={"message": "hi"})
        anonymous_id = seen_header(recorder.requests()[-1], "x-user-id")[0]
        login = c.post("/auth/session",
                       headers={"Authorization": f"Bearer {valid_token(keys, sub='dave')}"})
        assert login.status_code == 200
        assert login.json()["anonymous_id"] == anonymous_id


def test_session_refuses_a_token_for_another_user(gw: Gateway, keys: AttackKeys,
                                                  recorder: Recorder) -> None:
    with client(gw) as c:
        c.post("/auth/session", headers={"Authorization": f"Bearer {valid_token(keys)}"})
        recorder.clear()
        other = valid_token(keys, sub="mallory")
        response = c.get("/api/x", headers={"Authorization": f"Bearer {other}"})
        assert response.status_code == 401
        assert response.json()["error"] == "subject_mismatch"
        again = c.post("/auth/session", headers={"Authorization": f"Bearer {other}"})
        assert again.json()["error"] == "subject_mismatch"
    assert recorder.requests() == []


def test_client_chosen_cookie_is_never_adopted(gw: Gateway, recorder: Recorder) -> None:
    chosen = "A" * 43
    response = httpx.post(f"{gw.url}/anon/chat", json={"m": 1}, cookies={"gw_session": chosen})
    assert response.status_code == 200
    assert cookie_of(response) != chosen
    assert httpx.get(f"{gw.url}/auth/session",
                     cookies={"gw_session": chosen}).status_code == 401


def test_cookie_session_post_from_foreign_origin_is_refused(
    gw: Gateway, recorder: Recorder
) -> None:
    with client(gw) as c:
        c.post("/anon/chat", json={"m": 1})
        recorder.clear()
        foreign = c.post("/anon/chat", json={"m": 2}, headers={"Origin": "https://evil.example"})
        assert foreign.status_code == 403
        assert foreign.json()["error"] == "origin_forbidden"
        assert recorder.requests() == []
        own = c.post("/anon/chat", json={"m": 3}, headers={"Origin": gw.url})
        assert own.status_code == 200
        logout = c.delete("/auth/session", headers={"Origin": "https://evil.example"})
        assert logout.status_code == 403


def test_authenticated_session_can_only_ask_codes_for_itself(
    gw: Gateway, keys: AttackKeys, inbox: Inbox
) -> None:
    with client(gw) as c:
        c.post("/auth/session", headers={"Authorization": f"Bearer {valid_token(keys)}"})
        before = inbox.count("bob@example.com")
        response = c.post("/auth/otp/send", json={"user_id": "bob"})
        assert response.status_code == 409
        assert response.json()["error"] == "subject_mismatch"
    assert inbox.count("bob@example.com") == before


def test_unknown_and_known_users_get_identical_answers(gw: Gateway, inbox: Inbox) -> None:
    known = httpx.post(f"{gw.url}/auth/otp/send", json={"user_id": "C-2002"})
    unknown = httpx.post(f"{gw.url}/auth/otp/send", json={"user_id": "C-9999"})
    assert known.status_code == unknown.status_code == 202
    assert sorted(known.json()) == sorted(unknown.json())
    for key in known.json():
        assert type(known.json()[key]) is type(unknown.json()[key])
    assert unknown.json()["channel"] in ("sms", "email")
    assert [k for k, _ in known.headers.raw] == [k for k, _ in unknown.headers.raw]
    assert inbox.count("+4915100002002") >= 1


@pytest.mark.parametrize(
    "code", [123456, 123456.0, True, None, [1, 2], {"c": 1}, "12345", "1234567", " 123456",
             "123456 ", "１２３４５６", "١٢٣٤٥٦", "12345a", ""],
)
def test_malformed_codes_are_bad_requests(gw: Gateway, code: object) -> None:
    with client(gw) as c:
        c.post("/auth/otp/send", json={"user_id": "C-3003"})
        response = c.post("/auth/otp/verify", json={"code": code})
        assert response.status_code == 400
        assert response.json()["error"] == "bad_request"


@pytest.mark.parametrize(
    "user_id", [123, None, "", "a b", "x" * 256, "é", ["C-1001"], {"id": 1}, "a\nb"],
)
def test_malformed_user_ids_are_bad_requests(gw: Gateway, user_id: object) -> None:
    body = json.dumps({"user_id": user_id}) if user_id is not None else '{"user_id": null}'
    response = httpx.post(f"{gw.url}/auth/otp/send", content=body,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 400


def test_request_cannot_choose_the_destination(gw: Gateway, inbox: Inbox) -> None:
    with client(gw) as c:
        response = c.post("/auth/otp/send", json={
            "user_id": "C-4004", "phone": "+10000000000", "email": "attacker@evil.example",
            "destination": "attacker@evil.example"})
        assert response.status_code in (202, 400)
    assert inbox.count("+10000000000") == 0 and inbox.count("attacker@evil.example") == 0


def test_brute_force_locks_and_the_right_code_then_fails(gw: Gateway, inbox: Inbox) -> None:
    with client(gw) as c:
        before = inbox.count("+4915100005005")
        c.post("/auth/otp/send", json={"user_id": "C-5005"})
        code = inbox.wait_code("+4915100005005", after=before)
        wrong = f"{(int(code) + 1) % 1_000_000:06d}"
        answers = [c.post("/auth/otp/verify", json={"code": wrong}) for _ in range(5)]
        assert [a.status_code for a in answers] == [401, 401, 401, 401, 429]
        assert answers[0].json()["attempts_left"] == 4
        assert answers[-1].json()["error"] == "otp_locked"
        late = c.post("/auth/otp/verify", json={"code": code})
        assert late.status_code in (401, 429)
        assert late.json()["error"] in ("otp_invalid", "otp_locked")


@pytest.mark.slow
def test_concurrent_verifies_hold_the_limits(gw: Gateway, inbox: Inbox) -> None:
    async def code_for(c: httpx.AsyncClient, user: str) -> str:
        before = inbox.count(f"{user}@example.com")
        await c.post("/auth/otp/send", json={"user_id": user})
        return await asyncio.to_thread(inbox.wait_code, f"{user}@example.com", 10.0, before)

    async def scenario() -> tuple[list[httpx.Response], list[httpx.Response]]:
        limits = httpx.Limits(max_connections=200)
        async with httpx.AsyncClient(base_url=gw.url, timeout=30, limits=limits) as c:
            code = await code_for(c, "race-1")
            wrong = f"{(int(code) + 1) % 1_000_000:06d}"
            wrong_answers = await asyncio.gather(
                *[c.post("/auth/otp/verify", json={"code": wrong}) for _ in range(200)])
        async with httpx.AsyncClient(base_url=gw.url, timeout=30, limits=limits) as c:
            code = await code_for(c, "race-2")
            right_answers = await asyncio.gather(
                *[c.post("/auth/otp/verify", json={"code": code}) for _ in range(20)])
        return list(wrong_answers), list(right_answers)

    wrong, right = asyncio.run(scenario())
    # Only an evaluated wrong code earns "attempts_left"; the 5th evaluated one locks.
    assert sum("attempts_left" in a.json() for a in wrong) <= 4
    assert {a.status_code for a in wrong} <= {401, 429}
    assert [a.status_code for a in right].count(200) == 1
    assert {a.status_code for a in right} <= {200, 401, 429}
    time.sleep(0.5)
    # Audit lines name users by a salted hash; with the salt known, a test can find them.
    race_1 = salted_user_hash(LOG_SALT.encode(), "race-1")
    evaluated = [line for line in gw.log_lines()
                 if line.get("user_hash") == race_1
                 and line.get("audit") in ("otp_failed", "otp_locked")]
    assert 1 <= len(evaluated) <= 5


def test_logs_never_hold_codes_or_cookies(gw: Gateway, inbox: Inbox) -> None:
    time.sleep(0.5)  # request lines are flushed in batches
    text = gw.stdout_path.read_text() + gw.stderr_path.read_text()
    with inbox.lock:
        texts = [s["text"] for s in inbox.sms] + [Inbox.text_of(m) for m in inbox.mails]
    codes = {match.group(1) for t in texts if (match := CODE.search(t))}
    assert codes, "the flow tests above sent codes"
    for code in codes:
        assert re.search(rf"(?<![0-9]){code}(?![0-9])", text) is None, code
    assert "gw_session=" not in text


# Regression tests named after review findings ------------------------------------------------


def test_finding_auth_body_is_capped_before_it_is_read(gw: Gateway) -> None:
    big = b'{"user_id": "' + b"x" * 100_000 + b'"}'
    response = httpx.post(f"{gw.url}/auth/otp/send", content=big,
                          headers={"Content-Type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"

    def chunks() -> Iterator[bytes]:
        for _ in range(50):
            yield b" " * 1024

    chunked = httpx.post(f"{gw.url}/auth/otp/send", content=chunks(),
                         headers={"Content-Type": "application/json"})
    assert chunked.status_code == 413


def test_finding_upgrade_on_a_refused_request_keeps_the_new_session(
    gw: Gateway, recorder: Recorder, keys: AttackKeys
) -> None:
    with client(gw) as c:
        c.post("/anon/chat", json={"m": 1})
        anon_cookie = c.cookies["gw_session"]
        recorder.clear()
        token = valid_token(keys, sub="erin")
        refused = c.get("/api/account/balance", headers={"Authorization": f"Bearer {token}"})
        assert refused.status_code == 401 and refused.json()["error"] == "otp_required"
        new_cookie = cookie_of(refused)
        assert new_cookie != anon_cookie
        shown = c.get("/auth/session")
        assert shown.status_code == 200 and shown.json()["user_id"] == "erin"
    assert recorder.requests() == []


def test_finding_code_holder_cannot_switch_customer_without_logout(
    gw: Gateway, inbox: Inbox
) -> None:
    with client(gw) as c:
        before = inbox.count("+4915100006006")
        c.post("/auth/otp/send", json={"user_id": "C-6006"})
        code = inbox.wait_code("+4915100006006", after=before)
        assert c.post("/auth/otp/verify", json={"code": code}).status_code == 200
        switch = c.post("/auth/otp/send", json={"user_id": "C-7007"})
        assert switch.status_code == 409
        assert switch.json()["error"] == "subject_mismatch"


def test_finding_enumeration_holds_for_email_users(gw: Gateway) -> None:
    answers = [httpx.post(f"{gw.url}/auth/otp/send", json={"user_id": user})
               for user in ("bob", "nobody-1", "nobody-2", "nobody-3", "nobody-4")]
    assert {a.status_code for a in answers} == {202}
    shapes = {tuple((k, type(v).__name__) for k, v in a.json().items()) for a in answers}
    assert len(shapes) == 1
    header_names = {tuple(k for k, _ in a.headers.raw if k.lower() != b"set-cookie")
                    for a in answers}
    assert len(header_names) == 1
    # Unknown ids answer with both channels, as real users do.
    assert {a.json()["channel"] for a in answers[1:]} <= {"sms", "email"}


def test_finding_every_401_names_the_bearer_scheme(gw: Gateway) -> None:
    missing = httpx.get(f"{gw.url}/auth/session")
    assert missing.status_code == 401
    assert missing.headers["www-authenticate"].startswith('Bearer realm="gateway"')
