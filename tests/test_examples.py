"""The examples in examples/ (the design document's three integrations, and a tool-using agent) run end to end.

Against the loopback stub (fast, in-process) and, marked ``integration``, as
scripts against the real local model server (the one ``make demo`` starts);
the agent against the fake gateway, which scripts the tool calls.
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from sarai_llm.testing import FakeGateway

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ("reasoner", "rag", "chatbot")


def _main(name: str) -> Any:
    return _example(name)["main"]


def _example(name: str) -> dict[str, Any]:
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")


@pytest.fixture
def stub(upstream: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    upstream.behaviour.reply = "stub answer"
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "local")
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_BASE_URL", upstream.base_url)
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_MODEL", "stub")
    return upstream


def test_reasoner_against_the_stub(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main("reasoner")(["Why?"]) == 0
    out = capsys.readouterr().out
    assert "answer:  stub answer" in out and "local / stub" in out
    body = stub.requests[-1][1]
    assert body["messages"][-1] == {"role": "user", "content": "Why?"} and body["temperature"] == 0.2


def test_rag_embeds_documents_and_synthesizes(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main("rag")(["Where is the cache?"]) == 0
    out = capsys.readouterr().out
    assert "answer: stub answer" in out
    assert out.count("\n  +") + out.count("\n  -") == 2  # two retrieved documents with their scores
    embedded = [body["input"] for path, body in stub.requests if path.endswith("/embeddings")]
    assert len(embedded[0]) == 6 and embedded[1] == ["Where is the cache?"]  # the collection in one call
    prompt = stub.requests[-1][1]["messages"][-1]["content"]
    assert prompt.startswith("Query: Where is the cache?") and "Results:" in prompt


def test_chatbot_uses_templates_first(stub: Any, capsys: pytest.CaptureFixture[str]) -> None:
    assert _main("chatbot")(["hola", "Tell me something", "gracias"]) == 0
    out = capsys.readouterr().out
    assert out.count("[template,") == 2 and out.count("[llm,") == 1
    assert stub.count("/chat/completions") == 1
    assert stub.requests[-1][1]["max_tokens"] == 60


def _call(name: str, arguments: str) -> dict[str, Any]:
    return {"function": {"name": name, "arguments": arguments}}  # the fake gives ids: call_1, call_2, ...


async def test_agent_runs_the_tools_and_feeds_their_results_back(fake_llm: FakeGateway) -> None:
    fake_llm.queue(
        {"tool_calls": [_call("add", '{"a": 19.5, "b": 22.5}')]},
        {"tool_calls": [_call("lookup", '{"city": "Lima"}')]},
        "42, and about 10 million people live in Lima.",
    )

    result = await _example("agent")["agent"]("19.5 + 22.5? People in Lima?")

    assert result["answer"] == "42, and about 10 million people live in Lima." and result["steps"] == 3
    first, second, third = fake_llm.calls_to("chat")
    assert [t["function"]["name"] for t in first.kwargs["tools"]] == ["add", "lookup"]
    assert first.messages is not None and first.messages[-1]["content"] == "19.5 + 22.5? People in Lima?"
    assert second.messages is not None and second.messages[-2:] == [
        {"role": "assistant", "content": None, "tool_calls": [{"id": "call_1", "type": "function", **_call(
            "add", '{"a": 19.5, "b": 22.5}')}]},
        {"role": "tool", "tool_call_id": "call_1", "content": "42.0"},
    ]  # fmt: skip
    assert third.messages is not None and third.messages[:-2] == second.messages  # the conversation grows
    assert third.messages[-1] == {
        "role": "tool",
        "tool_call_id": "call_2",
        "content": "Lima is the capital of Peru; about 10 million people live in its metropolitan area.",
    }


def test_agent_script_prints_each_tool_and_its_result(
    fake_llm: FakeGateway, capsys: pytest.CaptureFixture[str]
) -> None:
    fake_llm.queue({"tool_calls": [_call("nope", "{}"), _call("add", '{"a": 1}')]}, "done")
    assert _main("agent")(["Why?"]) == 0
    out = capsys.readouterr().out
    assert "tool nope({}) -> error: no tool named 'nope'" in out  # the model reads its mistakes
    assert 'tool add({"a": 1}) -> error: bad arguments for add' in out and "answer:   done  (2 requests)" in out


def test_agent_script_stops_at_max_steps(fake_llm: FakeGateway, capsys: pytest.CaptureFixture[str]) -> None:
    fake_llm.respond_with(lambda call: {"tool_calls": [_call("add", '{"a": 1, "b": 2}')]})  # never a final answer
    assert _main("agent")(["Loop"], max_steps=3) == 1
    assert capsys.readouterr().err == "agent: no final answer after 3 steps (tools called: 3)\n"
    assert len(fake_llm.calls_to("chat")) == 3


@pytest.mark.parametrize("name", NAMES)
def test_examples_fail_with_one_line_when_the_server_is_down(
    name: str, monkeypatch: pytest.MonkeyPatch, dead_url: str, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "local")
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_BASE_URL", dead_url)
    assert _main(name)(["Explain this"]) == 3
    err = capsys.readouterr().err
    assert err.startswith(f"{name}: All providers failed") and err.count("\n") == 1


@pytest.mark.integration
def test_examples_run_against_the_real_local_model(local_model: Any, tmp_path: Path) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_GATEWAY_")}
    env.update(
        LLM_GATEWAY_PRIMARY_PROVIDER="local",
        LLM_GATEWAY_LOCAL_BASE_URL=local_model.server_root,
        LLM_GATEWAY_LOCAL_MODEL=local_model.model,
        LLM_GATEWAY_CACHE_DIR=str(tmp_path / "cache"),
    )
    # All three at once: the server decodes two requests in parallel.
    procs = {
        name: subprocess.Popen(
            [sys.executable, str(EXAMPLES / f"{name}.py")],
            env=env,
            cwd=tmp_path,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for name in NAMES
    }
    outputs = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, f"{name} failed: {err}"
        outputs[name] = out
    assert "from:    local / smollm2" in outputs["reasoner"]
    answer = outputs["reasoner"].split("answer:", 1)[1].split("from:", 1)[0]
    assert answer.strip()
    assert "retrieved:" in outputs["rag"] and "answer: " in outputs["rag"]
    assert outputs["chatbot"].count("[template,") == 2 and outputs["chatbot"].count("[llm,") == 1
