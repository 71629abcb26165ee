"""PolicyReloader in process: polling, the two-poll settle, broken sets, the SIGHUP trigger."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

import pytest

from gateway.metrics import Metrics
from gateway.policy.loader import load_policies
from gateway.policy.model import PolicySet
from gateway.policy.reload import PolicyReloader, snapshot
from tests.support.ops import sample

ONE = "rules:\n  - {name: a, match: {path: /a}, require: public}\n"
TWO = ONE + "  - {name: b, match: {path: /b}, require: public}\n"
BROKEN = ONE + "  - {name: c, match: {path: c}, require: public}\n"
INTERVAL = 0.02


class Active:
    def __init__(self, directory: Path) -> None:
        self.policies = load_policies(directory)
        self.swaps = 0

    def set(self, policies: PolicySet) -> None:
        self.policies = policies
        self.swaps += 1

    @property
    def names(self) -> list[str]:
        return [rule.name for rule in self.policies.rules]


async def until(condition: object, timeout: float = 2.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while not condition():  # type: ignore[operator]
        assert loop.time() < deadline, "condition not met in time"
        await asyncio.sleep(INTERVAL)


def test_snapshot_sees_what_the_loader_reads(tmp_path: Path) -> None:
    (tmp_path / "10-a.yaml").write_text(ONE)
    (tmp_path / ".10-a.yaml.swp").write_text("junk")
    (tmp_path / "notes.txt").write_text("junk")
    [(name, _mtime, size)] = snapshot(tmp_path) or []
    assert (name, size) == ("10-a.yaml", len(ONE))
    assert snapshot(tmp_path / "missing") is None


def test_a_valid_change_is_swapped_in_and_a_broken_one_keeps_the_last_good_set(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    policy = tmp_path / "10-a.yaml"
    policy.write_text(ONE)
    active, metrics = Active(tmp_path), Metrics()

    async def scenario() -> None:
        reloader = PolicyReloader(tmp_path, active.set, metrics, interval=INTERVAL)
        reloader.start()
        try:
            policy.write_text(TWO)
            await until(lambda: active.names == ["a", "b"])
            policy.write_text(BROKEN)
            await until(lambda: sample(metrics.render(), "gateway_policy_reloads_total",
                                       result="failed") == 1)
            assert active.names == ["a", "b"]
            (tmp_path / "20-new.yml").write_text("rules: []\n")
            policy.write_text(ONE)
            await until(lambda: active.names == ["a"])
        finally:
            await reloader.stop()

    with caplog.at_level(logging.INFO, logger="gateway.policy"):
        asyncio.run(scenario())
    text = metrics.render()
    assert sample(text, "gateway_policy_reloads_total", result="ok") == 2
    assert sample(text, "gateway_policy_last_reload_ok") == 1
    assert active.swaps == 2
    errors = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert errors[0].startswith("policy reload failed: 10-a.yaml: rule #2 ('c'): option "
                                "'match.path' must be a path pattern")
    assert errors[-1] == "policy reload failed, the previous policy set stays active"


def test_a_file_is_loaded_only_once_two_polls_agree(tmp_path: Path) -> None:
    policy = tmp_path / "10-a.yaml"
    policy.write_text(ONE)
    active, metrics = Active(tmp_path), Metrics()

    async def scenario() -> None:
        reloader = PolicyReloader(tmp_path, active.set, metrics)
        reloader.start()  # Polls below are driven by hand; the task's first is 0.5 s away.
        try:
            # An editor truncates, then writes: the empty (valid!) state must never be active.
            policy.write_text("")
            await reloader.poll()
            policy.write_text(TWO)
            await reloader.poll()
            assert active.names == ["a"]
            await reloader.poll()
            assert active.names == ["a", "b"]
            await reloader.poll()
            assert active.swaps == 1
        finally:
            await reloader.stop()

    asyncio.run(scenario())


def test_trigger_reloads_without_a_change_and_counts_it(tmp_path: Path) -> None:
    (tmp_path / "10-a.yaml").write_text(ONE)
    active, metrics = Active(tmp_path), Metrics()

    async def scenario() -> None:
        reloader = PolicyReloader(tmp_path, active.set, metrics, interval=60)
        reloader.start()
        try:
            reloader.trigger()
            await until(lambda: active.swaps == 1)
        finally:
            await reloader.stop()

    asyncio.run(scenario())
    assert sample(metrics.render(), "gateway_policy_reloads_total", result="ok") == 1
