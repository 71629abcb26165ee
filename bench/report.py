"""Render bench/RESULTS.md from what bench/bench.py measured."""

from __future__ import annotations

import datetime as dt
import json
import statistics
import sys
from pathlib import Path
from types import SimpleNamespace
from typing import Any

ANALYSIS = Path(__file__).resolve().parent / "analysis.md"
# HAProxy 2.6 jwt_verify on the machines issue 7's targets were set on (../shared/DESIGN.md,
# "Performance facts already measured here"): req/s and CPU µs per request, low and high.
REFERENCE_HAPROXY_RPS = (31_600, 36_800)
REFERENCE_HAPROXY_CPU_US = (27.0, 31.0)


def _num(value: float | None, fmt: str, missing: str = "–") -> str:
    return missing if value is None else format(value, fmt)


def _status(ok: bool | None) -> str:
    return "n/a" if ok is None else ("**met**" if ok else "**missed**")


class CaseView:
    """One case from results.json, with medians over its runs."""

    def __init__(self, data: dict[str, Any]) -> None:
        self.key: str = data["key"]
        self.label: str = data["label"]
        self.runs = [SimpleNamespace(**run) for run in data["runs"]]

    def median(self, attr: str) -> float | None:
        values = [getattr(r, attr) for r in self.runs if getattr(r, attr) is not None]
        return statistics.median(values) if values else None


