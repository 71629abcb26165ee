"""Directories: YAML and CSV files (every problem listed, exact texts) and an HTTP CRM (respx)."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path
from typing import Any

import httpx
import pytest
import respx

from gateway.errors import ConfigError, DirectoryError
from gateway.otp.directory import FileDirectory, HttpDirectory, build_directory
from gateway.otp.model import Contact, Directory

CRM = "https://crm.example/api/users/{user_id}/contact"
SECRET = "crm-api-key-7f3a"


def lookup(directory: Any, user_id: str) -> Contact | None:
    async def go() -> Contact | None:
        try:
            result: Contact | None = await directory.lookup(user_id)
            return result
        finally:
            await directory.aclose()

    return asyncio.run(go())


def config_errors(path: Path) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        FileDirectory(path)
    return caught.value.errors


# --- YAML ---------------------------------------------------------------------------------


def test_yaml_directory(tmp_path: Path) -> None:
    path = tmp_path / "customers.yaml"
    path.write_text(
        "alice:\n"
        "  email: alice@example.com\n"
        "  phone: +4915112345678\n"  # Unquoted: still a string with its "+".
        "  channel: email\n"
        "  language: de\n"
        "10042:\n"  # A numeric customer number is a string user id.
        "  phone: '+33612345678'\n"
        "  email: ''\n"
        "nobody:\n",
        encoding="utf-8",
    )
    directory = FileDirectory(path)
    assert lookup(directory, "alice") == Contact(
        "alice", "+4915112345678", "alice@example.com", "email", "de"
    )
    assert lookup(directory, "10042") == Contact("10042", phone="+33612345678")
    assert lookup(directory, "nobody") == Contact("nobody")
    assert lookup(directory, "mallory") is None


def test_yaml_directory_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "customers.yml"
    path.write_text(
        "alice:\n"
        "  phone: 0151 1234567\n"
        "  email: not-an-address\n"
        "  channel: pigeon\n"
        "  language: it\n"
        "  fax: '123'\n"
        "bad id:\n"
        "  phone: '+4915112345678'\n"
        "bob: just-a-string\n"
        "carol:\n"
        "  email: carol@example.com, eve@example.com\n"
        "  phone: 4915112345678\n",
        encoding="utf-8",
    )
    p = str(path)
    assert config_errors(path) == [
        f"{p}: user 'alice': option 'phone' must be an E.164 number like +4915112345678 "
        "but it's configured as '0151 1234567'",
        f"{p}: user 'alice': option 'email' must be an e-mail address like name@example.com "
        "but it's configured as 'not-an-address'",
        f"{p}: user 'alice': option 'channel' must be one of 'sms', 'email' "
        "but it's configured as 'pigeon'",
        f"{p}: user 'alice': option 'language' must be one of 'de', 'en', 'es', 'fr' "
        "but it's configured as 'it'",
        f"{p}: user 'alice': option 'fax' is not a known option "
        "(known: phone, email, channel, language)",
        f"{p}: a user id must be 1 to 255 visible ASCII characters (no spaces) "
        "but it's configured as 'bad id'",
        f"{p}: user 'bob': the entry must be a mapping of options "
        "(phone, email, channel, language) but it's configured as 'just-a-string'",
        f"{p}: user 'carol': option 'email' must be an e-mail address like name@example.com "
        "but it's configured as 'carol@example.com, eve@example.com'",
        f"{p}: user 'carol': option 'phone' must be an E.164 number like +4915112345678 "
        "but it's configured as '4915112345678'",
    ]


def test_yaml_directory_file_level_problems(tmp_path: Path) -> None:
    listing = tmp_path / "list.yaml"
    listing.write_text("- alice\n- bob\n", encoding="utf-8")
    assert config_errors(listing) == [
        f"{listing}: the file must be a mapping of user ids to their contact options "
        "but it's configured as '['alice', 'bob']'"
    ]
    duplicate = tmp_path / "dup.yaml"
    duplicate.write_text("alice: {}\nalice: {}\n", encoding="utf-8")
    assert config_errors(duplicate) == [
        f"{duplicate}: invalid YAML at line 2, column 1: "
        "duplicate key 'alice' (first defined at line 1)"
    ]
    empty = tmp_path / "empty.yaml"
    empty.write_text("", encoding="utf-8")
    assert lookup(FileDirectory(empty), "alice") is None


def test_directory_file_type_and_existence(tmp_path: Path) -> None:
    assert config_errors(tmp_path / "customers.json") == [
        f"{tmp_path / 'customers.json'}: the directory file must end in .yaml, .yml or .csv"
    ]
    [message] = config_errors(tmp_path / "missing.csv")
    assert message.startswith(f"{tmp_path / 'missing.csv'}: the file cannot be read: ")


# --- CSV ----------------------------------------------------------------------------------


def test_csv_directory(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(
        "\ufeffuser_id,phone,email,channel,language\n"  # A spreadsheet's byte order mark.
        "alice,+4915112345678,alice@example.com,email,de\n"
        "C-1001, +4915100001001 ,,sms,\n"
        "\n"
        "C-1002,,c-1002@example.com\n",
        encoding="utf-8",
    )
    directory = FileDirectory(path)
    assert lookup(directory, "alice") == Contact(
        "alice", "+4915112345678", "alice@example.com", "email", "de"
    )
    assert lookup(directory, "C-1001") == Contact("C-1001", phone="+4915100001001", channel="sms")
    assert lookup(directory, "C-1002") == Contact("C-1002", email="c-1002@example.com")


def test_csv_columns_may_be_a_subset_in_any_order(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("email,user_id\nbob@example.com,bob\n", encoding="utf-8")
    assert lookup(FileDirectory(path), "bob") == Contact("bob", email="bob@example.com")


def test_csv_directory_lists_every_problem(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(
        "user_id,phone,email,channel,language,notes\n"
        "alice,015112345678,alice@example,fax,EN,vip\n"
        "bob,+4915112345678,,,,\n"
        "bob,+4915112345679,,,,\n"
        ',"+4915112345678",,,,\n'
        "carol,+4915112345678,,,,,extra\n",
        encoding="utf-8",
    )
    p = str(path)
    assert config_errors(path) == [
        f"{p}: column 'notes' is not a known column "
        "(known: user_id, phone, email, channel, language)",
        f"{p}: user 'alice': option 'phone' must be an E.164 number like +4915112345678 "
        "but it's configured as '015112345678'",
        f"{p}: user 'alice': option 'email' must be an e-mail address like name@example.com "
        "but it's configured as 'alice@example'",
        f"{p}: user 'alice': option 'channel' must be one of 'sms', 'email' "
        "but it's configured as 'fax'",
        f"{p}: user 'alice': option 'language' must be one of 'de', 'en', 'es', 'fr' "
        "but it's configured as 'EN'",
        f"{p}: user 'bob': the user must be listed once, but line 4 repeats it",
        f"{p}: a user id must be 1 to 255 visible ASCII characters (no spaces) "
        "but it's configured as ''",
        f"{p}: line 6: the row must have at most 6 fields but it has more",
    ]


def test_csv_header_without_user_id(tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text("id,phone\nalice,+4915112345678\n", encoding="utf-8")
    assert config_errors(path) == [
        f"{path}: the file must be a header with 'user_id' and some of phone, email, channel, "
        "language but it's configured as 'id,phone'"
    ]


# --- HTTP CRM -----------------------------------------------------------------------------


def crm(**options: Any) -> HttpDirectory:
    options.setdefault("auth_header", "X-Api-Key")
    options.setdefault("auth_value", SECRET)
    return HttpDirectory(options.pop("url", CRM), **options)


def test_http_200_is_a_contact_and_sends_the_auth_header() -> None:
    body = {
        "phone": "+4915112345678",
        "email": "alice@example.com",
        "channel": "sms",
        "language": "fr",
        "name": "Alice",
    }
    with respx.mock(assert_all_called=True) as router:
        route = router.get("https://crm.example/api/users/alice/contact").mock(
            return_value=httpx.Response(200, json=body)
        )
        contact = lookup(crm(), "alice")
    assert contact == Contact("alice", "+4915112345678", "alice@example.com", "sms", "fr")
    request = route.calls.last.request
    assert request.headers["X-Api-Key"] == SECRET
    assert request.headers["Accept"] == "application/json"


def test_http_field_map_names_the_crm_members() -> None:
    body = {"mobile": "+4915112345678", "mail": "alice@example.com", "phone": "+10000000000"}
    with respx.mock(assert_all_called=True) as router:
        router.get(url__startswith="https://crm.example/").mock(
            return_value=httpx.Response(200, json=body)
        )
        contact = lookup(crm(field_map={"phone": "mobile", "email": "mail"}), "alice")
    assert contact == Contact("alice", phone="+4915112345678", email="alice@example.com")


def test_http_404_is_an_unknown_user() -> None:
    with respx.mock(assert_all_called=True) as router:
        router.get(url__startswith="https://crm.example/").mock(return_value=httpx.Response(404))
        assert lookup(crm(), "mallory") is None


@pytest.mark.parametrize(
    ("outcome", "reason"),
    [
        (httpx.Response(500), "directory_bad_status"),
        (httpx.Response(401), "directory_bad_status"),
        (
            httpx.Response(302, headers={"Location": "https://evil.example/"}),
            "directory_bad_status",
        ),
        (httpx.Response(200, text="<html>login</html>"), "directory_invalid_json"),
        (httpx.Response(200, json=["not", "an", "object"]), "directory_invalid_json"),
        (httpx.ReadTimeout("slow"), "directory_timeout"),
        (httpx.ConnectTimeout("slow"), "directory_timeout"),
        (httpx.ConnectError("refused"), "directory_unreachable"),
    ],
)
def test_http_failures_are_directory_errors(outcome: Any, reason: str) -> None:
    with respx.mock(assert_all_called=True) as router:
        route = router.get(url__startswith="https://crm.example/")
        if isinstance(outcome, httpx.Response):
            route.mock(return_value=outcome)
        else:
            route.mock(side_effect=outcome)
        with pytest.raises(DirectoryError) as caught:
            lookup(crm(), "alice")
    assert caught.value.reason == reason
    assert len(route.calls) == 1  # A redirect is not followed.


@pytest.mark.parametrize(
    ("template", "user_id", "raw_path"),
    [
        (CRM, "a/b?c=../d", b"/api/users/a%2Fb%3Fc%3D..%2Fd/contact"),
        (CRM, "../../admin", b"/api/users/..%2F..%2Fadmin/contact"),
        (CRM, "..", b"/api/users/%2E%2E/contact"),
        (CRM, ".", b"/api/users/%2E/contact"),
        (CRM, "x#y%2F", b"/api/users/x%23y%252F/contact"),
        ("https://crm.example/lookup?id={user_id}", "x&admin=1#f", b"/lookup?id=x%26admin%3D1%23f"),
    ],
)
def test_http_user_id_is_one_encoded_segment(template: str, user_id: str, raw_path: bytes) -> None:
    with respx.mock(assert_all_called=True) as router:
        route = router.get(url__startswith="https://crm.example/").mock(
            return_value=httpx.Response(404)
        )
        assert lookup(crm(url=template), user_id) is None
    url = route.calls.last.request.url
    assert url.host == "crm.example"
    assert url.raw_path == raw_path
    assert str(url) == "https://crm.example" + raw_path.decode()


def test_http_invalid_user_id_is_unknown_without_a_request() -> None:
    with respx.mock(assert_all_called=False) as router:
        route = router.get(url__startswith="https://crm.example/")
        assert lookup(crm(), "has space") is None
        assert lookup(crm(), "") is None
        assert lookup(crm(), "x" * 256) is None
    assert not route.called


def test_http_invalid_values_from_the_crm_are_absent(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG, logger="gateway")
    body = {"phone": "0151 1234", "email": "alice@example.com", "channel": 7, "language": "xx"}
    with respx.mock(assert_all_called=True) as router:
        router.get(url__startswith="https://crm.example/").mock(
            return_value=httpx.Response(200, json=body)
        )
        contact = lookup(crm(), "alice")
    assert contact == Contact("alice", email="alice@example.com")
    warnings = [record.getMessage() for record in caplog.records]
    assert warnings == [
        "directory: ignoring the invalid phone of user 'alice'",
        "directory: ignoring the invalid channel of user 'alice'",
        "directory: ignoring the invalid language of user 'alice'",
    ]
    assert "0151" not in caplog.text and SECRET not in caplog.text


def test_http_logs_never_hold_the_auth_value(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.DEBUG)
    with respx.mock(assert_all_called=True) as router:
        router.get(url__startswith="https://crm.example/").mock(return_value=httpx.Response(503))
        with pytest.raises(DirectoryError):
            lookup(crm(), "alice")
    assert "directory lookup failed: directory_bad_status (HTTP 503)" in caplog.text
    assert SECRET not in caplog.text


def test_http_shared_client_stays_open() -> None:
    async def go() -> None:
        async with httpx.AsyncClient(follow_redirects=True) as client:
            directory = HttpDirectory(CRM, client=client)
            with pytest.raises(DirectoryError):
                await directory.lookup("alice")  # 302 and the shared client follows redirects.
            await directory.aclose()
            assert not client.is_closed

    with respx.mock(assert_all_called=True) as router:
        route = router.get(url__startswith="https://crm.example/").mock(
            return_value=httpx.Response(302, headers={"Location": "https://evil.example/"})
        )
        asyncio.run(go())
    assert len(route.calls) == 1


def test_http_configuration_errors_are_listed_together() -> None:
    with pytest.raises(ConfigError) as caught:
        HttpDirectory(
            "https://{user_id}.crm.example/contact",
            auth_value=SECRET,
            timeout=0,
            field_map={"phone": "mobile", "fax": "fax"},
        )
    assert caught.value.errors == [
        "directory: option 'url' must be an http(s) URL with '{user_id}' once in its path or "
        "query but it's configured as 'https://{user_id}.crm.example/contact'",
        "directory: option 'auth_header' must be set together with 'auth_value' (a header "
        "name and its secret value) but it's configured as ''",
        "directory: option 'timeout' must be more than 0 but it's configured as '0'",
        "directory: option 'field_map' must be a mapping from phone, email, channel, language "
        "to JSON member names but it's configured as 'fax: fax'",
    ]
    assert SECRET not in str(caught.value)


@pytest.mark.parametrize(
    "template",
    [
        "https://crm.example/users",
        "https://crm.example/users/{user_id}/{user_id}",
        "https://crm.example/users/{id}",
        "ftp://crm.example/{user_id}",
        "/users/{user_id}",
    ],
)
def test_http_url_template_must_hold_the_user_id_once(template: str) -> None:
    with pytest.raises(ConfigError):
        HttpDirectory(template)


# --- Factory and contract -----------------------------------------------------------------


def test_build_directory(tmp_path: Path) -> None:
    path = tmp_path / "customers.yaml"
    path.write_text("alice:\n  email: alice@example.com\n", encoding="utf-8")
    file_directory: Directory = build_directory("file", path=path)
    assert isinstance(file_directory, FileDirectory)
    http_directory = build_directory("http", url_template=CRM, timeout=1.5)
    assert isinstance(http_directory, HttpDirectory)
    asyncio.run(http_directory.aclose())
    with pytest.raises(ConfigError) as caught:
        build_directory("ldap")
    assert caught.value.errors == [
        "directory: option 'kind' must be one of 'file', 'http' but it's configured as 'ldap'"
    ]


def test_the_demo_directory_loads() -> None:
    demo = Path(__file__).resolve().parents[2] / "examples" / "demo_bot" / "customers.yaml"
    if not demo.exists():
        pytest.skip("the demo directory is not there")
    assert lookup(FileDirectory(demo), "alice") is not None
