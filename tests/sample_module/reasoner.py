"""A module of the system that uses sarai_llm, written as the seed's HLCS reasoner.

It knows nothing about tests: its tests swap in the fake gateway with the
``fake_llm`` fixture that sarai_llm ships (see tests/test_sample_module.py).
"""

from __future__ import annotations

import sarai_llm

SYSTEM_PROMPT = "You are a reasoning engine. Answer with one short paragraph."


class LLMReasoner:
    """Reasons about a task with the shared gateway (kept from construction, like the seed)."""

    def __init__(self) -> None:
        self.gateway = sarai_llm.get_gateway()

    async def reason(self, task: str) -> str:
        response = await self.gateway.chat(
            messages=[
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": task},
            ],
            temperature=0.2,
        )
        return str(response["content"])


async def decide(question: str) -> str:
    """Answer yes or no; "unknown" when the LLM is unavailable (the module degrades, never crashes)."""
    try:
        response = await sarai_llm.chat(
            [{"role": "user", "content": f"Answer yes or no: {question}"}], temperature=0.0, max_tokens=3
        )
    except sarai_llm.AllProvidersFailedError:
        return "unknown"
    answer = str(response["content"]).strip().lower()
    return "yes" if answer.startswith("yes") else "no"


def summarize(text: str) -> str:
    """A synchronous entry point (a script or a notebook would call this)."""
    response = sarai_llm.chat_sync([{"role": "user", "content": f"Summarize: {text}"}], max_tokens=60)
    return str(response["content"])
