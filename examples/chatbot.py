"""A chatbot on sarai_llm: the design document's SAUL, a template fast path with an LLM fallback.

Simple messages (greetings, thanks, goodbyes) are answered from templates in
well under a millisecond; everything else goes to the LLM through the shared
gateway, with a small ``max_tokens`` for short, quick replies.

Try it against the local model server (``make demo`` uses the same one)::

    python scripts/localmodel.py serve          # prints server_root=http://127.0.0.1:PORT
    export LLM_GATEWAY_PRIMARY_PROVIDER=local
    export LLM_GATEWAY_LOCAL_BASE_URL=http://127.0.0.1:PORT LLM_GATEWAY_LOCAL_MODEL=smollm2
    python examples/chatbot.py "hola" "What is a good name for a cat?" "thanks"

With no arguments it plays a short scripted conversation. Exit code 0 when
every message was answered, 3 when a request failed, 2 on a configuration error.
"""

from __future__ import annotations

import asyncio
import re
import sys
import time
from typing import Any

import sarai_llm

TEMPLATES: list[tuple[re.Pattern[str], str]] = [
    (re.compile(r"^\s*(hi|hello|hey|hola|buenas)\b", re.IGNORECASE), "Hello! How can I help you today?"),
    (re.compile(r"^\s*(thanks|thank you|gracias)\b", re.IGNORECASE), "You're welcome!"),
    (re.compile(r"^\s*(bye|goodbye|adios|adiós)\b", re.IGNORECASE), "Goodbye, see you soon."),
]


class TemplateResponder:
    """The fast path: fixed answers for messages that need no model."""

    def respond(self, query: str) -> str | None:
        for pattern, answer in TEMPLATES:
            if pattern.search(query):
                return answer
        return None


class Chatbot:
    """Templates first; the LLM when no template applies."""

    def __init__(self, max_tokens: int = 60) -> None:
        self.gateway = sarai_llm.get_gateway()
        self.templates = TemplateResponder()
        self.max_tokens = max_tokens

    async def respond(self, query: str) -> dict[str, Any]:
        started = time.perf_counter()
        answer = self.templates.respond(query)
        if answer is not None:
            return {
                "content": answer,
                "method": "template",
                "latency_ms": (time.perf_counter() - started) * 1000.0,
                "cached": False,
            }
        response = await self.gateway.chat(
            messages=[{"role": "user", "content": query}],
            max_tokens=self.max_tokens,  # concise answers
        )
        return {
            "content": str(response["content"]).strip(),
            "method": "llm",
            "latency_ms": response["latency_ms"],
            "cached": response["cached"],
        }


async def run(queries: list[str]) -> None:
    try:
        bot = Chatbot()
        for query in queries:
            reply = await bot.respond(query)
            print(f"user> {query}")
            print(f"bot>  {reply['content']}")
            print(f"      [{reply['method']}, {reply['latency_ms']:.1f} ms, cached={reply['cached']}]")
    finally:
        await sarai_llm.aclose()  # close the connections before asyncio.run closes the loop


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    queries = args or ["hola", "Suggest a name for a small grey cat.", "gracias"]
    try:
        asyncio.run(run(queries))
    except (sarai_llm.ConfigError, sarai_llm.NoProvidersError, sarai_llm.InvalidRequestError) as exc:
        print(f"chatbot: {exc}", file=sys.stderr)
        return 2
    except sarai_llm.SaraiLLMError as exc:
        print(f"chatbot: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
