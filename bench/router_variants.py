"""Where the miss-path time goes: LiteLLM Router options and price registration, measured side by side.

The measurement behind the design decision in the README: sarai_llm used a
``litellm.Router`` (built as ``router()`` below builds one) until these
figures showed it cost ~1 ms of CPU per call; it now calls
``litellm.acompletion`` directly (the ``sarai_llm Gateway`` rows).

    .venv/bin/python bench/router_variants.py [--quick] [--calls 1200] [--json]

Not part of the default ``make bench`` table (run it with ``bench/run.py --variants``
or on its own). Every variant sends the same request (same messages,
``temperature=0.7``, ``timeout=30``) to the fast stub (bench/stub.py, another
process); variants run interleaved in small batches, so machine load hits all
of them alike. For each: the median wall latency per call and the client CPU
time per call (``time.process_time`` over a batch: robust on a busy machine),
and both as a ratio to a bare ``litellm.acompletion``.

Every variant has a model name of its own (the stub answers any name), so that
what one variant does to LiteLLM's process-wide price map touches no other:
``stub`` and the ``r-*``/``g-*``/``a-*`` names are unknown to LiteLLM's price
map (like every local model); ``stub-zero`` is registered with zero prices,
``stub-priced`` and ``g-priced`` with a tiny non-zero price
(``litellm.register_model``); ``stub-custom`` gets ``input_cost_per_token=0``
in a Router deployment's ``litellm_params``; ``twice`` is held by two Routers
(two gateways in one process, or a gateway made again after ``reset_gateway()``).
Both of the last two leave a sparse price entry (every price ``None``) for the
model in ``litellm.model_cost``, which makes LiteLLM's zero-cost diagnostic
expensive on every call of that model, bare calls included.
The ``ABLATION`` variants are not options: they replace LiteLLM's per-call cost
calculation and zero-cost diagnostic with no-ops, to measure what those cost.

``--stream N`` measures N-chunk streams instead (usage requested everywhere);
``--concurrency N`` measures throughput with N concurrent tasks instead;
``--httpx`` sets ``litellm.disable_aiohttp_transport = True`` first.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import sys
import time
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    MESSAGES,
    TEMPERATURE,
    TIMEOUT,
    Results,
    clean_env_for_gateway,
    gateway_settings,
    median,
    print_table,
    stub,
    temp_dir,
)

Call = Callable[[], Awaitable[Any]]
# Variants that change LiteLLM globals for their batches: name -> (enter, exit).
HOOKS: dict[str, tuple[Callable[[], None], Callable[[], None]]] = {}
# Calls made once before measuring (a first gateway's first miss registers its model's price).
FIRST_CALLS: list[Call] = []


def _no_pricing_hooks() -> tuple[Callable[[], None], Callable[[], None]]:
    """An ablation, not an option: LiteLLM's per-call cost calculation and zero-cost
    diagnostic replaced by no-ops, to measure what they cost."""
    from litellm.litellm_core_utils.litellm_logging import Logging

    saved = (Logging.response_cost_calculator, Logging._record_zero_cost_diagnostic)  # noqa: SLF001

    def enter() -> None:
        Logging.response_cost_calculator = lambda self, *a, **k: 0.0  # type: ignore[method-assign]
        Logging._record_zero_cost_diagnostic = lambda self, *a, **k: None  # type: ignore[method-assign]  # noqa: SLF001

    def leave() -> None:
        Logging.response_cost_calculator, Logging._record_zero_cost_diagnostic = saved  # type: ignore[method-assign]  # noqa: SLF001

    return enter, leave


def _price(model: str, per_token: float) -> dict[str, Any]:
    return {
        model: {
            "input_cost_per_token": per_token,
            "output_cost_per_token": per_token,
            "litellm_provider": "openai",
            "mode": "chat",
            "max_tokens": 4096,
            "max_input_tokens": 4096,
            "max_output_tokens": 4096,
        }
    }


def build_variants(  # noqa: C901 - one small closure per variant
    base: str, cache_dir: str, stream: int = 0, only: list[str] | None = None
) -> dict[str, Call]:
    """The variants; ``stream=N`` streams N chunks (usage requested on every side) instead of one answer."""
    import litellm
    import openai
    from litellm.router import Router
    from litellm.types.router import Deployment, LiteLLM_Params

    import sarai_llm
    from sarai_llm.config import GatewayConfig

    for name, price in (("stub-zero", 0.0), ("stub-priced", 1e-9), ("g-priced", 1e-9), ("twice-zero", 0.0)):
        litellm.register_model(_price(f"openai/{name}", price))

    def router(model: str, *, deployment: dict[str, Any] | None = None, **options: Any) -> Router:
        # What sarai_llm/_litellm.py built before issue 10: an empty Router, one deployment per (provider, model).
        # LiteLLM's typing makes Router(...) Any to mypy: the variable says what it is.
        r: Router = Router(model_list=[], num_retries=0, **{"disable_cooldowns": True, **options})
        params: dict[str, Any] = {
            "model": f"openai/{model}",
            "timeout": TIMEOUT,
            "stream_timeout": TIMEOUT,
            "api_base": base,
        }
        params["api_key"] = "sk-no-key-required"
        params.update(deployment or {})
        r.add_deployment(Deployment(model_name=f"local/{model}", litellm_params=LiteLLM_Params(**params)))
        return r

    client = openai.AsyncOpenAI(base_url=base, api_key="x", timeout=TIMEOUT, max_retries=0)
    variants: dict[str, Call] = {}
    extra: dict[str, Any] = (
        {"stream": True, "max_tokens": stream, "stream_options": {"include_usage": True}} if stream else {}
    )

    async def consume(resp: Any) -> Any:
        if not stream:
            return resp
        n = 0
        async for chunk in resp:
            n += bool(chunk.choices and chunk.choices[0].delta.content)
        assert n == stream, n
        return n

    def bare(model: str, **more: Any) -> Call:
        async def call() -> Any:
            resp = await litellm.acompletion(
                model=f"openai/{model}",
                messages=MESSAGES,
                temperature=TEMPERATURE,
                api_base=base,
                api_key="x",
                timeout=TIMEOUT,
                **extra,
                **more,
            )
            return await consume(resp)

        return call

    def routed(r: Router, model: str) -> Call:
        async def call() -> Any:
            resp = await r.acompletion(
                model=f"local/{model}", messages=list(MESSAGES), temperature=TEMPERATURE, **extra
            )
            return await consume(resp)

        return call

    def gateway(model: str) -> Call:
        gw = sarai_llm.Gateway(GatewayConfig.load(**gateway_settings(base, cache_dir, local_model=model)))

        async def call() -> Any:
            if not stream:
                return await gw.chat(MESSAGES, use_cache=False)
            n = 0
            async for _ in gw.stream_chat(MESSAGES, max_tokens=stream, use_cache=False):
                n += 1
            return n

        return call

    async def raw() -> Any:
        resp = await client.chat.completions.create(model="stub", messages=MESSAGES, temperature=TEMPERATURE, **extra)
        return await consume(resp)

    custom = {"input_cost_per_token": 0.0, "output_cost_per_token": 0.0}

    def ctor_router(model: str) -> Router:
        params = {"model": f"openai/{model}", "timeout": TIMEOUT, "stream_timeout": TIMEOUT, "api_base": base}
        params["api_key"] = "sk-no-key-required"
        r: Router = Router(  # Any to mypy, as in router()
            model_list=[{"model_name": f"local/{model}", "litellm_params": params}],
            num_retries=0,
            disable_cooldowns=True,
        )
        return r

    def twice(model: str) -> Call:
        router(model)  # another Router (another gateway, or one after reset_gateway()) with this model
        return routed(router(model), model)

    # Every Router gets a model name of its own (the stub answers any name; none is in
    # LiteLLM's price map unless registered above): a second Router holding the same
    # unpriced model changes LiteLLM's price entry for it, process-wide (see "twice").
    # Built lazily: building a variant (a Router, a gateway) has process-wide side effects.
    factories: dict[str, Callable[[], Call]] = {
        "bare litellm.acompletion (unpriced model)": lambda: bare("stub"),
        "bare acompletion, model registered at price 0": lambda: bare("stub-zero"),
        "bare acompletion, model registered at a non-zero price": lambda: bare("stub-priced"),
        "bare acompletion with num_retries=0 (a gateway without Router)": lambda: bare("stub-direct", num_retries=0),
        "Router as sarai_llm built it (unpriced)": lambda: routed(router("r-default"), "r-default"),
        "Router, model registered at price 0": lambda: routed(router("stub-zero"), "stub-zero"),
        "Router, model registered at a non-zero price": lambda: routed(router("stub-priced"), "stub-priced"),
        "Router, cooldowns left on (no disable_cooldowns)": lambda: routed(
            router("r-cool", disable_cooldowns=False), "r-cool"
        ),
        "Router, enable_pre_call_checks=False, cache_responses=False": lambda: routed(
            router("r-precall", enable_pre_call_checks=False, cache_responses=False), "r-precall"
        ),
        "Router, model_list given to the constructor": lambda: routed(ctor_router("r-ctor"), "r-ctor"),
        "Router, deployment litellm_params input/output_cost_per_token=0": lambda: routed(
            router("stub-custom", deployment=custom), "stub-custom"
        ),
        "bare acompletion of that model (stub-custom) afterwards": lambda: bare("stub-custom"),
        "Router whose unpriced model a 2nd Router also holds": lambda: twice("twice"),
        "bare acompletion of that model (twice) afterwards": lambda: bare("twice"),
        "Router whose model (registered at price 0) a 2nd Router also holds": lambda: twice("twice-zero"),
        "sarai_llm Gateway (use_cache=False), unpriced": lambda: gateway("g-unpriced"),
        "sarai_llm Gateway (use_cache=False), model at a non-zero price": lambda: gateway("g-priced"),
        "sarai_llm Gateway, its model already used by an earlier gateway": lambda: _second_gateway("g-twice"),
        "raw openai.AsyncOpenAI": lambda: raw,
        "ABLATION bare acompletion, cost calculation patched out": lambda: _ablated("bare", bare("a-bare")),
        "ABLATION Router, cost calculation patched out": lambda: _ablated(
            "router", routed(router("a-router"), "a-router")
        ),
        "ABLATION sarai_llm Gateway, cost calculation patched out": lambda: _ablated("sarai", gateway("a-gateway")),
    }

    def _second_gateway(model: str) -> Call:
        first = gateway(model)  # e.g. get_gateway(config) called again, or a gateway per test
        FIRST_CALLS.append(first)
        return gateway(model)

    def _ablated(kind: str, call: Call) -> Call:
        async def ablated() -> Any:
            return await call()

        HOOKS[f"ABLATION {kind}"] = _no_pricing_hooks()
        ablated.__qualname__ = f"ABLATION {kind}"
        return ablated

    for name, factory in factories.items():
        if not only or any(word.lower() in name.lower() for word in only):
            variants[name] = factory()
            kind = getattr(variants[name], "__qualname__", "")
            if kind in HOOKS:
                HOOKS[name] = HOOKS.pop(kind)
    return variants


async def measure(
    variants: dict[str, Call], rounds: int, batch: int, gc_freeze: bool = False
) -> dict[str, dict[str, float]]:
    names = list(variants)
    for first in FIRST_CALLS:
        await first()
    for name in names:  # warm-up: clients, caches, first-call imports
        hook = HOOKS.get(name)
        if hook:
            hook[0]()
        for _ in range(10):
            await variants[name]()
        await asyncio.sleep(0.005)
        if hook:
            hook[1]()
    if gc_freeze:  # move every object alive now out of the collector's sight
        gc.collect()
        gc.freeze()
    wall: dict[str, list[float]] = {n: [] for n in names}
    cpu: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            call = variants[name]
            hook = HOOKS.get(name)
            if hook:
                hook[0]()
            c0 = time.process_time()
            for _ in range(batch):
                t0 = time.perf_counter()
                await call()
                wall[name].append(time.perf_counter() - t0)
            await asyncio.sleep(0.005)  # let LiteLLM's logging tasks of this batch finish inside it
            cpu[name].append((time.process_time() - c0) / batch)
            if hook:
                hook[1]()
    return {n: {"wall_ms": median(wall[n]) * 1000, "cpu_ms": median(cpu[n]) * 1000} for n in names}


async def run(
    calls: int,
    batch: int,
    stream: int = 0,
    only: list[str] | None = None,
    gc_freeze: bool = False,
    concurrency: int = 0,
) -> Results:
    res = Results(f"stream {stream} chunks variants" if stream else "miss-path variants")
    with stub() as s, temp_dir() as d:
        clean_env_for_gateway(d)
        variants = build_variants(s.base, d + "/cache", stream, only)
        if concurrency:
            from miss_stream import concurrent

            for first in FIRST_CALLS:
                await first()
            conc = await concurrent(variants, rounds=max(1, calls // 500), total=500, workers=concurrency)
            ref_c = conc.get("bare litellm.acompletion (unpriced model)") or next(iter(conc.values()))
            res.section = f"miss-path variants, concurrency {concurrency}"
            for name, m in conc.items():
                res.add(
                    name,
                    f"{m['rate']:,.0f} req/s, p50 {m['p50_ms']:.0f} ms",
                    vs="bare acompletion",
                    ratio=m["rate"] / ref_c["rate"],
                    note="ratio of throughputs",
                )
            return res
        rounds = max(1, calls // batch)
        out = await measure(variants, rounds, batch, gc_freeze)
    ref = out.get("bare litellm.acompletion (unpriced model)") or next(iter(out.values()))
    for name, m in out.items():
        res.add(
            name,
            f"{m['wall_ms']:.2f} ms wall, {m['cpu_ms'] * 1000:.0f} us CPU",
            vs="bare acompletion" if "bare litellm.acompletion (unpriced model)" in out else next(iter(out)),
            ratio=m["wall_ms"] / ref["wall_ms"],
            note=f"CPU ratio {m['cpu_ms'] / ref['cpu_ms']:.2f}x",
        )
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description="miss-path variants")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--calls", type=int, default=None, help="calls per variant")
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--stream", type=int, default=0, help="stream N chunks instead of one answer")
    parser.add_argument("--gc-freeze", action="store_true", help="gc.freeze() after warm-up")
    parser.add_argument(
        "--concurrency", type=int, default=0, help="N tasks sharing 500 requests per round (calls/500 rounds)"
    )
    parser.add_argument("--only", default="", help="comma list of words: build only variants whose name has one")
    parser.add_argument(
        "--httpx", action="store_true", help="litellm.disable_aiohttp_transport = True (LiteLLM uses httpx)"
    )
    args = parser.parse_args()
    if args.httpx:
        import litellm

        litellm.disable_aiohttp_transport = True
    calls = args.calls or (20 if args.quick else 600)
    batch = 10 if args.quick else 20
    only = [w for w in args.only.split(",") if w]
    res = asyncio.run(run(calls, batch, args.stream, only, args.gc_freeze, args.concurrency))
    if args.httpx:
        res.section += " (httpx transport)"
        for row in res.rows:
            row["section"] = res.section
    if args.json:
        res.emit()
    else:
        for row in res.rows:
            if row["note"].startswith("CPU"):
                row["vs"] = f"{row['vs']} ({row['note']})"
        print_table(res.rows)


if __name__ == "__main__":
    main()
