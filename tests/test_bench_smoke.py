"""Smoke test of the benchmark suite: ``bench/run.py --quick`` runs and prints its table.

Figures are not checked (a smoke run's N is tiny and machines differ): only
that every part ran and the one table came out. The real run is ``make bench``.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent


def test_bench_quick_runs_and_prints_the_table() -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_GATEWAY_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    proc = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--quick"],
        cwd=REPO,
        env=env,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    out = proc.stdout
    assert "| part" in out and "| measurement" in out, out
    for part in ("import", "cache hit", "miss / stream", "memory"):
        assert f"| {part} " in out, f"part {part!r} missing from the table:\n{out}"
    for row in (
        "import sarai_llm: wall time over a bare start",
        "sarai_llm.chat hit p50",
        "chat miss, sequential: sarai_llm p50",
        "chat miss, concurrency 50: sarai_llm req/s",
        "stream 100 chunks, usage on: sarai_llm p50",
        "replay of a cached 100-chunk stream p50",
        "upstream requests for 100 concurrent identical chat()",
        "RSS growth over",
    ):
        assert row in out, f"row {row!r} missing:\n{out}"
    assert "PART FAILED" not in out
    assert "goals met:" in out
