"""A module's tests with the fake gateway: no server, no network, no LiteLLM.

Only the ``fake_llm`` fixture is used; it comes from sarai_llm's pytest plugin
(entry point ``pytest11``), not from this repository's conftest.py.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
from sample_module import reasoner

import sarai_llm
from sarai_llm.testing import FakeGateway, all_providers_failed

HERE = Path(__file__).resolve().parent


@pytest.fixture(autouse=True)
def _no_server(monkeypatch: pytest.MonkeyPatch, dead_url: str) -> None:
    # Point the real configuration at a port where nothing listens: a test that
    # reached the real gateway would fail instead of silently calling a server.
    monkeypatch.setenv("LLM_GATEWAY_PRIMARY_PROVIDER", "local")
    monkeypatch.setenv("LLM_GATEWAY_LOCAL_BASE_URL", dead_url)


async def test_reasoner_sends_the_task_and_returns_the_answer(fake_llm: FakeGateway) -> None:
    fake_llm.queue("Because the sky scatters blue light.")

    answer = await reasoner.LLMReasoner().reason("Why is the sky blue?")

    assert answer == "Because the sky scatters blue light."
    call = fake_llm.last_call
    assert call.method == "chat"
    assert call.messages == [
        {"role": "system", "content": reasoner.SYSTEM_PROMPT},
        {"role": "user", "content": "Why is the sky blue?"},
    ]
    assert call.kwargs["temperature"] == 0.2


async def test_decide_reads_yes_and_no(fake_llm: FakeGateway) -> None:
    fake_llm.queue("Yes.", "no, never")

    assert await reasoner.decide("Is water wet?") == "yes"
    assert await reasoner.decide("Is fire cold?") == "no"
    assert fake_llm.prompts == ["Answer yes or no: Is water wet?", "Answer yes or no: Is fire cold?"]
    assert all(c.kwargs["max_tokens"] == 3 for c in fake_llm.calls)


async def test_decide_degrades_when_every_provider_fails(fake_llm: FakeGateway) -> None:
    fake_llm.queue(all_providers_failed("ollama", "connection refused"))

    assert await reasoner.decide("Is it up?") == "unknown"


def test_sync_entry_point_uses_the_fake_too(fake_llm: FakeGateway) -> None:
    fake_llm.respond_with(lambda call: f"summary of {len(call.prompt or '')} chars")

    assert reasoner.summarize("a long text") == "summary of 22 chars"
    assert sarai_llm.get_stats()["total_requests"] == 1


def test_the_fixture_comes_from_the_installed_plugin(tmp_path: Path) -> None:
    """A project with no conftest.py gets ``fake_llm`` from sarai_llm's entry point, and never loads LiteLLM."""
    project = tmp_path / "project"
    (project / "sample_module").mkdir(parents=True)
    for name in ("__init__.py", "reasoner.py"):
        source = HERE / "sample_module" / name
        (project / "sample_module" / name).write_text(source.read_text())
    (project / "test_it.py").write_text(
        textwrap.dedent(
            """
            import sys
            from sample_module.reasoner import LLMReasoner, decide

            async def test_with_fixture(fake_llm):
                fake_llm.queue("42", "yes")
                assert await LLMReasoner().reason("6 x 7?") == "42"
                assert await decide("ok?") == "yes"
                assert len(fake_llm.calls) == 2
                assert not [m for m in sys.modules if m.split(".")[0] == "litellm"]
            """
        )
    )
    env = {"PATH": "/usr/bin:/bin", "HOME": str(tmp_path), "PYTHONPATH": str(project)}
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "-o", "asyncio_mode=auto", str(project)],
        cwd=project,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert "1 passed" in result.stdout
