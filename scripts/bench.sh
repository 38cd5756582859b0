#!/usr/bin/env bash
# Reproduces BENCHMARKS.md: the machine's crypto ceiling, the ledger benchmarks (medians of --runs), the per-step
# costs, the node benchmarks (replication, propagation, the API, the view), and the SQLite and PostgreSQL
# baselines, all in one run, then the ratios of each goal (issue of the speed work: BENCHMARKS.md, "Goals").
# Usage: scripts/bench.sh [ENTRIES] [RUNS]
set -euo pipefail
cd "$(dirname "$0")/.."
n=${1:-1000000}
runs=${2:-3}
swift build -c release >/dev/null
prov=.build/release/prov
out=$(mktemp -d)
trap 'rm -rf "$out"' EXIT
# Each benchmark's JSON line is printed and kept under a name for the summary.
keep() { local name=$1; shift; "$@" | tee "$out/$name.json"; }
echo "## machine"; nproc; grep -m1 'model name' /proc/cpuinfo; uname -r
echo "## openssl speed (same run)"
openssl speed -seconds 3 -bytes 256 -evp sha256 2>/dev/null | tail -1 | tee "$out/sha256-1.txt"
openssl speed -seconds 3 -bytes 256 -multi "$(nproc)" -evp sha256 2>/dev/null | tail -1 | tee "$out/sha256-all.txt"
openssl speed -seconds 3 ed25519 2>/dev/null | tail -1
echo "## prov bench (n=$n, runs=$runs)"
keep append $prov bench append --entries "$n" --runs "$runs"
keep ingest $prov bench ingest --entries "$n" --runs "$runs"
keep verify $prov bench verify --entries "$n" --runs "$runs"
$prov bench parts --entries 200000
echo "## node benchmarks (real provd processes on 127.0.0.1)"
keep replicate $prov bench replicate --entries "$n" --runs "$runs"
keep replicate-no-view $prov bench replicate --entries "$n" --runs "$runs" --no-view
keep fetch $prov bench fetch --entries "$n" --runs "$runs"
keep propagate $prov bench propagate --rate 10000 --seconds 10 --runs "$runs"
keep api $prov bench api --seconds 5 --runs "$runs"
keep query $prov bench query --entries "$n" --subjects "$((n / 10))" --runs "$runs"
echo "## HTTP transport alone (ProvNet, 40,000 requests a run)"
$prov bench http --connections 1 --runs "$runs"
$prov bench http --connections 4 --runs "$runs"
$prov bench http --connections 4 --tls --runs "$runs"
echo "## SQLite baseline (scripts/baselines/sqlite_audit_table.py), $runs runs"
python3 -c 'import cryptography' 2>/dev/null || pip install -q cryptography >/dev/null 2>&1 || true
for _ in $(seq "$runs"); do python3 scripts/baselines/sqlite_audit_table.py "$n"; done | tee "$out/sqlite.jsonl"
echo "## PostgreSQL 15 baseline (scripts/baselines/postgres_audit_table.py), $runs runs"
if [ ! -x /usr/lib/postgresql/15/bin/initdb ] && [ "$(id -u)" -eq 0 ]; then
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql-15 >/dev/null 2>&1 || true
fi
if [ -x /usr/lib/postgresql/15/bin/initdb ] \
    && { python3 -c 'import psycopg2' 2>/dev/null || pip install -q psycopg2-binary >/dev/null 2>&1; }; then
    for _ in $(seq "$runs"); do python3 scripts/baselines/postgres_audit_table.py "$n"; done | tee "$out/postgres.jsonl"
else
    echo "PostgreSQL 15 or psycopg2 is not installed and could not be: skipped"
fi
echo "## goals (same run)"
python3 scripts/bench_summary.py "$out"
