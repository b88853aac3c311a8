"""Cache durability: many processes on one directory, and a corrupt or truncated database.

* 4 processes x 5,000 mixed operations (reads, writes, a few invalidations)
  on one cache directory through :class:`sarai_llm.cache.ResponseCache`:
  no exception, no store failure (the cache swallows those, so its
  ``errors`` counter is checked too), and every read is a miss or a complete,
  valid entry for the key that was asked (each value carries its own checksum).
* A cache database that is garbage, truncated, or overwritten while a gateway
  runs: the gateway keeps answering (uncached), and warns exactly once.
"""

from __future__ import annotations

import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from pathlib import Path
from typing import Any

import pytest
from faults import FaultyUpstream

import sarai_llm

PROCESSES = 4
OPERATIONS = 5_000
MESSAGES = [{"role": "user", "content": "durable"}]

WORKER = textwrap.dedent(
    """
    import hashlib, json, os, random, sys, time, traceback
    from sarai_llm.cache import ResponseCache

    directory, seed, operations, start_at = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    rng = random.Random(seed)
    KEYS = [f"k{i:03d}" for i in range(400)]
    MODELS = ["m1", "m2"]

    def digest(key, text):
        return hashlib.blake2b(f"{key}|{text}".encode(), digest_size=16).hexdigest()

    def value(key, n):
        text = f"{seed}:{n}:" + "x" * rng.randrange(0, 4000)
        return {"content": text, "model": "m", "provider": "local", "finish_reason": "stop",
                "usage": {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2},
                "key": key, "check": digest(key, text)}

    def messages_of(key):
        return [{"role": "user", "content": key}]

    cache = ResponseCache(directory, ttl=3600, max_size=150, sync_interval=0.0)
    report = {"reads": 0, "hits": 0, "writes": 0, "invalidations": 0, "exceptions": [], "bad": []}
    while time.time() < start_at:  # start together
        time.sleep(0.001)
    for n in range(operations):
        key = rng.choice(KEYS)
        roll = rng.random()
        try:
            if roll < 0.55:
                report["reads"] += 1
                got = cache.get(key)
                if got is not None:
                    report["hits"] += 1
                    ok = (
                        isinstance(got, dict)
                        and got.get("key") == key
                        and isinstance(got.get("content"), str)
                        and got.get("check") == digest(key, got["content"])
                        and got.get("usage") == {"prompt_tokens": 1, "completion_tokens": 1, "total_tokens": 2}
                    )
                    if not ok:
                        report["bad"].append(repr(got)[:200])
            elif roll < 0.99:
                report["writes"] += 1
                cache.set(key, value(key, n), messages=messages_of(key), model=rng.choice(MODELS))
            else:
                report["invalidations"] += 1
                cache.invalidate(messages_of(key), rng.choice([None, *MODELS]))
        except BaseException:
            report["exceptions"].append(traceback.format_exc()[-500:])
    report["cache_errors"] = cache.errors
    report["available"] = cache.available
    report["size"] = len(cache)
    cache.close()
    print(json.dumps(report))
    """
)


def test_processes_sharing_one_directory(tmp_path: Path) -> None:
    directory = tmp_path / "shared"
    start_at = time.time() + 3.0  # every worker imports, opens, then starts at once
    env = {**os.environ, "PYTHONWARNINGS": "error"}
    workers = [
        subprocess.Popen(
            [sys.executable, "-c", WORKER, str(directory), str(seed), str(OPERATIONS), str(start_at)],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            env=env,
        )
        for seed in range(PROCESSES)
    ]
    reports: list[dict[str, Any]] = []
    started = time.monotonic()
    for worker in workers:
        out, err = worker.communicate(timeout=120)
        assert worker.returncode == 0, err
        reports.append(json.loads(out.strip().splitlines()[-1]))
    elapsed = time.monotonic() - started
    for report in reports:
        assert report["exceptions"] == [], report["exceptions"][:3]
        assert report["bad"] == [], report["bad"][:3]
        assert report["cache_errors"] == 0 and report["available"] is True
        assert report["reads"] + report["writes"] + report["invalidations"] == OPERATIONS
    assert sum(r["hits"] for r in reports) > 0, "no read ever found an entry: the test proves nothing"
    assert max(r["size"] for r in reports) <= 150 + PROCESSES  # LRU held (a racing writer may overshoot)
    assert elapsed < 60


