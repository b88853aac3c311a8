"""A real redis-server for the tests: started on 127.0.0.1, persistence off, stopped afterwards.

The Debian package ``redis-server`` is installed by ``scripts/install-redis.sh``
(run by ``make test``, through ``make test-deps``). A missing server FAILS the tests that need it,
never skips them: a green run must mean that Redis was exercised.

Test modules build their fixtures on :func:`running_redis`::

    @pytest.fixture(scope="session")
    def redis_server() -> Iterator[RedisServer]:
        with running_redis() as server:
            yield server
"""

from __future__ import annotations

import shutil
import socket
import subprocess
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

INSTALL_HINT = "redis-server is not installed: run `make test-deps` (it runs scripts/install-redis.sh)"


def redis_server_binary() -> str | None:
    """The path of redis-server, or ``None`` when it is not installed."""
    found = shutil.which("redis-server")
    if found:
        return found
    for candidate in ("/usr/bin/redis-server", "/usr/sbin/redis-server", "/usr/local/bin/redis-server"):
        if Path(candidate).is_file():
            return candidate
    return None


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


def ping(port: int, timeout: float = 0.2) -> bool:
    """Whether a Redis server answers PING on 127.0.0.1:port."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=timeout) as s:
            s.sendall(b"PING\r\n")
            return s.recv(64).startswith(b"+PONG")
    except OSError:
        return False


class RedisServer:
    """One redis-server subprocess (not daemonized, so that it can be killed).

    ``start()`` waits for PING; ``kill()`` is a SIGKILL (a crash); ``start()``
    again reuses the same port, so clients configured with :attr:`url` reconnect.
    """

    def __init__(self, binary: str, port: int | None = None):
        self.binary = binary
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="sarai-redis-"))
        self.proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}/0"

    def start(self, timeout: float = 10.0) -> RedisServer:
        if self.proc is not None and self.proc.poll() is None:
            return self
        log = open(self._dir / "redis.log", "ab")  # noqa: SIM115 - kept open by the child
        self.proc = subprocess.Popen(
            [
                self.binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--daemonize",
                "no",
                "--dir",
                str(self._dir),
            ],  # fmt: skip
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"redis-server exited with {self.proc.returncode}:\n{self.log()}")
            if ping(self.port):
                return self
            time.sleep(0.02)
        self.stop()
        raise RuntimeError(f"redis-server did not answer PING within {timeout} s:\n{self.log()}")

    def log(self) -> str:
        path = self._dir / "redis.log"
        return path.read_text(errors="replace")[-2000:] if path.exists() else ""

    def kill(self) -> None:
        """Crash the server (SIGKILL) and wait until the port is closed."""
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=10)
        self.proc = None

    def close(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextmanager
def running_redis() -> Iterator[RedisServer]:
    """A started redis-server, stopped and removed on exit; FAILS the test when none is installed."""
    binary = redis_server_binary()
    if binary is None:
        pytest.fail(INSTALL_HINT, pytrace=False)  # never skip: a green run must have used Redis
    server = RedisServer(binary).start()
    try:
        yield server
    finally:
        server.close()
