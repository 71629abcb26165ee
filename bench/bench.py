"""The load benchmark behind ``make bench`` (bench/run.sh installs the tools, then runs this).

What it does, in order:

1. waits (bounded) for a quiet machine: 1-minute load below ``BENCH_QUIET_LOAD`` and no pytest;
2. writes every config into a temporary directory and starts, each pinned with ``taskset``:
   nginx (the upstream, core 1), Redis (the session store, core 1), HAProxy 2.6 with an
   equivalent ``jwt_verify`` config (core 0), the gateway on the JWT path (core 0) and the
   gateway on the session-cookie path with the Redis store (core 0);
3. checks that every system really does the work (a spoofed ``X-User-Id`` is replaced by the
   token's subject; bad, expired and missing tokens are refused) before timing anything;
4. runs every case ``BENCH_RUNS`` times, round-robin so that noise from the rest of the machine
   spreads over all cases, each run a warm-up then ``wrk -t1 -c64 -d<N>s --latency`` (core 1);
   the system under test's CPU time is read from ``/proc/<pid>/stat`` around each run;
5. profiles the gateway under the same load with py-spy and summarises where the time goes;
6. optionally compares 2 workers with 1 (Redis store, cookie path);
7. writes ``bench/RESULTS.md``.

Every process started here is recorded (pid and start time) in ``$BENCH_TMP/pids`` and stopped
by pid when this script ends, whatever the reason; run.sh's EXIT trap stops any left over.
Every load run is bounded by wrk's ``-d`` and by a subprocess timeout.
"""

from __future__ import annotations

import datetime as dt
import http.client
import json
import os
import platform
import re
import secrets
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

import jwt

BENCH = Path(__file__).resolve().parent
ROOT = BENCH.parent
PYTHON = sys.executable
CLK_TCK = os.sysconf("SC_CLK_TCK")

SUT_CORE = "0"  # the system under test
LOAD_CORE = "1"  # wrk, nginx and Redis
PATH = "/api/chat"
ISSUER = "https://bench.example"
SUBJECT = "alice"
SPOOFED = "mallory"
BODY = '{"message":"hello","sender":"mallory"}'


def env_int(name: str, default: int) -> int:
    return int(os.environ.get(name, default))


def env_float(name: str, default: float) -> float:
    return float(os.environ.get(name, default))


DURATION = env_int("BENCH_DURATION", 10)
WARMUP = env_int("BENCH_WARMUP", 3)
RUNS = env_int("BENCH_RUNS", 3)
CONNECTIONS = env_int("BENCH_CONNECTIONS", 64)
QUIET_LOAD = env_float("BENCH_QUIET_LOAD", 0.7)
QUIET_WAIT = env_int("BENCH_QUIET_WAIT", 600)
PROFILE = os.environ.get("BENCH_PROFILE", "1") != "0"
WORKERS_CASE = os.environ.get("BENCH_WORKERS", "1") != "0"
COOKIE_CASE = os.environ.get("BENCH_COOKIE", "1") != "0"
# Prototype fixes from bench/prototypes.py, each an extra case (e.g. "gc50k").
PROFILE_RATE = env_int("BENCH_PROFILE_RATE", 100)
# Every round starts each gateway case in a fresh process: a CPython process's speed varies by
# a few % with its memory layout (hash seed, ASLR), which one long-lived process per case would
# turn into a constant bias between cases (pyperf spawns many processes for the same reason).
RESTART = os.environ.get("BENCH_RESTART", "1") != "0"
VARIANTS = [v for v in os.environ.get("BENCH_VARIANTS", "").split(",") if v]
# SSE latency, 10,000 idle WebSockets and the per-message re-authorization (bench/streams.py),
# after the HTTP cases; BENCH_ONLY=streams runs them alone.
STREAMS_CASE = os.environ.get("BENCH_STREAMS", "1") != "0"
ONLY = os.environ.get("BENCH_ONLY", "")
OUT = Path(os.environ.get("BENCH_OUT", BENCH / "RESULTS.md"))
COMMAND = os.environ.get("BENCH_COMMAND", "make bench")


def log(message: str) -> None:
    print(f"[bench {time.strftime('%H:%M:%S')}] {message}", file=sys.stderr, flush=True)


# -- processes ---------------------------------------------------------------------------------


def _stat_fields(pid: int) -> list[str] | None:
    try:
        raw = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    # The command name (field 2) may hold spaces and parentheses; everything after the last
    # ")" is space-separated, starting with field 3 (state).
    return raw[raw.rindex(")") + 2:].split()


def start_time(pid: int) -> int | None:
    fields = _stat_fields(pid)
    return int(fields[19]) if fields else None  # field 22


def cpu_ticks(pid: int) -> int:
    fields = _stat_fields(pid)
    return int(fields[11]) + int(fields[12]) if fields else 0  # fields 14, 15: utime, stime


def cpu_split(pid: int) -> tuple[int, int]:
    fields = _stat_fields(pid)
    return (int(fields[11]), int(fields[12])) if fields else (0, 0)


