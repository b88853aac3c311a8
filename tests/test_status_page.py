"""The status page (issue 9): served by the metrics server, checked over HTTP and in headless Chromium.

The browser test uses Debian's ``chromium`` package. When ``/usr/bin/chromium``
is missing, it runs ``scripts/install-chromium.sh`` (apt-get) first, and is
skipped only when that install fails, with the reason. It saves a screenshot
of the page under the test's tmp dir and prints its path.
"""

from __future__ import annotations

import json
import re
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

import sarai_llm

REPO = Path(__file__).resolve().parent.parent
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = (
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-quic",
    "--no-proxy-server",
    "--hide-scrollbars",
)
IN, OUT = 0.000001, 0.000002


def msg(text: str) -> list[dict[str, str]]:
    return [{"role": "user", "content": text}]


def http_get(url: str) -> tuple[int, dict[str, str], str]:
    opener = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # never through a proxy
    with opener.open(url, timeout=5) as response:
        return response.status, dict(response.headers), response.read().decode()


def configure(up: Any, dead_url: str, **extra: Any) -> sarai_llm.Gateway:
    settings: dict[str, Any] = {
        "primary_provider": "ollama",
        "fallback_providers": ["local"],
        "ollama_base_url": dead_url,
        "local_base_url": up.base_url,
        "local_model": "stub",
        "local_input_cost_per_token": IN,
        "local_output_cost_per_token": OUT,
        "health_timeout": 2,
    }
    settings.update(extra)
    return sarai_llm.get_gateway(settings)


async def some_calls(up: Any) -> None:
    """Misses, hits, a fallback, an error, an embedding; three callers and an anonymous call."""
    await sarai_llm.chat(msg("one"), caller="rag")  # ollama is down: local answers (a fallback)
    await sarai_llm.chat(msg("one"), caller="rag")  # a hit
    await sarai_llm.chat(msg("one"), caller="chatbot")  # a hit
    await sarai_llm.chat(msg("two"), provider="local", caller="chatbot")
    await sarai_llm.embed(["a", "b"], provider="local", caller="rag")
    await sarai_llm.chat(msg("three"), provider="local")  # no caller
    up.behaviour.status = 500
    with pytest.raises(sarai_llm.AllProvidersFailedError):
        await sarai_llm.chat(msg("four"), provider="local", caller="reasoner")
    up.behaviour.status = 200


# --- over HTTP ------------------------------------------------------------------------------------


async def test_page_and_json_are_served_beside_the_metrics(upstream: Any, dead_url: str) -> None:
    configure(upstream, dead_url)
    await some_calls(upstream)
    await sarai_llm.health_check()
    with sarai_llm.start_metrics_server(0) as server:
        assert server.base_url == f"http://127.0.0.1:{server.port}"
        status, headers, html = http_get(server.base_url + "/")
        assert status == 200 and headers["Content-Type"] == "text/html; charset=utf-8"
        # Self-contained: no external script, style, font or image; works offline.
        assert not re.search(r"""(src|href)\s*=\s*["']?(https?:)?//""", html)
        assert "@import" not in html and "url(" not in html
        nonce = re.search(r"script-src 'nonce-([^']+)'", headers["Content-Security-Policy"])
        assert nonce and f'<script nonce="{nonce.group(1)}">' in html
        assert "default-src 'none'" in headers["Content-Security-Policy"]

        status, headers, body = http_get(server.base_url + "/stats.json")
        assert status == 200 and headers["Content-Type"] == "application/json"
        data = json.loads(body)
        assert data["stats"] == json.loads(json.dumps(sarai_llm.get_stats()))
        assert data["chain"] == ["ollama", "local"]
        assert data["health"]["local"]["ok"] is True and data["health"]["ollama"]["ok"] is False
        assert data["stats"]["cost"]["spent_usd"] > 0 and data["stats"]["cost"]["saved_usd"] > 0

        # The metrics are where they were.
        status, headers, text = http_get(server.url)
        assert status == 200 and "llm_gateway_cost_usd_total" in text
        assert "llm_gateway_calls_total" in http_get(server.base_url + "/some/other/path")[2]


async def test_untrusted_text_cannot_break_out_of_the_page(upstream: Any, dead_url: str) -> None:
    configure(upstream, dead_url)
    await sarai_llm.chat(msg("x"), provider="local", caller="</script><script>alert(1)</script>")
    await sarai_llm.health_check()  # fresh: the page starts no background check
    with sarai_llm.start_metrics_server(0) as server:
        html = http_get(server.base_url + "/")[2]
    assert "<script>alert(1)" not in html and "</script><script>" not in html
    assert "\\u003c/script\\u003e" in html  # embedded as JSON escapes; the page renders it as text


