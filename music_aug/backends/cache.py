"""A persistent request cache: ``CachedBackend`` wraps any backend with a SQLite file.

One row per request, keyed by ``ChatRequest.key`` over (backend kind and model, messages or
prompt, sampling including the seed). Each completed result is committed as soon as it
arrives (streaming backends, and those offering ``iter_generate``, report results one by
one), so ``kill -9``
loses at most the requests in flight, and rerunning a finished job sends nothing. The file
uses WAL journaling with a busy timeout and one connection per process, so several
processes (``datasets.map(num_proc=N)``, shards on one disk) can share it.

Only successful results are stored: a request that ended in an error is sent again on the
next run. Identical requests within one batch (or in flight at once, for ``stream()``)
are sent once. The cache stores no
credentials: requests and results only. It does not expire entries and does not work over
network file systems that lack POSIX locks (SQLite's own limitation).
"""

from __future__ import annotations

import os
import sqlite3
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

from music_aug.backends.base import Backend, ChatRequest, ChatResult, Usage
from music_aug.backends.stream import RequestStream, iter_results, open_stream
from music_aug.errors import ConfigError

__all__ = ["CachedBackend", "cache_stats", "iter_results"]

_SCHEMA = """
CREATE TABLE IF NOT EXISTS results (
    key TEXT PRIMARY KEY,
    model TEXT NOT NULL,
    kind TEXT NOT NULL,
    text TEXT NOT NULL,
    finish_reason TEXT,
    prompt_tokens INTEGER NOT NULL,
    completion_tokens INTEGER NOT NULL,
    created REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT OR IGNORE INTO counters VALUES ('hits', 0), ('misses', 0);
"""
_BUSY_TIMEOUT_S = 60.0
_SELECT_CHUNK = 500


def _connect(path: Path) -> sqlite3.Connection:
    conn = sqlite3.connect(str(path), timeout=_BUSY_TIMEOUT_S, check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=NORMAL")  # durable across process crashes, not power loss
    with conn:
        conn.executescript(_SCHEMA)
    return conn


class CachedBackend:
    """Serve repeated requests from a SQLite file; send only the misses to ``backend``.

    Args:
        backend: the backend doing the work.
        path: the cache file (created with its parent folders if missing).

    Attributes:
        hits: results served from the cache by this object in this process.
        misses: requests this object forwarded to ``backend``.
    """

    def __init__(self, backend: Backend, path: str | os.PathLike[str]) -> None:
        self.backend = backend
        self.path = Path(path)
        if self.path.is_dir():
            raise ConfigError(f"cache path {str(self.path)!r} is a folder; pass a file path")
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.name = backend.name
        self.model = backend.model
        self.hits = 0
        self.misses = 0
        self._conn: sqlite3.Connection | None = None
        self._conn_pid = -1
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"CachedBackend({self.backend!r}, path={str(self.path)!r})"

    # -- pickling: connection and run-time counters stay behind --------------------------
    def __getstate__(self) -> dict[str, Any]:
        state = self.__dict__.copy()
        for name in ("_conn", "_lock"):
            del state[name]
        state.update(hits=0, misses=0, _conn_pid=-1)
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._conn = None
        self._lock = threading.Lock()

    @property
    def _connection(self) -> sqlite3.Connection:
        # A SQLite connection must not cross fork(): open one per process.
        if self._conn is None or self._conn_pid != os.getpid():
            self._conn = _connect(self.path)
            self._conn_pid = os.getpid()
        return self._conn

    def _key(self, request: ChatRequest) -> str:
        return request.key(f"{self.backend.name}/{self.backend.model}")

    def _lookup(self, keys: list[str]) -> dict[str, ChatResult]:
        found: dict[str, ChatResult] = {}
        unique = list(dict.fromkeys(keys))
        for start in range(0, len(unique), _SELECT_CHUNK):
            chunk = unique[start : start + _SELECT_CHUNK]
            marks = ",".join("?" * len(chunk))
            rows = self._connection.execute(
                "SELECT key, text, finish_reason, prompt_tokens, completion_tokens "
                f"FROM results WHERE key IN ({marks})",
                chunk,
            )
            for key, text, finish, prompt_tokens, completion_tokens in rows:
                usage = Usage(prompt_tokens, completion_tokens)
                found[key] = ChatResult(text, finish, usage, error=None, cached=True)
        return found

    def _store(self, key: str, request: ChatRequest, result: ChatResult) -> None:
        with self._connection as conn:  # one transaction (and commit) per result
            conn.execute(
                "INSERT OR REPLACE INTO results VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    key,
                    self.backend.model,
                    request.kind,
                    result.text,
                    result.finish_reason,
                    result.usage.prompt_tokens,
                    result.usage.completion_tokens,
                    time.time(),
                ),
            )

    def _count(self, hits: int, misses: int) -> None:
        with self._connection as conn:
            conn.execute("UPDATE counters SET value = value + ? WHERE name = 'hits'", (hits,))
            conn.execute("UPDATE counters SET value = value + ? WHERE name = 'misses'", (misses,))

    def generate(self, requests: Sequence[ChatRequest]) -> list[ChatResult]:
        """Results in request order; cached ones have ``cached=True``."""
        return [result for _, result in sorted(self.iter_generate(requests), key=_first)]

    def iter_generate(self, requests: Sequence[ChatRequest]) -> Iterator[tuple[int, ChatResult]]:
        """Yield ``(index, result)``: cache hits first, then misses as they complete.

        Each successful miss is committed to the file before it is yielded (this runs
        ``stream()``, the path the augmenter takes).
        """
        yield from iter_results(self, requests)

    def stream(self) -> CachedStream:
        """A ``RequestStream``: hits come back at once, misses go through the backend's stream.

        Each successful miss is committed before it is returned.
        """
        return CachedStream(self, open_stream(self.backend))

    def close(self) -> None:
        """Close the file and the wrapped backend. Safe to call twice."""
        with self._lock:
            conn, self._conn = self._conn, None
        if conn is not None and self._conn_pid == os.getpid():
            conn.close()
        self.backend.close()


