#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: the machine's crypto ceiling, the three prov benchmarks (medians of --runs), the
# per-step costs, and the SQLite baseline, all in one run. Usage: scripts/bench.sh [ENTRIES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
runs=${2:-3}
swift build -c release --product prov >/dev/null
prov=.build/release/prov
echo "## machine"; nproc; grep -m1 'model name' /proc/cpuinfo; uname -r
echo "## openssl speed (same run)"
openssl speed -seconds 3 -bytes 256 -evp sha256 2>/dev/null | tail -1
openssl speed -seconds 3 ed25519 2>/dev/null | tail -1
echo "## prov bench (n=$n, runs=$runs)"
$prov bench append --entries "$n" --runs "$runs"
$prov bench ingest --entries "$n" --runs "$runs"
$prov bench verify --entries "$n" --runs "$runs"
$prov bench parts --entries 200000
echo "## SQLite baseline (shared/bench/baseline_sqlite.py), $runs runs"
for _ in $(seq "$runs"); do python3 ../shared/bench/baseline_sqlite.py "$n"; done
