"""Where a cache miss spends its CPU: a sampling profile of sarai_llm, a bare LiteLLM call and a Router call.

    .venv/bin/python bench/profile_miss.py [--calls 600] [--top 25]

cProfile is no use here: it multiplies the cost of LiteLLM's many small calls,
misses the worker thread that ``litellm.acompletion`` hops to for every call,
and on a busy machine its figures swing by 2x. This script samples instead:
a thread reads every thread's stack (``sys._current_frames()``) every 0.2 ms
while one variant runs; samples of a thread that is waiting (in the event
loop's ``select``, a queue, a lock) are dropped, so what remains is CPU work.
A function's share of a variant's samples, times the variant's CPU time per
call (``time.process_time``), is its cost in microseconds per call,
inclusive of what it calls. Variants run interleaved in batches.

Variants (same request, same fast stub, bench/stub.py):
``bare``: ``litellm.acompletion(model="openai/stub", api_base=..., api_key=..., timeout=30)``;
``router``: ``Router.acompletion`` on a Router built as sarai_llm/_litellm.py built it before it called
``litellm.acompletion`` directly;
``sarai``: ``sarai_llm.chat(use_cache=False)``.
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import sys
import threading
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import MESSAGES, TEMPERATURE, TIMEOUT, clean_env_for_gateway, gateway_settings, stub, temp_dir  # noqa: E402

_IDLE_LEAVES = {
    ("selectors.py", "select"),
    ("threading.py", "wait"),
    ("queue.py", "get"),
    ("thread.py", "_worker"),
    ("threading.py", "_wait_for_tstate_lock"),
}

Key = tuple[str, str]


def _short(filename: str) -> str:
    for marker in ("site-packages/", "lib/python3.11/", "/work/main/"):
        if marker in filename:
            return filename.split(marker, 1)[1]
    return filename


class Sampler:
    """Inclusive and self sample counts per (file, function), per label."""

    def __init__(self, interval: float = 0.0002):
        self.interval = interval
        self.label: str | None = None
        self.inclusive: dict[str, collections.Counter[Key]] = collections.defaultdict(collections.Counter)
        self.self_: dict[str, collections.Counter[Key]] = collections.defaultdict(collections.Counter)
        self.samples: collections.Counter[str] = collections.Counter()
        self._stop = False
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop = True
        self._thread.join()

    def _run(self) -> None:
        me = threading.get_ident()
        while not self._stop:
            time.sleep(self.interval)
            label = self.label
            if label is None:
                continue
            for tid, frame in sys._current_frames().items():  # noqa: SLF001
                if tid == me:
                    continue
                code = frame.f_code
                leaf = (code.co_filename.rsplit("/", 1)[-1], code.co_name)
                if leaf in _IDLE_LEAVES:
                    continue
                self.samples[label] += 1
                seen: set[Key] = set()
                self.self_[label][(_short(code.co_filename), code.co_name)] += 1
                f: Any = frame
                while f is not None:
                    key = (_short(f.f_code.co_filename), f.f_code.co_name)
                    if key not in seen:
                        seen.add(key)
                        self.inclusive[label][key] += 1
                    f = f.f_back


async def main_async(calls: int, batch: int, top: int) -> None:  # noqa: C901
    import litellm
    from litellm.router import Router
    from litellm.types.router import Deployment, LiteLLM_Params

    import sarai_llm

    with stub() as s, temp_dir() as d:
        clean_env_for_gateway(d)
        sarai_llm.get_gateway(gateway_settings(s.base, d + "/cache"))
        router = Router(model_list=[], num_retries=0, disable_cooldowns=True)
        params: dict[str, Any] = {
            "model": "openai/stub",
            "timeout": TIMEOUT,
            "stream_timeout": TIMEOUT,
            "api_base": s.base,
        }
        params["api_key"] = "sk-no-key-required"
        router.add_deployment(Deployment(model_name="local/stub", litellm_params=LiteLLM_Params(**params)))

        async def bare() -> Any:
            return await litellm.acompletion(
                model="openai/stub",
                messages=MESSAGES,
                temperature=TEMPERATURE,
                api_base=s.base,
                api_key="x",
                timeout=TIMEOUT,
            )

        async def routed() -> Any:
            return await router.acompletion(model="local/stub", messages=list(MESSAGES), temperature=TEMPERATURE)

        async def sarai() -> Any:
            return await sarai_llm.chat(MESSAGES, use_cache=False)

        variants = {"bare": bare, "router": routed, "sarai": sarai}
        for call in variants.values():
            for _ in range(20):
                await call()
        sampler = Sampler()
        sampler.start()
        old_switch = sys.getswitchinterval()
        sys.setswitchinterval(0.0001)  # let the sampler in often; the same for every variant
        cpu: dict[str, float] = collections.defaultdict(float)
        wall: dict[str, float] = collections.defaultdict(float)
        names = list(variants)
        try:
            for r in range(max(1, calls // batch)):
                for name in names[r % 3 :] + names[: r % 3]:
                    c0, t0 = time.process_time(), time.perf_counter()
                    sampler.label = name
                    for _ in range(batch):
                        await variants[name]()
                    await asyncio.sleep(0)
                    sampler.label = None
                    cpu[name] += time.process_time() - c0
                    wall[name] += time.perf_counter() - t0
        finally:
            sys.setswitchinterval(old_switch)
            sampler.stop()
        n = max(1, calls // batch) * batch
        print(f"{n} calls per variant; CPU per call (all threads; the sampler costs every variant alike):")
        per_call = {name: cpu[name] / n * 1e6 for name in names}
        for name in names:
            print(
                f"  {name:7} {per_call[name]:7.0f} us CPU, {wall[name] / n * 1e6:7.0f} us wall, "
                f"{sampler.samples[name]} samples"
            )

        def us(name: str, key: Key, table: dict[str, collections.Counter[Key]]) -> float:
            total = sampler.samples[name] or 1
            return table[name][key] / total * per_call[name]

        for title, table in (("inclusive", sampler.inclusive), ("self", sampler.self_)):
            keys = set().union(*(table[n] for n in names))
            print(f"\n{title} us per call, top {top} by router - bare (then sarai):")
            print(f"{'bare':>7} {'router':>7} {'sarai':>7} {'r-b':>7}  function")
            rows = sorted(keys, key=lambda k: -(us("router", k, table) - us("bare", k, table)))
            for key in rows[:top]:
                b, ro, sa = (us(n, key, table) for n in names)
                print(f"{b:7.0f} {ro:7.0f} {sa:7.0f} {ro - b:7.0f}  {key[0]}:{key[1]}")
            print(f"\n{title} us per call, top {top} in sarai:")
            for key in sorted(keys, key=lambda k: -us("sarai", k, table))[:top]:
                b, ro, sa = (us(n, key, table) for n in names)
                print(f"{b:7.0f} {ro:7.0f} {sa:7.0f} {ro - b:7.0f}  {key[0]}:{key[1]}")
        print("\nsarai_llm's own code on the sarai path (us per call; self = in the function itself):")
        own = [k for k in sampler.inclusive["sarai"] if k[0].startswith("sarai_llm/")]
        for key in sorted(own, key=lambda k: -us("sarai", k, sampler.inclusive)):
            print(
                f"  inclusive {us('sarai', key, sampler.inclusive):7.0f}  self {us('sarai', key, sampler.self_):6.0f}"
                f"  {key[0]}:{key[1]}"
            )
        total_self = sum(us("sarai", k, sampler.self_) for k in own)
        print(f"  all sarai_llm frames, self time: {total_self:.0f} us per call")
        sarai_llm.reset_gateway()


def main() -> None:
    parser = argparse.ArgumentParser(description="sampling profile of the miss path")
    parser.add_argument("--calls", type=int, default=600)
    parser.add_argument("--batch", type=int, default=20)
    parser.add_argument("--top", type=int, default=25)
    args = parser.parse_args()
    asyncio.run(main_async(args.calls, args.batch, args.top))


if __name__ == "__main__":
    main()