# --- a broken database under a gateway --------------------------------------------------------


def _cache_warnings(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if "cache" in r.getMessage() and r.levelno >= logging.WARNING]


def _cache_dir() -> Path:
    return Path(os.environ["LLM_GATEWAY_CACHE_DIR"])


def _database() -> Path:
    return _cache_dir() / "responses" / "cache.db"


async def _fill(up: FaultyUpstream) -> None:
    """A real database with entries, then closed."""
    gw = sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": up.base_url})
    for i in range(20):
        await sarai_llm.chat([{"role": "user", "content": f"fill {i} " + "y" * 500}])
    assert gw.get_stats()["cache"]["size"] == 20
    sarai_llm.reset_gateway()


@pytest.mark.parametrize("damage", ["garbage", "truncated", "zeroed-header", "empty"])
async def test_a_broken_database_leaves_the_gateway_answering(damage: str, caplog: pytest.LogCaptureFixture) -> None:
    with FaultyUpstream() as up:
        await _fill(up)
        db = _database()
        data = db.read_bytes()
        for leftover in db.parent.glob("cache.db-*"):  # the WAL of a closed database
            leftover.unlink()
        if damage == "garbage":
            db.write_bytes(b"\x00garbage, not sqlite\xff" * 500)
        elif damage == "truncated":
            db.write_bytes(data[: len(data) // 3])
        elif damage == "zeroed-header":
            db.write_bytes(b"\x00" * 100 + data[100:])
        else:
            db.write_bytes(b"")
        before = up.count("/chat/completions")
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sarai_llm"):
            gw = sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": up.base_url})
            for _ in range(4):
                r = await sarai_llm.chat(MESSAGES)
                assert r["cached"] is False or damage == "empty", (damage, r)
                assert r["content"] == "Hello world"
            assert len(await sarai_llm.embed("durable")) == 4
            stats = gw.get_stats()
        warnings = _cache_warnings(caplog)
        if damage == "empty":
            # An empty file is a valid new SQLite database: the cache simply works.
            assert warnings == []
            assert up.count("/chat/completions") == before + 1
        else:
            assert len(warnings) == 1, warnings
            assert up.count("/chat/completions") == before + 4
            assert stats["cache"]["errors"] >= 1
            assert stats["cache"]["size"] == 0


async def test_a_database_overwritten_while_the_gateway_runs(caplog: pytest.LogCaptureFixture) -> None:
    with FaultyUpstream() as up:
        gw = sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": up.base_url})
        await sarai_llm.chat(MESSAGES)
        assert (await sarai_llm.chat(MESSAGES))["cached"] is True
        db = _database()
        caplog.clear()
        with caplog.at_level(logging.WARNING, logger="sarai_llm"):
            # In place, so the gateway's open connection sees it. SQLite serves what it
            # wrote from its WAL, so the database, its WAL and its shared index are overwritten.
            for path in [db, *db.parent.glob("cache.db-*")]:
                with open(path, "r+b") as f:
                    f.write(b"\xde\xad\xbe\xef" * 2048)
            for i in range(6):
                r = await sarai_llm.chat([{"role": "user", "content": f"after corruption {i}"}])
                assert r["content"] == "Hello world" and r["cached"] is False
            r = await sarai_llm.chat(MESSAGES)
            assert r["content"] == "Hello world"
            assert len(await sarai_llm.embed("durable")) == 4
            stats = gw.get_stats()
        warnings = _cache_warnings(caplog)
        assert len(warnings) == 1, warnings
        assert stats["cache"]["errors"] >= 1


def test_a_damaged_store_is_retried_without_a_second_warning(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The cache reopens a failed store now and then; failing again must not warn again."""
    from sarai_llm.cache import ResponseCache

    (tmp_path / "responses").mkdir()
    (tmp_path / "responses" / "cache.db").write_bytes(b"not a database" * 300)
    answer = {"content": "x", "model": "m", "provider": "local", "usage": {}, "finish_reason": "stop"}
    with caplog.at_level(logging.WARNING, logger="sarai_llm"):
        cache = ResponseCache(tmp_path, retry_interval=0.0, sync_interval=0.0)
        for i in range(5):
            assert cache.get(f"k{i}") is None
            cache.set(f"k{i}", answer, messages=MESSAGES, model="m")
    assert len(_cache_warnings(caplog)) == 1
    assert cache.errors >= 2  # it did try again
    assert not cache.available
