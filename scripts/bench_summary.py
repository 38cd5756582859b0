"""Prints each speed goal of BENCHMARKS.md against the figures of one scripts/bench.sh run (the folder it kept)."""
import json
import os
import statistics
import sys


def load(folder, name):
    path = os.path.join(folder, name + ".json")
    if not os.path.exists(path):
        return None
    lines = [l for l in open(path) if l.startswith("{")]
    return json.loads(lines[-1]) if lines else None


def baseline(folder, name, field):
    path = os.path.join(folder, name + ".jsonl")
    if not os.path.exists(path):
        return None
    values = [json.loads(l)[field] for l in open(path) if l.startswith("{")]
    return statistics.median(values) if values else None


def openssl_kbps(folder, name):
    path = os.path.join(folder, name + ".txt")
    if not os.path.exists(path):
        return None
    # "sha256  ... <kB/s at 256 bytes>" or with -multi "evp ... <kB/s>": the last number, in kB/s (1000 bytes).
    fields = open(path).read().split()
    return float(fields[-1].rstrip("k")) * 1000 if fields else None


def main():
    folder = sys.argv[1]
    rows = []

    def goal(name, value, target, text):
        ok = value is not None and value >= target
        shown = "n/a" if value is None else f"{value:.2f}"
        rows.append(f"{'met    ' if ok else 'NOT MET'}  {name}: {shown} (goal >= {target}) {text}")

    sqlite_append = baseline(folder, "sqlite", "append_entries_per_second")
    sqlite_verify = baseline(folder, "sqlite", "verify_entries_per_second")
    append, ingest, verify = load(folder, "append"), load(folder, "ingest"), load(folder, "verify")
    if append and sqlite_append:
        goal("append / SQLite append", append["entries_per_second"] / sqlite_append, 3.0, "")
    if ingest and sqlite_append:
        goal("ingest / SQLite append", ingest["entries_per_second"] / sqlite_append, 1.0, "(aim 1.5)")
    if verify and sqlite_verify:
        goal("verify / SQLite re-verify", verify["entries_per_second"] / sqlite_verify, 2.5, "")
    sha = openssl_kbps(folder, "sha256-all")
    if verify and sha:
        share = verify["entries_per_second"] * verify["bytes_per_entry"] / sha
        rows.append(f"         verify reads {share:.1%} of what openssl sha256 hashes on every core")
    if verify and "cores_busy" in verify:
        rows.append(f"         verify kept {verify['cores_busy']:.2f} cores busy, "
                    f"{verify['cpu_seconds_per_million']:.2f} CPU s per million entries")
    rep = load(folder, "replicate")
    if rep:
        goal("replicate / same run's verify (wall)", rep["to_verify_ratio"], 0.5, "")
        rows.append(
            f"         CPU per entry against verify's: copying {rep['copying_cpu_to_verify']:.2f} (goal <= 1.3), "
            f"serving {rep['serving_cpu_to_verify']:.2f} (goal <= 0.3)")
    fetch = load(folder, "fetch")
    if fetch:
        goal("fetch / same run's verify", fetch["fetch_to_verify"], 0.5, "")
        if "fetch_cpu_seconds_per_million" in fetch:
            rows.append(
                f"         CPU s per million entries: fetching {fetch['fetch_cpu_seconds_per_million']:.2f}, "
                f"serving {fetch['serving_cpu_seconds_per_million']:.2f}, "
                f"verify {fetch['verify_cpu_seconds_per_million']:.2f}")
    api = load(folder, "api")
    if api:
        goal("one event per request / permits, 64 connections", api["single_to_permit_ratio"], 0.5,
             f"(p99 {api['single_p99_ms']:.1f} ms, goal <= 10)")
    query = load(folder, "query")
    if query:
        goal("permit, customer with 100,000 entries / one entry, in process", query["permit_history_ratio"], 0.5, "")
        goal("the same over HTTP", query["http_permit_history_ratio"], 0.5, "")
    print("\n".join(rows))


if __name__ == "__main__":
    main()
