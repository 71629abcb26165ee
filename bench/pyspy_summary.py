"""Turn a ``py-spy record --native --format raw`` profile into "where the time goes" tables.

Every sample is one stack (outermost frame first). It is charged to one category:

1. anything under the request log (``gateway/observe.py``) is logging, whatever its leaf, so
   the log's own ``write`` counts as logging, not as socket work;
2. a leaf in a libc system-call wrapper (``write``, ``read``, ``epoll_pwait``…) is kernel time,
   split by who made the call (response to the client, request to the upstream, reads);
3. otherwise the innermost frame that belongs to a known module decides (table ``_RULES``);
4. what is left is the event loop itself (uvloop's C code, task steps, handles) or the
   interpreter (GC).

py-spy sees the kernel only as the system call a thread is in, and it drops idle samples
(a thread asleep in ``epoll_wait``), so shares are of on-CPU time. They are converted to µs per
request with the CPU time per request measured without the profiler.
"""

from __future__ import annotations

from collections import Counter
from typing import Final

_SYSCALLS: Final = frozenset({
    "write", "writev", "read", "readv", "recv", "recvfrom", "recvmsg", "send", "sendto",
    "sendmsg", "epoll_wait", "epoll_pwait", "epoll_ctl", "accept4", "close", "syscall",
    "__libc_write", "__libc_read", "__GI___writev", "shutdown", "getpeername", "getsockname",
    "setsockopt",
})

STORE: Final = "session store: lean RESP client (GET), redis-py (the rest)"
SESSIONS: Final = "sessions: cookie scan; on the cookie path record JSON + identity"

# (category, substrings of a frame's "function (file:line)" text); innermost match wins.
_RULES: Final[tuple[tuple[str, tuple[str, ...]], ...]] = (
    ("metrics (plain counters, histograms)", ("gateway/metrics.py",)),
    (STORE, ("redis/", "gateway/stores/")),
    (SESSIONS, ("gateway/identity/session.py",)),
    ("identity: bearer parse + JWT cache hit", ("gateway/identity/", "cachetools/")),
    ("policy: canonical path, rule match, decide", ("gateway/policy/",)),
    ("header rewrite: request strip/inject", ("HeaderRewriter.",)),
    ("header filter: response hop-by-hop", ("response_headers",)),
    ("upstream client: pool, request head, response parse", ("gateway/forward/upstream",)),
    ("pipeline glue: HttpProxy/_relay/app dispatch", ("gateway/forward/http.py", "gateway/app.py",
                                                     "gateway/forward/request_body.py",
                                                     "gateway/forward/relay.py",
                                                     "gateway/errors.py")),
    ("uvicorn + httptools: request parse, ASGI cycle, response head",
     ("uvicorn/", "gateway/server_protocol.py", "asyncio/locks.py", "httptools")),
)
LOOP: Final = "event loop: uvloop callbacks, task steps, futures"
INTERP: Final = "interpreter: GC"
LOG: Final = "request log: record dict, json.dumps, batched write"
KERNEL_CLIENT: Final = "kernel: write() of the response to the client"
KERNEL_UPSTREAM: Final = "kernel: write() of the request to the upstream"
KERNEL_READ: Final = "kernel: read() (client requests, upstream responses)"
KERNEL_OTHER: Final = "kernel: epoll and other system calls"

GROUPS: Final = (
    ("kernel / socket system calls", (KERNEL_CLIENT, KERNEL_UPSTREAM, KERNEL_READ,
                                      KERNEL_OTHER)),
    ("server: uvicorn + httptools + event loop", (
        "uvicorn + httptools: request parse, ASGI cycle, response head", LOOP, INTERP)),
    ("our pipeline", (
        "pipeline glue: HttpProxy/_relay/app dispatch",
        "policy: canonical path, rule match, decide",
        "identity: bearer parse + JWT cache hit",
        SESSIONS,
        "header rewrite: request strip/inject",
        "header filter: response hop-by-hop",
        LOG,
        "metrics (plain counters, histograms)")),
    ("upstream client", ("upstream client: pool, request head, response parse",)),
    ("session store (cookie path only)", (STORE,)),
)


def _name(frame: str) -> str:
    return frame.split(" (", 1)[0]


