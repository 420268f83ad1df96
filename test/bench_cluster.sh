#!/usr/bin/env bash
# Produces the cluster figures of BENCHMARKS.md on this machine:
#  1. protocol echo through an agent on another node beside the same load
#     through an agent on the gate's own node, in one run of one cluster;
#  2. failover times (kill -9, and a frozen node) over TRIALS trials each;
#  3. failover time after a network cut over TRIALS trials (network
#     namespaces: run as root, through sudo for another user).
# Usage: bash test/bench_cluster.sh [seconds per load run, default 10] [trials, default 20]
set -euo pipefail
cd "$(dirname "$0")/.."
secs=${1:-10}
trials=${2:-20}
dir=$(mktemp -d)
bin=$dir/node
go build -o "$bin" ./cmd/node
echo "# $(date -u +%FT%TZ) $(nproc) cores, $(go version | cut -d' ' -f3), commit $(git rev-parse --short HEAD)"

# cluster.toml's three nodes, plus a listener on gate1 (port 8897) with the
# same demo agent kept on gate1: the same-node path beside 8888's remote one.
awk '{print} /^  agents_on = "agent"$/ && !done {print "\n  [[node.listener]]\n  name = \"local\"\n  addr = \"127.0.0.1:8897\"\n  framing = \"len16\"\n  codec = \"msgpack\"\n  agent = \"demo\""; done=1}' \
  cluster.toml >"$dir/bench.toml"
"$bin" launch --config "$dir/bench.toml" --log-level error >"$dir/launch.log" 2>&1 &
launch_pid=$!
trap 'kill -INT $launch_pid 2>/dev/null; wait $launch_pid 2>/dev/null || true' EXIT
for _ in $(seq 300); do
  grep -q "cluster ready" "$dir/launch.log" && break
  sleep 0.1
done
grep -q "cluster ready" "$dir/launch.log" || { cat "$dir/launch.log"; echo "cluster did not start" >&2; exit 1; }

for conns in 10 100; do
  echo "## protocol echo, $conns connections: agents on a worker (8888) vs on the gate's node (8897)"
  "$bin" bench --addr 127.0.0.1:8888 --mode proto --conns "$conns" --duration "${secs}s"
  "$bin" bench --addr 127.0.0.1:8897 --mode proto --conns "$conns" --duration "${secs}s"
done
kill -INT $launch_pid; wait $launch_pid || true
trap - EXIT

echo "## failover: loss of the agent's node -> first answer from the new agent ($trials trials each)"
SKYNODE_FAILOVER_TRIALS=$trials go test -count=1 -run '^TestFailoverFigures$' -v ./test/cluster 2>&1 | grep -E 'failover (kill|freeze|cut)|FAIL|ok'
echo "## failover: network cut of the agent's node -> first answer from the new agent ($trials trials)"
asroot=()
if [ "$(id -u)" -ne 0 ]; then
  # sudo resets PATH and HOME: keep this user's go and its caches.
  asroot=(sudo env "PATH=$PATH" "GOCACHE=$(go env GOCACHE)" "GOMODCACHE=$(go env GOMODCACHE)")
fi
"${asroot[@]}" env SKYNODE_FAILOVER_TRIALS="$trials" SKYNODE_REQUIRE_NETNS=1 \
  go test -count=1 -run '^TestPartitionFailoverFigures$' -v ./test/cluster 2>&1 | grep -E 'failover (kill|freeze|cut)|FAIL|ok'
