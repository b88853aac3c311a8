"""The examples in examples/ (the design document's three integrations) run end to end.

Against the loopback stub (fast, in-process) and, marked ``integration``, as
scripts against the real local model server (the one ``make demo`` starts).
"""

from __future__ import annotations

import os
import runpy
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
NAMES = ("reasoner", "rag", "chatbot")


def _main(name: str) -> Any:
    return runpy.run_path(str(EXAMPLES / f"{name}.py"), run_name=f"example_{name}")["main"]


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