def classify(frames: list[str]) -> str:
    if any("gateway/observe.py" in f for f in frames):
        return LOG
    leaf = _name(frames[-1])
    if leaf in _SYSCALLS or leaf.startswith("__libc_"):
        python = [f for f in frames if ".py:" in f]
        caller = python[-1] if python else ""
        if leaf.startswith(("write", "__libc_write", "send", "__GI___writev")):
            if "uvicorn/" in caller or "gateway/server_protocol.py" in caller:
                return KERNEL_CLIENT
            if "gateway/forward/upstream" in caller:
                return KERNEL_UPSTREAM
        if leaf.startswith(("read", "recv", "__libc_read")):
            return KERNEL_READ
        return KERNEL_OTHER
    if any(_name(f).startswith("gc_") for f in frames):
        return INTERP
    for frame in reversed(frames):
        for category, needles in _RULES:
            if any(needle in frame for needle in needles):
                return category
    return LOOP


def _self_key(frame: str) -> str:
    # "function (file:line)" -> "function (file)": lines of one function add up.
    name, _, where = frame.partition(" (")
    return f"{name} ({where.rsplit(':', 1)[0].rstrip(')')})"


def summarise(raw: str, *, cpu_us: float, kernel_share: float, rps: float,
              top: int = 25) -> str:
    totals: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    samples = 0
    for line in raw.splitlines():
        stack, _, count = line.rpartition(" ")
        if not stack or not count.isdigit():
            continue
        n = int(count)
        frames = stack.split(";")
        samples += n
        totals[classify(frames)] += n
        python = [f for f in frames if ".py:" in f]
        leaf = frames[-1]
        key = _self_key(leaf)
        if ".py:" not in leaf and python:
            key = f"{_name(leaf)} ← {_self_key(python[-1])}"
        leaves[key] += n
    if not samples:
        return "py-spy recorded no samples."
    kernel = (KERNEL_CLIENT, KERNEL_UPSTREAM, KERNEL_READ, KERNEL_OTHER)
    kernel_n = sum(totals[c] for c in kernel)
    user_n = samples - kernel_n
    # Two µs columns. "Sampled": the shares times the CPU per request. "Scaled": the system-call
    # categories split the kernel time /proc measured (stime) and all others split the user time
    # (utime); this corrects py-spy's lean towards system calls (a thread it stops inside one is
    # always caught at a system-call leaf) and is the column to read.
    kernel_us = cpu_us * kernel_share
    user_us = cpu_us - kernel_us

    def scaled(category: str) -> float:
        n = totals[category]
        if category in kernel:
            return n / kernel_n * kernel_us if kernel_n else 0.0
        return n / user_n * user_us if user_n else 0.0

    out = [
        f"{samples} samples while wrk ran ({rps:,.0f} req/s while sampled). CPU per request "
        f"without the profiler: {cpu_us:.1f} µs; kernel share (/proc stime) while sampled: "
        f"{kernel_share:.0%}.",
        "",
        "| where | share of samples | µs / request, sampled | µs / request, scaled to "
        "/proc utime+stime |",
        "|---|---:|---:|---:|",
    ]
    for group, categories in GROUPS:
        group_n = sum(totals[c] for c in categories)
        if not group_n and "only" in group:
            continue
        group_scaled = sum(scaled(c) for c in categories)
        out.append(f"| **{group}** | **{group_n / samples:.1%}** | "
                   f"**{group_n / samples * cpu_us:.1f}** | **{group_scaled:.1f}** |")
        for category in categories:
            n = totals[category]
            out.append(f"| &nbsp;&nbsp;{category} | {n / samples:.1%} | "
                       f"{n / samples * cpu_us:.1f} | {scaled(category):.1f} |")
    out += ["", f"Top {top} functions by self time (leaf frame; a C leaf is shown with the "
                "Python function that called it):", "",
            "| self | function |", "|---:|---|"]
    for key, n in leaves.most_common(top):
        out.append(f"| {n / samples:.1%} | `{key}` |")
    return "\n".join(out)


if __name__ == "__main__":
    import argparse
    import sys
    from pathlib import Path

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("raw")
    parser.add_argument("--cpu-us", type=float, default=100.0)
    parser.add_argument("--kernel-share", type=float, default=0.0)
    parser.add_argument("--rps", type=float, default=0.0)
    args = parser.parse_args()
    sys.stdout.write(summarise(Path(args.raw).read_text(), cpu_us=args.cpu_us,
                               kernel_share=args.kernel_share, rps=args.rps) + "\n")
