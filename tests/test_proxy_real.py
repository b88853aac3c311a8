"""The file `sarai-llm export litellm-proxy` writes, served by a real LiteLLM Proxy.

The proxy (`litellm --config FILE`, installed in its own venv by
scripts/install-litellm-proxy.sh) starts once for the module on the exported file and
forwards to loopback stub upstreams (tests/upstream.py) that count what they receive:
an answer, a fallback when the primary's upstream is down, a custom provider, the
configured prices, and two deployments of one provider (both serve; with one down every
call still succeeds inside the provider). sarai_llm itself is one of the proxy's clients.
Without the proxy venv the module is skipped, except under CI (`CI` set), where it fails.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest
import yaml
from localmodel import SERVERS_DIR
from upstream import Upstream

from sarai_llm import Gateway
from sarai_llm.config import GatewayConfig

PROXY = SERVERS_DIR / "proxy-venv" / "bin" / "litellm"
MASTER_KEY = "sk-master-proxy-test-4242"
OPENAI_KEY = "sk-openai-proxy-TOPSECRET-77"
CUSTOM_KEY = "gsk-custom-proxy-TOPSECRET-88"
STARTUP_TIMEOUT = 120.0  # seconds; the proxy takes ~7 s on 2 cores

# The gateways' configuration: the primary's server is down; `openai` is priced; `mistralhost` is a custom
# provider of another LiteLLM kind (mistral: OpenAI-compatible); `pool` is a custom provider on two servers.
CONFIG = """
llm_gateway:
  primary_provider: local
  fallback_providers: [openai, mistralhost]
  local: {{base_url: "{dead}", default_model: stub-down}}
  openai:
    base_url: "{openai}"
    default_model: stub-openai
    embed_model: stub-embed
    input_cost_per_token: 0.000001
    output_cost_per_token: 0.000002
  providers:
    mistralhost: {{model: "mistral/stub-custom", base_url: "{custom}/v1", api_key: "${{CUSTOM_KEY_VAR}}"}}
    pool:
      model: "openai/stub-pool"
      deployments: ["{d1}", {{base_url: "{d2}", weight: 1}}]
  cache: {{enabled: false}}
"""


@dataclass
class Proxy:
    url: str
    upstreams: dict[str, Upstream]
    exported: dict[str, Any]  # the exported file, parsed
    log: Path

    def chat(self, model: str, text: str) -> httpx.Response:
        with httpx.Client(trust_env=False, timeout=60) as client:
            return client.post(
                f"{self.url}/v1/chat/completions",
                headers={"Authorization": f"Bearer {MASTER_KEY}"},
                json={"model": model, "messages": [{"role": "user", "content": text}]},
            )

    def answer(self, model: str, text: str) -> str:
        response = self.chat(model, text)
        assert response.status_code == 200, (response.status_code, response.text[:500], self.log_tail())
        return str(response.json()["choices"][0]["message"]["content"])

    def log_tail(self) -> str:
        return "\n".join(self.log.read_text(errors="replace").splitlines()[-40:])


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _clean_env() -> dict[str, str]:
    """This process's environment without proxy variables or sarai_llm settings: loopback stays loopback."""
    env = {k: v for k, v in os.environ.items() if not k.lower().endswith("_proxy") and not k.startswith("LLM_GATEWAY_")}
    return env | {"NO_PROXY": "127.0.0.1,localhost", "no_proxy": "127.0.0.1,localhost"}


def _export(workdir: Path, upstreams: dict[str, Upstream], env: dict[str, str]) -> Path:
    """Write the gateways' config.yaml and export it with the command line, as a user would."""
    dead = f"http://127.0.0.1:{_free_port()}"
    urls = {name: up.base_url for name, up in upstreams.items()}
    (workdir / "config.yaml").write_text(CONFIG.format(dead=dead, **urls))
    out = workdir / "proxy.yaml"
    cli = Path(sys.executable).with_name("sarai-llm")
    subprocess.run([str(cli), "export", "litellm-proxy", "-o", str(out)], cwd=workdir, env=env, check=True, timeout=60)
    return out