def render(data: dict[str, Any]) -> str:
    cases = [CaseView(c) for c in data["cases"]]
    variant_cases = [CaseView(c) for c in data["variant_cases"]]
    workers_cases = [CaseView(c) for c in data["workers_cases"]]
    # The 1-worker side of the comparison is the cookie case itself.
    workers_cases = [next((c for c in cases if c.key == w.key), w) for w in workers_cases]
    checks = data["checks"]
    notes = data["notes"]
    started_at = dt.datetime.fromisoformat(data["started_at"])
    finished_at = dt.datetime.fromisoformat(data["finished_at"])
    machine, versions = data["machine"], data["versions"]
    load, command = data["load"], data["command"]
    settings, profiles = data["settings"], data["profiles"]
    by_key = {case.key: case for case in cases}
    haproxy = by_key.get("haproxy")
    direct = by_key.get("direct")
    gateway = by_key.get("gateway")
    cookie = by_key.get("cookie")
    h_rps = haproxy.median("rps") if haproxy else None
    d_rps = direct.median("rps") if direct else None
    start_load, end_load, pytest_running, waited = load
    others = [r.other_core0 for c in [*cases, *variant_cases] for r in c.runs
              if getattr(r, "other_core0", None) is not None]
    noisy = [o for o in others if o > 0.10]
    quiet = start_load < 0.7 and not pytest_running and not noisy
    lines = [
        "# Benchmark results",
        "",
        f"Produced by `{command}` (bench/run.sh → bench/bench.py) on "
        f"{started_at:%Y-%m-%d %H:%M} UTC (took {(finished_at - started_at).seconds // 60} min "
        f"{(finished_at - started_at).seconds % 60} s). "
        "Regenerate with the same command; everything below except the section marked "
        "hand-written is generated.",
        "",
        "## Rig",
        "",
        f"- Machine: {machine['nproc']} cores, {machine['cpu']}, Linux {machine['kernel']}.",
        "- Versions: " + ", ".join(f"{k} {v}" for k, v in versions.items() if k in (
            "python", "uvicorn", "uvloop", "httptools", "PyJWT")) + ".",
        f"- `haproxy -v`: {versions['haproxy']}; `nginx -v`: {versions['nginx']}; "
        f"`wrk -v`: {versions['wrk']}; {versions['redis']}; {versions['py-spy']}.",
        f"- Machine load: 1-minute load average {start_load:.2f} when the run started "
        f"({'after waiting ' + str(waited) + ' s' if waited else 'no wait needed'}), "
        f"{end_load:.2f} when it ended; pytest running at start: "
        f"{'yes' if pytest_running else 'no'}. Other processes' use of core 0 during the "
        f"measured runs (core 0 busy minus the system under test): median "
        f"{_num(statistics.median(others) if others else None, '.0%')}, max "
        f"{_num(max(others) if others else None, '.0%')}; {len(noisy)} of {len(others)} runs "
        "above 10 %. "
        + ("Nothing else ran on the cores worth mentioning (the host's own speed still "
           "drifted: see below)." if quiet else
           "**The machine was NOT fully quiet (it is shared with other engineers' test runs and "
           "services): runs with other load on core 0 are slower; medians damp that, but treat "
           "single runs as noisy.**"),
        f"- Gateway code measured: {data.get('code', 'unknown')}.",
        "- Pinning (`taskset`): the system under test on core 0; wrk, nginx (1 worker) and "
        "Redis on core 1.",
        f"- Load: `wrk -t1 -c{settings['connections']} -d{settings['duration']}s --latency -s "
        "post.lua`: POST /api/chat with `Authorization: Bearer <HS256 JWT>`, a spoofed "
        "`X-User-Id: mallory` and a 39-byte JSON body; the upstream nginx answers a 50-byte "
        "JSON that echoes the X-User-Id it received.",
        f"- {settings['runs']} runs per case, round-robin over the cases, each after a "
        f"{settings['warmup']} s warm-up; the table shows medians. CPU µs/request = utime+stime "
        "of the system under test (from `/proc/<pid>/stat`) ÷ requests completed.",
        "- HAProxy (`nbthread 1`): deletes the client's X-User-Id, checks `alg` = HS256, "
        "`jwt_verify` with the algorithm fixed in the config, `exp` against `date`, `iss`, then "
        "`set-header X-User-Id` from `sub`; no request log. The gateway: `gateway run` "
        "(uvicorn + uvloop + httptools, one worker, `mode: production`), HS256 issuer, a "
        "5-rule policy whose matching rule requires `authenticated`, request log ON (written "
        "to a file), admin listener on, the memory store (the JWT path never reads it).",
        "",
    ]
    if notes:
        lines += ["**Notes:** " + " ".join(notes), ""]
    lines += [
        "## Results",
        "",
        "| case | req/s | p50 | p99 | CPU µs/req | kernel share | vs HAProxy | vs direct | "
        "core 0 / core 1 busy | errors |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for case in [*cases, *[c for c in workers_cases if c not in cases]]:
        rps = case.median("rps")
        cpu = case.median("cpu_us")
        share = case.median("kernel_share")
        errors = sum(r.errors for r in case.runs)
        lines.append(
            f"| {case.label} | **{_num(rps, ',.0f')}** | {_num(case.median('p50_ms'), '.2f')} ms"
            f" | {_num(case.median('p99_ms'), '.2f')} ms | {_num(cpu, '.1f')} | "
            f"{_num(share, '.0%')} | "
            f"{_num(rps / h_rps if rps and h_rps else None, '.2f')}× | "
            f"{_num(rps / d_rps if rps and d_rps else None, '.2f')}× | "
            f"{_num(case.median('core0_busy'), '.0%')} / {_num(case.median('core1_busy'), '.0%')}"
            f" | {errors} |")
    lines += [
        "",
        "The direct case's CPU column is nginx's own (it shares core 1 with wrk); the proxies' "
        "CPU is the proxy process alone. *Kernel share* is stime / (utime + stime). *Core busy* "
        "is the whole core from `/proc/stat` (anything else running there included).",
        "",
    ]
    if gateway and haproxy and gateway.runs and haproxy.runs:
        ratios = [g.rps / h.rps for g, h in zip(gateway.runs, haproxy.runs, strict=False)]
        h_cpu = [r.cpu_us for r in haproxy.runs if r.cpu_us]
        d_cpu = [r.cpu_us for r in direct.runs if r.cpu_us] if direct else []
        g_cpu = [r.cpu_us for r in gateway.runs if r.cpu_us]
        lines += [
            f"Same-round ratio gateway / HAProxy (each round measures both within a minute): "
            f"median {statistics.median(ratios):.3f}, range {min(ratios):.3f}–{max(ratios):.3f} "
            f"over {len(ratios)} rounds.",
            "",
            "Machine speed drift: the C programs' own CPU per request moved during the run "
            f"(HAProxy {min(h_cpu):.1f}–{max(h_cpu):.1f} µs, nginx "
            + (f"{min(d_cpu):.1f}–{max(d_cpu):.1f} µs" if d_cpu else "–")
            + f"; the gateway {min(g_cpu):.1f}–{max(g_cpu):.1f} µs) "
            + _steal_text([r.steal for c in cases for r in c.runs if r.steal is not None])
            + " Medians and same-round ratios damp this; single runs do not.",
            "",
        ]
    h_cpu_median = haproxy.median("cpu_us") if haproxy else None
    slow_host = _host_speed(h_rps, h_cpu_median)
    if slow_host is not None:
        lines += [slow_host[1], ""]
    if gateway and gateway.runs and gateway.runs[-1].log_lines is not None:
        logged = sum(r.log_lines or 0 for r in gateway.runs)
        served = sum(r.requests for r in gateway.runs)
        lines += [f"Request log check (gateway, JWT path): {logged:,} lines written during the "
                  f"measured runs for {served:,} requests completed by wrk (wrk does not count "
                  "requests still in flight when it stops).", ""]

    lines += ["## Correctness checks (run before timing)", "",
              "| system | request | result | ok |", "|---|---|---|---|"]
    for system, what, shown, ok in checks:
        lines.append(f"| {system} | {what} | {shown} | {'yes' if ok else '**NO**'} |")
    lines.append("")

    # Targets from issue 7.
    g_rps = gateway.median("rps") if gateway else None
    g_p99 = gateway.median("p99_ms") if gateway else None
    ratio = g_rps / h_rps if g_rps and h_rps else None
    c_rps = cookie.median("rps") if cookie else None
    same_round = statistics.median(
        [g.rps / h.rps for g, h in zip(gateway.runs, haproxy.runs, strict=False)]
    ) if gateway and haproxy and gateway.runs and haproxy.runs else None
    # An absolute target missed on a host slower than the one it was set on says so.
    host = (f" (on a host {slow_host[0]:.1f}× slower than the reference: see *Host speed*)"
            if slow_host is not None else "")

    def absolute(ok: bool | None) -> str:
        return _status(ok) + (host if ok is False else "")

    lines += ["## Targets (issue 7)", "", "| target | measured | status |", "|---|---|---|",
              f"| JWT path, full pipeline: ≥ 10,000 req/s on one core | "
              f"{_num(g_rps, ',.0f')} req/s | {absolute(g_rps >= 10_000 if g_rps else None)} |",
              f"| ≥ 0.30× HAProxy 2.6 jwt_verify, same run | {_num(ratio, '.3f')}× "
              f"({_num(g_rps, ',.0f')} / {_num(h_rps, ',.0f')}; same-round ratios: median "
              f"{_num(same_round, '.3f')}×) | {_status(ratio >= 0.30 if ratio else None)} |",
              f"| p99 ≤ 10 ms (JWT path) | {_num(g_p99, '.2f')} ms | "
              f"{absolute(g_p99 <= 10 if g_p99 else None)} |",
              "| request logging on | on (see the log check above) | **met** |",
              f"| session-cookie path (Redis store): ≥ 5,000 req/s per core | "
              f"{_num(c_rps, ',.0f')} req/s | {absolute(c_rps >= 5_000 if c_rps else None)} |"]
    if len(workers_cases) == 2 and workers_cases[0].runs and workers_cases[1].runs:
        one, two = (c.median("rps") for c in workers_cases)
        scale = two / one if one and two else None
        # What 2 dedicated cores would give: twice the work of one core if a request costs a
        # worker no more CPU when a sibling runs (shared state lives in Redis, not in them).
        cpu_one, cpu_two = (c.median("cpu_us") for c in workers_cases)
        projected = 2 * cpu_one / cpu_two if cpu_one and cpu_two else None
        lines.append(
            "| 2 workers on 2 cores ≥ 1.8× 1 worker (Redis store) | "
            f"measured {_num(scale, '.2f')}× "
            f"({_num(two, ',.0f')} / {_num(one, ',.0f')} req/s) with wrk, nginx and Redis on the "
            f"same 2 cores; CPU per request {_num(cpu_one, '.1f')} µs with 1 worker, "
            f"{_num(cpu_two, '.1f')} µs with 2, so 2 dedicated cores would give "
            f"{_num(projected, '.2f')}× (projected: medians of runs made minutes apart, so "
            "it carries the host's drift, see below) | not measurable on this rig (needs ≥ 4 "
            "cores: 2 for the workers, the rest for the load) |")
    else:
        lines.append("| 2 workers on 2 cores ≥ 1.8× 1 worker | not run | n/a |")
    streams = data.get("streams")
    if streams:
        lines += [*stream_target_rows(streams), ""]
    else:
        why = ("not measured by `make bench`" if "streams" not in data else
               "not measured (BENCH_STREAMS=0, or the stream cases failed: see the notes)")
        lines += [
            f"| SSE: event reaches the client < 1 ms after the backend writes it | {why} | n/a |",
            "| 10,000 idle WebSockets ≤ 1 GiB RSS; per-message re-authorization ≤ 20 µs | "
            f"{why} | n/a |",
            "",
        ]
    if streams:
        lines += [*stream_section(streams), ""]

    if variant_cases and gateway:
        base_cpu = gateway.median("cpu_us")
        base_rps = gateway.median("rps")
        lines += ["## Prototype fixes, measured in the same run", "",
                  "Each row is the gateway started through bench/prototypes.py, which patches one "
                  "fix in at start-up (nothing in gateway/ is changed); same rig, same "
                  "round-robin, same correctness checks as the unpatched gateway, a fresh process "
                  "per round. *Paired* compares each round with the unpatched gateway's run of "
                  "the same round: the median of the per-round CPU savings, their range, and "
                  "in how many rounds the variant used less CPU.", "",
                  "| variant | req/s | vs unpatched | CPU µs/req | saved µs/req (medians) | "
                  "paired: saved µs/req [min, max] | rounds better | p99 | vs HAProxy |",
                  "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for case in variant_cases:
            rps, cpu = case.median("rps"), case.median("cpu_us")
            deltas = [b.cpu_us - v.cpu_us for b, v in zip(gateway.runs, case.runs, strict=False)
                      if b.cpu_us is not None and v.cpu_us is not None]
            paired = (f"{statistics.median(deltas):+.1f} [{min(deltas):+.1f}, "
                      f"{max(deltas):+.1f}]" if deltas else "–")
            better = sum(1 for d in deltas if d > 0)
            lines.append(
                f"| {case.label} | {_num(rps, ',.0f')} | "
                f"{_num(rps / base_rps if rps and base_rps else None, '.3f')}× | "
                f"{_num(cpu, '.1f')} | "
                f"{_num(base_cpu - cpu if cpu and base_cpu else None, '+.1f')} | {paired} | "
                f"{better} of {len(deltas)} | {_num(case.median('p99_ms'), '.2f')} ms"
                f" | {_num(rps / h_rps if rps and h_rps else None, '.3f')}× |")
        lines.append("")

    titles = {"gateway": "gateway, JWT path", "cookie": "gateway, session-cookie path on Redis"}
    lines += ["## Where the remaining time goes", "",
              "Generated from `py-spy record --native --rate 100` (20 s) on the gateway while "
              "wrk loads it as above (py-spy runs on core 1), classified by "
              "bench/pyspy_summary.py (its docstring gives the rules). Read the last column: it "
              "splits the kernel time /proc measured over the system-call categories and the "
              "user time over the rest, which corrects py-spy's lean towards system calls. "
              "`--native` stops the process for every sample, so throughput drops while it "
              "records; the CPU per request is the one measured without the profiler.", ""]
    micro = data.get("micro")
    g_cpu_median = gateway.median("cpu_us") if gateway else None
    if micro and g_cpu_median:
        pipeline, server = micro["pipeline_us"], micro["server_us"]
        lines += [
            "**Without sockets** (in process, pinned to core 0, best of 3 runs of 20,000 "
            "requests each, after the load runs): the gateway's own per-request work on the JWT "
            f"path (bench/micro_pipeline.py: identify, policy, rewrite, request log, relay) "
            f"costs **{pipeline:.1f} µs**; with the server protocol in front of it "
            "(bench/micro_server.py: httptools parse, scope, request cycle, task, response "
            f"head and body) **{server:.1f} µs**. Under wrk the same request costs "
            f"{g_cpu_median:.1f} µs: the other {g_cpu_median - server:.1f} µs are the kernel's "
            "socket calls, the event loop's I/O and the upstream client. These two numbers "
            "compare one version of the code with another on one host (no kernel, no network "
            "noise), and one host with another for pure Python.", ""]
    if not profiles:
        lines += ["No profile was taken (BENCH_PROFILE=0).", ""]
    for key, text in profiles.items():
        lines += [f"### {titles.get(key, key)}", "",
                  text or "py-spy failed: no profile.", ""]
    if ANALYSIS.exists():
        lines += [ANALYSIS.read_text().rstrip(), ""]

    lines += ["## Every run", "",
              "| case | run | req/s | p50 ms | p99 ms | requests | CPU µs/req | core 0 | other "
              "load on core 0 | core 1 | steal | errors |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for case in [*cases, *variant_cases, *[c for c in workers_cases if c not in cases]]:
        for number, run in enumerate(case.runs, 1):
            lines.append(
                f"| {case.key} | {number} | {run.rps:,.0f} | {run.p50_ms:.2f} | {run.p99_ms:.2f}"
                f" | {run.requests:,} | {_num(run.cpu_us, '.1f')} | {run.core0_busy:.0%} | "
                f"{_num(getattr(run, 'other_core0', None), '.0%')} | "
                f"{run.core1_busy:.0%} | {run.steal:.1%} | {run.errors} |")
    lines.append("")
    return "\n".join(lines)


def _ms(us: float) -> str:
    return f"{us / 1000:.3f} ms"


def stream_target_rows(streams: dict[str, Any]) -> list[str]:
    """Targets rows for the stream cases (bench/streams.py)."""
    rows = []
    sse = streams.get("sse")
    if sse:
        g, d = sse["gateway"], sse["direct"]
        rows.append(
            f"| SSE: event reaches the client < 1 ms after the backend writes it (median) | "
            f"{_ms(g['median_us'])} median through the gateway (p99 {_ms(g['p99_us'])}); "
            f"direct to the backend {_ms(d['median_us'])} (p99 {_ms(d['p99_us'])}); idle "
            f"gateway, {g['n']} events | {_status(g['median_us'] < 1000)} |")
    idle = streams.get("idle")
    if idle:
        rss = idle["rss_at_target"]
        complete = idle["opened"] == idle["requested"] and idle["alive"] == idle["opened"]
        measured = (f"{rss / 2**20:,.0f} MiB gateway RSS with {idle['opened']:,} idle sockets"
                    if not idle["extrapolated"] else
                    f"{rss / 2**20:,.0f} MiB extrapolated to {idle['target']:,} from "
                    f"{idle['opened']:,} sockets measured (the file-descriptor limit: see "
                    "*Streams*)")
        measured += (f"; {idle['per_socket_bytes'] / 1024:.1f} KiB per socket, "
                     f"{idle['before']['VmRSS'] / 1024:,.0f} MiB before")
        if not complete:
            measured += (f"; **only {idle['alive']:,} of {idle['requested']:,} sockets stayed "
                         f"open** (failures: {idle['failures']})")
        # The target is 10,000; a smaller BENCH_WS_IDLE is a trial run, not a verdict.
        verdict = (_status(rss <= 2**30 and complete) if idle["target"] >= 10_000 else
                   f"n/a (BENCH_WS_IDLE={idle['target']})")
        rows.append(f"| 10,000 idle WebSockets through the gateway ≤ 1 GiB RSS | {measured} | "
                    f"{verdict} |")
    reauth, messages = streams.get("reauth"), streams.get("messages")
    if reauth:
        worst = max(reauth["jwt_us"], reauth["session_memory_us"])
        redis_cpu = reauth.get("session_redis_cpu_us")
        tracked = "session_redis_uncached_cpu_us" in reauth  # runs before the cache: not
        if redis_cpu is None:
            redis = ""
        elif tracked:
            redis = (f"; on the Redis store, reading the copy Redis invalidates "
                     f"(`store.websocket_cache`, the default), {redis_cpu:.1f} µs for a lone "
                     f"message and {_concurrent(reauth, 'session_redis'):.1f} µs each when "
                     f"64 sockets talk at once{_net_note(reauth)}; without it (a GET round trip "
                     f"per message) {reauth['session_redis_uncached_cpu_us']:.1f} and "
                     f"{_concurrent(reauth, 'session_redis_uncached'):.1f} µs")
        else:
            redis = (f"; on the Redis store, where CONTRACT §7's re-check of every message is one "
                     f"GET round trip, {redis_cpu:.1f} µs of gateway CPU for a lone message "
                     f"({reauth['session_redis_wall_us']:.0f} µs wall) and "
                     f"{reauth['session_redis_concurrent_cpu_us']:.1f} µs each when 64 sockets "
                     "talk at once")
        context = (f"; end to end, gateway CPU per echoed message {messages['auth_cpu_us']:.1f} "
                   f"µs on an authenticated route vs {messages['public_cpu_us']:.1f} µs on a "
                   "public one" if messages else "")
        verdict = f"JWT and memory-store sockets: {_status(worst <= 20)}"
        if redis_cpu is not None and tracked:
            worst_redis = max(redis_cpu, _concurrent(reauth, "session_redis"))
            verdict += f"; Redis-store cookie sockets: {_status(worst_redis <= 20)}"
        elif redis_cpu is not None:
            verdict += (f"; Redis-store cookie sockets: {_status(redis_cpu <= 20)} for a lone "
                        f"message (the round trip's system calls), "
                        f"{_status(reauth['session_redis_concurrent_cpu_us'] <= 20)} under load")
        rows.append(
            f"| per-message re-authorization ≤ 20 µs (WebSocket) | {reauth['jwt_us']:.2f} µs "
            f"per message on a JWT socket, {reauth['session_memory_us']:.2f} µs on a "
            f"session-cookie socket (memory store), in-process{redis}{context} | {verdict} |")
    return rows


def _concurrent(reauth: dict[str, Any], label: str) -> float:
    """A re-check's own CPU with 64 in flight: minus asyncio.gather's task per call when timed."""
    return float(reauth[label + "_concurrent_cpu_us"] - reauth.get(label + "_gather_us", 0.0))


def _net_note(reauth: dict[str, Any]) -> str:
    if "session_redis_gather_us" not in reauth:
        return ""
    return (f" (net of the {reauth['session_redis_gather_us']:.1f} µs task that "
            "`asyncio.gather` adds per call in the benchmark, not in a bridge)")


def _steal_text(steals: list[float]) -> str:
    """What /proc/stat's steal column said about the hypervisor during the measured runs."""
    if not steals or max(steals) < 0.01:
        return ("with no other load on the cores (see *other load on core 0* below) and no "
                "steal time reported: the VM's host varies.")
    return (f"while the hypervisor reported steal time on the cores (time our virtual CPUs were "
            f"ready but another guest ran: median {statistics.median(steals):.0%}, max "
            f"{max(steals):.0%} of a run; per run in the table below): the VM's host varies "
            "and is shared.")


def _host_speed(h_rps: float | None, h_cpu: float | None) -> tuple[float, str] | None:
    """How much slower than the reference machines this host ran HAProxy, when it is (> 1.2×).

    The absolute targets (req/s, p99) were set on machines where HAProxy needs 27-31 µs per
    request; the same binary and config needing several times that here means the host, not
    the gateway, moved, and a reader of a missed target must be told so.
    """
    if h_rps is None or h_cpu is None:
        return None
    factor = h_cpu / statistics.mean(REFERENCE_HAPROXY_CPU_US)
    if factor <= 1.2:
        return None
    low, high = REFERENCE_HAPROXY_RPS
    return factor, (
        f"**Host speed.** This host is slower than the machines issue 7's targets were set "
        f"on: HAProxy 2.6 with the same `jwt_verify` config needed {h_cpu:.1f} µs of CPU per "
        f"request and served {h_rps:,.0f} req/s here, against "
        f"{REFERENCE_HAPROXY_CPU_US[0]:.0f}–{REFERENCE_HAPROXY_CPU_US[1]:.0f} µs and "
        f"{low:,}–{high:,} req/s there (../shared/DESIGN.md): {factor:.1f}× the CPU for the "
        "same work. The absolute targets (req/s, p99) scale with the host and are judged here "
        "as measured; the ratio to HAProxy in the same run is the comparison that travels "
        "between hosts.")


def _redis_reauth_lines(reauth: dict[str, Any]) -> list[str]:
    """The Redis-store bullets of the re-check: with the invalidated copy and without it."""
    if "session_redis_cpu_us" not in reauth:
        return ["- on the Redis store add one GET round trip per message (not measured: no "
                "redis-server);"]

    def measured(label: str) -> str:
        concurrent = reauth[label + "_concurrent_cpu_us"]
        gather = reauth.get(label + "_gather_us")
        net = _concurrent(reauth, label)
        return (f"**{reauth[label + '_cpu_us']:.2f} µs of gateway CPU** "
                f"({reauth[label + '_cpu_us_median']:.2f}), {reauth[label + '_wall_us']:.1f} µs "
                f"wall ({reauth[label + '_wall_us_median']:.1f}); with 64 re-checks in flight "
                + (f"at once: **{concurrent:.2f} µs** of gateway CPU each" if gather is None else
                   f"at once (`asyncio.gather`): {concurrent:.2f} µs of gateway CPU each, of "
                   f"which {gather:.2f} µs is the task gather wraps around each call (timed on "
                   f"empty coroutines; a bridge re-checks inside its socket's own task): "
                   f"**{net:.2f} µs** the re-check's own"))

    if "session_redis_uncached_cpu_us" not in reauth:  # a run from before the cache
        return [f"- socket opened with a session cookie, Redis store (one GET round trip to the "
                f"bench's Redis on core 1; {reauth['redis_calls']:,} calls per repeat): "
                f"{measured('session_redis')};"]
    return [
        f"- socket opened with a session cookie, Redis store, `store.websocket_cache: true` (the "
        f"default: the copy of the session that Redis invalidates, "
        f"gateway/stores/resp_tracked.py; {reauth['session_redis_calls']:,} calls per repeat): "
        f"{measured('session_redis')};",
        f"- the same with `store.websocket_cache: false` (one GET round trip per message to the "
        f"bench's Redis on core 1; {reauth['session_redis_uncached_calls']:,} calls per repeat): "
        f"{measured('session_redis_uncached')};",
    ]


def stream_section(streams: dict[str, Any]) -> list[str]:
    """The *Streams* section: the numbers and how they were measured."""
    lines = ["## Streams", "",
             "Measured by bench/streams.py after the HTTP cases (`BENCH_ONLY=streams` runs them "
             "alone). A backend of its own (plain asyncio on uvloop, core 1) serves an SSE stream "
             "and an echo WebSocket; the gateway (`gateway run`, same settings as above, core 0) "
             "sits in front of it with a policy whose `/sse` and `/ws` rules require "
             "`authenticated` and whose `/ws-public` rule is `public`; the clients (raw asyncio "
             "protocols, core 1) read the gateway's CPU time and RSS from `/proc/<pid>`.", ""]
    if streams.get("notes"):
        lines += ["**Notes:** " + " ".join(streams["notes"]), ""]
    sse = streams.get("sse")
    if sse:
        lines += [
            "### SSE latency",
            "",
            f"The backend writes one event every {sse['interval_ms']} ms whose data is "
            "`time.monotonic_ns()` read just before the write; the client takes "
            "`time.monotonic_ns()` when the bytes completing the event arrive (CLOCK_MONOTONIC "
            "is one clock for all processes on a machine) and records the difference. Two "
            "rounds each, alternating direct and through the gateway (JWT `Authorization`), the "
            "first 10 events of every stream discarded as a warm-up.",
            "",
            "| path | events | median | p99 | min | max |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        rows = [("direct to the backend (the rig's floor)", sse["direct"]),
                ("through the gateway, idle (**the target's case**)", sse["gateway"])]
        loaded = sse.get("gateway_loaded")
        if loaded:
            rps = loaded.get("wrk_rps")
            rows.append(("through the gateway **while wrk loads it** (POST /api/chat, -c64"
                         f"{f', {rps:,.0f} req/s' if rps else ''}, wrk on core 1 with the "
                         "backend and this client; context only, not the target's case)", loaded))
        for label, s in rows:
            lines.append(f"| {label} | {s['n']} | {_ms(s['median_us'])} | {_ms(s['p99_us'])} | "
                         f"{_ms(s['min_us'])} | {_ms(s['max_us'])} |")
        lines += ["", "The gateway adds "
                  f"{(sse['gateway']['median_us'] - sse['direct']['median_us']) / 1000:.3f} ms "
                  "at the median when idle. Under load an event waits for its turn in "
                  "the gateway's event loop behind the HTTP requests.", ""]
    idle = streams.get("idle")
    if idle:
        before, after = idle["before"], idle["after"]
        lines += [
            "### Idle WebSockets: memory",
            "",
            f"{idle['requested']:,} WebSockets opened through the gateway on `/ws` "
            "(authenticated with the subprotocol pair `bearer, <jwt>`, as client.js does), "
            f"at most 200 handshakes in flight; each one bridged to its own backend socket. "
            f"Opening took {idle['open_s']:.1f} s; the RSS was read from `/proc/<pid>/status` "
            f"(VmRSS) before the first and {idle['settle_s']:.0f} s after the last.",
            "",
            "| | gateway VmRSS | VmHWM | open file descriptors |",
            "|---|---:|---:|---:|",
            f"| before | {before['VmRSS'] / 1024:,.1f} MiB | {before['VmHWM'] / 1024:,.1f} MiB | "
            f"{before['fds']:,} |",
            f"| {idle['opened']:,} sockets open ({idle['alive']:,} still open at the end, "
            f"{idle['echo_sample'][0]} of {idle['echo_sample'][1]} sampled echoed a message) | "
            f"{after['VmRSS'] / 1024:,.1f} MiB | {after['VmHWM'] / 1024:,.1f} MiB | "
            f"{after['fds']:,} |",
            "",
            f"Per socket: {idle['per_socket_bytes'] / 1024:.1f} KiB (the client's socket, the "
            "backend connection and the bridge's two tasks). "
            + (f"At {idle['target']:,} sockets: {idle['rss_at_target'] / 2**20:,.0f} MiB "
               "(extrapolated linearly)." if idle["extrapolated"] else ""),
            "",
        ]
    reauth, messages = streams.get("reauth"), streams.get("messages")
    if reauth or messages:
        lines += ["### Per-message re-authorization", ""]
    if reauth:
        lines += [
            "In-process micro-benchmark (**the target is judged on it**): what the WebSocket "
            "bridge runs before relaying each client message, `WebSocketBridge._recheck` "
            "(gateway/forward/websocket.py), awaited in a loop on the app built from the same "
            f"config, {reauth['calls']:,} calls × {reauth['repeats']} repeats on core 0, best "
            "repeat (median in brackets):",
            "",
            f"- socket opened with a JWT (token expiry + level check): "
            f"**{reauth['jwt_us']:.2f} µs** ({reauth['jwt_us_median']:.2f});",
            f"- socket opened with a session cookie, memory store (the session re-read from the "
            f"store: hash, JSON decode, timeouts): **{reauth['session_memory_us']:.2f} µs** "
            f"({reauth['session_memory_us_median']:.2f});",
            *_redis_reauth_lines(reauth),
            f"- public route: {reauth['public_us']:.2f} µs; an empty `await` for scale: "
            f"{reauth['empty_await_us']:.2f} µs.",
            "",
        ]
    if messages:
        lines += [
            f"End to end, for context: {messages['connections']} sockets each sending a text "
            f"message and awaiting its echo, {messages['messages']:,} messages per round, the "
            "gateway's utime+stime (`/proc/<pid>/stat`, 10 ms ticks) ÷ messages; each message "
            "crosses the gateway twice (in, re-checked, and the echo out).",
            "",
            "| route | round | messages | gateway CPU µs/message | round trip µs |",
            "|---|---:|---:|---:|---:|",
        ]
        counts: dict[str, int] = {}
        for r in messages["rounds"]:
            counts[r["route"]] = counts.get(r["route"], 0) + 1
            lines.append(f"| `{r['route']}` | {counts[r['route']]} | {r['messages']:,} | "
                         f"{r['cpu_us_per_msg']:.1f} | {r['rtt_us']:.0f} |")
        diff = messages["auth_cpu_us"] - messages["public_cpu_us"]
        spread = max(max(values) - min(values) for values in (
            [r["cpu_us_per_msg"] for r in messages["rounds"] if r["route"] == route]
            for route in counts))
        lines += ["", f"Medians: {messages['auth_cpu_us']:.1f} µs authenticated, "
                  f"{messages['public_cpu_us']:.1f} µs public, difference {diff:+.1f} µs; one "
                  f"route's rounds differ by up to {spread:.1f} µs, so the difference is "
                  + ("within" if abs(diff) <= spread else "beyond")
                  + " this measurement's noise (the micro-benchmark above isolates the "
                  "re-check).", ""]
    return lines


def main() -> int:
    """``python bench/report.py [results.json]``: render RESULTS.md again from saved numbers."""
    source = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(__file__).with_name("RESULTS.json")
    source.with_suffix(".md").write_text(render(json.loads(source.read_text())))
    print(f"wrote {source.with_suffix('.md')}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
