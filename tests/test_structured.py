"""Structured output through the pipeline: ``parsed``, its cache key, validation failures, a stream's ``.result``."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest
from pydantic import BaseModel
from upstream import Upstream

import sarai_llm

MESSAGES = [{"role": "user", "content": "Answer as JSON."}]
SCHEMA = {
    "type": "json_schema",
    "json_schema": {
        "name": "answer",
        "schema": {"type": "object", "properties": {"answer": {"type": "string"}}, "required": ["answer"]},
    },
}


class Answer(BaseModel):
    answer: str
    confidence: float = 1.0


def use(upstream: Any, **settings: Any) -> None:
    sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url, **settings})


async def test_a_pydantic_class_gives_a_validated_instance_cached_and_rebuilt(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.reply = '{"answer": "42", "confidence": 0.5}'

    first = await sarai_llm.chat(MESSAGES, response_format=Answer)
    again = await sarai_llm.chat(MESSAGES, response_format=Answer)

    assert first["parsed"] == Answer(answer="42", confidence=0.5) and not first["cached"]
    assert again["cached"] is True and again["parsed"] == first["parsed"]
    assert again["parsed"] is not first["parsed"]  # a fresh instance on every hit
    assert upstream.count("/chat/completions") == 1
    sent = upstream.requests[-1][1]["response_format"]
    assert sent["type"] == "json_schema" and "answer" in json.dumps(sent)  # LiteLLM sent the class's schema


async def test_the_key_covers_the_class_and_other_processes_hit(upstream: Any, tmp_path: Path) -> None:
    use(upstream, cache_dir=tmp_path / "shared")
    upstream.behaviour.reply = '{"answer": "42"}'

    class Other(BaseModel):
        answer: str
        extra: int = 0

    await sarai_llm.chat(MESSAGES, response_format=Answer)
    await sarai_llm.chat(MESSAGES, response_format=Other)
    assert upstream.count("/chat/completions") == 2  # another schema is another request
    script = tmp_path / "other_process.py"
    script.write_text(
        textwrap.dedent(
            f"""
            import asyncio, sys
            sys.path.insert(0, {str(Path(__file__).parent)!r})
            import sarai_llm
            from test_structured import Answer
            sarai_llm.get_gateway({{"primary_provider": "local", "local_base_url": {upstream.base_url!r},
                                     "cache_dir": {str(tmp_path / "shared")!r}}})
            r = asyncio.run(sarai_llm.chat({MESSAGES!r}, response_format=Answer))
            assert r["cached"] is True and r["parsed"] == Answer(answer="42"), r
            """
        )
    )
    subprocess.run([sys.executable, str(script)], check=True, env={**os.environ}, timeout=120)
    assert upstream.count("/chat/completions") == 2


async def test_content_that_does_not_validate_falls_back_and_is_not_cached(upstream: Any) -> None:
    good = Upstream()
    try:
        use(upstream, fallback_providers=["openai"], openai_base_url=good.base_url)
        upstream.behaviour.reply = '{"confidence": 0.5}'  # no "answer"
        good.behaviour.reply = '{"answer": "from the fallback"}'

        r = await sarai_llm.chat(MESSAGES, response_format=Answer)

        assert r["provider"] == "openai" and r["parsed"].answer == "from the fallback"
        stats = sarai_llm.get_stats()
        assert stats["providers"]["local"]["errors"] == 1 and stats["total_fallbacks"] == 1
        upstream.behaviour.reply = '{"answer": "now valid"}'
        sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url})
        assert (await sarai_llm.chat(MESSAGES, response_format=Answer))["parsed"].answer == "now valid"
    finally:
        good.stop()


async def test_a_validation_failure_names_the_field(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.reply = '{"answer": 3.5, "confidence": "high"}'
    with pytest.raises(sarai_llm.AllProvidersFailedError) as info:
        await sarai_llm.chat(MESSAGES, response_format=Answer)
    error = info.value.errors["local"]
    assert isinstance(error, sarai_llm.ProviderResponseError) and "Answer: answer:" in str(error)


@pytest.mark.parametrize(
    ("reply", "expected"), [('{"answer": "x"}', {"answer": "x"}), ("[1, 2]", None), ("not json", None)]
)
async def test_a_json_schema_gives_the_parsed_value(upstream: Any, reply: str, expected: Any) -> None:
    use(upstream)
    upstream.behaviour.reply = reply
    if expected is None:
        with pytest.raises(sarai_llm.AllProvidersFailedError, match="not JSON|lacks the required field 'answer'"):
            await sarai_llm.chat(MESSAGES, response_format=SCHEMA)
        return
    assert (await sarai_llm.chat(MESSAGES, response_format=SCHEMA))["parsed"] == expected
    assert (await sarai_llm.chat(MESSAGES, response_format={"type": "json_object"}))["parsed"] == expected


async def test_without_response_format_parsed_is_none_and_every_key_is_there(upstream: Any) -> None:
    use(upstream)
    for r in (await sarai_llm.chat(MESSAGES), await sarai_llm.chat(MESSAGES)):
        assert r["parsed"] is None and r["tool_calls"] == [] and r["reasoning_content"] is None
        assert set(r["usage"]) == {
            "prompt_tokens",
            "completion_tokens",
            "total_tokens",
            "cached_tokens",
            "reasoning_tokens",
        }


async def test_a_stream_has_the_result_once_it_ended(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.chunks = ['{"answer"', ': "streamed"}']

    stream = sarai_llm.stream_chat(MESSAGES, response_format=Answer)
    assert stream.result is None
    pieces = [piece async for piece in stream]
    result = stream.result

    assert "".join(pieces) == result["content"] == '{"answer": "streamed"}'
    assert result["parsed"] == Answer(answer="streamed") and result["cached"] is False
    assert result["usage"]["completion_tokens"] == 2 and result["provider"] == "local"
    replay = sarai_llm.stream_chat(MESSAGES, response_format=Answer)
    assert [piece async for piece in replay] == pieces
    assert replay.result["cached"] is True and replay.result["parsed"] == result["parsed"]


async def test_a_stream_that_does_not_validate_is_interrupted_and_not_cached(upstream: Any) -> None:
    use(upstream)
    upstream.behaviour.chunks = ['{"confidence"', ": 1}"]
    with pytest.raises(sarai_llm.StreamInterruptedError) as info:
        async for _ in sarai_llm.stream_chat(MESSAGES, response_format=Answer):
            pass
    assert isinstance(info.value.__cause__, sarai_llm.ProviderResponseError)
    upstream.behaviour.chunks = ['{"answer": "ok"}']
    assert "".join([p async for p in sarai_llm.stream_chat(MESSAGES, response_format=Answer)]) == '{"answer": "ok"}'


def test_the_blocking_stream_has_the_result_too(upstream: Any) -> None:
    use(upstream)
    stream = sarai_llm.stream_chat_sync(MESSAGES)
    assert "".join(stream) == "pong!" and stream.result["content"] == "pong!"
