"""Lint the Dockerfile the way a reviewer would (no Docker engine runs on these machines)."""

from __future__ import annotations

import json
import re
import shlex

import pytest

from tests.support.procs import ROOT

DOCKERFILE = ROOT / "Dockerfile"
SECRET_NAME = re.compile(r"SECRET|TOKEN|PASSWORD|PASSWD|KEY|CREDENTIAL", re.IGNORECASE)


def instructions(text: str) -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order; comments dropped, continuation lines joined."""
    result: list[tuple[str, str]] = []
    pending = ""
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        line, pending = pending + line, ""
        keyword, _, rest = line.partition(" ")
        result.append((keyword.upper(), rest.strip()))
    assert not pending, "the Dockerfile ends inside a continued line"
    return result


def variable_names(keyword: str, arguments: str) -> list[str]:
    """Names set by ENV (``K=V ...`` or legacy ``K V``) or declared by ARG."""
    if keyword == "ENV" and "=" not in arguments.split(" ", 1)[0]:
        return [arguments.split(" ", 1)[0]]
    return [token.split("=", 1)[0] for token in shlex.split(arguments)]


@pytest.fixture(scope="module")
def parsed() -> list[tuple[str, str]]:
    return instructions(DOCKERFILE.read_text())


def test_base_image_is_pinned_to_a_version(parsed: list[tuple[str, str]]) -> None:
    # FROM [--platform=…] IMAGE [AS NAME]
    images = [next(t for t in args.split() if not t.startswith("--"))
              for keyword, args in parsed if keyword == "FROM"]
    assert images, "no FROM"
    for image in images:
        _, _, tag = image.partition("@")[0].partition(":")
        assert tag, f"{image}: no tag, which means latest"
        assert tag != "latest"
        assert re.match(r"\d+\.\d+\.\d+", tag), f"{image}: the tag is not a full version"


def test_runs_as_a_non_root_user(parsed: list[tuple[str, str]]) -> None:
    keywords = [keyword for keyword, _ in parsed]
    users = [(i, args) for i, (keyword, args) in enumerate(parsed) if keyword == "USER"]
    assert users, "no USER: the container would run as root"
    last_index, last_user = users[-1]
    user = last_user.split(":")[0]
    assert user not in ("root", "0"), last_user
    start = max(i for i, k in enumerate(keywords) if k in ("CMD", "ENTRYPOINT"))
    assert last_index < start, "USER must come before the final CMD/ENTRYPOINT"


def test_has_a_healthcheck_against_the_admin_port(parsed: list[tuple[str, str]]) -> None:
    [check] = [args for keyword, args in parsed if keyword == "HEALTHCHECK"]
    assert check.upper() != "NONE"
    command = json.loads(check[check.index("CMD") + 3:].strip())
    assert command[:2] == ["python", "-c"]  # slim images have no curl
    assert "/healthz" in command[2] and "9090" in command[2]
    compile(command[2], "<healthcheck>", "exec")  # the one-liner is valid Python


def test_no_secret_is_baked_into_env_or_arg(parsed: list[tuple[str, str]]) -> None:
    names = [name for keyword, args in parsed if keyword in ("ENV", "ARG")
             for name in variable_names(keyword, args)]
    assert names, "expected at least the runtime ENV settings"
    assert [name for name in names if SECRET_NAME.search(name)] == []


def test_the_parser_catches_what_it_should() -> None:
    bad = instructions("FROM python\nENV API_TOKEN=x OTHER=1\nARG DB_PASSWORD\nCMD [\"x\"]\n")
    assert variable_names(*bad[1]) == ["API_TOKEN", "OTHER"]
    assert variable_names(*bad[2]) == ["DB_PASSWORD"]
    assert variable_names("ENV", "SIGNING_KEY some value") == ["SIGNING_KEY"]
    assert all(SECRET_NAME.search(n) for n in ("API_TOKEN", "DB_PASSWORD", "SIGNING_KEY"))
