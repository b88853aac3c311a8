"""The direct path: LiteLLM's own provider configs on one pooled client per event loop (LiteLLM's own).

``litellm.acompletion`` spends most of a call's CPU on orchestration sarai_llm does itself (a thread hop,
its wrappers, cost and logging). Here LiteLLM still does every byte of protocol work (its provider
config maps the parameters, builds headers, URL and body, and reads the answer, stream and errors),
and only the HTTP exchange is ours. :func:`plan` decides per request shape, before the call, whether
this path serves it exactly (tests/test_contract_direct.py compares both paths request by request);
anything else goes through ``acompletion``. A failed request is never retried on the other path. What
LiteLLM makes of a request's arguments besides its messages is made once per exact value (``_frames``).
Embeddings, OpenAI's and Ollama's, without ``aembedding``: :mod:`._embed`.
"""

from __future__ import annotations

import asyncio
import contextlib
import copy
import inspect
import json
import os
import time
import weakref
from collections.abc import AsyncIterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx
import litellm
import orjson
from litellm.anthropic_beta_gated_fields import strip_beta_gated_request_body
from litellm.anthropic_beta_headers_manager import update_request_with_filtered_beta
from litellm.constants import DEFAULT_CHAT_COMPLETION_PARAM_VALUES
from litellm.exceptions import APIConnectionError, MidStreamFallbackError, Timeout
from litellm.litellm_core_utils.url_utils import ensure_api_route
from litellm.llms.anthropic.chat.handler import ModelResponseIterator as AnthropicIterator
from litellm.llms.custom_httpx.http_handler import AsyncHTTPHandler, get_default_headers
from litellm.llms.custom_httpx.sse_lines import aiter_sse_lines
from litellm.llms.openai.common_utils import OpenAIError
from litellm.types.utils import LlmProviders, all_litellm_params
from litellm.utils import (
    ProviderConfigManager,
    get_optional_params,
    validate_and_fix_openai_messages,
)

from ._frozen import frozen, thawed

__all__ = ["Plan", "chat_config", "close_clients", "plan", "sdk_headers"]

# sarai_llm's provider -> LiteLLM's provider of its chats. Embeddings: _embed.py.
_CHAT = {"openai": "openai", "ollama_chat": "ollama_chat", "anthropic": "anthropic"}  # prefix -> provider
# Anthropic's config keeps request-scoped state for tools (name maps) and JSON mode: those stay with acompletion.
_NOT_FOR_ANTHROPIC = frozenset({"tools", "tool_choice", "response_format", "parallel_tool_calls"})
# OpenAI parameters whose mapping the contract tests cover; a provider-specific keyword (Ollama's
# num_ctx) may be any other name LiteLLM does not claim for itself, with a plain value.
_COVERED = frozenset(
    "temperature max_tokens max_completion_tokens top_p stop seed tools tool_choice response_format "
    "presence_penalty frequency_penalty user stream_options parallel_tool_calls".split()
)
_CLAIMED = frozenset(all_litellm_params) | frozenset(DEFAULT_CHAT_COMPLETION_PARAM_VALUES)
_CLAIMED |= frozenset(inspect.signature(litellm.completion).parameters)  # timeout, api_base, ...
_SCALARS = (str, int, float, bool)


def sdk_headers() -> bool:
    """Whether the openai SDK, which acompletion uses for OpenAI, would add headers of its own: an organization
    or project from LiteLLM's setting or the environment. The direct path leaves OpenAI requests to it then."""
    names = ("OPENAI_ORGANIZATION", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID")
    return litellm.organization is not None or any(name in os.environ for name in names)


def _servable(params: Mapping[str, Any]) -> bool:
    for key, value in params.items():
        if key in _COVERED:
            if key == "response_format" and not isinstance(value, dict):
                return False  # a pydantic class: acompletion converts it
        elif key in _CLAIMED or key.startswith("_") or not isinstance(value, _SCALARS):
            return False
    return True


class _Log:
    """What LiteLLM's configs call on a logging object while they transform (nothing to record)."""

    model_call_details: dict[str, Any] = {}

    def post_call(self, *args: Any, **kwargs: Any) -> None:
        pass

    def pre_call(self, *args: Any, **kwargs: Any) -> None:
        pass


_LOG = _Log()
_clients: weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, dict[bool, httpx.AsyncClient]]
_clients = weakref.WeakKeyDictionary()


