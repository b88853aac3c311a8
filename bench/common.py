"""Helpers shared by the benchmark scripts: the stub process, statistics, RSS, result rows."""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Coroutine, Iterator, Sequence
from pathlib import Path
from typing import Any

BENCH = Path(__file__).resolve().parent
REPO = BENCH.parent
PY = sys.executable

# LiteLLM must never try to fetch its price list in a benchmark (offline it blocks 5-10 s).
os.environ.setdefault("LITELLM_LOCAL_MODEL_COST_MAP", "True")

# list[Any]: every side takes it as its own message type (the openai SDK's and LiteLLM's TypedDicts).
MESSAGES: list[Any] = [
    {"role": "system", "content": "You are a terse assistant."},
    {"role": "user", "content": "Say pong."},
]
TEMPERATURE = 0.7
# Passed on every side (sarai_llm: the local provider's timeout setting). Shorter than
# sarai_llm's default 300 s so that a lost request cannot stall a run for minutes.
TIMEOUT = 30.0


class Stub:
    """The fast stub (bench/stub.py) in its own process."""

    def __init__(self) -> None:
        self.proc = subprocess.Popen([PY, str(BENCH / "stub.py")], stdout=subprocess.PIPE, stderr=None, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line.startswith("PORT "):
            self.proc.kill()
            raise RuntimeError(f"stub did not start: {line!r}")
        self.port = int(line.split()[1])
        self.root = f"http://127.0.0.1:{self.port}"
        self.base = self.root + "/v1"

    def counts(self) -> dict[str, Any]:
        """Requests the stub saw: ``chat``, ``embeddings``, and ``errors`` (requests it could not answer)."""
        with urllib.request.urlopen(self.root + "/_count", timeout=5) as r:
            return dict(json.loads(r.read()))

    def reset(self) -> None:
        req = urllib.request.Request(self.root + "/_reset", data=b"", method="POST")
        with urllib.request.urlopen(req, timeout=5) as r:
            r.read()

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


@contextlib.contextmanager
def stub() -> Iterator[Stub]:
    s = Stub()
    try:
        yield s
    finally:
        s.stop()


@contextlib.contextmanager
def temp_dir(prefix: str = "sarai-bench-") -> Iterator[str]:
    with tempfile.TemporaryDirectory(prefix=prefix) as d:
        yield d


def clean_env_for_gateway(cwd: str) -> None:
    """No LLM_GATEWAY_* variables, no stray .env / config.yaml: the benchmark's settings only."""
    for name in list(os.environ):
        if name.startswith("LLM_GATEWAY_"):
            del os.environ[name]
    os.chdir(cwd)


def gateway_settings(base: str, cache_dir: str, max_size: int = 1000, **extra: Any) -> dict[str, Any]:
    return {
        "primary_provider": "local",
        "local_base_url": base,
        "local_model": "stub",
        "cache_dir": cache_dir,
        "cache_max_size": max_size,
        "local_timeout": TIMEOUT,
        **extra,
    }


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def pct(values: Sequence[float], q: float) -> float:
    """The q-quantile (0..1) of values, nearest rank."""
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, max(0, round(q * (len(s) - 1))))]


def median(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")


_T0 = time.perf_counter()


def log(message: str) -> None:
    """Progress on stderr (the table goes to stdout)."""
    sys.stderr.write(f"[{time.perf_counter() - _T0:6.1f}s] {message}\n")
    sys.stderr.flush()


class Results:
    """Rows for the one printed table; each script prints them as JSON on its last line."""

    def __init__(self, section: str):
        self.section = section
        self.rows: list[dict[str, Any]] = []

    def add(
        self,
        what: str,
        value: float | str,
        unit: str = "",
        *,
        vs: str = "",
        ratio: float | None = None,
        goal: str = "",
        met: bool | None = None,
        note: str = "",
    ) -> None:
        self.rows.append(
            {
                "section": self.section,
                "what": what,
                "value": value,
                "unit": unit,
                "vs": vs,
                "ratio": ratio,
                "goal": goal,
                "met": met,
                "note": note,
            }
        )

    def emit(self) -> None:
        sys.stdout.write("BENCH-JSON " + json.dumps(self.rows) + "\n")
        sys.stdout.flush()


def bench_main(description: str, run: Callable[[bool], Coroutine[Any, Any, Results]]) -> None:
    """A bench script's command line: ``--quick`` (a smoke run), ``--json`` (the rows for bench/run.py)."""
    parser = argparse.ArgumentParser(description=description)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res = asyncio.run(run(args.quick))
    if args.json:
        res.emit()
    else:
        print_table(res.rows)


def fmt_ratio(ratio: object) -> str:
    """Ratios near 1 get three decimals, so that a goal of 1.05x is never judged on a rounded figure."""
    if not isinstance(ratio, int | float):
        return ""
    return f"{ratio:.3f}x" if ratio < 10 else f"{ratio:,.0f}x"


def fmt_value(value: float | str, unit: str) -> str:
    if isinstance(value, str):
        return value
    if unit in ("us", "ms", "MB", "s"):
        text = f"{value:,.2f}" if abs(value) < 100 else f"{value:,.0f}"
    elif unit in ("/s", "req/s", "hits/s", "calls/s"):
        text = f"{value:,.0f}"
    else:
        text = f"{value:,.4g}" if isinstance(value, float) else f"{value:,}"
    return f"{text} {unit}".strip()


def print_table(rows: list[dict[str, Any]], out: Any = None) -> str:
    """One Markdown table: what, value, compared with, ratio, goal, met."""
    out = out or sys.stdout
    header = ["section", "measurement", "value", "compared with", "ratio", "goal", "met"]
    lines = []
    for r in rows:
        ratio = r.get("ratio")
        met = r.get("met")
        lines.append(
            [
                r["section"],
                r["what"],
                fmt_value(r["value"], r["unit"]),
                r.get("vs") or "",
                fmt_ratio(ratio),
                r.get("goal") or "",
                "" if met is None else ("yes" if met else "NO"),
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    text = "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(fmt(c) for c in lines)])
    out.write(text + "\n")
    return text