def silent_server() -> tuple[socket.socket, str]:
    """A loopback port that accepts connections and never answers."""
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    listener.listen(16)
    return listener, f"http://127.0.0.1:{listener.getsockname()[1]}"


async def test_health_is_checked_in_the_background_without_blocking_the_page(upstream: Any) -> None:
    listener, silent_url = silent_server()
    try:
        configure(upstream, silent_url, health_timeout=1.5)  # ollama never answers its health probe
        with sarai_llm.start_metrics_server(0) as server:
            started = time.monotonic()
            first = json.loads(http_get(server.base_url + "/stats.json")[2])
            assert time.monotonic() - started < 1.0  # the 1.5 s check runs elsewhere
            assert first["health"]["ollama"]["ok"] is None and first["health"]["local"]["ok"] is None
            deadline = time.monotonic() + 10
            health: dict[str, Any] = {}
            while time.monotonic() < deadline:
                health = json.loads(http_get(server.base_url + "/stats.json")[2])["health"]
                if health["ollama"]["ok"] is not None:
                    break
                time.sleep(0.1)
            assert health["local"]["ok"] is True
            assert health["ollama"]["ok"] is False and "within 1.5 s" in health["ollama"]["error"]
            assert 0 <= health["ollama"]["age_s"] < 10
    finally:
        listener.close()