def _client(credentials: bool) -> httpx.AsyncClient:
    """The running loop's pooled client (one per loop: a client cannot outlive or change its loop): LiteLLM's
    own, as its handlers and its openai SDK clients have it (its aiohttp transport, User-Agent, SSL settings,
    proxies, no cookies), which costs half of httpx's own transport per request, and which does not stall at
    concurrency 50 as httpx's pool does (bench/RESULTS.md). For a URL with ``user:password@`` (which LiteLLM's
    aiohttp transport refuses), httpx's own, which sends them as Basic credentials."""
    clients = _clients.setdefault(asyncio.get_running_loop(), {})
    client = clients.get(credentials)
    if client is None or client.is_closed:
        limits = httpx.Limits(max_connections=None, max_keepalive_connections=100)
        client = httpx.AsyncClient(headers=get_default_headers(), limits=limits, timeout=None) if credentials else None
        client = clients[credentials] = client or AsyncHTTPHandler(timeout=None).client
    return client


async def close_clients() -> None:
    """Close the running loop's clients, if it opened any."""
    for client in _clients.pop(asyncio.get_running_loop(), {}).values():
        await client.aclose()


@dataclass(slots=True)
class Plan:
    """One request the direct path serves: LiteLLM's config, and what it made of the request."""

    provider: str  # LiteLLM's provider name
    model: str  # without the provider prefix
    config: Any
    url: str
    headers: dict[str, Any]
    body: dict[str, Any]
    optional: dict[str, Any]
    litellm_params: dict[str, Any]
    messages: list[Any]
    timeout: float | None
    upstream_s: float = 0.0
    """Seconds spent waiting for the upstream's answer (headers and body)."""
    finish: str | None = None
    received: list[Any] = field(default_factory=list)
    embedding: bool = False

    async def post(self, stream: bool = False) -> httpx.Response:
        """POST the body; an error status raised as LiteLLM's config's error (its class and text)."""
        client = _client("@" in self.url.partition("//")[2].partition("/")[0])
        request = client.build_request(
            "POST", self.url, content=orjson.dumps(self.body), headers=self.headers, timeout=self.timeout
        )
        if "content-type" not in request.headers:  # what LiteLLM's own clients send then
            request.headers["Content-Type"] = "application/octet-stream"
        started = time.perf_counter()
        try:
            try:  # the head only (the body is read below)
                response = await client.send(request, stream=True)
            except (httpx.ReadError, httpx.RemoteProtocolError):  # closed before any answer: a pooled
                await _turn()  # connection the server had just closed (after a stream, say); once more on a new one
                response = await client.send(request, stream=True)
            try:
                if response.status_code >= 400:
                    await response.aread()
                    raise self._status_error(response, stream)
                if not stream:
                    await response.aread()
            except BaseException:
                await response.aclose()
                raise
        except Exception:
            await _turn()
            raise
        finally:
            self.upstream_s += time.perf_counter() - started
        return response

    def _status_error(self, response: httpx.Response, stream: bool = False) -> Exception:
        """LiteLLM's config's error for an error answer. The openai SDK, which acompletion uses for OpenAI,
        words it ``Error code: 401 - <the error's message>`` and keeps the error object as the body (which
        LiteLLM's error then says instead), but not for an embedding."""
        status, headers = response.status_code, dict(response.headers)
        if self.provider != "openai":  # LiteLLM's Anthropic stream handler gives it the body's bytes, as they are
            text = response.content if stream and self.provider == "anthropic" else response.text
            return self.config.get_error_class(text, status, headers)  # type: ignore[no-any-return]
        message, body = f"Error code: {status}", None
        try:
            answer = orjson.loads(response.text.strip())
        except orjson.JSONDecodeError:
            pass
        else:
            answer = answer.get("error", answer) if isinstance(answer, dict) else answer
            said = answer.get("message") if isinstance(answer, dict) else None
            message += f" - {said}" if isinstance(said, str) and said else ""
            body = answer if isinstance(answer, dict) and not self.embedding else None
        return OpenAIError(status, message, headers=headers, body=body)

    def litellm_error(self, exc: BaseException) -> BaseException:
        """``exc`` as ``acompletion`` raises it: LiteLLM's exception, the original as its cause."""
        if isinstance(exc, httpx.TimeoutException):
            error: BaseException = Timeout(f"{type(exc).__name__}: timed out", self.model, self.provider)
        elif isinstance(exc, httpx.TransportError) and self.provider in ("openai", "anthropic"):  # SDK's, handler's
            error = self.config.get_error_class("Connection error." if self.provider == "openai" else str(exc), 500, {})
        elif isinstance(exc, httpx.TransportError):  # what LiteLLM's own client's failures become
            error = APIConnectionError(str(exc) or type(exc).__name__, self.provider, self.model)
        else:
            error = exc
        try:
            error = litellm.exception_type(
                model=self.model, original_exception=error, custom_llm_provider=self.provider
            )
        except Exception as raised:  # it raises about as often as it returns
            error = raised
        if error is not exc and error.__cause__ is None:
            error.__cause__ = exc
        return error

    def response(self, raw: httpx.Response) -> Any:
        """LiteLLM's ``ModelResponse`` for a whole answer."""
        if self.provider == "openai":
            self.json(raw)
        return self.config.transform_response(
            model=self.model,
            raw_response=raw,
            model_response=litellm.ModelResponse(),
            logging_obj=_LOG,
            request_data=self.body,
            messages=self.messages,
            optional_params=self.optional,
            litellm_params=self.litellm_params,
            encoding=None,
            api_key=None,
            json_mode=None,
        )

    def json(self, raw: httpx.Response) -> Any:
        """The answer's JSON; a body that is not JSON as the openai SDK reads it (acompletion's behaviour)."""
        try:
            return orjson.loads(raw.content)
        except orjson.JSONDecodeError:  # not JSON, or JSON only json reads (NaN): json's value or words
            try:
                return json.loads(raw.content)
            except ValueError as exc:
                raise OpenAIError(500, str(exc)) from exc

    async def chunks(self, raw: httpx.Response) -> AsyncIterator[Any]:
        """LiteLLM's stream chunks of an answer being received (its config's iterator over the lines), named
        after the model asked for, as LiteLLM's stream wrapper names them; ``finish``: the provider's finish
        reason, None until one came. Closes ``raw`` at the end."""
        text = self._text(raw)
        if self.provider == "anthropic":  # its handler's iterator, over SSE lines
            iterator: Any = AnthropicIterator(aiter_sse_lines(text), sync_stream=False, json_mode=False, response=raw)
        else:
            lines = _checked(aiter_sse_lines(text)) if self.provider == "openai" else _lines(text)
            iterator = self.config.get_model_response_iterator(streaming_response=lines, sync_stream=False)
        try:
            async for chunk in iterator:
                if isinstance(chunk, dict):  # LiteLLM's marker for [DONE] and keep-alive lines
                    continue
                chunk.model = self.model
                for choice in chunk.choices:
                    self.finish = choice.finish_reason or self.finish
                self.received.append(chunk)
                yield chunk
            if self.finish is None and self.received:  # as LiteLLM's stream wrapper has it
                raise _BadEvent from self.config.get_error_class(_ENDED, 500, {})
        except (httpx.TransportError, _BadEvent) as exc:  # LiteLLM's stream wrapper reports a broken stream so
            error = self.litellm_error(exc.__cause__ or exc if isinstance(exc, _BadEvent) else exc)
            cause = error if isinstance(error, Exception) else None
            raise MidStreamFallbackError(str(error), self.model, self.provider, original_exception=cause) from exc
        finally:
            await raw.aclose()
            await _turn(0.0 if self.finish else 0.001)  # many servers close after a stream without saying so

    def counted_usage(self) -> Any:
        """The usage LiteLLM's stream wrapper reports for a stream whose provider reported none: counted."""
        try:
            return getattr(litellm.stream_chunk_builder(chunks=self.received, messages=self.messages), "usage", None)
        except Exception:  # nothing to count from
            return None

    async def _text(self, raw: httpx.Response) -> AsyncIterator[str]:
        started = time.perf_counter()
        async for text in raw.aiter_text():
            self.upstream_s += time.perf_counter() - started
            yield text
            started = time.perf_counter()
        self.upstream_s += time.perf_counter() - started