def _stop(process: subprocess.Popen[bytes]) -> None:
    """Stop the proxy and whatever it started (its process group): SIGTERM, then SIGKILL."""
    for sig, wait in ((signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            break
        try:
            process.wait(wait)
            break
        except subprocess.TimeoutExpired:
            continue


@pytest.fixture(scope="module")
def proxy(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Proxy]:
    if not PROXY.exists():
        reason = f"LiteLLM's proxy is not installed ({PROXY}): run `bash scripts/install-litellm-proxy.sh` (make test)"
        if os.environ.get("CI"):
            pytest.fail(reason, pytrace=False)  # CI must exercise the real proxy, never skip it silently
        pytest.skip(reason)
    workdir = tmp_path_factory.mktemp("proxy")
    upstreams = {name: Upstream() for name in ("openai", "custom", "d1", "d2")}
    for name, up in upstreams.items():
        up.behaviour.reply = f"from {name}"
    process: subprocess.Popen[bytes] | None = None
    try:
        env = _clean_env() | {"LLM_GATEWAY_OPENAI_API_KEY": OPENAI_KEY, "CUSTOM_KEY_VAR": CUSTOM_KEY}
        exported_file = _export(workdir, upstreams, env)
        text = exported_file.read_text()
        assert OPENAI_KEY not in text and CUSTOM_KEY not in text
        # The proxy host sets what the file's header names: the secrets with the gateways' values.
        env |= {"LITELLM_MASTER_KEY": MASTER_KEY, "LLM_GATEWAY_MISTRALHOST_API_KEY": CUSTOM_KEY}
        env |= {"LITELLM_LOCAL_MODEL_COST_MAP": "True"}  # never fetch the price list
        port = _free_port()
        log = workdir / "proxy.log"
        started = time.monotonic()
        with log.open("wb") as sink:
            command = [str(PROXY), "--config", str(exported_file), "--host", "127.0.0.1", "--port", str(port)]
            process = subprocess.Popen(
                command, cwd=workdir, env=env, stdout=sink, stderr=subprocess.STDOUT, start_new_session=True
            )
        running = Proxy(f"http://127.0.0.1:{port}", upstreams, yaml.safe_load(text), log)
        with httpx.Client(trust_env=False, timeout=5) as client:
            while True:
                if process.poll() is not None:
                    pytest.fail(f"the proxy exited ({process.returncode}):\n{running.log_tail()}", pytrace=False)
                if time.monotonic() - started > STARTUP_TIMEOUT:
                    pytest.fail(f"the proxy did not start in {STARTUP_TIMEOUT:g} s:\n{running.log_tail()}")
                try:
                    if client.get(f"{running.url}/health/liveliness").status_code == 200:
                        break
                except httpx.TransportError:
                    pass
                time.sleep(0.2)
        print(f"LiteLLM Proxy ready in {time.monotonic() - started:.1f} s")  # shown with -s
        yield running
    finally:
        if process is not None:
            _stop(process)
        for up in upstreams.values():
            up.stop()


def counts(proxy: Proxy) -> dict[str, int]:
    return {name: up.count("/chat/completions") for name, up in proxy.upstreams.items()}


def test_an_answer_with_its_model_and_key(proxy: Proxy) -> None:
    before = counts(proxy)
    response = proxy.chat("openai/stub-openai", "an answer")
    assert response.status_code == 200, response.text
    assert response.json()["choices"][0]["message"]["content"] == "from openai"
    path, body = proxy.upstreams["openai"].requests[-1]
    assert path == "/v1/chat/completions" and body["model"] == "stub-openai"
    assert counts(proxy) == before | {"openai": before["openai"] + 1}
    # The configured prices reach the proxy's own accounting: 5 prompt and 2 completion tokens.
    assert float(response.headers["x-litellm-response-cost"]) == pytest.approx(5 * 1e-6 + 2 * 2e-6)


def test_fallback_when_the_primarys_upstream_is_down(proxy: Proxy) -> None:
    assert proxy.exported["router_settings"]["fallbacks"][0] == {
        "local/stub-down": ["openai/stub-openai", "mistralhost/stub-custom"]
    }
    before = counts(proxy)
    for i in range(3):  # before and after the primary cools down
        assert proxy.answer("local/stub-down", f"fallback {i}") == "from openai"
    assert counts(proxy) == before | {"openai": before["openai"] + 3}


def test_a_custom_provider(proxy: Proxy) -> None:
    (entry,) = [e for e in proxy.exported["model_list"] if e["model_name"] == "mistralhost/stub-custom"]
    assert entry["litellm_params"]["model"] == "mistral/stub-custom"
    assert entry["litellm_params"]["api_key"] == "os.environ/LLM_GATEWAY_MISTRALHOST_API_KEY"
    assert proxy.answer("mistralhost/stub-custom", "custom") == "from custom"
    assert proxy.upstreams["custom"].requests[-1][1]["model"] == "stub-custom"


def test_two_deployments_share_the_load_and_cover_for_each_other(proxy: Proxy) -> None:
    assert [
        e["litellm_params"]["api_base"] for e in proxy.exported["model_list"] if e["model_name"] == "pool/stub-pool"
    ] == [
        proxy.upstreams["d1"].base_url + "/v1",
        proxy.upstreams["d2"].base_url + "/v1",
    ]
    before = counts(proxy)
    answers = {proxy.answer("pool/stub-pool", f"shared {i}") for i in range(16)}
    assert answers == {"from d1", "from d2"}  # 1 in 2**15 that one is never picked
    after = counts(proxy)
    assert after["d1"] > before["d1"] and after["d2"] > before["d2"]

    proxy.upstreams["d2"].behaviour.status = 503  # one deployment down
    try:
        for i in range(12):
            assert proxy.answer("pool/stub-pool", f"one down {i}") == "from d1"
    finally:
        proxy.upstreams["d2"].behaviour.status = 200
    assert counts(proxy)["d2"] > after["d2"]  # it was tried (1 in 2**12 that it is not), then the other served
    # Retried on the other deployment, never on the next provider.
    assert counts(proxy)["openai"] == after["openai"] and counts(proxy)["custom"] == after["custom"]


async def test_sarai_llm_as_the_proxys_client(proxy: Proxy) -> None:
    config = GatewayConfig.load(
        _env_file=None,
        primary_provider="local",
        local_base_url=proxy.url,  # /v1 is added
        local_model="openai/stub-openai",  # a model_name of the exported file
        local_api_key=MASTER_KEY,
        cache_enabled=False,
    )
    gateway = Gateway(config)
    try:
        result = await gateway.chat([{"role": "user", "content": "through sarai_llm"}])
        assert (result["content"], result["provider"]) == ("from openai", "local")
        fallback = await gateway.chat([{"role": "user", "content": "fall back"}], model="local/stub-down")
        assert fallback["content"] == "from openai"
        pieces = [p async for p in gateway.stream_chat([{"role": "user", "content": "stream"}], model="pool/stub-pool")]
        assert "".join(pieces) == "pong!"
        vector = await gateway.embed("hola", model="openai/embed/stub-embed")
        assert isinstance(vector, list) and len(vector) == 4
        path, body = proxy.upstreams["openai"].requests[-1]
        assert path == "/v1/embeddings" and body["model"] == "stub-embed"
    finally:
        await gateway.aclose()