async def test_metrics_port_setting_serves_the_page_while_the_gateway_lives(
    upstream: Any, dead_url: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    monkeypatch.setenv("LLM_GATEWAY_METRICS_PORT", str(port))
    configure(upstream, dead_url)
    await sarai_llm.chat(msg("one"), provider="local", caller="rag")
    await sarai_llm.health_check()
    data = json.loads(http_get(f"http://127.0.0.1:{port}/stats.json")[2])
    assert data["stats"]["callers"]["rag"]["requests"] == 1
    assert "sarai_llm status" in http_get(f"http://127.0.0.1:{port}/")[2]
    sarai_llm.reset_gateway()
    with pytest.raises(OSError):
        http_get(f"http://127.0.0.1:{port}/")


# --- in a real browser ----------------------------------------------------------------------------


@pytest.fixture(scope="session")
def chromium() -> Path:
    """Debian's Chromium, installed by scripts/install-chromium.sh when missing."""
    if not CHROMIUM.exists():
        install = subprocess.run(
            ["bash", str(REPO / "scripts" / "install-chromium.sh")],
            capture_output=True,
            text=True,
            timeout=900,
        )
        if install.returncode != 0 or not CHROMIUM.exists():
            reason = (install.stderr or install.stdout).strip().splitlines()[-3:]
            pytest.skip(f"Chromium (Debian package 'chromium') could not be installed: {' | '.join(reason)}")
    return CHROMIUM


def run_chromium(chromium: Path, tmp_path: Path, *args: str) -> subprocess.CompletedProcess[str]:
    profile = tmp_path / f"profile-{time.monotonic_ns()}"  # a fresh, empty profile per start
    profile.mkdir()
    return subprocess.run(
        [str(chromium), *CHROMIUM_FLAGS, f"--user-data-dir={profile}", *args],
        capture_output=True,
        text=True,
        timeout=60,
    )


class Shown(HTMLParser):
    """The values the page shows: ``{data-k: (data-v, visible text)}``, and ``<body data-rendered>``."""

    def __init__(self) -> None:
        super().__init__()
        self.values: dict[str, tuple[Any, str]] = {}
        self.rendered: str | None = None
        self._open: tuple[str, Any] | None = None
        self._text: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        attributes = dict(attrs)
        if tag == "body":
            self.rendered = attributes.get("data-rendered")
        key = attributes.get("data-k")
        if key is not None:
            self._open, self._text = (key, json.loads(attributes.get("data-v") or "null")), []

    def handle_data(self, data: str) -> None:
        if self._open is not None:
            self._text.append(data)

    def handle_endtag(self, tag: str) -> None:
        if self._open is not None:
            key, value = self._open
            self.values[key] = (value, "".join(self._text).strip())
            self._open = None


def path_of(key: str) -> list[str]:
    """The path a ``data-k`` names: dotted, or a JSON list (a server's base URL holds dots)."""
    return json.loads(key) if key.startswith("[") else key.split(".")


def expected_text(key: str, value: Any) -> str | None:
    """How the page writes ``value`` (None: not a fixed text)."""
    key = ".".join(path_of(key)[-1:]) if key.startswith("[") else key
    if key == "queue_wait_s":
        return f"{value:.3f} s"
    if key.endswith(".age_s"):
        return None
    if key.endswith(".ok"):
        return "unknown" if value is None else "up" if value else "down"
    if key.endswith("_rate"):
        return f"{value * 100:.1f}%"
    if key.endswith("_usd"):
        return f"${value:.6f}"
    if key.endswith("_ms"):
        return f"{value:.1f} ms"
    if key == "cache.ttl":
        return f"{value:g} s"
    return str(value)


def lookup(stats: dict[str, Any], health: dict[str, Any], key: str) -> Any:
    parts = path_of(key)
    node: Any = health if parts[0] == "health" else stats
    for part in parts[1:] if parts[0] == "health" else parts:
        node = node[part]
    return node


def walk(tree: Any, path: tuple[str, ...] = ()) -> Iterator[tuple[str, Any]]:
    if isinstance(tree, dict):
        for key, value in tree.items():
            yield from walk(value, (*path, str(key)))
    else:
        yield ".".join(path), tree


async def test_status_page_in_headless_chromium_shows_the_stats(
    chromium: Path, upstream: Any, dead_url: str, tmp_path: Path
) -> None:
    gateway = configure(upstream, dead_url)
    await some_calls(upstream)
    await sarai_llm.health_check()  # the page shows the last known health
    with sarai_llm.start_metrics_server(0) as server:
        url = server.base_url + "/"
        initial = json.loads(http_get(server.base_url + "/stats.json")[2])["generated_at"]
        # The page's script polls stats.json every 2 s: 3 s of virtual time lets it run once.
        started = time.monotonic()
        dump = run_chromium(chromium, tmp_path, "--virtual-time-budget=3000", "--dump-dom", url)
        assert dump.returncode == 0, dump.stderr[-2000:]
        screenshot = tmp_path / "status-page.png"
        shot = run_chromium(
            chromium,
            tmp_path,
            "--virtual-time-budget=3000",
            f"--screenshot={screenshot}",
            "--window-size=1200,900",
            url,
        )
        assert shot.returncode == 0, shot.stderr[-2000:]
        browser_seconds = time.monotonic() - started
    stats = sarai_llm.get_stats()
    health = {name: dict(result) for name, result in gateway.last_health.items()}

    page = Shown()
    page.feed(dump.stdout)
    assert page.values, "the page rendered no value (did its script run?)"
    assert page.rendered is not None and float(page.rendered) > initial  # re-rendered from a poll
    for key, (raw, text) in page.values.items():
        want = lookup(stats, health, key) if not key.endswith(".age_s") else raw
        assert raw == want, f"{key}: the page has {raw!r}, get_stats() {want!r}"
        shown = expected_text(key, raw)
        if shown is not None:
            assert text == shown, f"{key}: shows {text!r}, expected {shown!r}"

    shown_keys = set(page.values)
    for provider in ("ollama", "local"):
        for column in ("requests", "errors", "error_rate", "latency_p50_ms", "latency_p95_ms", "total_tokens"):
            assert f"providers.{provider}.{column}" in shown_keys
        assert f"health.{provider}.ok" in shown_keys and f"health.{provider}.latency_ms" in shown_keys
    for key in ("total_requests", "total_errors", "error_rate", "total_fallbacks"):
        assert key in shown_keys
    for column in ("hits", "misses", "hit_rate", "size", "max_size", "evictions", "coalesced", "ttl"):
        assert f"cache.{column}" in shown_keys
    assert {f"callers.{k}" for k, _ in walk(stats["callers"])} <= shown_keys
    assert {f"cost.callers.{k}" for k, _ in walk(stats["cost"]["callers"])} <= shown_keys
    assert {"cost.spent_usd", "cost.saved_usd", "cost.providers.local.spent_usd"} <= shown_keys
    assert "providers.local.overhead_p50_ms" in shown_keys  # the direct path knew the upstream's wait
    servers = [(p, url, row) for p in ("ollama", "local") for url, row in stats["providers"][p]["deployments"].items()]
    paths = [["providers", p, "deployments", url, field] for p, url, row in servers for field in row]
    assert servers and {json.dumps(path, separators=(",", ":")) for path in paths} <= shown_keys
    assert page.values["health.local.ok"][1] == "up" and page.values["health.ollama.ok"][1] == "down"
    assert stats["cost"]["spent_usd"] > 0 and stats["cost"]["saved_usd"] > 0
    assert page.values["cost.saved_usd"][1] == f"${stats['cost']['saved_usd']:.6f}"
    assert "● live" in dump.stdout  # the poll reached the server

    assert screenshot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert screenshot.stat().st_size > 10_000  # a rendered page, not a blank one
    print(f"\nstatus page screenshot: {screenshot}")
    assert browser_seconds < 30, f"two Chromium runs took {browser_seconds:.1f} s"


def test_the_install_script_is_idempotent(chromium: Path) -> None:
    done = subprocess.run(
        ["bash", str(REPO / "scripts" / "install-chromium.sh")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0 and "chromium present" in done.stdout
