"""The public API as a typed caller sees it: ``mypy --strict`` (the project's settings) over a module of
``assert_type`` checks. One text embeds to ``list[float]``, a list to ``list[list[float]]``, through the
module-level functions, the sync API and the fake alike; results are the TypedDicts of the contract.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent

CALLER = """
from typing import assert_type

import sarai_llm
from sarai_llm.testing import FakeGateway

MESSAGES = [{"role": "user", "content": "hi"}]


async def main() -> None:
    assert_type(await sarai_llm.embed("text"), list[float])
    assert_type(await sarai_llm.embed(["a", "b"], caller="rag"), list[list[float]])
    assert_type(sarai_llm.embed_sync("text"), list[float])
    assert_type(sarai_llm.embed_sync(("a", "b")), list[list[float]])
    fake = FakeGateway()
    assert_type(await fake.embed("text", deadline=5.0), list[float])
    assert_type(await fake.embed(["a"]), list[list[float]])
    answer = await sarai_llm.chat(MESSAGES, temperature=0.2)
    assert_type(answer["content"], str)
    assert_type(sarai_llm.chat_sync(MESSAGES)["cached"], bool)
    assert_type((await fake.chat(MESSAGES))["latency_ms"], float)
    async for piece in sarai_llm.stream_chat(MESSAGES):
        assert_type(piece, str)
"""


def _mypy(tmp_path: Path, source: str) -> subprocess.CompletedProcess[str]:
    module = tmp_path / "typed_caller.py"
    module.write_text(source, encoding="utf-8")
    command = [sys.executable, "-m", "mypy", "--config-file", str(REPO / "pyproject.toml")]
    command += ["--cache-dir", str(tmp_path / ".mypy_cache"), str(module)]
    return subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_a_typed_caller_gets_precise_types(tmp_path: Path) -> None:
    done = _mypy(tmp_path, CALLER)
    assert done.returncode == 0, done.stdout + done.stderr
    wrong = CALLER + "    assert_type(await sarai_llm.embed('text'), list[list[float]])\n"
    done = _mypy(tmp_path, wrong)  # the check can fail: a wrong expectation is caught
    assert done.returncode == 1 and 'Expression is of type "list[float]", not "list[list[float]]"' in done.stdout
