"""Real processes for integration tests: the recorder backend and the gateway itself."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import yaml

ROOT = Path(__file__).resolve().parents[2]
# Every gateway process this test session started: the log scan at the end of the session
# (tests/conftest.py, pytest_sessionfinish) reads all their output.
STARTED: list[Gateway] = []


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def wait_for_port(
    port: int, proc: subprocess.Popen[bytes] | None = None, timeout: float = 15.0
) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"process exited with {proc.returncode} before listening")
        with socket.socket() as sock:
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.05)
    raise RuntimeError(f"nothing listens on {port} after {timeout} s")


def stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@dataclass
class Recorder:
    port: int
    proc: subprocess.Popen[bytes]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def requests(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = httpx.get(f"{self.url}/__recorder__/requests").json()
        return result

    def clear(self) -> None:
        httpx.delete(f"{self.url}/__recorder__/requests")

    def ws_events(self) -> list[dict[str, Any]]:
        result: list[dict[str, Any]] = httpx.get(f"{self.url}/__recorder__/ws").json()
        return result

    def release(self) -> None:
        httpx.post(f"{self.url}/__recorder__/release")

    def state(self) -> dict[str, Any]:
        result: dict[str, Any] = httpx.get(f"{self.url}/__recorder__/state").json()
        return result


def start_recorder() -> Recorder:
    port = free_port()
    proc = subprocess.Popen([sys.executable, "-m", "tests.support.recorder", str(port)], cwd=ROOT)
    wait_for_port(port, proc)
    return Recorder(port=port, proc=proc)


@dataclass
class Gateway:
    port: int
    proc: subprocess.Popen[bytes]
    workdir: Path
    stdout_path: Path
    stderr_path: Path
    env: dict[str, str] = field(default_factory=dict)
    admin_port: int | None = None
    # Values of the environment variables the config names as secrets (``*_env`` options).
    secrets: list[str] = field(default_factory=list)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    @property
    def admin_url(self) -> str:
        assert self.admin_port is not None, "this gateway runs without an admin listener"
        return f"http://127.0.0.1:{self.admin_port}"

    def log_lines(self) -> list[dict[str, Any]]:
        lines = []
        for path in (self.stdout_path, self.stderr_path):
            for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    lines.append({"raw": line})
        return lines


def start_gateway(
    workdir: Path,
    config: dict[str, Any],
    env: dict[str, str] | None = None,
    *,
    expect_failure: bool = False,
) -> Gateway:
    """Write ``config`` to ``workdir`` and start ``gateway run`` on a free port.

    The admin listener gets a free port too unless ``config`` has an ``admin`` section (the
    default 9090 would collide between the gateways of one test session).
    """
    port = free_port()
    config = {**config, "listen": {"host": "127.0.0.1", "port": port}}
    if "admin" not in config:
        config["admin"] = {"host": "127.0.0.1", "port": free_port()}
    admin = config["admin"]
    admin_port = admin.get("port", 9090) if admin.get("enabled", True) else None
    if config.get("workers", 1) > 1:
        admin_port = None  # Worker processes run no admin listener (see gateway/asgi.py).
    workdir.mkdir(parents=True, exist_ok=True)
    config_path = workdir / "gateway.yaml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    stdout_path = workdir / "gateway.out"
    stderr_path = workdir / "gateway.err"
    child_env = {k: v for k, v in os.environ.items() if not k.startswith("GATEWAY_")}
    child_env.update(env or {})
    with stdout_path.open("wb") as out, stderr_path.open("wb") as err:
        proc = subprocess.Popen(
            [sys.executable, "-m", "gateway", "--config", str(config_path), "run"],
            cwd=ROOT,
            env=child_env,
            stdout=out,
            stderr=err,
        )
    gateway = Gateway(port, proc, workdir, stdout_path, stderr_path, child_env, admin_port,
                      [child_env[name] for name in _secret_env_names(config)
                       if child_env.get(name)])
    STARTED.append(gateway)
    if not expect_failure:
        try:
            wait_for_port(port, proc)
            if admin_port is not None:
                wait_for_port(admin_port, proc)
        except RuntimeError as exc:
            stop(proc)
            raise RuntimeError(f"{exc}\n{stderr_path.read_text()}") from exc
    return gateway


def _secret_env_names(node: Any) -> list[str]:
    """Names of the variables a config reads secrets from (every ``*_env`` option)."""
    if isinstance(node, dict):
        found = [v for k, v in node.items() if str(k).endswith("_env") and isinstance(v, str)]
        return found + [name for v in node.values() for name in _secret_env_names(v)]
    if isinstance(node, list):
        return [name for item in node for name in _secret_env_names(item)]
    return []


def raw_request(port: int, data: bytes, timeout: float = 5.0) -> tuple[int, dict[str, str], bytes]:
    """Send bytes as they are (no client-side normalisation) and read one response."""
    with socket.create_connection(("127.0.0.1", port), timeout=timeout) as sock:
        sock.sendall(data)
        chunks = b""
        while True:
            try:
                piece = sock.recv(65536)
            except TimeoutError:
                break
            if not piece:
                break
            chunks += piece
            head, sep, body = chunks.partition(b"\r\n\r\n")
            if sep:
                headers = _headers(head)
                length = headers.get("content-length")
                if length is not None and len(body) >= int(length):
                    break
    head, _, body = chunks.partition(b"\r\n\r\n")
    status_line = head.split(b"\r\n", 1)[0]
    status = int(status_line.split(b" ")[1]) if status_line else 0
    return status, _headers(head), body


def _headers(head: bytes) -> dict[str, str]:
    result = {}
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        result[name.decode("latin-1").strip().lower()] = value.decode("latin-1").strip()
    return result
