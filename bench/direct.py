"""The direct path (issue 18): CPU per call of sarai_llm against the raw openai SDK and bare LiteLLM.

    .venv/bin/python bench/direct.py [--quick] [--json]

One stub (bench/stub.py, its own process) speaks OpenAI's API (``/v1``), Ollama's (``/api``) and
Anthropic's (``/v1/messages``). For each call (chat miss; stream of 5 chunks with usage; embedding of one
text) and each provider (``local``: OpenAI-compatible; ``ollama``; ``anthropic``: chat and stream, compared
with bare LiteLLM: no Anthropic SDK is installed), three sides run interleaved in
batches (bench/miss_stream.py's ``sequential``): the raw ``openai.AsyncOpenAI`` client on the stub's OpenAI
endpoint (the reference: the cheapest client there is), bare ``litellm.acompletion`` / ``aembedding`` with
that provider's model string, and ``sarai_llm`` with ``use_cache=False``. The figure is the median CPU per
call of this process (``time.process_time``, all threads), in the same run. Concurrency 50: requests/s of
sarai_llm and the raw SDK (250 requests shared by 50 tasks, rounds alternating, median of the rounds), with
the calls slower than 1 s and the slowest.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import (  # noqa: E402
    MESSAGES,
    TEMPERATURE,
    TIMEOUT,
    Results,
    bench_main,
    clean_env_for_gateway,
    log,
    stub,
    temp_dir,
)
from miss_stream import Call, concurrent, sequential  # noqa: E402

RAW, BARE, SARAI = "raw openai", "bare litellm", "sarai_llm"
CHUNKS = 5
KINDS = ("chat", "stream", "embed")


def sides(base: str, root: str, provider: str, kind: str) -> dict[str, Call]:
    import litellm
    import openai

    import sarai_llm

    client = openai.AsyncOpenAI(base_url=base, api_key="x", timeout=TIMEOUT, max_retries=0)
    prefix = {"local": "openai", "ollama": "ollama_chat" if kind != "embed" else "ollama"}.get(provider, provider)
    where = {"api_base": base if provider == "local" else root, **({} if provider == "ollama" else {"api_key": "x"})}
    usage: dict[str, Any] = {"stream_options": {"include_usage": True}}

    async def count(stream: Any) -> int:
        n = 0
        async for chunk in stream:
            n += bool(chunk.choices and chunk.choices[0].delta.content)
        assert n == CHUNKS, n
        return n

    if kind == "chat":
        return {
            RAW: lambda: client.chat.completions.create(model="stub", messages=MESSAGES, temperature=TEMPERATURE),
            BARE: lambda: litellm.acompletion(
                model=f"{prefix}/stub", messages=MESSAGES, temperature=TEMPERATURE, timeout=TIMEOUT, **where
            ),
            SARAI: lambda: sarai_llm.chat(MESSAGES, provider=provider, use_cache=False),
        }
    if kind == "stream":

        async def raw() -> int:
            return await count(
                await client.chat.completions.create(
                    model="stub",
                    messages=MESSAGES,
                    temperature=TEMPERATURE,
                    max_tokens=CHUNKS,
                    stream=True,
                    **usage,
                )
            )

        async def bare() -> int:
            return await count(
                await litellm.acompletion(
                    model=f"{prefix}/stub",
                    messages=MESSAGES,
                    temperature=TEMPERATURE,
                    max_tokens=CHUNKS,
                    stream=True,
                    timeout=TIMEOUT,
                    **where,
                    **usage,
                )
            )

        async def sarai() -> int:
            n = 0
            async for _ in sarai_llm.stream_chat(MESSAGES, provider=provider, max_tokens=CHUNKS, use_cache=False):
                n += 1
            assert n == CHUNKS, n
            return n

        return {RAW: raw, BARE: bare, SARAI: sarai}
    return {
        RAW: lambda: client.embeddings.create(model="stub", input=["embed me"]),
        BARE: lambda: litellm.aembedding(model=f"{prefix}/stub", input=["embed me"], timeout=TIMEOUT, **where),
        SARAI: lambda: sarai_llm.embed("embed me", provider=provider, use_cache=False),
    }


async def run(quick: bool) -> Results:
    import sarai_llm

    res = Results("direct path")
    with stub() as s, temp_dir() as d:
        clean_env_for_gateway(d)
        settings = {
            "primary_provider": "local",
            "local_base_url": s.base,
            "local_model": "stub",
            "local_timeout": TIMEOUT,
        }
        settings.update(local_embed_model="stub", ollama_base_url=s.root, ollama_model="stub", ollama_timeout=TIMEOUT)
        settings.update(anthropic_base_url=s.root, anthropic_api_key="x", anthropic_model="stub")
        sarai_llm.get_gateway(
            {**settings, "ollama_embed_model": "stub", "anthropic_timeout": TIMEOUT, "cache_dir": d + "/c"}
        )
        names = {"local": "OpenAI-compatible", "ollama": "Ollama", "anthropic": "Anthropic"}
        for provider, kinds in (("local", KINDS), ("ollama", KINDS), ("anthropic", KINDS[:2])):
            for kind in kinds:
                log(f"direct: {provider} {kind}")
                m = await sequential(
                    sides(s.base, s.root, provider, kind), rounds=2 if quick else 20, batch=3 if quick else 25
                )
                raw, bare, sarai = (m[n]["cpu_us"] for n in (RAW, BARE, SARAI))
                what = {"chat": "chat miss", "stream": f"stream {CHUNKS} chunks, usage on", "embed": "embedding"}[kind]
                anthropic = provider == "anthropic"  # no Anthropic SDK here: measured against bare LiteLLM
                ratio = sarai / (bare if anthropic else raw)
                res.add(
                    f"{what}, {names[provider]}: sarai_llm CPU/call",
                    sarai,
                    "us",
                    vs="bare litellm" if anthropic else "raw openai SDK",
                    ratio=ratio,
                    goal="<= 1.0x" if anthropic else "<= 0.6x",
                    met=ratio <= (1.0 if anthropic else 0.6),
                    note=f"raw openai {raw:,.0f} us (its OpenAI endpoint); bare litellm {bare:,.0f} us "
                    f"(sarai_llm = {sarai / bare:.2f}x bare, bare = {bare / raw:.2f}x raw)",
                )
        log("direct: concurrency 50")
        chat = sides(s.base, s.root, "local", "chat")
        conc = await concurrent(
            {RAW: chat[RAW], SARAI: chat[SARAI]}, rounds=1 if quick else 10, total=50 if quick else 250, workers=50
        )
        ratio = conc[SARAI]["rate"] / conc[RAW]["rate"]
        res.add(
            "chat miss, concurrency 50, OpenAI-compatible: sarai_llm req/s",
            conc[SARAI]["rate"],
            "/s",
            vs="raw openai SDK",
            ratio=ratio,
            goal=">= 1.0x",
            met=ratio >= 1.0,
            note=f"raw openai {conc[RAW]['rate']:,.0f}/s; "
            f"p50 {conc[SARAI]['p50_ms']:.1f} vs {conc[RAW]['p50_ms']:.1f} ms; calls over 1 s: "
            f"{conc[SARAI]['stalls']} vs {conc[RAW]['stalls']}, slowest {conc[SARAI]['max_ms']:,.0f} vs "
            f"{conc[RAW]['max_ms']:,.0f} ms",
        )
        await sarai_llm.aclose()
        log("direct: done")
    return res


if __name__ == "__main__":
    bench_main("the direct path against the raw SDK and bare LiteLLM", run)
