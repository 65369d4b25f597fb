"""SQLite persistence of the OTA service: one WAL-mode file, one connection, one lock.

uvicorn runs sync endpoints in a thread pool, so every access goes through a re-entrant lock;
a service operation that writes several rows does it inside `transaction()`, so a failure
half-way rolls everything back and never leaves half a record. The domain SQL lives with the
rules that need it (catalogue, pool, fleet); this module owns the schema and the plumbing.
"""

from __future__ import annotations

import json
import re
import secrets
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

SCHEMA = """
CREATE TABLE IF NOT EXISTS image_types (
    id TEXT PRIMARY KEY, partner_id TEXT NOT NULL, type INTEGER NOT NULL,
    name TEXT NOT NULL, description TEXT NOT NULL,
    last_version_number INTEGER NOT NULL DEFAULT 0,
    created INTEGER NOT NULL, updated INTEGER NOT NULL,
    UNIQUE (partner_id, type));
CREATE TABLE IF NOT EXISTS device_types (
    partner_id TEXT NOT NULL, id TEXT NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
    created INTEGER NOT NULL, updated INTEGER NOT NULL,
    PRIMARY KEY (partner_id, id));
CREATE TABLE IF NOT EXISTS profiles (
    partner_id TEXT NOT NULL, device_type_id TEXT NOT NULL, version INTEGER NOT NULL,
    body TEXT NOT NULL, published INTEGER NOT NULL,
    PRIMARY KEY (partner_id, device_type_id, version),
    FOREIGN KEY (partner_id, device_type_id) REFERENCES device_types (partner_id, id));
CREATE TABLE IF NOT EXISTS enabled_types (
    partner_id TEXT NOT NULL, device_type_id TEXT NOT NULL, type INTEGER NOT NULL,
    PRIMARY KEY (partner_id, device_type_id, type));
CREATE TABLE IF NOT EXISTS binaries (
    partner_id TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    in_repository INTEGER NOT NULL DEFAULT 0, created INTEGER NOT NULL,
    PRIMARY KEY (partner_id, sha256));
CREATE TABLE IF NOT EXISTS images (
    id TEXT PRIMARY KEY, partner_id TEXT NOT NULL, type INTEGER NOT NULL,
    version_number INTEGER NOT NULL, name TEXT NOT NULL, description TEXT NOT NULL,
    version TEXT NOT NULL, url TEXT NOT NULL, sha256 TEXT NOT NULL, size INTEGER NOT NULL,
    created INTEGER NOT NULL, updated INTEGER NOT NULL,
    UNIQUE (partner_id, type, version_number), UNIQUE (partner_id, type, name, version));
CREATE TABLE IF NOT EXISTS image_tags (
    image_id TEXT NOT NULL REFERENCES images (id), tag TEXT NOT NULL,
    PRIMARY KEY (image_id, tag));
CREATE TABLE IF NOT EXISTS associations (
    image_id TEXT NOT NULL REFERENCES images (id), partner_id TEXT NOT NULL,
    device_type_id TEXT NOT NULL, created INTEGER NOT NULL,
    PRIMARY KEY (image_id, partner_id, device_type_id));
CREATE TABLE IF NOT EXISTS devices (
    device_id TEXT PRIMARY KEY, partner_id TEXT NOT NULL, account_id TEXT NOT NULL,
    device_type_id TEXT NOT NULL, secret_sha256 TEXT NOT NULL,
    last_checkin INTEGER, created INTEGER NOT NULL);
CREATE TABLE IF NOT EXISTS device_attributes (
    device_id TEXT NOT NULL REFERENCES devices (device_id), attr_id INTEGER NOT NULL,
    value TEXT NOT NULL, updated INTEGER NOT NULL,
    PRIMARY KEY (device_id, attr_id));
CREATE TABLE IF NOT EXISTS deployments (
    id TEXT PRIMARY KEY, partner_id TEXT NOT NULL, device_id TEXT NOT NULL,
    device_type_id TEXT NOT NULL, image_id TEXT NOT NULL REFERENCES images (id),
    type INTEGER NOT NULL, version_number INTEGER NOT NULL, state TEXT NOT NULL,
    reason TEXT, attempt INTEGER NOT NULL, bytes INTEGER, total INTEGER,
    created INTEGER NOT NULL, updated INTEGER NOT NULL);
CREATE INDEX IF NOT EXISTS deployments_by_device ON deployments (device_id, state);
CREATE TABLE IF NOT EXISTS deployment_history (
    deployment_id TEXT NOT NULL REFERENCES deployments (id), seq INTEGER NOT NULL,
    state TEXT NOT NULL, reason TEXT, detail TEXT, timestamp INTEGER NOT NULL,
    attempt INTEGER NOT NULL,
    PRIMARY KEY (deployment_id, seq));
"""


