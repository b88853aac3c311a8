"""sarai_llm end to end, against a real (tiny) local model.

Run with `make demo`. It starts llama.cpp's llama-server with SmolLM2-135M on a free
loopback port (installed by `make install`) and then, through the public API only:

  (a) asks the `local` provider (an OpenAI-compatible server) a question,
  (b) asks again: the answer now comes from the cache,
  (c) makes an unreachable Ollama the primary provider with `local` as its fallback,
  (d) prints the gateway's statistics.

Configuration goes through the same `LLM_GATEWAY_*` variables a user would put in `.env`.
Exit code 0 when every step behaved as described, 1 otherwise.
"""

from __future__ import annotations

import asyncio
import json
import os
import sys
import tempfile
import time
import traceback
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import localmodel  # noqa: E402  (stdlib-only helper that runs the local servers)

# Offline: LiteLLM would otherwise try to download its price list on import.
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")


def configure(**settings: str) -> None:
    """Replace every LLM_GATEWAY_* variable with `settings` (names without the prefix)."""
    for name in [n for n in os.environ if n.startswith("LLM_GATEWAY_")]:
        if name != "LLM_GATEWAY_CACHE_DIR":
            del os.environ[name]
    for key, value in settings.items():
        os.environ[f"LLM_GATEWAY_{key}"] = value


def show(title: str, result: Any) -> None:
    print(f"\n--- {title}")
    for key in ("content", "provider", "model", "cached", "finish_reason", "usage", "latency_ms"):
        value = result[key]
        if key == "latency_ms":
            value = f"{value:.1f}"
        print(f"  {key:<13} {value!r}" if key == "content" else f"  {key:<13} {value}")


def check(condition: bool, what: str) -> None:
    if not condition:
        raise AssertionError(what)


async def scenarios(lm: localmodel.LocalModel) -> None:
    import sarai_llm

    question = [{"role": "user", "content": "Name one primary colour. Answer in one word."}]

    # (a) the real model behind the `local` provider. A base URL names the server;
    # the gateway adds the `/v1` an OpenAI-compatible API needs.
    configure(PRIMARY_PROVIDER="local", LOCAL_BASE_URL=lm.server_root, LOCAL_MODEL=lm.model)
    sarai_llm.reset_gateway()
    first = await sarai_llm.chat(question, temperature=0.0, max_tokens=16)
    show("(a) answered by the local model", first)
    check(first["provider"] == "local" and not first["cached"], "(a) should come from `local`, uncached")

    # (b) the same request again: served by the response cache, no model call.
    again = await sarai_llm.chat(question, temperature=0.0, max_tokens=16)
    show("(b) the same request again", again)
    check(again["cached"] is True, "(b) should be a cache hit")
    check(again["content"] == first["content"], "(b) the cached answer should equal the first one")

    # (c) primary `ollama` at a loopback port where nothing listens, fallback `local`.
    closed = f"http://127.0.0.1:{localmodel.free_port()}"
    configure(
        PRIMARY_PROVIDER="ollama",
        OLLAMA_BASE_URL=closed,
        OLLAMA_MODEL="llama3.2:latest",
        FALLBACK_PROVIDERS="local",
        LOCAL_BASE_URL=lm.server_root,
        LOCAL_MODEL=lm.model,
    )
    sarai_llm.reset_gateway()
    other = [{"role": "user", "content": "Say hello to the team in five words."}]
    fell_back = await sarai_llm.chat(other, temperature=0.0, max_tokens=16)
    show(f"(c) primary ollama at {closed} (down), fallback local", fell_back)
    check(fell_back["provider"] == "local", "(c) the fallback `local` should have answered")

    # (d) what the gateway counted for scenario (c).
    stats = sarai_llm.get_stats()
    print("\n--- (d) get_stats()")
    print(json.dumps(stats, indent=2, default=str))
    check(stats["total_fallbacks"] >= 1, "(d) the fallback should be counted")
    await sarai_llm.aclose()  # close the connections before asyncio.run closes the loop


def main() -> int:
    with tempfile.TemporaryDirectory(prefix="sarai-demo-") as tmp:
        # A private cache, and a working directory without any .env or config.yaml, so
        # that only the variables set below configure the gateway.
        os.environ["LLM_GATEWAY_CACHE_DIR"] = str(Path(tmp) / "cache")
        os.chdir(tmp)
        try:
            started = time.monotonic()
            with localmodel.local_model(ollama=False) as lm:
                took = time.monotonic() - started
                print(f"llama-server with {lm.model} ready at {lm.server_root} ({took:.1f} s)")
                asyncio.run(scenarios(lm))
        except localmodel.NotInstalledError as exc:
            print(f"demo: {exc}", file=sys.stderr)
            return 1
        except Exception as exc:  # report any failure, exit non-zero
            traceback.print_exc()
            print(f"\ndemo FAILED: {type(exc).__name__}: {exc}", file=sys.stderr)
            return 1
        finally:
            os.chdir(REPO)
    print("\ndemo OK")
    return 0


if __name__ == "__main__":
    sys.exit(main())