def descendants(pid: int) -> list[int]:
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        fields = _stat_fields(int(entry.name))
        if fields:
            children.setdefault(int(fields[1]), []).append(int(entry.name))
    found: list[int] = []
    todo = [pid]
    while todo:
        for child in children.get(todo.pop(), []):
            found.append(child)
            todo.append(child)
    return found


def tree_ticks(pid: int) -> tuple[int, int]:
    """(utime, stime) of ``pid`` and its descendants, in clock ticks."""
    user = system = 0
    for member in (pid, *descendants(pid)):
        u, s = cpu_split(member)
        user += u
        system += s
    return user, system


def cpu_times() -> dict[str, tuple[int, int, int]]:
    """Per core: (busy, steal, total) jiffies from /proc/stat."""
    result = {}
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith("cpu") and line[3:4].isdigit():
            name, *values = line.split()
            v = [int(x) for x in values]
            idle = v[3] + v[4]
            steal = v[7] if len(v) > 7 else 0
            total = sum(v[:8])
            result[name[3:]] = (total - idle - steal, steal, total)
    return result


class Processes:
    """Every process this benchmark starts, stopped by pid at the end."""

    def __init__(self, pidfile: Path) -> None:
        self.pidfile = pidfile
        self.running: list[tuple[str, subprocess.Popen[bytes], int | None]] = []

    def start(
        self, name: str, argv: Sequence[str], *, core: str | None, stdout: IO[bytes] | int,
        stderr: IO[bytes] | int, env: dict[str, str] | None = None,
    ) -> subprocess.Popen[bytes]:
        if core is not None:
            argv = ["taskset", "-c", core, *argv]
        proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=stdout, stderr=stderr,
                                env=env, cwd=ROOT)
        started = start_time(proc.pid)
        self.running.append((name, proc, started))
        with self.pidfile.open("a") as out:
            out.write(f"{proc.pid} {started}\n")
        return proc

    def record_children(self, proc: subprocess.Popen[bytes]) -> None:
        """Children (nginx's worker, uvicorn's workers) go to the pid file too, for run.sh."""
        with self.pidfile.open("a") as out:
            for child in descendants(proc.pid):
                out.write(f"{child} {start_time(child)}\n")

    def stop(self, proc: subprocess.Popen[bytes], timeout: float = 8.0) -> None:
        if proc.poll() is not None:
            return
        family = [(pid, start_time(pid)) for pid in descendants(proc.pid)]
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(5)
        for pid, started in family:
            # Only the very process we saw: a recycled pid has another start time.
            if started is not None and start_time(pid) == started:
                try:
                    os.kill(pid, signal.SIGKILL)
                except ProcessLookupError:
                    pass
        self.running = [entry for entry in self.running if entry[1] is not proc]

    def stop_all(self) -> None:
        for _, proc, _ in reversed(list(self.running)):
            try:
                self.stop(proc)
            except Exception as error:  # keep stopping the others
                log(f"could not stop pid {proc.pid}: {error}")


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_port(port: int, proc: subprocess.Popen[bytes], name: str, timeout: float = 20) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{name} exited with status {proc.returncode} while starting")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"{name} did not listen on port {port} within {timeout} s")


