"""RSS growth of a process over 10,000 mixed sarai_llm requests, after warm-up.

    .venv/bin/python bench/memory.py [--quick] [--requests 10000] [--json]

The mix, in a fixed interleaved pattern (per 20 requests): 12 chat hits (a
pool of 500 cached requests), 1 chat miss with a new prompt (cached: the
cache is at its ``max_size`` of 1,000 after warm-up, so it evicts), 1 chat
miss with ``use_cache=False``, 2 stream replays (a pool of 50 cached
streams), 1 stream miss with a new prompt (5 chunks, cached), 2 embed hits
(a pool of 200 texts), 1 embed miss with a new text. All against the fast
stub (bench/stub.py). Requests run ten at a time (``asyncio.gather``). Warm-up: the same mix
for 1,000 requests. RSS
(``VmRSS``) is read after ``gc.collect()`` before and after the measured
requests, and five times along the way to show the trend.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    MESSAGES,
    Results,
    clean_env_for_gateway,
    gateway_settings,
    log,
    print_table,
    rss_kb,
    stub,
    temp_dir,
)

PATTERN = "HHHHHHHHHHHHMNRRSEEX"  # 20 requests: H chat hit, M chat miss (cached), N miss uncached,
# R stream replay, S stream miss, E embed hit, X embed miss


def _msgs(text: str) -> list[dict[str, str]]:
    return [MESSAGES[0], {"role": "user", "content": text}]


async def run(requests: int, warmup: int, pools: tuple[int, int, int] = (500, 50, 200)) -> Results:  # noqa: C901
    import sarai_llm

    res = Results("memory")
    run_id = uuid.uuid4().hex[:8]
    with stub() as s, temp_dir() as d:
        clean_env_for_gateway(d)
        sarai_llm.get_gateway(gateway_settings(s.base, d + "/cache", max_size=1000))
        hits = [_msgs(f"hit {i} {run_id}") for i in range(pools[0])]
        streams = [_msgs(f"stream {i} {run_id}") for i in range(pools[1])]
        texts = [f"text {i} {run_id}" for i in range(pools[2])]
        counter = 0

        async def one(i: int) -> None:
            nonlocal counter
            kind = PATTERN[i % len(PATTERN)]
            counter += 1
            if kind == "H":
                await sarai_llm.chat(hits[(i * 7) % len(hits)])
            elif kind == "M":
                await sarai_llm.chat(_msgs(f"miss {counter} {run_id}"))
            elif kind == "N":
                await sarai_llm.chat(_msgs(f"uncached {counter} {run_id}"), use_cache=False)
            elif kind == "R":
                async for _ in sarai_llm.stream_chat(streams[(i * 3) % len(streams)], max_tokens=5):
                    pass
            elif kind == "S":
                async for _ in sarai_llm.stream_chat(_msgs(f"stream miss {counter} {run_id}"), max_tokens=5):
                    pass
            elif kind == "E":
                await sarai_llm.embed(texts[(i * 11) % len(texts)])
            else:
                await sarai_llm.embed(f"new text {counter} {run_id}")

        # fill the pools (and the cache up to max_size), then the warm-up mix
        for m in hits:
            await sarai_llm.chat(m)
        for m in streams:
            async for _ in sarai_llm.stream_chat(m, max_tokens=5):
                pass
        await sarai_llm.embed(texts)
        for i in range(0, warmup, 10):  # ten at a time: upstream waits overlap, as in a real service
            await asyncio.gather(*(one(j) for j in range(i, min(i + 10, warmup))))
        gc.collect()
        start = rss_kb()
        trend = [start]
        log(f"memory: warm-up done, RSS {start / 1024:.1f} MB")
        step = max(1, requests // 5)
        for i in range(0, requests, 10):
            await asyncio.gather(*(one(warmup + j) for j in range(i, min(i + 10, requests))))
            if (i + 10) % step < 10:
                gc.collect()
                trend.append(rss_kb())
        gc.collect()
        end = rss_kb()
        stats = sarai_llm.get_stats()
        sarai_llm.reset_gateway()
    growth = (end - start) / 1024
    res.add(
        f"RSS growth over {requests:,} mixed requests after warm-up",
        growth,
        "MB",
        goal="< 5 MB",
        met=growth < 5,
        note=(
            f"RSS {start / 1024:.1f} -> {end / 1024:.1f} MB; every {step:,}: "
            + ", ".join(f"{kb / 1024:.1f}" for kb in trend)
            + f"; cache size {stats['cache']['size']}, evictions {stats['cache']['evictions']}, "
            f"upstream requests {stats['providers'].get('local', {}).get('requests', 0):,}, "
            f"hit rate {stats['cache']['hit_rate']:.2f}"
        ),
    )
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description="memory growth")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--requests", type=int, default=None)
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    requests = args.requests or (200 if args.quick else 10_000)
    warmup = 100 if args.quick else 1_000
    res = asyncio.run(run(requests, warmup, (20, 5, 10) if args.quick else (500, 50, 200)))
    if args.json:
        res.emit()
    else:
        print_table(res.rows)
        print(res.rows[0]["note"])


if __name__ == "__main__":
    main()
