#!/usr/bin/env bash
# Produces the single-node figures of BENCHMARKS.md on this machine: builds
# cmd/node, starts a fresh node gate1 for each figure, drives it with
# `node bench` (which also starts the plain Go echo server as the baseline),
# and stops it. The node is cluster.toml's gate1 with every agent on its own
# node (the committed file places port 8888's agents on the workers; the
# cluster figures come from test/bench_cluster.sh).
# Usage: bash test/bench.sh [seconds per run, default 10]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
dir=$(mktemp -d)
bin=$dir/node
go build -o "$bin" ./cmd/node
# One node, no gossip, agents local.
sed -e '/^seeds = /d' -e '/^gossip_key = /d' -e '/^gossip_port = /d' -e '/^  agents_on = /d' cluster.toml >"$dir/single.toml"
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(go version | cut -d' ' -f3), commit $(git rev-parse --short HEAD)"

node_pid=""
start_node() {
  "$bin" run --config "$dir/single.toml" --node gate1 --log-level error &
  node_pid=$!
  for _ in $(seq 100); do
    (exec 3<>/dev/tcp/127.0.0.1/8889) 2>/dev/null && return 0
    sleep 0.1
  done
  echo "node did not start" >&2; exit 1
}
stop_node() { kill -TERM "$node_pid"; wait "$node_pid" || true; }
trap '[ -n "$node_pid" ] && kill -9 "$node_pid" 2>/dev/null || true' EXIT

for conns in 100 1000; do
  echo "## raw echo through gate -> agent, $conns connections"
  start_node
  "$bin" bench --addr 127.0.0.1:8889 --conns "$conns" --duration "${secs}s" --baseline
  stop_node
done

echo "## protocol echo (msgpack request/response), 100 connections"
start_node
"$bin" bench --addr 127.0.0.1:8888 --conns 100 --duration "${secs}s"
stop_node

echo "## connection churn (connect + one echo + close), 50 workers"
start_node
"$bin" bench --addr 127.0.0.1:8889 --churn --conns 50 --duration "${secs}s" --baseline
"$bin" bench --addr 127.0.0.1:8888 --churn --conns 50 --duration "${secs}s"
stop_node

echo "## resident memory per idle connection, 10000 connections (agent process included)"
start_node
"$bin" bench --addr 127.0.0.1:8888 --idle 10000 --pid "$node_pid" --duration 30s
stop_node
"$bin" bench --addr 127.0.0.1:8889 --idle 10000 --baseline-only --duration 30s
