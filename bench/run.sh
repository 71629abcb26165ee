#!/usr/bin/env bash
# `make bench`: the gateway against HAProxy 2.6 jwt_verify and a direct nginx, on this machine.
#
# Installs what is missing (wrk, nginx, haproxy and redis-server from Debian; py-spy into the
# venv), then runs bench/bench.py, which starts every process pinned with taskset, measures,
# profiles and writes bench/RESULTS.md. Every process started is recorded with its start time
# in $BENCH_TMP/pids; the EXIT trap below stops any that is still running, by pid.
#
# Knobs (environment): BENCH_DURATION (10 s per run), BENCH_WARMUP (3 s), BENCH_RUNS (3),
# BENCH_QUIET_WAIT (600 s max waiting for load < BENCH_QUIET_LOAD=0.7 and no pytest),
# BENCH_PROFILE=0, BENCH_COOKIE=0, BENCH_WORKERS=0 to skip parts, BENCH_OUT (RESULTS.md path),
# BENCH_KEEP_TMP=1 to keep the temp dir (configs and logs).
# Stream cases (bench/streams.py, after the HTTP cases: SSE latency, 10,000 idle WebSockets'
# RSS, per-message re-authorization): BENCH_STREAMS=0 skips them, BENCH_ONLY=streams runs only
# them (e.g. BENCH_ONLY=streams BENCH_QUIET_WAIT=0 BENCH_OUT=/tmp/streams/RESULTS.md);
# BENCH_WS_IDLE (10000 sockets), BENCH_SSE_EVENTS (500), BENCH_SSE_LOADED=0 (no SSE under wrk),
# BENCH_WS_MESSAGES (20000 per round), BENCH_WS_ROUNDS (3).
set -euo pipefail
cd "$(dirname "$0")/.."

PY=.venv/bin/python
if [ ! -x "$PY" ]; then
  echo "no .venv: run 'make install' first (make bench does)" >&2
  exit 2
fi

packages=()
command -v wrk >/dev/null || packages+=(wrk)
command -v nginx >/dev/null || packages+=(nginx)
command -v haproxy >/dev/null || packages+=(haproxy)
streams_only=0
[ "${BENCH_ONLY:-}" = streams ] && streams_only=1
if [ $streams_only = 0 ] && { [ "${BENCH_COOKIE:-1}" != 0 ] || [ "${BENCH_WORKERS:-1}" != 0 ]; }; then
  command -v redis-server >/dev/null || packages+=(redis-server)
fi
if [ ${#packages[@]} -gt 0 ]; then
  echo "installing with apt-get: ${packages[*]}" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${packages[@]}"
fi
if [ $streams_only = 0 ] && [ "${BENCH_PROFILE:-1}" != 0 ] && [ ! -x .venv/bin/py-spy ]; then
  echo "installing py-spy into .venv" >&2
  "$PY" -m pip install -q py-spy
fi

BENCH_TMP=$(mktemp -d /tmp/gateway-bench.XXXXXX)
export BENCH_TMP
: > "$BENCH_TMP/pids"

DRIVER=
cleanup() {
  local status=$?
  # The driver first: on SIGTERM it stops its own processes in order.
  if [ -n "$DRIVER" ] && kill -0 "$DRIVER" 2>/dev/null; then
    kill -TERM "$DRIVER" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$DRIVER" 2>/dev/null || break; sleep 0.2; done
  fi
  # Stop whatever bench.py started and did not stop itself: only a pid whose start time is
  # still the recorded one (a recycled pid belongs to someone else).
  local pid started now
  while read -r pid started; do
    [ -n "$pid" ] || continue
    now=$(awk '{sub(/.*\) /, ""); print $20}' "/proc/$pid/stat" 2>/dev/null || true)
    if [ -n "$now" ] && [ "$now" = "$started" ]; then
      kill -TERM "$pid" 2>/dev/null || true
    fi
  done < "$BENCH_TMP/pids"
  sleep 1
  while read -r pid started; do
    [ -n "$pid" ] || continue
    now=$(awk '{sub(/.*\) /, ""); print $20}' "/proc/$pid/stat" 2>/dev/null || true)
    if [ -n "$now" ] && [ "$now" = "$started" ]; then
      kill -KILL "$pid" 2>/dev/null || true
    fi
  done < "$BENCH_TMP/pids"
  if [ "${BENCH_KEEP_TMP:-0}" = 1 ]; then
    echo "kept $BENCH_TMP" >&2
  else
    rm -rf "$BENCH_TMP"
  fi
  exit $status
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

# In the background, so that a signal to this script runs the trap at once (bash runs traps
# only between commands, and `wait` is interruptible).
"$PY" bench/bench.py &
DRIVER=$!
wait "$DRIVER"