def request(
    port: int, method: str, path: str, headers: dict[str, str], body: str = ""
) -> tuple[int, dict[str, str], str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request(method, path, body=body.encode(), headers=headers)
        response = conn.getresponse()
        text = response.read().decode("utf-8", "replace")
        return response.status, {k.lower(): v for k, v in response.getheaders()}, text
    finally:
        conn.close()


# -- configs ---------------------------------------------------------------------------------


NGINX_CONF = """\
# The upstream: one worker on the load core, answering every request with a small JSON that
# echoes the X-User-Id it received (the correctness checks read it).
worker_processes 1;
daemon off;
master_process on;
pid {tmp}/nginx.pid;
error_log {tmp}/nginx-error.log warn;
events {{ worker_connections 8192; }}
http {{
    access_log off;
    client_body_temp_path {tmp}/nginx-body;
    proxy_temp_path {tmp}/nginx-proxy;
    fastcgi_temp_path {tmp}/nginx-fastcgi;
    uwsgi_temp_path {tmp}/nginx-uwsgi;
    scgi_temp_path {tmp}/nginx-scgi;
    # The default (1000 requests) would make both proxies reconnect constantly.
    keepalive_requests 100000000;
    keepalive_timeout 75s;
    server {{
        listen 127.0.0.1:{port};
        location / {{
            default_type application/json;
            return 200 '{{"ok":true,"reply":"hi","user":"$http_x_user_id"}}\\n';
        }}
    }}
}}
"""

HAPROXY_CONF = """\
# HAProxy doing the gateway's JWT work: HS256 signature with the algorithm fixed by us (never
# taken from the token), exp, iss, then the subject injected as X-User-Id after the client's own
# X-User-Id is deleted. One thread, pinned to the gateway's core. No request log.
global
    nbthread 1
    maxconn 4096

defaults
    mode http
    option http-keep-alive
    timeout connect 5s
    timeout client 30s
    timeout server 30s
    timeout http-keep-alive 30s

frontend fe_bench
    bind 127.0.0.1:{port}
    http-request del-header X-User-Id
    http-request set-var(txn.bearer) http_auth_bearer
    http-request deny deny_status 401 unless {{ var(txn.bearer) -m found }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_header_query('$.alg') -m str HS256 }}
    http-request set-var(txn.alg) str(HS256)
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_verify(txn.alg,"{secret}") -m int 1 }}
    http-request set-var(txn.exp) var(txn.bearer),jwt_payload_query('$.exp','int')
    http-request set-var(txn.now) date
    http-request deny deny_status 401 unless {{ var(txn.exp),sub(txn.now) -m int gt 0 }}
    http-request deny deny_status 401 unless {{ var(txn.bearer),jwt_payload_query('$.iss') -m str {issuer} }}
    http-request set-header X-User-Id %[var(txn.bearer),jwt_payload_query('$.sub')]
    default_backend be_nginx

backend be_nginx
    http-reuse always
    server nginx 127.0.0.1:{upstream_port}
"""  # noqa: E501 - HAProxy config lines

POLICY = """\
# The benchmark's route policy: a few rules like a real chatbot's, the benchmark path among them.
description: bench
default: deny
rules:
  - name: chat-page
    match: {{path: /, methods: [GET, HEAD]}}
    require: public
  - name: static-assets
    match: {{path: /static/**, methods: [GET, HEAD]}}
    require: public
  - name: webhooks
    match: {{path: /webhooks/*, methods: [POST]}}
    require: deny
  - name: account
    match: {{path: /api/account/**}}
    require: otp
  - name: chat
    match: {{path: {path}, methods: [POST]}}
    require: authenticated
"""


def gateway_config(
    tmp: Path, name: str, port: int, admin_port: int, upstream_port: int,
    store_url: str | None = None, workers: int = 1,
) -> Path:
    config: dict[str, Any] = {
        "mode": "production",
        "listen": {"host": "127.0.0.1", "port": port},
        "upstream": {"url": f"http://127.0.0.1:{upstream_port}"},
        "policies_dir": str(tmp / "policies"),
        # The request log stays on: it is part of the product (issue 7).
        "log": {"access": True},
        "admin": {"enabled": True, "host": "127.0.0.1", "port": admin_port},
        "jwt": {"issuers": [{"issuer": ISSUER, "keys": [
            {"kid": "bench-1", "alg": "HS256", "secret_env": "BENCH_JWT_SECRET"}]}]},
    }
    if store_url is not None:
        config["store"] = {"url": store_url, "prefix": "gwbench:"}
        config["otp"] = {"hash_key_env": "BENCH_OTP_HASH_KEY"}
        config["workers"] = workers
    path = tmp / f"{name}.yaml"
    path.write_text(json.dumps(config, indent=2))  # JSON is YAML
    return path


def wrk_script(tmp: Path, name: str, headers: dict[str, str]) -> Path:
    lines = ['wrk.method = "POST"', f"wrk.body = {json.dumps(BODY)}"]
    for key, value in headers.items():
        lines.append(f"wrk.headers[{json.dumps(key)}] = {json.dumps(value)}")
    path = tmp / f"{name}.lua"
    path.write_text("\n".join(lines) + "\n")
    return path


# -- measuring -------------------------------------------------------------------------------


@dataclass
class Run:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx responses plus socket errors
    cpu_us: float | None  # CPU of the system under test per request
    kernel_share: float | None  # stime / (utime + stime) of the system under test
    core0_busy: float
    core1_busy: float
    steal: float
    log_lines: int | None = None
    other_core0: float | None = None  # core 0 busy time not spent by the system under test


@dataclass
class Case:
    key: str
    label: str
    port: int
    script: Path
    sut: Callable[[], int | None]  # pid whose process tree is the system under test
    log_path: Path | None = None
    sut_core: str = SUT_CORE
    # A gateway case runs every round in a fresh process (see RESTART); this starts one.
    restart: Callable[[Case], None] | None = None
    proc: subprocess.Popen[bytes] | None = None
    runs: list[Run] = field(default_factory=list)
    note: str = ""

    def median(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return statistics.median(values) if values else None


_UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _duration_ms(text: str) -> float:
    match = re.fullmatch(r"([\d.]+)(us|ms|s)", text)
    if match is None:
        raise ValueError(f"cannot read wrk duration {text!r}")
    return float(match.group(1)) * _UNITS[match.group(2)]


def parse_wrk(output: str) -> tuple[float, float, float, int, int]:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", output).group(1))  # type: ignore[union-attr]
    p50 = _duration_ms(re.search(r"\s50%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    p99 = _duration_ms(re.search(r"\s99%\s+(\S+)", output).group(1))  # type: ignore[union-attr]
    total = int(re.search(r"(\d+) requests in", output).group(1))  # type: ignore[union-attr]
    errors = 0
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", output)
    if non2xx:
        errors += int(non2xx.group(1))
    sock = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)",
                     output)
    if sock:
        errors += sum(int(x) for x in sock.groups())
    return rps, p50, p99, total, errors


class Bench:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs = Processes(tmp / "pids")
        self.secret = secrets.token_hex(32)  # 64 ASCII bytes, for PyJWT and HAProxy alike
        self.env = {**os.environ, "BENCH_JWT_SECRET": self.secret,
                    "BENCH_OTP_HASH_KEY": secrets.token_urlsafe(32)}
        self.checks: list[tuple[str, str, str, bool]] = []
        self.notes: list[str] = []

    # tokens
    def token(self, *, exp_in: int = 4 * 3600, secret: str | None = None, sub: str = SUBJECT,
              iss: str = ISSUER) -> str:
        now = int(time.time())
        claims = {"iss": iss, "sub": sub, "iat": now, "exp": now + exp_in}
        return jwt.encode(claims, secret or self.secret, algorithm="HS256",
                          headers={"kid": "bench-1"})

    def wrk(self, port: int, script: Path, duration: int) -> str:
        argv = ["wrk", "-t1", f"-c{CONNECTIONS}", f"-d{duration}s", "--latency", "-s",
                str(script), f"http://127.0.0.1:{port}{PATH}"]
        with (self.tmp / "wrk.out").open("wb") as out:
            proc = self.procs.start("wrk", argv, core=LOAD_CORE, stdout=out,
                                    stderr=subprocess.STDOUT)
            try:
                proc.wait(timeout=duration + 30)
            except subprocess.TimeoutExpired:
                log("wrk overran its bound; stopping it")
            finally:
                self.procs.stop(proc)
        return (self.tmp / "wrk.out").read_text()

    def measure(self, case: Case) -> Run:
        if WARMUP > 0:
            self.wrk(case.port, case.script, WARMUP)
        if case.log_path is not None:
            time.sleep(0.3)  # let the batched request log flush the warm-up's lines
            case.log_path.write_bytes(b"")  # opened O_APPEND by the gateway: safe to truncate
        pid = case.sut()
        before = tree_ticks(pid) if pid else (0, 0)
        cores_before = cpu_times()
        wall = time.monotonic()
        output = self.wrk(case.port, case.script, DURATION)
        after = tree_ticks(pid) if pid else (0, 0)
        cores_after = cpu_times()
        wall = time.monotonic() - wall
        rps, p50, p99, total, errors = parse_wrk(output)
        user = (after[0] - before[0]) / CLK_TCK
        system = (after[1] - before[1]) / CLK_TCK
        cpu_us = (user + system) / total * 1e6 if pid and total else None
        share = system / (user + system) if pid and user + system > 0 else None

        def busy(core: str) -> float:
            b0, _, t0 = cores_before[core]
            b1, _, t1 = cores_after[core]
            return (b1 - b0) / max(1, t1 - t0)

        steal = sum(cores_after[c][1] - cores_before[c][1] for c in cores_after) / max(
            1, sum(cores_after[c][2] - cores_before[c][2] for c in cores_after))
        lines = None
        if case.log_path is not None:
            time.sleep(0.5)
            lines = case.log_path.read_bytes().count(b"\n")
        # Noise: what else ran on core 0 (other engineers' tests, say) while this run did.
        ours = (user + system) / wall if case.sut_core == SUT_CORE else 0.0
        other = max(0.0, busy(SUT_CORE) - ours)
        run = Run(rps, p50, p99, total, errors, cpu_us, share, busy(SUT_CORE), busy(LOAD_CORE),
                  steal, lines, other)
        log(f"{case.key}: {rps:,.0f} req/s p50 {p50:.2f} ms p99 {p99:.2f} ms "
            f"cpu {cpu_us or 0:.1f} us/req core0 {run.core0_busy:.0%} (other {other:.0%}) "
            f"core1 {run.core1_busy:.0%}"
            + (f" errors {errors}" if errors else ""))
        return run

    # starting things
    def start_nginx(self) -> int:
        port = free_port()
        conf = self.tmp / "nginx.conf"
        conf.write_text(NGINX_CONF.format(tmp=self.tmp, port=port))
        err = (self.tmp / "nginx.stderr").open("ab")
        proc = self.procs.start("nginx", ["nginx", "-e", str(self.tmp / "nginx-error.log"),
                                          "-p", str(self.tmp), "-c", str(conf)],
                                core=LOAD_CORE, stdout=err, stderr=err)
        wait_port(port, proc, "nginx")
        self.procs.record_children(proc)
        self.nginx = proc
        return port

    def start_redis(self) -> int | None:
        server = shutil.which("redis-server")
        if server is None:
            self.notes.append("redis-server is not installed: the session-cookie and workers "
                              "cases were skipped.")
            return None
        port = free_port()
        out = (self.tmp / "redis.log").open("ab")
        proc = self.procs.start("redis", [server, "--port", str(port), "--bind", "127.0.0.1",
                                          "--save", "", "--appendonly", "no",
                                          "--dir", str(self.tmp)],
                                core=LOAD_CORE, stdout=out, stderr=out)
        wait_port(port, proc, "redis-server")
        return port

    def start_haproxy(self, upstream_port: int) -> tuple[int, subprocess.Popen[bytes]]:
        port = free_port()
        conf = self.tmp / "haproxy.cfg"
        conf.write_text(HAPROXY_CONF.format(port=port, secret=self.secret, issuer=ISSUER,
                                            upstream_port=upstream_port))
        check = subprocess.run(["haproxy", "-c", "-q", "-f", str(conf)], capture_output=True,
                               text=True, timeout=30)
        if check.returncode != 0:
            raise RuntimeError(f"haproxy -c refused the config:\n{check.stdout}{check.stderr}")
        out = (self.tmp / "haproxy.log").open("ab")
        proc = self.procs.start("haproxy", ["haproxy", "-db", "-f", str(conf)], core=SUT_CORE,
                                stdout=out, stderr=out)
        wait_port(port, proc, "haproxy")
        return port, proc

    def start_gateway(
        self, name: str, upstream_port: int, *, store_url: str | None = None, workers: int = 1,
        core: str = SUT_CORE, variant: str | None = None,
    ) -> tuple[int, subprocess.Popen[bytes], Path]:
        port, admin_port = free_port(), free_port()
        config = gateway_config(self.tmp, name, port, admin_port, upstream_port, store_url,
                                workers)
        log_path = self.tmp / f"{name}.requests.log"
        stdout = open(log_path, "ab")  # O_APPEND, so measure() may truncate it
        stderr = (self.tmp / f"{name}.stderr").open("ab")
        launcher = [PYTHON, "-m", "gateway"] if variant is None else [
            PYTHON, str(BENCH / "prototypes.py"), variant, "--"]
        proc = self.procs.start(name, [*launcher, "--config", str(config), "run",
                                       "--log-level", "warning"],
                                core=core, stdout=stdout, stderr=stderr, env=self.env)
        stdout.close()  # the child has its own copies
        stderr.close()
        wait_port(port, proc, name, timeout=30)
        time.sleep(0.5 if workers == 1 else 3)  # workers bind after the parent
        self.procs.record_children(proc)
        return port, proc, log_path

    # correctness
    def check(self, system: str, port: int, what: str, headers: dict[str, str],
              expect_status: int, expect_user: str | None = None) -> None:
        status, _, body = request(port, "POST", PATH, {
            "Content-Type": "application/json", "X-User-Id": SPOOFED, **headers}, BODY)
        seen = None
        if status == 200:
            try:
                seen = json.loads(body).get("user")
            except ValueError:
                seen = "?"
        ok = status == expect_status and (expect_user is None or seen == expect_user)
        shown = f"{status}" + (f", upstream saw X-User-Id: {seen or '(none)'}"
                               if status == 200 else "")
        self.checks.append((system, what, shown, ok))
        if not ok:
            log(f"CHECK FAILED: {system} {what}: got {shown}")

    def check_token_path(self, system: str, port: int) -> None:
        good = self.token()
        self.check(system, port, "valid token + spoofed X-User-Id",
                   {"Authorization": f"Bearer {good}"}, 200, SUBJECT)
        self.check(system, port, "wrong signature",
                   {"Authorization": f"Bearer {self.token(secret=secrets.token_hex(32))}"}, 401)
        self.check(system, port, "expired token",
                   {"Authorization": f"Bearer {self.token(exp_in=-3600)}"}, 401)
        self.check(system, port, "no token", {}, 401)
        forged = good.rsplit(".", 1)[0].replace(
            good.split(".")[0], "eyJhbGciOiJub25lIiwidHlwIjoiSldUIn0") + "."
        self.check(system, port, "alg none", {"Authorization": f"Bearer {forged}"}, 401)

    def login_cookie(self, port: int) -> str:
        status, headers, body = request(port, "POST", "/auth/session", {
            "Authorization": f"Bearer {self.token()}", "Content-Type": "application/json"}, "{}")
        if status != 200 or "set-cookie" not in headers:
            raise RuntimeError(f"POST /auth/session answered {status}: {body[:200]}")
        return headers["set-cookie"].split(";", 1)[0]


# -- the run ---------------------------------------------------------------------------------


def wait_until_quiet() -> tuple[float, bool, int]:
    """Wait (bounded) for load < QUIET_LOAD and no pytest; returns (load, pytest?, waited s)."""
    waited = 0
    while True:
        load = float(Path("/proc/loadavg").read_text().split()[0])
        pytest = subprocess.run(["pgrep", "-f", "pytest"], capture_output=True).returncode == 0
        if (load < QUIET_LOAD and not pytest) or waited >= QUIET_WAIT:
            return load, pytest, waited
        log(f"machine busy (load {load:.2f}, pytest running: {pytest}); waiting "
            f"({waited}/{QUIET_WAIT} s)")
        time.sleep(30)
        waited += 30


def versions() -> dict[str, str]:
    def first_line(argv: list[str]) -> str:
        try:
            done = subprocess.run(argv, capture_output=True, text=True, timeout=10)
        except (OSError, subprocess.TimeoutExpired):
            return "not installed"
        return (done.stdout + done.stderr).strip().splitlines()[0]

    import httptools
    import uvicorn
    import uvloop

    return {
        "python": platform.python_version(),
        "uvicorn": uvicorn.__version__,
        "uvloop": uvloop.__version__,
        "httptools": httptools.__version__,
        "PyJWT": jwt.__version__,
        "haproxy": first_line(["haproxy", "-v"]),
        "nginx": first_line(["nginx", "-v"]),
        "wrk": first_line(["wrk", "-v"]),
        "redis": first_line(["redis-server", "--version"]),
        "py-spy": first_line([str(Path(PYTHON).parent / "py-spy"), "--version"]),
    }


def code_version() -> str:
    """The gateway code measured: commit, and whether gateway/ had uncommitted changes."""
    def git(*args: str) -> str:
        try:
            done = subprocess.run(["git", *args], capture_output=True, text=True, timeout=10,
                                  cwd=ROOT)
        except (OSError, subprocess.TimeoutExpired):
            return ""
        return done.stdout.strip()

    head = git("rev-parse", "--short", "HEAD") or "unknown"
    subject = git("log", "-1", "--format=%s")
    dirty = [line for line in git("status", "--porcelain", "--", "gateway").splitlines() if line]
    state = f"{len(dirty)} uncommitted change(s) under gateway/" if dirty else "gateway/ clean"
    return f"{head} \"{subject}\"; {state}"


def machine() -> dict[str, str]:
    model = "unknown"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return {"nproc": str(os.cpu_count()), "cpu": model, "kernel": platform.release()}


def main() -> int:
    tmp = Path(os.environ.get("BENCH_TMP") or "")
    if not tmp.is_dir():
        print("BENCH_TMP must name a directory (bench/run.sh makes one)", file=sys.stderr)
        return 2
    for name in ("wrk", "taskset") if ONLY == "streams" else ("wrk", "nginx", "haproxy", "taskset"):
        if shutil.which(name) is None:
            print(f"{name} is missing (bench/run.sh installs it)", file=sys.stderr)
            return 2
    if (os.cpu_count() or 1) < 2:
        print("the benchmark needs 2 cores: one for the system under test, one for the load",
              file=sys.stderr)
        return 2

    def on_signal(signum: int, _frame: Any) -> None:
        raise SystemExit(128 + signum)

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGHUP, on_signal)

    load, pytest_running, waited = wait_until_quiet()
    started_at = dt.datetime.now(dt.UTC)
    log(f"starting: load {load:.2f}, pytest running: {pytest_running}, waited {waited} s")
    bench = Bench(tmp)
    if ONLY == "streams":
        return streams_only(bench, started_at, (load, pytest_running, waited))
    (tmp / "policies").mkdir(exist_ok=True)
    (tmp / "policies" / "bench.yaml").write_text(POLICY.format(path=PATH))
    cases: list[Case] = []
    workers_cases: list[Case] = []
    variant_cases: list[Case] = []
    profiles: dict[str, str | None] = {}
    try:
        nginx_port = bench.start_nginx()
        redis_port = bench.start_redis() if (COOKIE_CASE or WORKERS_CASE) else None
        haproxy_port, haproxy = bench.start_haproxy(nginx_port)
        token = bench.token()
        bearer = {"Authorization": f"Bearer {token}", "X-User-Id": SPOOFED,
                  "Content-Type": "application/json"}
        script = wrk_script(tmp, "bearer", bearer)

        def gateway_case(key: str, label: str, name: str, case_script: Path, *,
                         store_url: str | None = None, variant: str | None = None) -> Case:
            case = Case(key, label, 0, case_script, lambda: None)

            def restart(case: Case) -> None:
                if case.proc is not None:
                    bench.procs.stop(case.proc)
                case.port, case.proc, case.log_path = bench.start_gateway(
                    name, nginx_port, store_url=store_url, variant=variant)

            restart(case)
            case.sut = lambda: case.proc.pid if case.proc else None
            case.restart = restart if RESTART else None
            return case

        bench.check_token_path("HAProxy", haproxy_port)
        gateway = gateway_case("gateway", "gateway, JWT path (full pipeline)", "gateway", script)
        bench.check_token_path("gateway", gateway.port)
        nginx_pid = bench.nginx.pid
        cases += [
            Case("direct", "direct to nginx (no proxy)", nginx_port, script, lambda: nginx_pid,
                 note="CPU is nginx's (it runs on the load core)", sut_core=LOAD_CORE),
            Case("haproxy", "HAProxy 2.6 jwt_verify", haproxy_port, script, lambda: haproxy.pid),
            gateway,
        ]
        cookie_case: Case | None = None
        store_url = f"redis://127.0.0.1:{redis_port}/14" if redis_port else None
        if COOKIE_CASE and store_url:
            # The session lives in Redis, so the cookie stays valid across restarts.
            ck_script = tmp / "cookie.lua"
            cookie_case = gateway_case("cookie", "gateway, session-cookie path (Redis store)",
                                       "gateway-redis", ck_script, store_url=store_url)
            ck_port = cookie_case.port
            cookie = bench.login_cookie(ck_port)
            bench.check("gateway (Redis store)", ck_port, "session cookie + spoofed X-User-Id",
                        {"Cookie": cookie}, 200, SUBJECT)
            bench.check("gateway (Redis store)", ck_port, "unknown session cookie",
                        {"Cookie": cookie.split("=", 1)[0] + "=" + secrets.token_urlsafe(32)},
                        401)
            wrk_script(tmp, "cookie", {"Cookie": cookie, "X-User-Id": SPOOFED,
                                       "Content-Type": "application/json"})
            cases.append(cookie_case)
        for variant in VARIANTS:
            case = gateway_case(f"proto-{variant}", f"gateway + prototype `{variant}`",
                                f"gateway-{variant}", script, variant=variant)
            bench.check_token_path(f"gateway + {variant} (prototype)", case.port)
            variant_cases.append(case)
        if not all(ok for *_, ok in bench.checks):
            bench.notes.append("Some correctness checks FAILED (see the table): the numbers "
                               "below are not comparable.")

        for round_no in range(RUNS):
            for case in [*cases, *variant_cases]:
                log(f"round {round_no + 1}/{RUNS}: {case.key}")
                if case.restart is not None and round_no > 0:
                    case.restart(case)
                case.runs.append(bench.measure(case))
        for case in variant_cases:
            if case.proc is not None:
                bench.procs.stop(case.proc)

        if PROFILE:
            for case in cases:
                if case.key in ("gateway", "cookie"):
                    profiles[case.key] = run_profile(bench, case)

        if WORKERS_CASE and store_url and cookie_case is not None:
            # 1 worker (core 0) vs 2 workers (cores 0 and 1), cookie path on Redis. Stop the
            # single-core systems first so that nothing else shares the cores.
            for proc in (gateway.proc, haproxy, cookie_case.proc):
                if proc is not None:
                    bench.procs.stop(proc)
            one = cookie_case
            two_port, two, two_log = bench.start_gateway(
                "gateway-2w", nginx_port, store_url=store_url, workers=2, core="0,1")
            cookie = bench.login_cookie(two_port)
            two_script = wrk_script(tmp, "cookie2", {"Cookie": cookie, "X-User-Id": SPOOFED,
                                                     "Content-Type": "application/json"})
            two_pid = two.pid
            two_case = Case("cookie-2w", "gateway, cookie path, 2 workers on cores 0+1",
                            two_port, two_script, lambda: two_pid, log_path=two_log)
            for round_no in range(RUNS):
                log(f"workers round {round_no + 1}/{RUNS}")
                two_case.runs.append(bench.measure(two_case))
            workers_cases = [one, two_case]
            # Logout is effective at once in every worker: no session cache anywhere. New
            # connections land on either worker.
            request(two_port, "DELETE", "/auth/session", {"Cookie": cookie})
            statuses = {request(two_port, "POST", PATH, {"Cookie": cookie,
                                                         "Content-Type": "application/json"},
                                BODY)[0] for _ in range(20)}
            bench.checks.append(("gateway, 2 workers (Redis)", "20 requests with the cookie "
                                 "after DELETE /auth/session", ", ".join(map(str, statuses)),
                                 statuses == {401}))
    finally:
        bench.procs.stop_all()
    streams = run_streams(bench) if STREAMS_CASE else None
    micro = run_micro(bench)
    finished_at = dt.datetime.now(dt.UTC)
    end_load = float(Path("/proc/loadavg").read_text().split()[0])

    from report import render  # bench/report.py

    data = {
        "cases": [case_data(c) for c in cases],
        "variant_cases": [case_data(c) for c in variant_cases],
        "workers_cases": [case_data(c) for c in workers_cases],
        "checks": bench.checks, "notes": bench.notes,
        "started_at": started_at.isoformat(), "finished_at": finished_at.isoformat(),
        "machine": machine(), "versions": versions(), "code": code_version(),
        "load": [load, end_load, pytest_running, waited], "command": COMMAND,
        "settings": {"duration": DURATION, "warmup": WARMUP, "runs": RUNS,
                     "connections": CONNECTIONS},
        "profiles": profiles, "streams": streams, "micro": micro,
    }
    # The raw numbers next to RESULTS.md: `python bench/report.py` renders it again (after an
    # edit of bench/analysis.md) without measuring again.
    OUT.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    OUT.write_text(render(data))
    log(f"wrote {OUT}")
    return 0


# The in-process micro-benchmarks: the same Python work as the JWT case, without sockets.
MICRO_SCRIPTS = (("pipeline_us", "micro_pipeline.py"), ("server_us", "micro_server.py"))
MICRO_RUNS = 3


def run_micro(bench: Bench) -> dict[str, float] | None:
    """Best of MICRO_RUNS runs of each micro-benchmark, pinned to the gateway's core."""
    result: dict[str, float] = {}
    for key, script in MICRO_SCRIPTS:
        log(f"micro-benchmark: {script}")
        best = float("inf")
        for _ in range(MICRO_RUNS):
            try:
                output = subprocess.run(
                    ["taskset", "-c", SUT_CORE, PYTHON, str(BENCH / script), "20000"],
                    capture_output=True, text=True, timeout=300, check=True).stdout
                best = min(best, float(output.split(": ")[1].split(" µs")[0]))
            except (subprocess.SubprocessError, IndexError, ValueError) as error:
                bench.notes.append(f"The micro-benchmark {script} failed: {error}.")
                return None
        result[key] = best
    return result


def run_streams(bench: Bench) -> dict[str, Any] | None:
    """The stream cases (bench/streams.py); a failure there keeps the HTTP results."""
    import streams  # bench/streams.py

    try:
        return streams.run(bench)
    except Exception as error:  # reported in RESULTS.md; the HTTP results are still written
        log(f"the stream cases failed: {error!r}")
        bench.notes.append(f"The stream cases (bench/streams.py) failed: {error}.")
        return None
    finally:
        bench.procs.stop_all()


def streams_only(bench: Bench, started_at: dt.datetime, load: tuple[float, bool, int]) -> int:
    """``BENCH_ONLY=streams``: the stream cases alone, rendered in the same report."""
    streams = run_streams(bench)
    from report import render  # bench/report.py

    data = {
        "cases": [], "variant_cases": [], "workers_cases": [], "checks": bench.checks,
        "notes": ["BENCH_ONLY=streams: the HTTP cases were not run.", *bench.notes],
        "started_at": started_at.isoformat(), "finished_at": dt.datetime.now(dt.UTC).isoformat(),
        "machine": machine(), "versions": versions(), "code": code_version(),
        "load": [load[0], float(Path("/proc/loadavg").read_text().split()[0]), load[1], load[2]],
        "command": COMMAND, "settings": {"duration": DURATION, "warmup": WARMUP, "runs": RUNS,
                                         "connections": CONNECTIONS},
        "profiles": {}, "streams": streams,
    }
    OUT.with_suffix(".json").write_text(json.dumps(data, indent=1) + "\n")
    OUT.write_text(render(data))
    log(f"wrote {OUT}")
    return 0 if streams is not None else 1


def case_data(case: Case) -> dict[str, Any]:
    return {"key": case.key, "label": case.label, "note": case.note,
            "runs": [vars(run) for run in case.runs]}


def run_profile(bench: Bench, case: Case) -> str | None:
    """py-spy on the gateway while wrk loads it; returns the text summary (bench/pyspy_summary)."""
    pyspy = Path(PYTHON).parent / "py-spy"
    if not pyspy.exists():
        bench.notes.append("py-spy is not installed in the venv: no profile.")
        return None
    pid = case.sut()
    raw = bench.tmp / f"profile-{case.key}.raw"
    duration = max(2 * DURATION, 6)
    argv = [str(pyspy), "record", "--pid", str(pid), "--duration", str(duration), "--rate",
            str(PROFILE_RATE), "--native", "--format", "raw", "--output", str(raw)]
    if WARMUP > 0:
        bench.wrk(case.port, case.script, WARMUP)
    log(f"profiling {case.key} with py-spy for {duration} s")
    out = (bench.tmp / "py-spy.log").open("ab")
    # py-spy samples from the load core so that it takes no CPU from the gateway.
    spy = bench.procs.start("py-spy", argv, core=LOAD_CORE, stdout=out, stderr=out)
    time.sleep(0.5)
    before = tree_ticks(pid)
    output = bench.wrk(case.port, case.script, duration)
    after = tree_ticks(pid)
    try:
        spy.wait(timeout=duration + 30)
    except subprocess.TimeoutExpired:
        log("py-spy overran its bound; stopping it")
    bench.procs.stop(spy)
    if not raw.exists():
        bench.notes.append("py-spy produced no profile (see py-spy.log); ptrace may be blocked.")
        return None
    rps, _, _, _, _ = parse_wrk(output)
    from pyspy_summary import summarise  # bench/pyspy_summary.py

    user = (after[0] - before[0]) / CLK_TCK
    system = (after[1] - before[1]) / CLK_TCK
    # Shares become µs with the CPU per request measured without the profiler (py-spy --native
    # stops the process for every sample, which lowers throughput while it records).
    cpu_us = case.median("cpu_us") or 0.0
    return summarise(raw.read_text(), cpu_us=cpu_us, kernel_share=system / max(1e-9, user + system),
                     rps=rps)


if __name__ == "__main__":
    sys.path.insert(0, str(BENCH))
    sys.exit(main())