class CachedStream:
    """The stream of a ``CachedBackend``: a lookup per submit, a commit per result."""

    def __init__(self, cache: CachedBackend, inner: RequestStream) -> None:
        self.cache = cache
        self.inner = inner
        self.capacity = inner.capacity
        self.calls = 0
        self._ready: list[tuple[int, ChatResult]] = []
        # key -> (request, tickets waiting for it); identical requests are sent once
        self._waiting: dict[str, tuple[ChatRequest, list[int]]] = {}
        self._keys: dict[int, str] = {}  # inner ticket -> key
        self._next = 0

    def submit(self, items: Sequence[tuple[int, ChatRequest]]) -> None:
        if not items:
            return
        cache = self.cache
        keys = [cache._key(request) for _, request in items]
        with cache._lock:
            found = cache._lookup(keys)
        sent: list[tuple[int, ChatRequest]] = []
        for (ticket, request), key in zip(items, keys, strict=True):
            if key in found:
                self._ready.append((ticket, found[key]))
            elif key in self._waiting:
                self._waiting[key][1].append(ticket)
            else:
                self._waiting[key] = (request, [ticket])
                self._next += 1
                self._keys[self._next] = key
                sent.append((self._next, request))
        hits = len(items) - len(sent)
        with cache._lock:
            cache.hits += hits
            cache.misses += len(sent)
            cache._count(hits, len(sent))
        if sent:
            self.calls += 1
            self.inner.submit(sent)

    def wait(self) -> list[tuple[int, ChatResult]]:
        if self._ready:
            ready, self._ready = self._ready, []
            return ready
        done: list[tuple[int, ChatResult]] = []
        for inner_ticket, result in self.inner.wait():
            key = self._keys.pop(inner_ticket)
            request, tickets = self._waiting.pop(key)
            if result.ok:
                with self.cache._lock:
                    self.cache._store(key, request, result)
            done.extend((ticket, result) for ticket in tickets)
        return done

    def close(self) -> None:
        self.inner.close()
        self._ready, self._waiting, self._keys = [], {}, {}


def _first(item: tuple[int, ChatResult]) -> int:
    return item[0]


def cache_stats(path: str | os.PathLike[str]) -> dict[str, Any]:
    """Entries, hits, misses and size of a cache file, without modifying it.

    Raises:
        ConfigError: the file does not exist or is not a music_aug cache.
    """
    file = Path(path)
    if not file.is_file():
        raise ConfigError(f"cache file {str(file)!r} does not exist; check the --cache path")
    # the database and its write-ahead log; the -shm index holds no data
    size = sum(p.stat().st_size for p in (file, Path(f"{file}-wal")) if p.exists())
    try:
        conn = sqlite3.connect(f"file:{file}?mode=ro", uri=True, timeout=_BUSY_TIMEOUT_S)
        try:
            counters = dict(conn.execute("SELECT name, value FROM counters").fetchall())
            entries = conn.execute("SELECT COUNT(*) FROM results").fetchone()[0]
            by_model = dict(
                conn.execute("SELECT model, COUNT(*) FROM results GROUP BY model").fetchall()
            )
            by_kind = dict(
                conn.execute("SELECT kind, COUNT(*) FROM results GROUP BY kind").fetchall()
            )
        finally:
            conn.close()
    except sqlite3.DatabaseError as error:
        raise ConfigError(
            f"{str(file)!r} is not a music_aug request cache ({error}); pass the file given "
            "to --cache"
        ) from error
    return {
        "path": str(file),
        "entries": int(entries),
        "hits": int(counters.get("hits", 0)),
        "misses": int(counters.get("misses", 0)),
        "size_bytes": int(size),
        "by_model": by_model,
        "by_kind": by_kind,
    }
