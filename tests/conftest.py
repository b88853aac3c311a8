"""Shared fixtures.

* Every test runs isolated from the developer's environment (no `LLM_GATEWAY_*`
  variables, a fresh working directory so no stray `.env` / `config.yaml` is read, its
  own cache directory, and a fresh gateway singleton).
* `local_model` (session-scoped) starts a real local LLM (llama.cpp's llama-server with
  SmolLM2-135M, plus an Ollama-API translator) for tests marked `integration`.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO / "scripts"))

import localmodel  # noqa: E402  (stdlib-only helper in scripts/)


def _reset_gateway() -> None:
    try:
        import sarai_llm

        sarai_llm.reset_gateway()
    except (ImportError, AttributeError):
        pass  # the package (or its reset_gateway) does not exist yet


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    for name in list(os.environ):
        if name.startswith("LLM_GATEWAY_"):
            monkeypatch.delenv(name)
    workdir = tmp_path / "cwd"
    workdir.mkdir()
    monkeypatch.chdir(workdir)
    monkeypatch.setenv("LLM_GATEWAY_CACHE_DIR", str(tmp_path / "cache"))
    _reset_gateway()
    yield
    _reset_gateway()


@pytest.fixture(scope="session")
def local_model() -> Iterator[Any]:
    """The running servers: `.openai_base`, `.server_root`, `.ollama_base`, `.model`."""
    missing = None
    try:
        localmodel.installed_paths()
    except localmodel.NotInstalledError as exc:
        missing = str(exc)
    if missing:
        # Fail, never skip: a green run must mean that the real model was exercised.
        pytest.fail(missing, pytrace=False)
    with localmodel.local_model() as lm:
        yield lm


@pytest.fixture
def upstream() -> Iterator[Any]:
    """A loopback OpenAI-compatible stub that counts requests (tests/upstream.py)."""
    from upstream import Upstream

    up = Upstream()
    yield up
    up.stop()


@pytest.fixture
def dead_url() -> str:
    """A loopback URL where nothing listens (the port was just released)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    return f"http://127.0.0.1:{port}"


@pytest.fixture(autouse=True)
async def _close_network_clients(_isolated_env: None) -> Any:
    """Close LiteLLM's cached HTTP clients in the test's own event loop.

    LiteLLM caches clients per event loop; each test has its own loop, and a
    client left to the collector warns (and warnings are errors here).
    Depends on ``_isolated_env`` so that it runs first at teardown, while the
    test's gateway is still the process-wide one.
    """
    yield
    import sarai_llm
    from sarai_llm import sync

    if sync._runner.running:  # the sync API's clients live on its background loop: close them there
        sync._shutdown()
    await sarai_llm.aclose()
