#!/usr/bin/env python3
"""Baseline: the audit table a team would build on SQLite instead of this ledger.

Each entry is a row (seq, prev, body, hash) of a SHA-256 hash chain (hash = SHA-256(0x00 || prev || body)),
bodies of about 250 bytes; each batch of BATCH rows is one transaction that also stores an Ed25519 signature over
the chain head. WAL journal with synchronous=FULL, so a commit is durable when it returns, as an acknowledged
group commit of the ledger is. Then the whole chain is read back in order and re-hashed (the re-verify).

Usage: sqlite_audit_table.py N [BATCH]   (BATCH defaults to 1000)
Prints one JSON object: append and re-verify entries per second, and whether the chain verified.
"""
import hashlib
import json
import os
import shutil
import sqlite3
import sys
import tempfile
import time

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


def entry_body() -> bytes:
    event = {"type": "consent", "subject": "ref:" + "A" * 43, "event": "give",
             "purposes": ["dpv:DirectMarketing"], "controllers": ["brand"], "channel": "web",
             "occurredAt": "2026-11-24T10:00:00Z"}
    raw = json.dumps(event, separators=(",", ":")).encode()
    return raw.ljust(250, b" ")


def main() -> None:
    total = int(sys.argv[1])
    batch = int(sys.argv[2]) if len(sys.argv) > 2 else 1000
    folder = tempfile.mkdtemp(prefix="sqlite-baseline-")
    try:
        db = sqlite3.connect(os.path.join(folder, "audit.db"), isolation_level=None)
        db.execute("PRAGMA journal_mode=WAL")
        db.execute("PRAGMA synchronous=FULL")
        db.execute("CREATE TABLE entries(seq INTEGER PRIMARY KEY, prev BLOB, body BLOB, hash BLOB)")
        db.execute("CREATE TABLE heads(seq INTEGER PRIMARY KEY, head BLOB, signature BLOB)")
        signer = Ed25519PrivateKey.generate()
        body = entry_body()

        head = bytes(32)
        written = 0
        started = time.perf_counter()
        while written < total:
            rows = []
            for _ in range(min(batch, total - written)):
                digest = hashlib.sha256(b"\x00" + head + body).digest()
                rows.append((written, head, body, digest))
                head = digest
                written += 1
            db.execute("BEGIN")
            db.executemany("INSERT INTO entries VALUES (?, ?, ?, ?)", rows)
            db.execute("INSERT INTO heads VALUES (?, ?, ?)", (written, head, signer.sign(head)))
            db.execute("COMMIT")
        appended = time.perf_counter()

        head = bytes(32)
        verified = True
        for _seq, prev, stored_body, stored_hash in db.execute("SELECT seq, prev, body, hash FROM entries ORDER BY seq"):
            digest = hashlib.sha256(b"\x00" + head + stored_body).digest()
            verified = verified and prev == head and digest == stored_hash
            head = digest
        checked = time.perf_counter()
        db.close()
        print(json.dumps({
            "baseline": "sqlite", "entries": total, "batch": batch,
            "append_entries_per_second": int(total / (appended - started)),
            "verify_entries_per_second": int(total / (checked - appended)),
            "verified": verified,
        }))
    finally:
        shutil.rmtree(folder, ignore_errors=True)


if __name__ == "__main__":
    main()
