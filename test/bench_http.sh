#!/usr/bin/env bash
# Produces the HTTP API figures of BENCHMARKS.md on this machine: wrk
# (Debian's wrk) POSTs {"text": ...} to /api/echo of cluster.toml's gate1
# (agents on the workers), then of a plain net/http server doing the same
# codec work (`node bench serve-http-baseline`), in one run, and prints the
# ratio. wrk checks nothing: the script counts non-2xx answers and fails on
# any.
# Usage: bash test/bench_http.sh [seconds per run, default 10] [connections, default 100]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
conns=${2:-100}
command -v wrk >/dev/null || { echo "wrk is needed: apt-get install wrk" >&2; exit 1; }
dir=$(mktemp -d)
bin=$dir/node
go build -o "$bin" ./cmd/node
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(go version | cut -d' ' -f3), commit $(git rev-parse --short HEAD)"

cat >"$dir/post.lua" <<'LUA'
wrk.method = "POST"
wrk.body = '{"text":"hello, skynode: a 64-byte text to echo over HTTP......."}'
wrk.headers["Content-Type"] = "application/json"
-- response() runs in each thread's Lua state, done() in the main one:
-- done() sums the threads' counts with thread:get.
local threads = {}
setup = function(thread) table.insert(threads, thread) end
init = function(args) bad = 0 end
response = function(status, headers, body)
  if status ~= 200 or not string.find(body, '"echo":"hello, skynode', 1, true) then bad = bad + 1 end
end
done = function(summary, latency, requests)
  local wrong = 0
  for _, t in ipairs(threads) do wrong = wrong + t:get("bad") end
  io.write(string.format("requests=%d rps=%.0f p50=%.2fms p99=%.2fms non2xx_or_wrong=%d socket_errors=%d\n",
    summary.requests, summary.requests / (summary.duration / 1e6), latency:percentile(50) / 1000,
    latency:percentile(99) / 1000, wrong, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout))
end
LUA

"$bin" launch --log-level error >"$dir/launch.log" 2>&1 &
launch_pid=$!
trap 'kill -INT $launch_pid 2>/dev/null; wait $launch_pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  grep -q "cluster ready" "$dir/launch.log" && break
  sleep 0.1
done
grep -q "cluster ready" "$dir/launch.log" || { cat "$dir/launch.log"; echo "cluster did not start" >&2; exit 1; }
# The HTTP API answers once its agents are placed on the workers.
for _ in $(seq 100); do
  curl -sf -d '{"text":"x"}' http://127.0.0.1:8080/api/echo >/dev/null && break
  sleep 0.1
done

# wrk's threads share the 2 cores with the servers.
run() { # name url
  echo "## $1: wrk -t2 -c$conns -d${secs}s"
  out=$(wrk -t2 -c"$conns" -d"${secs}s" -s "$dir/post.lua" "$2" | tail -1)
  echo "$out"
  case "$out" in *"non2xx_or_wrong=0 "*) ;; *) echo "some answers were wrong" >&2; exit 1 ;; esac
}
run "skynode POST /api/echo (gate1, agents on the workers)" http://127.0.0.1:8080/api/echo
node_rps=$(echo "$out" | sed 's/.*rps=\([0-9]*\).*/\1/')
kill -INT $launch_pid; wait $launch_pid || true
trap - EXIT

"$bin" bench serve-http-baseline --addr 127.0.0.1:0 >"$dir/base.addr" &
base_pid=$!
trap 'kill $base_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$dir/base.addr" ] && break; sleep 0.05; done
run "plain net/http handler (same codec work)" "$(head -1 "$dir/base.addr")/api/echo"
base_rps=$(echo "$out" | sed 's/.*rps=\([0-9]*\).*/\1/')
echo "ratio skynode/plain: $(awk -v a="$node_rps" -v b="$base_rps" 'BEGIN{printf "%.2f", a/b}')"
