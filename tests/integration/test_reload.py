"""Policy hot reload in a real process: under load, with a broken file, and on SIGHUP."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import gateway_config, gateway_env
from tests.security.jwt_cases import AttackKeys
from tests.support.ops import sample
from tests.support.procs import Gateway, Recorder, start_gateway, stop

OPEN = """\
default: deny
rules:
  - name: open
    match: {path: /open/**}
    require: public
"""
WITH_LATER = OPEN + """\
  - name: later
    match: {path: /later/**}
    require: public
"""
# Valid YAML, invalid policy: two problems, both must be logged.
BROKEN = WITH_LATER + """\
  - name: typo
    match: {path: /typo}
    require: maybe
  - name: open
    match: {path: /again}
    require: public
"""


def write_atomically(path: Path, text: str) -> None:
    # How deploy tools and ConfigMaps replace files; the hidden temp name is never loaded.
    temp = path.with_name(f".{path.name}.tmp")
    temp.write_text(text)
    os.replace(temp, path)


@pytest.fixture
def policy_gateway(
    keys: AttackKeys, recorder: Recorder, tmp_path: Path
) -> Iterator[tuple[Gateway, Path]]:
    policies = tmp_path / "policies"
    policies.mkdir()
    (policies / "10-rules.yaml").write_text(OPEN)
    config = gateway_config(keys, tmp_path, recorder.url, policies_dir=str(policies))
    gw = start_gateway(tmp_path, config, gateway_env(keys))
    yield gw, policies / "10-rules.yaml"
    stop(gw.proc)


def metrics(gw: Gateway) -> str:
    return httpx.get(f"{gw.admin_url}/metrics").text


class Load:
    """Two threads sending requests until stopped; every answer's status (or error) is kept."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.results: list[int | str] = []
        self._stop = threading.Event()
        self._threads = [threading.Thread(target=self._run, args=(path,))
                         for path in ("/open/a", "/open/b")]

    def _run(self, path: str) -> None:
        with httpx.Client(base_url=self.url, timeout=5) as client:
            while not self._stop.is_set():
                try:
                    self.results.append(client.get(path).status_code)
                except httpx.HTTPError as error:
                    self.results.append(type(error).__name__)

    def __enter__(self) -> Load:
        for thread in self._threads:
            thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join()


def wait_for_status(url: str, status: int, timeout: float) -> float:
    started = time.monotonic()
    while time.monotonic() - started < timeout:
        if httpx.get(url).status_code == status:
            return time.monotonic() - started
        time.sleep(0.05)
    raise AssertionError(f"{url} did not answer {status} within {timeout} s")


@pytest.mark.slow
def test_reload_under_load_applies_a_valid_change_and_keeps_the_set_on_a_broken_one(
    policy_gateway: tuple[Gateway, Path],
) -> None:
    gw, policy = policy_gateway
    later = f"{gw.url}/later/x"
    assert httpx.get(later).status_code == 403
    with Load(gw.url) as load:
        time.sleep(0.5)
        write_atomically(policy, WITH_LATER)
        assert wait_for_status(later, 200, timeout=3.0) < 2.0
        text = metrics(gw)
        assert sample(text, "gateway_policy_reloads_total", result="ok") == 1
        assert sample(text, "gateway_policy_rules") == 2

        write_atomically(policy, BROKEN)
        deadline = time.monotonic() + 3
        while sample(metrics(gw), "gateway_policy_reloads_total", result="failed") < 1:
            assert time.monotonic() < deadline, "the broken file was never noticed"
            time.sleep(0.1)
        assert httpx.get(later).status_code == 200  # the last good set is still enforced
        assert httpx.get(f"{gw.url}/typo").status_code == 403
        time.sleep(0.5)
    text = metrics(gw)
    assert sample(text, "gateway_policy_reloads_total", result="failed") == 1
    assert sample(text, "gateway_policy_reloads_total", result="ok") == 1
    assert sample(text, "gateway_policy_last_reload_ok") == 0
    assert len(load.results) > 50
    assert set(load.results) == {200}, {r for r in load.results if r != 200}

    errors = [line for line in gw.log_lines()
              if line.get("logger") == "gateway.policy" and line.get("level") == "error"]
    details = [line["policy_error"] for line in errors if "policy_error" in line]
    assert details == [
        "10-rules.yaml: rule #3 ('typo'): option 'require' must be one of 'public', "
        "'anonymous', 'authenticated', 'otp', 'deny' but it's configured as 'maybe'",
        "10-rules.yaml: rule #4 ('open'): option 'name' must be unique across all policy "
        "files but it's configured as 'open'",
    ]

    # Fixing the file recovers without a restart.
    write_atomically(policy, OPEN)
    wait_for_status(later, 403, timeout=3.0)
    assert sample(metrics(gw), "gateway_policy_last_reload_ok") == 1


def test_sighup_reloads_even_when_the_files_look_unchanged(
    policy_gateway: tuple[Gateway, Path],
) -> None:
    gw, policy = policy_gateway
    before = policy.stat()
    # Same size and mtime: the poller cannot see this change, only SIGHUP brings it in.
    changed = OPEN.replace("/open/**", "/late/**").replace("name: open", "name: oops")
    assert len(changed) == len(OPEN)
    policy.write_text(changed)
    os.utime(policy, ns=(before.st_atime_ns, before.st_mtime_ns))
    time.sleep(1.2)  # two polls: nothing happens
    assert httpx.get(f"{gw.url}/late/x").status_code == 403
    gw.proc.send_signal(signal.SIGHUP)
    wait_for_status(f"{gw.url}/late/x", 200, timeout=2.0)
    assert httpx.get(f"{gw.url}/open/x").status_code == 403
    assert gw.proc.poll() is None  # SIGHUP does not end the process
    assert sample(metrics(gw), "gateway_policy_reloads_total", result="ok") == 1
    time.sleep(0.3)
    reloads = [line for line in gw.log_lines() if line.get("message") == "policies reloaded"]
    assert [line["trigger"] for line in reloads] == ["signal"]