async def _turn(seconds: float = 0.0) -> None:
    """A turn of the loop after a stream or a failure: asyncio closes a socket given up on, and sees a close the
    server sent, only then. So a call returns with its connection closed, and the pool (aiohttp's: it takes a
    connection back at its last byte and never retries a POST) knows of a close that came with the end of a
    stream before it hands the connection out again. A stream cut short gives a closing server 1 ms more."""
    await asyncio.sleep(seconds)


async def _checked(lines: AsyncIterator[str]) -> AsyncIterator[str]:
    """SSE lines, each event's data checked as JSON: the openai SDK fails a stream on one it cannot read
    (acompletion's behaviour), where LiteLLM's iterator would skip it."""
    async for line in lines:
        if line.startswith("data:") and (data := line[5:].removeprefix(" ")).strip() != "[DONE]":
            try:
                json.loads(data)
            except ValueError as exc:  # raised past LiteLLM's iterator, which would reword a ValueError
                raise _BadEvent from exc
        yield line


class _BadEvent(Exception):
    """A stream that went wrong: an event that is not JSON, or no finish reason (``__cause__`` says)."""


_ENDED = "Stream ended before a finish_reason was received"


async def _lines(text: AsyncIterator[str]) -> AsyncIterator[str]:
    """Lines of a text stream (NDJSON), the last one even without its newline."""
    rest = ""
    async for piece in text:
        *lines, rest = (rest + piece).split("\n")
        for line in lines:
            yield line
    if rest:
        yield rest


