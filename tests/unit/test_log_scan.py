"""The end-of-session log scan finds what it must (so it can fail) and nothing else."""

from __future__ import annotations

from pathlib import Path

from tests.support.log_scan import scan_files, scan_lines

CLEAN = [
    '{"time":1795314022.259,"type":"log","message":"Started server process [123456]"}',
    '{"type":"request","path":"/api/x","user":"3f2a9c0d11e4b7a8","status":200,"ms":0.412}',
    '{"audit":"otp_sent","destination":"+49••••••01","user_hash":"a1b2c3d4e5f60718"}',
]


def kinds(lines: list[str], **known: set[str]) -> list[str]:
    options = {"codes": set(), "cookies": set(), "secrets": set(), **known}
    return [kind for _, kind in scan_lines(lines, **options)]


def test_clean_lines_pass() -> None:
    assert kinds(CLEAN, codes={"123456"}, cookies={"c" * 43}, secrets={"s" * 32}) == []


def test_each_kind_of_leak_is_found() -> None:
    assert kinds(['{"message":"bad eyJhbGciOiJIUzI1NiJ9.eyJzdWIiOiJhIn0.sig"}']) == ["a JWT"]
    assert kinds(["-----BEGIN PRIVATE KEY-----"]) == ["a PEM key"]
    assert kinds(['cookie: gw_session=AbC']) == ["a session cookie value"]
    assert kinds(['"x":"sessionvalue-0123456789abcdef"'],
                 cookies={"sessionvalue-0123456789abcdef"}) == ["a cookie value a test received"]
    assert kinds(["connecting with hunter2-hunter2-hunter2"],
                 secrets={"hunter2-hunter2-hunter2"}) == ["a configured secret"]
    assert kinds(['{"message":"your code is 481516"}'], codes={"481516"}) == ["a one-time code"]


def test_codes_match_whole_numbers_only() -> None:
    assert kinds(['"time":1481516999.5', '"id":"a481516b"'], codes={"481516"}) == []


def test_files_report_path_line_and_kind_never_the_value(tmp_path: Path) -> None:
    log = tmp_path / "gateway.err"
    log.write_text("\n".join([*CLEAN, "token eyJabcdefgh.x.y"]) + "\n")
    lines, findings = scan_files([log, tmp_path / "never-written.out"], codes=set(),
                                 cookies=set(), secrets=set())
    assert lines == 4
    assert [str(f) for f in findings] == [f"{log}:4: a JWT"]
