#!/usr/bin/env bash
# Runs the whole-cluster tests (test/cluster, with the race detector) N times
# in a row under two CPU hogs, as the cluster issue asks, keeping the output
# of each failed run. Usage: bash test/cluster_loop.sh [runs, default 50]
# Prints one line per run: "run I: pass=P fail=F HH:MM:SS".
set -euo pipefail
cd "$(dirname "$0")/.."
runs=${1:-50}
dir=$(mktemp -d)
go test -race -c -o "$dir/cluster.test" ./test/cluster
yes >/dev/null & h1=$!
yes >/dev/null & h2=$!
trap 'kill $h1 $h2 2>/dev/null || true' EXIT
pass=0 fail=0
cd test/cluster
for i in $(seq 1 "$runs"); do
  if SKYNODE_REQUIRE_NETNS=${SKYNODE_REQUIRE_NETNS:-0} "$dir/cluster.test" -test.count=1 -test.timeout=15m >"$dir/run_$i.txt" 2>&1; then
    pass=$((pass + 1)); rm "$dir/run_$i.txt"
  else
    fail=$((fail + 1)); echo "run $i failed: $dir/run_$i.txt"
  fi
  echo "run $i: pass=$pass fail=$fail $(date +%T)"
done
[ "$fail" -eq 0 ]