_NUMBER = re.compile(r"^[0-9]{1,18}$")


def as_number(value: object) -> int | None:
    """A version number given as digits (str or int), if SQLite can store it; else None."""
    if isinstance(value, bool):
        return None
    text = str(value)
    return int(text) if _NUMBER.match(text) else None


def now_ms() -> int:
    """Timestamps of the API: integer milliseconds since the epoch."""
    return int(time.time() * 1000)


_id_lock = threading.Lock()
_last_id = 0


def new_id() -> str:
    """A record id as Afero writes them: a positive integer in a string, above 2**53 (so a
    client that reads it as a JSON number loses digits and notices). The milliseconds shifted
    left by 20 bits plus 20 random bits: increasing within a process, unlikely to meet another
    process's, below 2**63 until the year 2248."""
    global _last_id
    with _id_lock:
        _last_id = max((now_ms() << 20) | secrets.randbits(20), _last_id + 1)
        return str(_last_id)


class Store:
    """The database of one service instance."""

    def __init__(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self._lock = threading.RLock()
        self._depth = 0
        # isolation_level=None: we issue BEGIN/COMMIT ourselves, so a transaction is explicit.
        self._conn = sqlite3.connect(path, check_same_thread=False, isolation_level=None)
        self._conn.row_factory = sqlite3.Row
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")  # durable at checkpoints; WAL-safe
        self._conn.execute("PRAGMA foreign_keys=ON")
        self._conn.execute("PRAGMA busy_timeout=5000")
        self._conn.executescript("BEGIN IMMEDIATE;" + SCHEMA + "COMMIT;")

    def close(self) -> None:
        with self._lock:
            self._conn.close()

    @contextmanager
    def transaction(self) -> Iterator[None]:
        """All writes inside commit together or not at all; nesting joins the outer one."""
        with self._lock:
            if self._depth:
                self._depth += 1
                try:
                    yield
                finally:
                    self._depth -= 1
                return
            self._conn.execute("BEGIN IMMEDIATE")
            self._depth = 1
            try:
                yield
            except BaseException:
                self._conn.execute("ROLLBACK")
                raise
            else:
                self._conn.execute("COMMIT")
            finally:
                self._depth = 0

    def execute(self, sql: str, params: Sequence[Any] = ()) -> int:
        """Run one statement; returns the number of rows it changed."""
        with self._lock:
            return self._conn.execute(sql, params).rowcount

    def one(self, sql: str, params: Sequence[Any] = ()) -> dict[str, Any] | None:
        with self._lock:
            row = self._conn.execute(sql, params).fetchone()
        return dict(row) if row is not None else None

    def all(self, sql: str, params: Sequence[Any] = ()) -> list[dict[str, Any]]:
        with self._lock:
            return [dict(row) for row in self._conn.execute(sql, params).fetchall()]

    def scalar(self, sql: str, params: Sequence[Any] = ()) -> Any:
        with self._lock:
            row = self._conn.execute(sql, params).fetchone()
        return row[0] if row is not None else None


def dumps(value: Any) -> str:
    return json.dumps(value, separators=(",", ":"), sort_keys=True)


def loads(text: str) -> Any:
    return json.loads(text)