_configs: dict[tuple[str, str], Any] = {}
# What LiteLLM made of a request's arguments other than its messages (its configs for the providers served
# here build the parameters, headers and URL from them alone): keyed by their exact values (tests/
# test_contract_direct.py, test_frames_made_once); the parameters kept frozen, handed out as new objects.
_frames: dict[Any, tuple[Any, dict[str, Any], str]] = {}


def chat_config(provider: str, model: str) -> Any:
    """LiteLLM's chat config of ``provider`` for ``model``, made once."""
    config = _configs.get((provider, model))
    if config is None:
        config = ProviderConfigManager.get_provider_chat_config(model=model, provider=LlmProviders(provider))
        _configs[(provider, model)] = config
    return config


async def plan(
    target: Mapping[str, Any],
    prefix: str,
    params: Mapping[str, Any],
    messages: Sequence[Mapping[str, Any]],
    *,
    stream: bool = False,
) -> Plan | None:
    """The direct request for one chat attempt (``target``: the adapter's acompletion arguments), or None
    when ``acompletion`` must serve it (a provider or request shape not covered)."""
    provider = _CHAT.get(prefix)
    if provider is None or not _servable(params) or (provider == "openai" and sdk_headers()):
        return None
    model = str(target["model"]).split("/", 1)[1]
    api_base, api_key, timeout = target.get("api_base"), target.get("api_key"), target.get("timeout")
    if provider == "anthropic":
        return await _anthropic(model, api_base, api_key, timeout, params, messages, stream)
    config = chat_config(provider, model)
    litellm_params: dict[str, Any] = {"custom_llm_provider": provider, "api_base": api_base}
    msgs = validate_and_fix_openai_messages([dict(m) for m in messages])  # as completion() does first
    try:
        key: Any = (provider, model, api_base, api_key, stream, frozen(params))
    except TypeError:  # a value of another type: made anew each time
        key = None
    frame = _frames.get(key)
    if frame is None:
        optional = get_optional_params(
            model=model, custom_llm_provider=provider, messages=msgs, stream=stream or None, max_retries=0, **params
        )
        headers = config.validate_environment(
            headers={},
            model=model,
            messages=msgs,
            optional_params=optional,
            litellm_params=litellm_params,
            api_key=api_key,
            api_base=api_base,
        )
        url = config.get_complete_url(api_base, api_key, model, optional, litellm_params, stream=stream)
        if len(_frames) >= 1024:
            _frames.clear()
        if key is not None:
            with contextlib.suppress(TypeError):  # LiteLLM made a value of another type: not kept
                _frames[key] = (frozen(optional), dict(headers), url)
    else:
        optional, headers, url = thawed(frame[0]), dict(frame[1]), frame[2]
    # LiteLLM's OpenAI handler transforms asynchronously (it differs: no None content); the others when asked.
    if provider == "openai" or config.uses_async_transform_request:
        body = await config.async_transform_request(model, msgs, dict(optional), litellm_params, headers)
    else:
        body = config.transform_request(model, msgs, dict(optional), litellm_params, headers)
    body.update(body.pop("extra_body", None) or {})  # as the openai SDK sends it
    if stream:
        body["stream"] = True
    return Plan(provider, model, config, url, headers, body, optional, litellm_params, msgs, timeout)


