"""Where a cache hit spends its microseconds: each step of ``Gateway.chat``'s hit path timed alone.

    .venv/bin/python bench/profile_hit.py [--entries 10000]

A hit is a few microseconds, far below what cProfile can attribute (its own
cost per call is of the same order). So the steps of the hit path are timed
one at a time, each over the same cached requests in the same random order, in
the same process and cache state as bench/cache_hit.py (10,000 entries), and
compared with the whole call. The steps follow ``sarai_llm/_gateway.py``'s
``Gateway.chat`` as of writing; a step whose function no longer exists is
reported as such. Figures are medians of several passes, in ns per call.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from cache_hit import _fill_like_the_miss_path, entry_messages  # noqa: E402
from common import clean_env_for_gateway, gateway_settings, stub, temp_dir  # noqa: E402


def _per_call_ns(fn: Callable[[Any], Any], items: list[Any], passes: int = 7) -> float:
    results = []
    for _ in range(passes):
        t0 = time.perf_counter_ns()
        for item in items:
            fn(item)
        results.append((time.perf_counter_ns() - t0) / len(items))
    return statistics.median(results)


async def _async_per_call_ns(fn: Callable[[Any], Any], items: list[Any], passes: int = 7) -> float:
    results = []
    for _ in range(passes):
        t0 = time.perf_counter_ns()
        for item in items:
            await fn(item)
        results.append((time.perf_counter_ns() - t0) / len(items))
    return statistics.median(results)


async def main_async(entries: int) -> None:
    import orjson

    import sarai_llm
    from sarai_llm import _validate as V

    with stub() as s, temp_dir() as d:
        clean_env_for_gateway(d)
        gw = sarai_llm.get_gateway(gateway_settings(s.base, d + "/cache", max_size=max(entries, 1000)))
        all_msgs = [entry_messages(i) for i in range(entries)]
        await _fill_like_the_miss_path(gw, all_msgs)
        order = list(all_msgs)
        random.shuffle(order)
        assert (await sarai_llm.chat(order[0]))["cached"]
        maker = gw._route("chat", None).keys  # noqa: SLF001
        assert maker is not None  # the chat route is keyed: the cache is on
        # The request as Gateway.chat keys it: (model, messages, temperature, max_tokens, provider kwargs).
        payloads: list[tuple[None, list[dict[str, str]], float, None, dict[str, Any]]] = [
            (None, m, 0.7, None, {}) for m in order
        ]
        keys = [k for p in payloads if (k := maker.key(p)) is not None]
        assert len(keys) == len(payloads)  # a valid request always has a key
        cache = gw.cache
        assert cache is not None
        hits = [cache.get(k) for k in keys]
        started = time.perf_counter()

        rows: list[tuple[str, float | None]] = []
        rows.append(("await sarai_llm.chat(messages)  [whole call]", await _async_per_call_ns(sarai_llm.chat, order)))
        rows.append(
            ("await gateway.chat(messages)  [without the module function]", await _async_per_call_ns(gw.chat, order))
        )

        base = _per_call_ns(lambda _x: None, order)  # a Python call through a lambda: subtracted below

        def step(name: str, fn: Callable[[Any], Any] | None, items: list[Any]) -> None:
            rows.append((name, max(0.0, _per_call_ns(fn, items) - base) if fn is not None else None))

        step("check_messages(messages)  [the miss path only]", V.check_messages, order)
        step("check_call(0.7, None, None, True, {})  [the miss path only]",
             lambda _m: V.check_call(0.7, None, None, True, {}), order)  # fmt: skip
        step("check_options(None, None)", lambda _m: V.check_options(None, None), order)
        step("gateway.chain(None)", lambda _m: gw.chain(None), order)
        step("events.request()", lambda _m: gw.events.request(), order)
        step("gateway._route('chat', None)", lambda _m: gw._route("chat", None), order)  # noqa: SLF001
        step("KeyMaker.key(request)  [orjson + blake2b]", maker.key, payloads)
        opts = orjson.OPT_SORT_KEYS | orjson.OPT_NON_STR_KEYS
        step("  of which orjson.dumps(request, OPT_SORT_KEYS)", lambda p: orjson.dumps(p, option=opts), payloads)
        step("ResponseCache.get(key)", cache.get, keys)
        step(
            "gateway._answered(hit, ...)  [result dict + events.answered]",
            lambda h: gw._answered(h, True, False, started, None),  # noqa: SLF001
            hits,
        )
        step("  of which stats.answered(...)", _stats_answered(gw), hits)
        step("  of which the result dict (9 keys, usage copied)", _result_dict, hits)
        parts = sum(v for name, v in rows[2:] if v is not None and not name.startswith("  "))
        print(
            f"{len(order):,} cached entries; ns per call (median of 7 passes, same random order; "
            f"steps net of the {base:.0f} ns of calling a lambda):"
        )
        for name, value in rows:
            print(f"  {'(gone)' if value is None else f'{value:7.0f}'}  {name}")
        print(f"  {parts:7.0f}  sum of the steps (the rest of the whole call is coroutine, call and argument overhead)")
        sarai_llm.reset_gateway()


def _stats_answered(gw: Any) -> Callable[[Any], Any]:
    import inspect

    answered = gw.stats.answered
    if "saved_usd" in inspect.signature(answered).parameters:
        return lambda hit: answered(
            hit["provider"], hit["model"], cached=True, latency_ms=0.005, caller=None, cost_usd=0.0, saved_usd=0.0
        )
    return lambda hit: answered(hit["provider"], hit["model"], cached=True, latency_ms=0.005, caller=None)


def _result_dict(answer: Any) -> dict[str, Any]:
    return {
        "content": answer["content"],
        "model": answer["model"],
        "provider": answer["provider"],
        "usage": dict(answer["usage"]),
        "finish_reason": answer["finish_reason"],
        "cached": True,
        "coalesced": False,
        "latency_ms": 0.005,
        "cost_usd": 0.0,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description="hit path, step by step")
    parser.add_argument("--entries", type=int, default=10_000)
    args = parser.parse_args()
    asyncio.run(main_async(args.entries))


if __name__ == "__main__":
    main()
