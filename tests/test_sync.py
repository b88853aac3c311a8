"""The sync API: from a plain script, and from code already inside a running event loop."""

from __future__ import annotations

import asyncio
import json
import os
import subprocess
import sys
import textwrap
import threading
from pathlib import Path
from typing import Any

import pytest

import sarai_llm
from sarai_llm import sync

USER = [{"role": "user", "content": "hola"}]
TESTS = Path(__file__).resolve().parent


@pytest.fixture
def stub(upstream: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "local")
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_BASE_URL", upstream.base_url)
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_MODEL", "stub")
    return upstream


def test_plain_script(stub: Any, tmp_path: Path) -> None:
    """A script with no event loop of its own: every sync function, one shared gateway, a clean exit."""
    script = tmp_path / "script.py"
    script.write_text(
        textwrap.dedent(
            """
            import json, sarai_llm
            m = [{"role": "user", "content": "hola"}]
            first = sarai_llm.chat_sync(m)
            again = sarai_llm.chat_sync(m)
            pieces = list(sarai_llm.stream_chat_sync(m, use_cache=False))
            vector = sarai_llm.embed_sync("text")
            health = sarai_llm.health_check_sync()
            print(json.dumps({"first": first, "again": again, "pieces": pieces, "vector": vector,
                              "health": health, "stats": sarai_llm.get_stats()}))
            """
        )
    )
    env = {k: v for k, v in os.environ.items()}
    result = subprocess.run(
        [sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    out = json.loads(result.stdout)
    assert out["first"]["content"] == "pong" and out["first"]["cached"] is False
    assert out["again"]["cached"] is True
    assert "".join(out["pieces"]) == "pong!"
    assert len(out["vector"]) == 4
    assert out["health"] == {"local": True}
    assert out["stats"]["total_requests"] == 4  # two chats, one stream, one embed: one gateway counted all
    assert out["stats"]["cache"]["hits"] == 1
    # The background loop is stopped at exit: no "Task was destroyed" or unclosed-resource noise.
    assert result.stderr == ""


def test_in_process_script_style(stub: Any) -> None:
    first = sarai_llm.chat_sync(USER)
    again = sarai_llm.chat_sync(USER)

    assert first["content"] == "pong" and again["cached"] is True
    assert stub.count("/chat/completions") == 1
    assert sarai_llm.embed_sync(["a", "b"]) == sarai_llm.embed_sync(["a", "b"])
    assert sarai_llm.health_check_sync("local", detailed=True)["local"]["ok"] is True


def test_inside_a_running_event_loop_like_a_notebook_cell(stub: Any) -> None:
    """Code already inside ``asyncio.run`` calls the sync API synchronously, as a Jupyter cell does."""

    def cell() -> dict[str, Any]:  # an ordinary function, unaware of the loop around it
        return sarai_llm.chat_sync(USER)

    async def notebook() -> tuple[Any, ...]:
        gateway = sarai_llm.get_gateway()
        inside = asyncio.get_running_loop()
        first = cell()
        pieces = list(sarai_llm.stream_chat_sync(USER, use_cache=False))
        vector = sarai_llm.embed_sync("x")
        # The async API on the caller's own loop shares the same gateway, cache and stats.
        awaited = await sarai_llm.chat(USER)
        assert asyncio.get_running_loop() is inside
        return gateway, first, pieces, vector, awaited

    gateway, first, pieces, vector, awaited = asyncio.run(notebook())

    assert sarai_llm.get_gateway() is gateway
    assert first["content"] == "pong" and first["cached"] is False
    assert "".join(pieces) == "pong!"
    assert len(vector) == 4
    assert awaited["cached"] is True  # written by the sync call, read by the async one
    stats = sarai_llm.get_stats()
    assert stats["total_requests"] == 4
    assert stats["cache"]["hits"] == 1
    assert stub.count("/chat/completions") == 2  # the chat miss and the uncached stream


def test_one_background_loop_serves_every_call(stub: Any) -> None:
    seen: list[threading.Thread | None] = []

    async def where() -> None:
        seen.append(sync._runner._thread)
        assert threading.current_thread() is sync._runner._thread

    sarai_llm.chat_sync(USER)
    sync._runner.run(where())
    asyncio.run(asyncio.to_thread(sarai_llm.chat_sync, USER))  # from another thread, too
    sync._runner.run(where())
    assert seen[0] is seen[1] and seen[0] is not None and seen[0].daemon


def test_a_stopped_background_loop_is_restarted(stub: Any) -> None:
    sarai_llm.chat_sync(USER)
    old = sync._runner._thread
    sync._runner.run(sarai_llm.get_gateway().close_connections())
    sync._runner.stop()  # what the atexit hook does, after closing the gateway
    assert old is not None and not old.is_alive()

    assert sarai_llm.chat_sync(USER)["cached"] is True
    assert sync._runner._thread is not old


def test_errors_are_the_gateway_errors(monkeypatch: pytest.MonkeyPatch, dead_url: str) -> None:
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "local")
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_BASE_URL", dead_url)

    with pytest.raises(sarai_llm.AllProvidersFailedError, match="^All providers failed"):
        sarai_llm.chat_sync(USER, use_cache=False)
    with pytest.raises(sarai_llm.InvalidRequestError):
        sarai_llm.chat_sync([])
    with pytest.raises(sarai_llm.InvalidRequestError):
        sarai_llm.stream_chat_sync(USER, temperature=9)  # at the call site, before iteration
    assert sarai_llm.health_check_sync() == {"local": False}


def test_breaking_out_of_a_stream_closes_it(stub: Any) -> None:
    stub.behaviour.chunks = ["a", "b", "c", "d"]
    stream = sarai_llm.stream_chat_sync(USER)
    assert next(stream) == "a"
    stream.close()  # what ``break`` in a for loop does, once the iterator is dropped

    # A partial stream is never cached: the full request goes upstream again.
    assert "".join(sarai_llm.stream_chat_sync(USER)) == "abcd"
    assert stub.count("/chat/completions") == 2


def test_calling_sync_from_the_background_loop_itself_fails_clearly(stub: Any) -> None:
    async def nested() -> Any:
        return sarai_llm.chat_sync(USER)

    with pytest.raises(RuntimeError, match="use the async API"):
        sync._runner.run(nested())


def test_sync_api_uses_an_installed_fake(fake_llm: Any) -> None:
    fake_llm.queue("scripted")

    assert sarai_llm.chat_sync(USER)["content"] == "scripted"
    assert "".join(sarai_llm.stream_chat_sync(USER)) == "fake response"
    assert len(sarai_llm.embed_sync("x")) == 8
    assert [c.method for c in fake_llm.calls] == ["chat", "stream_chat", "embed"]


def test_sync_call_while_the_same_request_is_in_flight_on_the_callers_loop(stub: Any) -> None:
    """A notebook starts a task, then a cell asks the same thing synchronously.

    The sync call must not wait on the task's future (it belongs to the notebook's loop,
    which the sync call itself is blocking); it should make its own request.
    """
    stub.behaviour.delay = 0.3

    async def notebook() -> tuple[dict[str, Any], dict[str, Any]]:
        task = asyncio.create_task(sarai_llm.chat(USER))
        await asyncio.sleep(0.1)  # the task's request is now in flight
        try:
            blocking = sarai_llm.chat_sync(USER)
        finally:
            awaited = await task  # even when the sync call failed: no request left cut
            await sarai_llm.get_gateway().close_connections()  # this loop's; the background loop keeps its own
        return blocking, awaited

    blocking, awaited = asyncio.run(notebook())
    assert blocking["content"] == awaited["content"] == "pong"


@pytest.mark.integration
def test_sync_api_inside_a_loop_against_the_real_local_model(local_model: Any, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "local")
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_BASE_URL", local_model.server_root)
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_MODEL", local_model.model)
    question = [{"role": "user", "content": "Name one colour."}]

    async def notebook() -> tuple[dict[str, Any], dict[str, Any]]:
        first = sarai_llm.chat_sync(question, temperature=0.0, max_tokens=8)
        return first, await sarai_llm.chat(question, temperature=0.0, max_tokens=8)

    first, second = asyncio.run(notebook())
    assert first["content"] and first["provider"] == "local" and not first["cached"]
    assert second["cached"] is True and second["content"] == first["content"]
    assert len(sarai_llm.embed_sync("colour")) > 8


def test_close_connections_closes_only_the_running_loops() -> None:
    """A notebook: sync calls on the background loop, awaited calls on its own loop."""
    from faults import FaultyUpstream

    with FaultyUpstream() as up:
        gateway = sarai_llm.get_gateway({"primary_provider": "local", "local_base_url": up.base_url})
        sarai_llm.chat_sync(USER, use_cache=False)  # a kept-alive connection of the background loop

        async def cell() -> None:
            await sarai_llm.chat(USER, use_cache=False)  # and one of this loop
            assert up.open_connections == 2
            await gateway.close_connections()
            await asyncio.sleep(0.05)  # a closed transport lets go of its socket on the next turn

        asyncio.run(cell())
        assert up.open_connections == 1  # the background loop's connection was left alone...
        assert sarai_llm.chat_sync(USER, use_cache=False)["content"] == "Hello world"  # ...and still serves
        assert up.open_connections == 1
