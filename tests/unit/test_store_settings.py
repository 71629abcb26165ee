"""Choosing the store, workers, and the start-up checks that keep replicas consistent."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateway.app import build_store, create_app
from gateway.errors import ConfigError
from gateway.settings import load_settings
from gateway.stores.memory import MemoryStore
from gateway.stores.redis import RedisStore
from tests.support.procs import ROOT, free_port

POLICIES = str(ROOT / "tests" / "fixtures" / "policies")


def errors_of(path: Path | None, env: dict[str, str]) -> list[str]:
    with pytest.raises(ConfigError) as caught:
        load_settings(path, env)
    return caught.value.errors


def test_defaults_are_one_process_on_memory() -> None:
    settings = load_settings(environ={})
    assert settings.store_url == "memory://"
    assert (settings.store_prefix, settings.store_timeout, settings.workers) == ("gw:", 0.5, 1)
    assert isinstance(build_store(settings, time.time), MemoryStore)


def test_redis_options_from_the_environment() -> None:
    settings = load_settings(environ={
        "GATEWAY_STORE_URL": "rediss://:pw@cache.example:6380/1",
        "GATEWAY_STORE_PREFIX": "chat:",
        "GATEWAY_STORE_TIMEOUT": "0.25",
        "GATEWAY_WORKERS": "4",
    })
    assert settings.store_url == "rediss://:pw@cache.example:6380/1"
    assert (settings.store_prefix, settings.store_timeout, settings.workers) == ("chat:", 0.25, 4)
    store = build_store(settings, time.time)
    assert isinstance(store, RedisStore)
    assert store.prefix == "chat:" and store.where == "rediss://cache.example:6380/1"
    asyncio.run(store.aclose())


def test_websocket_cache_is_on_by_default_and_can_be_turned_off() -> None:
    url = "redis://127.0.0.1:6379/0"
    on = build_store(load_settings(environ={"GATEWAY_STORE_URL": url}), time.time)
    off = build_store(load_settings(environ={"GATEWAY_STORE_URL": url,
                                             "GATEWAY_STORE_WEBSOCKET_CACHE": "false"}),
                      time.time)
    assert isinstance(on, RedisStore) and isinstance(off, RedisStore)
    assert on._tracked is not None and off._tracked is None
    assert errors_of(None, {"GATEWAY_STORE_WEBSOCKET_CACHE": "sometimes"}) == [
        "GATEWAY_STORE_WEBSOCKET_CACHE: option 'store.websocket_cache' must be true or false "
        "but it's configured as 'sometimes'"
    ]
    asyncio.run(on.aclose())
    asyncio.run(off.aclose())


def test_memory_store_refuses_several_workers(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("workers: 3\n")
    assert errors_of(path, {}) == [
        f"{path}: option 'workers' must be 1 with the memory store but it's configured as '3': "
        "the memory store keeps sessions inside one process; with 3 workers use "
        "store.url: redis://…"
    ]


def test_bad_store_options_are_listed(tmp_path: Path) -> None:
    path = tmp_path / "gateway.yaml"
    path.write_text("store: {url: 'postgres://x', timeout: 0, prefix: ''}\nworkers: 0\n")
    assert errors_of(path, {}) == [
        f"{path}: option 'store.url' must be a store URL: memory://, redis://… or rediss://… "
        "but it's configured as 'postgres://x'",
        f"{path}: option 'store.timeout' must be a positive number of seconds but it's "
        "configured as '0'",
        f"{path}: option 'store.prefix' must be a key prefix like 'gw:' but it's configured as ''",
        f"{path}: option 'workers' must be a positive integer (worker processes) but it's "
        "configured as '0'",
    ]


def _otp_config(tmp_path: Path, extra: str = "") -> Path:
    directory = tmp_path / "customers.yaml"
    directory.write_text("alice: {email: alice@example.com}\n")
    path = tmp_path / "gateway.yaml"
    path.write_text(f"directory: {{kind: file, path: {directory}}}\n{extra}")
    return path


def test_redis_with_otp_needs_a_shared_hash_key(tmp_path: Path) -> None:
    path = _otp_config(tmp_path)
    env = {"GATEWAY_STORE_URL": "redis://127.0.0.1:6379/0"}
    assert errors_of(path, env) == [
        f"{path}: option 'otp.hash_key_env' must be set (or 'otp.hash_key_file') when the store "
        "is Redis and one-time codes are configured, so that every replica hashes codes with "
        "the same key but it's configured as '<missing>'"
    ]
    # One process on memory may make its own key: its challenges die with it anyway.
    assert load_settings(path, {}).otp_hash_key is None
    keyed = _otp_config(tmp_path, "otp: {hash_key_env: OTP_KEY}\n")
    settings = load_settings(keyed, {**env, "OTP_KEY": "k" * 32})
    assert settings.otp_hash_key == b"k" * 32


def test_ready_reports_an_unreachable_store() -> None:
    async def scenario() -> tuple[list[str], list[str]]:
        down = create_app(load_settings(environ={
            "GATEWAY_STORE_URL": f"redis://127.0.0.1:{free_port()}/0",
            "GATEWAY_POLICIES_DIR": POLICIES}))
        up = create_app(load_settings(environ={"GATEWAY_POLICIES_DIR": POLICIES}))
        try:
            return await down.ready(), await up.ready()
        finally:
            for app in (down, up):
                await app.store.aclose()
                await app.http_client.aclose()

    down, up = asyncio.run(scenario())
    assert down == ["store: the session store is unreachable"]
    assert up == []
