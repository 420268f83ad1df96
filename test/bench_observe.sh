#!/usr/bin/env bash
# Produces the observation figures of BENCHMARKS.md on this machine, with
# cluster.toml's three nodes started by `node launch`:
#  1. the cost of being observed: echo throughput through gate1 (port 8888,
#     agents on the workers) in runs alternating without and with
#     `node observe --watch --every 1s` and a scrape of every node's
#     /metrics each second (A B B A A B ..., so drift cancels), one cluster;
#  2. the time of `node observe --json` (the whole command: it joins the
#     cluster, asks every node, prints) with SESSIONS clients connected.
# Usage: bash test/bench_observe.sh [seconds per run, default 10] [pairs, default 3] [sessions, default 10000]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
pairs=${2:-3}
sessions=${3:-10000}
dir=$(mktemp -d)
bin=$dir/node
go build -o "$bin" ./cmd/node
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(go version | cut -d' ' -f3), commit $(git rev-parse --short HEAD)"
echo "# bash test/bench_observe.sh $secs $pairs $sessions"

"$bin" launch --config cluster.toml >"$dir/launch.log" 2>&1 &
launch_pid=$!
watchers=()
stop_watchers() { # SIGTERM: a background subshell ignores SIGINT
  for p in "${watchers[@]}"; do kill -TERM "$p" 2>/dev/null || true; wait "$p" 2>/dev/null || true; done
  watchers=()
}
holder=""
cleanup() {
  stop_watchers
  [ -n "$holder" ] && { rm -f "$dir/hold"; wait "$holder" 2>/dev/null || true; }
  kill -INT $launch_pid 2>/dev/null; wait $launch_pid 2>/dev/null || true
}
trap cleanup EXIT
for _ in $(seq 600); do
  grep -q "cluster ready" "$dir/launch.log" && break
  sleep 0.1
done
grep -q "cluster ready" "$dir/launch.log" || { cat "$dir/launch.log"; echo "cluster did not start" >&2; exit 1; }
admins=$(grep -o 'admin=127\.0\.0\.1:[0-9]*' "$dir/launch.log" | cut -d= -f2 | sort -u)
[ "$(echo "$admins" | wc -l)" -eq 3 ] || { echo "want 3 admin addresses, got: $admins" >&2; exit 1; }

observe_on() {
  "$bin" observe --config cluster.toml --watch --every 1s >>"$dir/watch.log" 2>&1 &
  watchers+=($!)
  (while true; do
    for a in $admins; do curl -s -o /dev/null "http://$a/metrics"; done
    sleep 1
  done) &
  watchers+=($!)
}
run() { # prints the run's req/s
  "$bin" bench --addr 127.0.0.1:8888 --mode proto --conns 100 --pipeline 4 --duration "${secs}s" |
    grep -o '[0-9]* req/s' | cut -d' ' -f1
}

echo "## cost of being observed: proto echo, 100 connections, pipeline 4, ${secs}s per run"
without=() with=()
for i in $(seq "$pairs"); do
  for kind in $( [ $((i % 2)) -eq 1 ] && echo "without with" || echo "with without" ); do
    if [ "$kind" = with ]; then observe_on; sleep 2; fi
    r=$(run)
    stop_watchers
    echo "run $i $kind observation: $r req/s"
    if [ "$kind" = with ]; then with+=("$r"); else without+=("$r"); fi
  done
done
# Each refresh of --watch starts with the screen-clearing escape; under the
# load, every node must have answered every refresh.
refreshes=$(grep -c 'audit:' "$dir/watch.log" || true)
unanswered=$(grep -c 'unreachable\|audit: incomplete' "$dir/watch.log" || true)
echo "observe --watch under the load: $refreshes refreshes, $unanswered with a node that did not answer in time"
python3 - "${without[*]}" "${with[*]}" <<'PY'
import sys, statistics as st
a = [float(x) for x in sys.argv[1].split()]
b = [float(x) for x in sys.argv[2].split()]
ma, mb = st.mean(a), st.mean(b)
print(f"without: mean {ma:.0f} req/s (runs {', '.join(f'{x:.0f}' for x in a)})")
print(f"with observe --watch and a scrape each second: mean {mb:.0f} req/s (runs {', '.join(f'{x:.0f}' for x in b)})")
print(f"with/without: {mb/ma:.3f} ({(1-mb/ma)*100:+.1f}% cost)")
PY

echo "## node observe --json with $sessions sessions"
touch "$dir/hold"
python3 - "$sessions" "$dir/hold" >"$dir/holder.log" 2>&1 <<'PY' &
import os, socket, sys, time
n, flag = int(sys.argv[1]), sys.argv[2]
socks = []
for i in range(n):
    for attempt in range(50):
        try:
            socks.append(socket.create_connection(("127.0.0.1", 8888), timeout=10))
            break
        except OSError:
            time.sleep(0.1)
    else:
        sys.exit(f"could not connect client {i}")
print("connected", len(socks), flush=True)
while os.path.exists(flag):
    time.sleep(0.5)
PY
holder=$!
for _ in $(seq 1200); do
  grep -q connected "$dir/holder.log" && break
  kill -0 $holder 2>/dev/null || { cat "$dir/holder.log"; exit 1; }
  sleep 0.1
done
# Wait until every session has its agent (the audit).
for _ in $(seq 120); do
  "$bin" observe --config cluster.toml --json >"$dir/view.json" 2>/dev/null || true
  python3 -c 'import json,sys; a=json.load(open(sys.argv[1]))["audit"]; sys.exit(0 if a["complete"] and a["sessions"]==a["agents"]==int(sys.argv[2]) else 1)' "$dir/view.json" "$sessions" && break
  sleep 1
done
python3 -c 'import json,sys; print("audit:", json.load(open(sys.argv[1]))["audit"])' "$dir/view.json"
times=()
for i in $(seq 5); do
  start=$(date +%s.%N)
  "$bin" observe --config cluster.toml --json >"$dir/view.json"
  end=$(date +%s.%N)
  times+=("$(python3 -c "print(f'{$end-$start:.2f}')")")
done
echo "observe --json (whole command) over 5 runs: ${times[*]} s"
for i in $(seq 3); do
  start=$(date +%s.%N)
  "$bin" observe --config cluster.toml --json gate1 >"$dir/gate1.json"
  end=$(date +%s.%N)
  echo "observe --json gate1 (its $sessions sessions listed): $(python3 -c "print(f'{$end-$start:.2f}')") s, $(wc -c <"$dir/gate1.json") bytes"
done