async def _anthropic(
    model: str,
    api_base: str | None,
    api_key: str | None,
    timeout: float | None,
    params: Mapping[str, Any],
    messages: Sequence[Mapping[str, Any]],
    stream: bool,
) -> Plan | None:
    """An Anthropic request as LiteLLM's Anthropic handler makes it: its config's headers and body, the beta
    headers filtered and beta-gated fields stripped. Tools, JSON mode and tool turns stay with acompletion."""
    if not (api_key and api_base) or _NOT_FOR_ANTHROPIC.intersection(params):  # else LiteLLM's settings decide
        return None
    if os.environ.get("LITELLM_ANTHROPIC_DISABLE_URL_SUFFIX"):
        return None
    if any(m.get("role") == "tool" or m.get("tool_calls") for m in messages):
        return None
    config = chat_config("anthropic", model)
    litellm_params: dict[str, Any] = {"custom_llm_provider": "anthropic", "api_base": api_base}
    msgs = validate_and_fix_openai_messages(copy.deepcopy([dict(m) for m in messages]))  # the handler's own copy
    try:
        optional = get_optional_params(
            model=model, custom_llm_provider="anthropic", messages=msgs, stream=stream or None, max_retries=0, **params
        )
    except Exception:  # a parameter Anthropic does not take (seed): acompletion says so
        return None
    optional.pop("stream", None)
    optional.pop("json_mode", None)
    sent = {**optional, "is_vertex_request": False}
    headers = config.validate_environment(
        api_key=api_key, headers={}, model=model, messages=msgs, optional_params=sent,
        litellm_params=litellm_params, api_base=api_base,
    )  # fmt: skip
    url = ensure_api_route(api_base, "v1/messages")
    body = await config.async_transform_request(model, msgs, sent, litellm_params, headers)
    headers, body = update_request_with_filtered_beta(
        headers=headers, request_data=body, provider="anthropic", api_base=url
    )
    body = dict(strip_beta_gated_request_body(body, headers, drop_params=None, model=model, provider="anthropic"))
    if stream:
        body["stream"] = True
    return Plan("anthropic", model, config, url, headers, body, optional, litellm_params, msgs, timeout)
