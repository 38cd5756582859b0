#!/usr/bin/env python3
"""Baseline: the audit table an enterprise team would build on PostgreSQL 15 instead of this ledger.

The same chain as sqlite_audit_table.py (rows of a SHA-256 hash chain computed by the application, an Ed25519
signature over the head per batch), loaded with COPY in batches of BATCH rows, one transaction each, with fsync=on
and synchronous_commit=on: every commit durable when it returns. Then the chain is read back in order with a
server-side cursor and re-hashed.

It starts a private server in a temporary folder (as the postgres user, listening on a Unix socket only: nothing
goes over the network) and stops it at the end. Needs the PostgreSQL 15 server binaries and psycopg2.

Usage: postgres_audit_table.py N [BATCH]
Prints one JSON object like sqlite_audit_table.py.
"""
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time

import psycopg2
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

BIN = "/usr/lib/postgresql/15/bin"
PORT = "55432"


def as_postgres(*args: str) -> None:
    subprocess.run(["runuser", "-u", "postgres", "--", *args], check=True, capture_output=True)


def entry_body() -> bytes:
    event = {"type": "consent", "subject": "ref:" + "A" * 43, "event": "give",
             "purposes": ["dpv:DirectMarketing"], "controllers": ["brand"], "channel": "web",
             "occurredAt": "2026-11-24T10:00:00Z"}
    return json.dumps(event, separators=(",", ":")).encode().ljust(250, b" ")


def main() -> None:
    total = int(sys.argv[1])
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    folder = tempfile.mkdtemp(prefix="postgres-baseline-")
    os.chmod(folder, 0o777)
    data = os.path.join(folder, "data")
    as_postgres(f"{BIN}/initdb", "-D", data, "-A", "trust", "--no-sync")
    options = f"-p {PORT} -k {folder} -c listen_addresses='' -c fsync=on -c synchronous_commit=on"
    as_postgres(f"{BIN}/pg_ctl", "-D", data, "-w", "-l", os.path.join(folder, "server.log"), "-o", options, "start")
    try:
        db = psycopg2.connect(host=folder, port=PORT, user="postgres", dbname="postgres")
        db.autocommit = False
        cur = db.cursor()
        cur.execute("CREATE TABLE entries(seq bigint PRIMARY KEY, prev bytea, body bytea, hash bytea)")
        cur.execute("CREATE TABLE heads(seq bigint PRIMARY KEY, head bytea, signature bytea)")
        db.commit()
        signer = Ed25519PrivateKey.generate()
        body = entry_body()
        body_hex = "\\\\x" + body.hex()

        head = bytes(32)
        written = 0
        started = time.perf_counter()
        while written < total:
            rows = io.StringIO()
            for _ in range(min(batch, total - written)):
                digest = hashlib.sha256(b"\x00" + head + body).digest()
                rows.write(f"{written}\t\\\\x{head.hex()}\t{body_hex}\t\\\\x{digest.hex()}\n")
                head = digest
                written += 1
            rows.seek(0)
            cur.copy_from(rows, "entries")
            cur.execute("INSERT INTO heads VALUES (%s, %s, %s)", (written, head, signer.sign(head)))
            db.commit()
        appended = time.perf_counter()

        head = bytes(32)
        verified = True
        scan = db.cursor("chain")
        scan.itersize = 10000
        scan.execute("SELECT seq, prev, body, hash FROM entries ORDER BY seq")
        for _seq, prev, stored_body, stored_hash in scan:
            digest = hashlib.sha256(b"\x00" + head + bytes(stored_body)).digest()
            verified = verified and bytes(prev) == head and digest == bytes(stored_hash)
            head = digest
        checked = time.perf_counter()
        db.close()
        print(json.dumps({
            "baseline": "postgres", "entries": total, "batch": batch,
            "append_entries_per_second": int(total / (appended - started)),
            "verify_entries_per_second": int(total / (checked - appended)),
            "verified": verified,
        }))
    finally:
        subprocess.run(["runuser", "-u", "postgres", "--", f"{BIN}/pg_ctl", "-D", data, "-m", "fast", "stop"],
                       capture_output=True)
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
