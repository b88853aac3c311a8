"""A reasoning module on sarai_llm: the design document's HLCS ``LLMReasoner``.

The module holds no provider code and no model names: which provider and model
answer is decided by the ``LLM_GATEWAY_*`` settings (environment, ``.env`` or
``config.yaml``), so the same code runs on Ollama, OpenAI or a local server.

Try it against the local model server (``make demo`` uses the same one)::

    python scripts/localmodel.py serve          # prints server_root=http://127.0.0.1:PORT
    export LLM_GATEWAY_PRIMARY_PROVIDER=local
    export LLM_GATEWAY_LOCAL_BASE_URL=http://127.0.0.1:PORT LLM_GATEWAY_LOCAL_MODEL=smollm2
    python examples/reasoner.py "Is a tomato a fruit or a vegetable?"

Exit code 0 on an answer, 3 when the request failed, 2 on a configuration error.
"""

from __future__ import annotations

import asyncio
import sys

import sarai_llm


class LLMReasoner:
    """Reasons about a task with a low temperature (consistent answers)."""

    SYSTEM = "You are a reasoning engine. Think step by step, then give a short conclusion."

    def __init__(self, max_tokens: int = 120) -> None:
        # The process-wide gateway: every module of the process shares it, its cache and stats.
        self.gateway = sarai_llm.get_gateway()
        self.max_tokens = max_tokens

    async def reason(self, task: str) -> dict[str, object]:
        response = await self.gateway.chat(
            messages=[
                {"role": "system", "content": self.SYSTEM},
                {"role": "user", "content": task},
            ],
            temperature=0.2,
            max_tokens=self.max_tokens,
        )
        return {
            "answer": response["content"].strip(),
            "provider": response["provider"],
            "model": response["model"],
            "cached": response["cached"],
            "latency_ms": response["latency_ms"],
        }


async def run(task: str) -> None:
    try:
        result = await LLMReasoner().reason(task)
        print(f"task:    {task}")
        print(f"answer:  {result['answer']}")
        print(f"from:    {result['provider']} / {result['model']}", end="  ")
        print(f"cached={result['cached']}  {result['latency_ms']:.0f} ms")
    finally:
        await sarai_llm.aclose()  # close the connections before asyncio.run closes the loop


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    task = " ".join(args) or "A bat and a ball cost 1.10. The bat costs 1.00 more than the ball. Price of the ball?"
    try:
        asyncio.run(run(task))
    except (sarai_llm.ConfigError, sarai_llm.NoProvidersError, sarai_llm.InvalidRequestError) as exc:
        print(f"reasoner: {exc}", file=sys.stderr)
        return 2
    except sarai_llm.SaraiLLMError as exc:
        print(f"reasoner: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
