"""Fuzzed arguments: wrong shapes and types for every argument of chat, stream_chat and embed.

The property: an invalid argument gives a documented sarai_llm error
(InvalidRequestError, or NoProvidersError for a provider that is not
configured), raised before any request leaves: the upstream's request counter
stays 0 over every example. Hypothesis generates a call with at least one
argument the documented rules (CONTRACT.md, the docstrings) reject; the
others are valid or wrong too.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterator
from typing import Any

import pytest
from faults import FaultyUpstream
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

import sarai_llm
from sarai_llm import InvalidRequestError, NoProvidersError, SaraiLLMError

DOCUMENTED = (InvalidRequestError, NoProvidersError)
PROVIDERS = ("ollama", "openai", "anthropic", "local")
ROLES = ("system", "user", "assistant", "tool", "function", "developer")
# Reserved keyword arguments a caller could pass through **provider_kwargs ("messages" cannot:
# it is chat's first parameter, so Python itself refuses it twice).
RESERVED = ("stream", "input", "api_key", "api_base", "base_url")
FUZZ = settings(
    max_examples=200,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)


@pytest.fixture
def up() -> Iterator[FaultyUpstream]:
    """A healthy upstream that counts requests; every provider points at it."""
    with FaultyUpstream() as upstream:
        sarai_llm.get_gateway(
            {
                "primary_provider": "local",
                "local_base_url": upstream.base_url,
                "ollama_base_url": upstream.base_url,
                "fallback_providers": ["ollama"],
                "local_timeout": 2,
                "ollama_timeout": 2,
            }
        )
        yield upstream
        assert upstream.requests == [], "an invalid call reached the upstream"


# --- strategies: anything, and the documented rules ---------------------------------------------


class Opaque:
    """An object no serialiser knows."""

    def __repr__(self) -> str:
        return "Opaque()"


_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=12),
    st.binary(max_size=8),
    st.complex_numbers(allow_nan=True, allow_infinity=True),
    st.decimals(allow_nan=True),
    st.fractions(),
    st.builds(Opaque),
    st.sampled_from([Ellipsis, int, str, dict, print]),
)
ANYTHING = st.recursive(
    _scalars,
    lambda inner: st.one_of(
        st.lists(inner, max_size=3),
        st.tuples(inner, inner),
        st.dictionaries(st.one_of(st.text(max_size=8), st.integers()), inner, max_size=3),
        st.frozensets(st.integers(), max_size=3),
    ),
    max_leaves=8,
)

_role = st.one_of(st.sampled_from(ROLES), ANYTHING)
_text = st.one_of(st.text(max_size=12), st.sampled_from(["\ud800", "a\udfffb"]))  # lone surrogates too
_part = st.one_of(
    st.fixed_dictionaries({"type": st.just("text"), "text": _text}),
    st.fixed_dictionaries({"type": ANYTHING}, optional={"text": ANYTHING}),
    ANYTHING,
)
_content = st.one_of(_text, ANYTHING, st.lists(_part, max_size=3))
_message = st.one_of(
    st.fixed_dictionaries({"role": _role, "content": _content}),
    st.fixed_dictionaries({"role": _role}, optional={"content": _content, "tool_calls": ANYTHING, "name": ANYTHING}),
    ANYTHING,
)
MESSAGES = st.one_of(
    st.lists(_message, max_size=3),
    st.tuples(_message),
    ANYTHING,
    st.just([]),
)


def strict_json(v: object) -> bool:
    """Encodable as standard JSON in UTF-8: no NaN / infinity, no lone surrogate, no foreign object."""
    try:
        json.dumps(v, allow_nan=False).encode("utf-8")
    except (TypeError, ValueError):
        return False
    return True


def valid_part(p: object) -> bool:
    return isinstance(p, dict) and isinstance(p.get("type"), str)


def valid_message(m: object) -> bool:
    """A message the documented rules accept: a role, and text, content parts or tool calls; plain JSON."""
    if not isinstance(m, dict) or not isinstance(m.get("role"), str) or m["role"] not in ROLES:
        return False
    if not strict_json(m):
        return False
    content = m.get("content")
    if isinstance(content, str):
        return True
    if content is None and "tool_calls" in m:
        calls = m["tool_calls"]
        return isinstance(calls, list) and len(calls) > 0 and all(isinstance(c, dict) for c in calls)
    return isinstance(content, list) and all(valid_part(p) for p in content)


def valid_messages(v: object) -> bool:
    return isinstance(v, list | tuple) and len(v) > 0 and all(valid_message(m) for m in v)


def valid_temperature(v: object) -> bool:
    return isinstance(v, int | float) and not isinstance(v, bool) and not math.isnan(v) and 0 <= v <= 2


def valid_max_tokens(v: object) -> bool:
    return v is None or (isinstance(v, int) and not isinstance(v, bool) and v >= 1)


def valid_model(v: object) -> bool:
    return v is None or (isinstance(v, str) and bool(v.strip()))


def valid_provider(v: object) -> bool:
    return v is None or (isinstance(v, str) and v.strip().lower() in PROVIDERS)


def valid_use_cache(v: object) -> bool:
    return isinstance(v, bool)


def valid_caller(v: object) -> bool:
    return v is None or (isinstance(v, str) and bool(v))


def valid_deadline(v: object) -> bool:
    return v is None or (isinstance(v, int | float) and not isinstance(v, bool) and 0 < v < math.inf)


def valid_text(v: object) -> bool:
    return isinstance(v, str) or (isinstance(v, list | tuple) and len(v) > 0 and all(isinstance(t, str) for t in v))


VALID = [{"role": "user", "content": "hi"}]

CHAT_ARGS = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.none(), st.text(max_size=8), ANYTHING),
        "provider": st.one_of(st.none(), st.sampled_from([*PROVIDERS, " Local ", "cohere", ""]), ANYTHING),
        "temperature": st.one_of(st.floats(-1, 3), ANYTHING),
        "max_tokens": st.one_of(st.none(), st.integers(-3, 3), ANYTHING),
        "use_cache": ANYTHING,
        "caller": st.one_of(st.none(), st.just(""), ANYTHING),
        "deadline": st.one_of(st.none(), st.floats(-1, 5), ANYTHING),
    },
)


def chat_call_is_invalid(messages: object, args: dict[str, Any]) -> bool:
    checks = [valid_messages(messages)]
    checks.append(valid_model(args.get("model")))
    checks.append(valid_provider(args.get("provider")))
    checks.append(valid_temperature(args.get("temperature", 0.7)))
    checks.append(valid_max_tokens(args.get("max_tokens")))
    checks.append(valid_use_cache(args.get("use_cache", True)))
    checks.append(valid_caller(args.get("caller")))
    checks.append(valid_deadline(args.get("deadline")))
    return not all(checks)


# --- chat ---------------------------------------------------------------------------------------


@FUZZ
@given(messages=MESSAGES, args=CHAT_ARGS)
async def test_fuzzed_chat_fails_before_the_network(up: FaultyUpstream, messages: Any, args: dict[str, Any]) -> None:
    assume(chat_call_is_invalid(messages, args))
    with pytest.raises(SaraiLLMError) as info:
        await sarai_llm.chat(messages, **args)
    assert isinstance(info.value, DOCUMENTED), repr(info.value)
    assert up.requests == []


@FUZZ
@given(args=CHAT_ARGS)
async def test_fuzzed_chat_parameters_with_valid_messages(up: FaultyUpstream, args: dict[str, Any]) -> None:
    assume(chat_call_is_invalid(VALID, args))
    with pytest.raises(SaraiLLMError) as info:
        await sarai_llm.chat(VALID, **args)
    assert isinstance(info.value, DOCUMENTED), repr(info.value)
    assert up.requests == []


@FUZZ
@given(name=st.sampled_from(RESERVED), value=ANYTHING)
async def test_reserved_keyword_arguments_are_refused(up: FaultyUpstream, name: str, value: Any) -> None:
    with pytest.raises(InvalidRequestError, match="set by sarai_llm"):
        await sarai_llm.chat(VALID, **{name: value})
    with pytest.raises(InvalidRequestError, match="set by sarai_llm"):
        sarai_llm.stream_chat(VALID, **{name: value})
    assert up.requests == []


# --- stream_chat: raises at the call site, before iteration ---------------------------------------


@FUZZ
@given(messages=MESSAGES, args=CHAT_ARGS)
def test_fuzzed_stream_chat_fails_at_the_call_site(up: FaultyUpstream, messages: Any, args: dict[str, Any]) -> None:
    assume(chat_call_is_invalid(messages, args))
    with pytest.raises(SaraiLLMError) as info:
        sarai_llm.stream_chat(messages, **args)  # no event loop: nothing can leave
    assert isinstance(info.value, DOCUMENTED), repr(info.value)
    assert up.requests == []


# --- embed --------------------------------------------------------------------------------------

EMBED_ARGS = st.fixed_dictionaries(
    {},
    optional={
        "model": st.one_of(st.none(), st.text(max_size=8), ANYTHING),
        "provider": st.one_of(st.none(), st.sampled_from([*PROVIDERS, "cohere", ""]), ANYTHING),
        "use_cache": ANYTHING,
        "caller": st.one_of(st.none(), st.just(""), ANYTHING),
        "deadline": st.one_of(st.none(), st.floats(-1, 5), ANYTHING),
    },
)
TEXTS = st.one_of(
    ANYTHING,
    st.lists(st.one_of(st.text(max_size=8), ANYTHING), max_size=3),
    st.tuples(st.text(max_size=4), ANYTHING),
    st.just([]),
)


@FUZZ
@given(text=TEXTS, args=EMBED_ARGS)
async def test_fuzzed_embed_fails_before_the_network(up: FaultyUpstream, text: Any, args: dict[str, Any]) -> None:
    checks = [
        valid_text(text),
        valid_model(args.get("model")),
        valid_provider(args.get("provider")),
        valid_use_cache(args.get("use_cache", True)),
        valid_caller(args.get("caller")),
        valid_deadline(args.get("deadline")),
    ]
    assume(not all(checks))
    with pytest.raises(SaraiLLMError) as info:
        await sarai_llm.embed(text, **args)
    assert isinstance(info.value, DOCUMENTED), repr(info.value)
    assert up.requests == []


@FUZZ
@given(messages=MESSAGES, args=CHAT_ARGS)
def test_sync_wrappers_raise_the_same_errors(up: FaultyUpstream, messages: Any, args: dict[str, Any]) -> None:
    assume(chat_call_is_invalid(messages, args))
    with pytest.raises(SaraiLLMError) as info:
        sarai_llm.chat_sync(messages, **args)
    assert isinstance(info.value, DOCUMENTED), repr(info.value)
    assert up.requests == []


# --- regressions found by fuzzing (issue 7): once bare TypeErrors or provider failures ------------


@pytest.mark.parametrize("role", [[], {"a": 1}, ["user"]], ids=["list", "dict", "list-of-role"])
async def test_unhashable_role_is_an_invalid_request(up: FaultyUpstream, role: Any) -> None:
    with pytest.raises(InvalidRequestError):
        await sarai_llm.chat([{"role": role, "content": "x"}])


@pytest.mark.parametrize("call", ["chat", "stream_chat", "embed"])
async def test_unhashable_provider_is_an_invalid_request(up: FaultyUpstream, call: str) -> None:
    with pytest.raises(InvalidRequestError):
        if call == "chat":
            await sarai_llm.chat(VALID, provider=["local"])
        elif call == "stream_chat":
            sarai_llm.stream_chat(VALID, provider=["local"])
        else:
            await sarai_llm.embed("x", provider={"local": 1})


@pytest.mark.parametrize(
    "message",
    [
        {"role": "user", "content": [{}]},
        {"role": "user", "content": [{"type": 5}]},
        {"role": "assistant", "content": None, "tool_calls": 5},
        {"role": "user", "content": [{"type": "text", "text": "x", "n": float("nan")}]},
        {"role": "user", "content": "\ud800"},
        {"role": "user", "content": "x", "name": Opaque()},
    ],
    ids=["part-without-type", "part-type-int", "tool-calls-int", "nan", "lone-surrogate", "foreign-object"],
)
async def test_unsendable_messages_are_invalid_requests(message: dict[str, Any]) -> None:
    with FaultyUpstream() as upstream:
        sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": upstream.base_url})
        with pytest.raises(InvalidRequestError):
            await sarai_llm.chat([message, {"role": "user", "content": "x"}])
        assert upstream.requests == []
        assert sarai_llm.get_stats()["total_errors"] == 0  # a caller's mistake is not a provider's failure
