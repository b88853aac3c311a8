"""Memory as the cache grows: RSS of a gateway whose ``embed()`` cached 100,000 768-dimension vectors.

    .venv/bin/python bench/cache_memory.py [--quick] [--vectors 100000] [--batch 100] [--memory-mb 64] [--json]

A RAG pipeline caching its chunk embeddings, through real misses: ``sarai_llm.embed(list)`` of
``--batch`` new texts at a time (LiteLLM's parsing of the answers makes this take ~5 minutes)
against a loopback server in its own process (bench/stub.py with 768-dimension vectors of full
float64 precision, as JSON). The gateway has the default settings but ``max_size`` (= the number
of vectors, so the disk store keeps them all) and ``memory_mb`` (default 64, the front's bound).

"Over an empty gateway": the same gateway after a warm-up of three batches (LiteLLM imported, a
response of the same size parsed), then ``clear_cache()`` and ``gc.collect()``. RSS (``VmRSS``, file
pages included) is read along the fill (the highest is reported) and at the end, after the hits
below: the goal's figure, every vector cached.

Hits, each call timed alone (``perf_counter_ns``), all through ``await sarai_llm.embed(text)``:
* from the front: the most recently embedded texts that fit in it;
* from the shared store, this process: the oldest texts (long gone from the front), each read once;
* from the shared store, another process's view: a fresh gateway on the same directory.
Every hit's vector is checked against the one its miss returned (exact, float64).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import gc
import hashlib
import random
import subprocess
import sys
import time
import uuid
from array import array
from collections.abc import Iterator
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PY, Results, clean_env_for_gateway, gateway_settings, log, pct, print_table, rss_kb, temp_dir  # noqa: E402

DIMS = 768
_POOL = 512  # distinct random vectors the server draws from; each text's first value is its own


def _serve() -> None:
    """bench/stub.py, answering embeddings with 768-dimension vectors."""
    import orjson
    import stub

    rng = random.Random(7)
    pool = [[rng.gauss(0.0, 0.05) for _ in range(DIMS)] for _ in range(_POOL)]

    def embeddings_body(model: str, texts: list[str]) -> bytes:
        data = []
        for i, text in enumerate(texts):
            h = hash(text)
            vector = pool[h % _POOL].copy()
            vector[0] = (h % 1_000_003) / 1_000_003
            data.append({"object": "embedding", "index": i, "embedding": vector})
        usage = {"prompt_tokens": len(texts), "total_tokens": len(texts)}
        body = orjson.dumps({"object": "list", "data": data, "model": model, "usage": usage})
        return stub._JSON_HEAD % len(body) + body  # noqa: SLF001

    stub._embeddings_body = embeddings_body  # noqa: SLF001
    sys.argv = sys.argv[:1]
    stub.main()


@contextlib.contextmanager
def embedding_server() -> Iterator[str]:
    proc = subprocess.Popen([PY, __file__, "--serve"], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None
        line = proc.stdout.readline()
        if not line.startswith("PORT "):
            raise RuntimeError(f"embedding server did not start: {line!r}")
        yield f"http://127.0.0.1:{int(line.split()[1])}/v1"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def _digest(vector: list[float]) -> bytes:
    """The exact float64 bytes of ``vector``, hashed (kept instead of the vector: the bench's own memory)."""
    return hashlib.blake2b(array("d", vector).tobytes(), digest_size=16).digest()


async def _timed_hits(texts: list[str], expected: dict[str, bytes]) -> list[int]:
    """Nanoseconds of each ``embed(text)`` hit; each vector checked where its miss's is known."""
    import sarai_llm

    perf_ns, lat = time.perf_counter_ns, []
    for text in texts:
        t0 = perf_ns()
        vector = await sarai_llm.embed(text)
        lat.append(perf_ns() - t0)
        want = expected.get(text)
        assert type(vector) is list and (want is None or _digest(vector) == want), "a cached vector came back changed"
    return lat


async def run(vectors: int, batch: int, probes: int, memory_mb: float) -> Results:
    import sarai_llm

    res = Results("cache memory")
    run_id = uuid.uuid4().hex[:8]
    texts = [f"chunk {i} of corpus {run_id}: the text of one passage a RAG pipeline embeds" for i in range(vectors)]
    with embedding_server() as base, temp_dir() as d:
        clean_env_for_gateway(d)
        settings = gateway_settings(base, d + "/cache", max_size=vectors, local_model="emb", cache_memory_mb=memory_mb)
        sarai_llm.get_gateway(settings)
        for i in range(3):  # warm-up: LiteLLM imported, one response of the largest size parsed
            await sarai_llm.embed([f"warm-up {i} {j} {run_id}" for j in range(batch)])
        sarai_llm.clear_cache()
        gc.collect()
        empty = rss_kb()
        log(f"cache memory: empty gateway {empty / 1024:.1f} MB; embedding {vectors:,} texts")
        expected: dict[str, bytes] = {}
        sample = set(random.sample(range(vectors), min(vectors, 400)))
        trend, t0 = [], time.perf_counter()
        for start in range(0, vectors, batch):
            chunk = texts[start : start + batch]
            got = await sarai_llm.embed(chunk)
            assert len(got) == len(chunk) and len(got[0]) == DIMS
            expected.update(
                (t, _digest(v)) for j, (t, v) in enumerate(zip(chunk, got, strict=True)) if start + j in sample
            )
            del got
            if (start // batch + 1) % max(1, vectors // batch // 5) == 0:
                gc.collect()
                trend.append(rss_kb())
        fill_s = time.perf_counter() - t0
        stats = sarai_llm.get_stats()["cache"]
        assert stats["size"] == vectors, stats
        held = _front_len()  # the most recent texts
        per_entry = stats["memory_bytes"] / max(1, held)
        log(f"cache memory: filled in {fill_s:.0f} s; front {held:,} entries, {stats['memory_bytes'] / 2**20:.1f} MB")
        recent = texts[vectors - min(held, probes) :]
        front_lat = await _timed_hits(recent, expected)
        old = texts[: min(probes, max(0, vectors - held))]
        store_lat = await _timed_hits(old, expected)
        gc.collect()
        after_hits, split = rss_kb(), _rss_split()
        sarai_llm.get_gateway(settings)  # a fresh gateway: what another process sees
        other = texts[vectors // 2 : vectors // 2 + probes]
        other_lat = await _timed_hits(other, expected)
        assert sarai_llm.get_stats()["cache"]["hits"] == len(other)
        disk_mb = sum(f.stat().st_size for f in Path(d, "cache").rglob("*") if f.is_file()) / 2**20
        sarai_llm.reset_gateway()

    growth, peak = (after_hits - empty) / 1024, (max(trend) - empty) / 1024
    res.add(
        f"RSS growth, {vectors:,} cached {DIMS}-dim embeddings over an empty gateway",
        growth,
        "MB",
        goal="<= 100 MB",
        met=growth <= 100,
        note=f"RSS {empty / 1024:.0f} MB empty; along the fill: "
        + ", ".join(f"{kb / 1024:.0f}" for kb in trend)
        + f" (peak growth {peak:.0f} MB); at the end {after_hits / 1024:.0f} MB ({split}); "
        f"embed(list of {batch}) misses, filled in {fill_s:.0f} s; disk store {disk_mb:,.0f} MB",
    )
    res.add(
        "front: bytes held / bound",
        f"{stats['memory_bytes'] / 2**20:.1f} / {stats['memory_max_bytes'] / 2**20:.0f} MB",
        note=f"{held:,} entries, {per_entry:,.0f} bytes each as accounted (array('d') of {DIMS} floats + dict)",
    )
    for what, lat in (("front", front_lat), ("shared store, this process", store_lat),
                      ("shared store, a fresh gateway (another process's view)", other_lat)):  # fmt: skip
        p50 = pct(lat, 0.5) / 1000
        res.add(
            f"embed(text) hit from the {what}, p50",
            p50,
            "us",
            goal="< 50 us",
            met=p50 < 50,
            note=f"p99 {pct(lat, 0.99) / 1000:.1f} us over {len(lat):,} texts, each read once; vectors checked exact",
        )
    return res


def _rss_split() -> str:
    with open("/proc/self/status") as f:
        kb = {k: int(v.split()[0]) for k, _, v in (line.partition(":") for line in f) if k in ("RssAnon", "RssFile")}
    return ", ".join(f"{k} {v / 1024:.0f} MB" for k, v in kb.items())


def _front_len() -> int:
    import sarai_llm

    cache = sarai_llm.get_gateway().cache
    return len(cache._front) if cache is not None else 0  # noqa: SLF001 - entries in the front, for the report


def main() -> None:
    if sys.argv[1:] == ["--serve"]:
        _serve()
        return
    parser = argparse.ArgumentParser(description="memory of the response cache")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--vectors", type=int, default=None)
    parser.add_argument("--batch", type=int, default=100)
    parser.add_argument("--memory-mb", type=float, default=None, help="the front's bound (default 64; --quick 4)")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    vectors = args.vectors or (2_000 if args.quick else 100_000)
    memory_mb = args.memory_mb or (4 if args.quick else 64)
    res = asyncio.run(run(vectors, min(args.batch, vectors), 200 if args.quick else 5_000, memory_mb))
    if args.json:
        res.emit()
    else:
        print_table(res.rows)
        for row in res.rows:
            if row["note"]:
                print(f"- {row['what']}: {row['note']}")


if __name__ == "__main__":
    main()
