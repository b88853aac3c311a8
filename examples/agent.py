"""A tool-using agent on ``sarai_llm.chat`` alone: the model calls tools, the loop runs them.

Each step sends the conversation with ``tools=``. When the answer has
``tool_calls``, the loop appends the assistant message that carries them
(``content: None``), runs each tool and appends its result as a
``{"role": "tool", "tool_call_id": ..., "content": ...}`` message, then asks
again; an answer without tool calls is the final one. ``max_steps`` bounds the
number of requests.

Which provider and model answer is decided by the ``LLM_GATEWAY_*`` settings;
use one that supports tool calling (OpenAI, Anthropic, an Ollama model with
tools, a llama.cpp server started with ``--jinja``)::

    export LLM_GATEWAY_PRIMARY_PROVIDER=openai LLM_GATEWAY_OPENAI_API_KEY=sk-...
    python examples/agent.py "What is 19.5 plus 22.5, and how many people live in Lima?"

Exit code 0 on an answer, 1 when there was none within ``max_steps``, 3 when a
request failed, 2 on a configuration error.
"""

from __future__ import annotations

import asyncio
import json
import sys
from collections.abc import Callable, Mapping
from typing import Any

import sarai_llm

SYSTEM = "You answer with the tools you have. Call a tool for any sum or any fact about a city."

FACTS = {
    "lima": "Lima is the capital of Peru; about 10 million people live in its metropolitan area.",
    "madrid": "Madrid is the capital of Spain; about 3.4 million people live in the city.",
}


def add(a: float, b: float) -> float:
    """The sum of two numbers."""
    return a + b


def lookup(city: str) -> str:
    """A fixed fact about a city."""
    return FACTS.get(city.strip().lower(), f"No facts about {city}.")


FUNCTIONS: dict[str, Callable[..., Any]] = {"add": add, "lookup": lookup}
TOOLS = [  # what the model is told about them: OpenAI's shape, for every provider
    {
        "type": "function",
        "function": {
            "name": "add",
            "description": "Add two numbers.",
            "parameters": {
                "type": "object",
                "properties": {"a": {"type": "number"}, "b": {"type": "number"}},
                "required": ["a", "b"],
            },
        },
    },
    {
        "type": "function",
        "function": {
            "name": "lookup",
            "description": "Look up a fact about a city (its population, what it is the capital of).",
            "parameters": {
                "type": "object",
                "properties": {"city": {"type": "string"}},
                "required": ["city"],
            },
        },
    },
]


class NoFinalAnswer(Exception):
    """The model was still calling tools after ``max_steps`` requests."""


def run_tool(call: Mapping[str, Any]) -> str:
    """One tool call's result as text; a mistake of the model is its result too, so it can correct itself."""
    function = call["function"]
    try:
        result = FUNCTIONS[function["name"]](**json.loads(function["arguments"] or "{}"))
    except KeyError:
        return f"error: no tool named {function['name']!r}"
    except (TypeError, ValueError) as exc:  # arguments that are not JSON, or not the tool's
        return f"error: bad arguments for {function['name']}: {exc}"
    return result if isinstance(result, str) else json.dumps(result)


async def agent(question: str, *, max_steps: int = 5) -> dict[str, Any]:
    """Answer ``question`` with the tools: ``{"answer", "steps", "tools"}`` (tools: ``(name, arguments, result)``)."""
    messages: list[dict[str, Any]] = [{"role": "system", "content": SYSTEM}, {"role": "user", "content": question}]
    used: list[tuple[str, str, str]] = []
    for step in range(1, max_steps + 1):
        r = await sarai_llm.chat(messages, tools=TOOLS, temperature=0.0, caller="agent")
        if not r["tool_calls"]:
            return {"answer": r["content"].strip(), "steps": step, "tools": used}
        messages.append({"role": "assistant", "content": None, "tool_calls": r["tool_calls"]})
        for call in r["tool_calls"]:
            result = run_tool(call)
            messages.append({"role": "tool", "tool_call_id": call["id"], "content": result})
            used.append((call["function"]["name"], call["function"]["arguments"], result))
    raise NoFinalAnswer(f"no final answer after {max_steps} steps (tools called: {len(used)})")


async def run(question: str, max_steps: int) -> None:
    try:
        result = await agent(question, max_steps=max_steps)
        print(f"question: {question}")
        for name, arguments, output in result["tools"]:
            print(f"  tool {name}({arguments}) -> {output}")
        print(f"answer:   {result['answer']}  ({result['steps']} requests)")
    finally:
        await sarai_llm.aclose()  # close the connections before asyncio.run closes the loop


def main(argv: list[str] | None = None, max_steps: int = 5) -> int:
    args = sys.argv[1:] if argv is None else argv
    question = " ".join(args) or "What is 19.5 plus 22.5, and how many people live in Lima?"
    try:
        asyncio.run(run(question, max_steps))
    except NoFinalAnswer as exc:
        print(f"agent: {exc}", file=sys.stderr)
        return 1
    except (sarai_llm.ConfigError, sarai_llm.NoProvidersError, sarai_llm.InvalidRequestError) as exc:
        print(f"agent: {exc}", file=sys.stderr)
        return 2
    except sarai_llm.SaraiLLMError as exc:
        print(f"agent: {exc}", file=sys.stderr)
        return 3
    return 0


if __name__ == "__main__":
    sys.exit(main())
