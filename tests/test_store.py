"""The LMDB store through its real interface: durable writes, reads, group
commit, map growth, failure isolation, schema checks and hot backup."""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

import lmdb
import pytest
import trio

from octim.errors import SchemaMismatch, StoreClosed, StoreError
from octim.store import Append, Delete, Environment, Put, open_store, pack
from octim.store.env import SCHEMA_VERSION
from octim.store.keys import encode_key


async def test_write_then_read(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        await store.put("shops", b"s1", {"name": "店"})
        assert store.get("shops", b"s1") == {"name": "店"}
        assert store.get("shops", b"nope") is None
        await store.delete("shops", b"s1")
        assert store.get("shops", b"s1") is None


async def test_ops_of_one_write_commit_atomically(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        ops = [Put("messages", encode_key("c1", i), pack(i)) for i in range(1, 4)]
        ops.append(Put("conversations", b"c1", pack({"last_seq": 3})))
        await store.write(ops)
        assert [v for _, v in store.scan_scope("messages", "c1")] == [1, 2, 3]
        assert store.get("conversations", b"c1") == {"last_seq": 3}


async def test_scope_scans_and_last_seq(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        for scope in ("a", "b", "ab"):
            await store.write([Put("messages", encode_key(scope, i), pack(f"{scope}{i}"))
                               for i in range(1, 6)])
        assert [s for s, _ in store.scan_scope("messages", "a", after=2)] == [3, 4, 5]
        assert [v for _, v in store.scan_scope("messages", "a", limit=2)] == ["a1", "a2"]
        assert store.last_seq("messages", "a") == 5
        assert store.last_seq("messages", "b") == 5
        assert store.last_seq("messages", "zzz") == 0
        assert store.last_seq("messages", "0") == 0
        newest = store.scan("messages", *_bounds("ab"), reverse=True, limit=2)
        assert [v for _, v in newest] == ["ab5", "ab4"]


def _bounds(scope: str) -> tuple[bytes, bytes]:
    from octim.store.keys import scope_bounds
    return scope_bounds(scope)


async def test_concurrent_appends_share_commits(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        async def writer(conv: int) -> None:
            for seq in range(1, 41):
                await store.put("messages", encode_key(f"c{conv}", seq), {"n": seq})

        async with trio.open_nursery() as nursery:
            for conv in range(50):
                nursery.start_soon(writer, conv)
        stats = store.statistics()
        assert store.count("messages") == 2000
        assert stats.requests == 2000
        assert stats.commits < stats.requests / 5  # group commit, not one txn per append
        assert stats.largest_batch > 1
        assert stats.parks == stats.commits  # the loop waited for each commit, parked


async def test_a_writer_that_cannot_start_unparks_the_loop_and_still_commits(
        tmp_path: Path) -> None:
    """Another transaction holds LMDB's write lock past the park ceiling: the loop goes
    on (late park), and the write lands once the lock is free."""
    async with open_store(tmp_path) as store:
        holding, release = threading.Event(), threading.Event()

        def hold_the_write_lock() -> None:
            txn = store._env.env.begin(write=True)
            holding.set()
            release.wait(10)
            txn.abort()

        holder = threading.Thread(target=hold_the_write_lock)
        holder.start()
        holding.wait(10)
        with trio.fail_after(10):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(store.put, "shops", b"late", 1)
                while store.statistics().late_parks == 0:
                    await trio.sleep(0.01)  # the loop runs although the commit waits
                assert store.get("shops", b"late") is None
                release.set()
        holder.join()
        assert store.get("shops", b"late") == 1
        assert store.statistics().late_parks == 1


async def test_map_grows_when_full_without_losing_writes(tmp_path: Path) -> None:
    async with open_store(tmp_path, map_size=256 * 1024) as store:
        start = store.map_size
        value = "x" * 1024

        async def writer(conv: int) -> None:
            for seq in range(1, 101):
                await store.put("messages", encode_key(f"g{conv}", seq), value)

        async with trio.open_nursery() as nursery:
            for conv in range(20):
                nursery.start_soon(writer, conv)
        assert store.statistics().map_grows >= 1
        assert store.map_size > start
        assert store.count("messages") == 2000
        for conv in range(20):
            assert store.last_seq("messages", f"g{conv}") == 100


async def test_a_bad_request_fails_alone(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        results: dict[str, Any] = {}

        async def put(name: str, key: bytes) -> None:
            try:
                await store.write([Put("shops", key, pack(name))])
                results[name] = "ok"
            except StoreError as exc:
                results[name] = exc

        async with trio.open_nursery() as nursery:
            nursery.start_soon(put, "good1", b"g1")
            nursery.start_soon(put, "bad", b"k" * 600)  # longer than LMDB's key limit
            nursery.start_soon(put, "good2", b"g2")
        assert results["good1"] == results["good2"] == "ok"
        assert isinstance(results["bad"], StoreError)
        assert store.get("shops", b"g1") == "good1" and store.get("shops", b"g2") == "good2"


async def test_a_log_is_numbered_in_commit_order_with_gaps_only_for_failed_writes(
        tmp_path: Path) -> None:
    """Concurrent writers append to the event log; a reader who has seen number n has
    seen every committed number below it, and numbering goes on after a reopen."""
    async with open_store(tmp_path) as store:
        async def writer(name: str, bad: bool = False) -> None:
            for i in range(20):
                ops: list[Any] = [Append("log", pack(f"{name}-{i}"))]
                if bad and i == 7:  # fails with its log record: that number is a gap
                    ops.append(Put("shops", b"k" * 600, pack(0)))
                try:
                    await store.write(ops)
                except StoreError:
                    assert bad and i == 7

        async with trio.open_nursery() as nursery:
            for name in ("a", "b", "c"):
                nursery.start_soon(writer, name, name == "b")
        logged = store.read_log("log", 0, 1000)
        numbers = [n for n, _ in logged]
        assert numbers == sorted(numbers) and len(numbers) == 59
        assert set(range(1, 61)) - set(numbers) == {next(
            n for n in range(1, 61) if n not in numbers)}  # exactly one gap
        for name in ("a", "b", "c"):  # each writer's records in its own order
            mine = [v for _, v in logged if v.startswith(name)]
            assert mine == [f"{name}-{i}" for i in range(20) if (name, i) != ("b", 7)]
        assert store.read_log("log", numbers[-3], 10) == logged[-2:]
        with pytest.raises(StoreError, match="not a log"):
            await store.write([Append("shops", pack(1))])
    async with open_store(tmp_path) as store:
        await store.write([Append("log", pack("after"))])
        assert store.read_log("log", 60, 10) == [(61, "after")]


async def test_unknown_database_is_refused_before_writing(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        with pytest.raises(StoreError, match="unknown database"):
            await store.write([Put("nope", b"k", b"v"), Put("shops", b"k", pack(1))])
        assert store.get("shops", b"k") is None


async def test_writes_after_close_are_refused(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        pass
    with pytest.raises(StoreClosed):
        await store.put("shops", b"k", 1)


async def test_close_commits_accepted_writes(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        async with trio.open_nursery() as nursery:
            for i in range(100):
                nursery.start_soon(store.put, "shops", f"s{i}".encode(), i)
    async with open_store(tmp_path) as store:
        assert store.count("shops") == 100


async def test_state_survives_reopening(tmp_path: Path) -> None:
    async with open_store(tmp_path) as store:
        await store.write([Put("shops", b"a", pack(1)), Put("shops", b"b", pack(2)),
                           Delete("shops", b"a")])
    async with open_store(tmp_path) as store:
        assert store.get("shops", b"a") is None
        assert store.get("shops", b"b") == 2


def test_schema_version_mismatch_is_a_clear_error(tmp_path: Path) -> None:
    Environment(tmp_path).close()
    env = lmdb.open(str(tmp_path), max_dbs=20)
    meta = env.open_db(b"meta")
    with env.begin(write=True) as txn:
        txn.put(b"schema_version", pack(SCHEMA_VERSION + 1), db=meta)
    env.close()
    with pytest.raises(SchemaMismatch, match=f"schema version {SCHEMA_VERSION + 1}"):
        Environment(tmp_path)


def test_foreign_lmdb_is_refused(tmp_path: Path) -> None:
    env = lmdb.open(str(tmp_path))
    with env.begin(write=True) as txn:
        txn.put(b"hello", b"world")
    env.close()
    with pytest.raises(SchemaMismatch):
        Environment(tmp_path, readonly=True)


def test_readonly_open_of_a_missing_store_fails_clearly(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="no OctIM store"):
        Environment(tmp_path / "absent", readonly=True)


async def test_hot_backup_while_writing(tmp_path: Path) -> None:
    async with open_store(tmp_path / "live") as store:
        await store.write([Put("messages", encode_key("c", i), pack(i)) for i in range(1, 501)])

        async def keep_writing() -> None:
            for i in range(501, 1001):
                await store.put("messages", encode_key("c", i), i)

        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep_writing)
            await trio.to_thread.run_sync(store.backup, tmp_path / "copy")
    async with open_store(tmp_path / "copy") as copy:
        seqs = [s for s, _ in copy.scan_scope("messages", "c")]
        assert len(seqs) >= 500
        assert seqs == list(range(1, len(seqs) + 1))  # a consistent prefix, no holes
