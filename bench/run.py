"""Run the benchmark suite and print ONE table of medians, ratios and goals (``make bench``).

    .venv/bin/python bench/run.py [--quick] [--variants] [--only PART,...] [--markdown FILE]

Each part runs in its own process (so that imports, caches and RSS of one part
never colour another), each talking to its own fast stub (bench/stub.py):

* ``import``: bench/import_cost.py: ``import sarai_llm`` vs ``import litellm``;
* ``hit``: bench/cache_hit.py: cache hits with 10,000 entries vs a mocked LiteLLM call;
* ``miss``: bench/miss_stream.py: misses (sequential, concurrency 50), 5- and
  100-chunk streams, replay, coalescing: sarai_llm vs LiteLLM vs the openai SDK;
* ``memory``: bench/memory.py: RSS growth over 10,000 mixed requests;
* ``cache_memory``: bench/cache_memory.py: RSS of 100,000 cached 768-dim embeddings (~6 minutes,
  LiteLLM's misses), and their hits from the cache's front and from the shared store;
* ``direct``: bench/direct.py: CPU per call of sarai_llm (the direct path) vs the raw openai SDK and
  bare LiteLLM, OpenAI-compatible and Ollama: chat, 5-chunk stream, embedding; Anthropic (acompletion)
  against bare LiteLLM; concurrency 50;
* ``variants`` (only with ``--variants``): bench/router_variants.py: the miss
  path with LiteLLM Router options and price registration.

``--quick`` is a smoke run with tiny N (figures meaningless, under a minute;
two parts at a time).
The default run takes ~4-5 minutes on 2 cores. Exit status 0 when every part
ran (goals missed are reported, not failures), 1 when a part failed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib.metadata
import json
import os
import platform
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import BENCH, PY, REPO, fmt_ratio, fmt_value, log  # noqa: E402

PARTS = {
    "import": "import_cost.py",
    "hit": "cache_hit.py",
    "miss": "miss_stream.py",
    "memory": "memory.py",
    "cache_memory": "cache_memory.py",
    "direct": "direct.py",
    "variants": "router_variants.py",
}


def machine() -> dict[str, str]:
    cpu = platform.processor() or ""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    cpu = line.split(":", 1)[1].strip()
                    break
    except OSError:
        pass

    def version(dist: str) -> str:
        try:
            return importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            return "not installed"

    return {
        "date": dt.datetime.now().astimezone().strftime("%Y-%m-%d %H:%M %Z"),
        "nproc": str(os.cpu_count()),
        "cpu": cpu,
        "python": platform.python_version(),
        "litellm": version("litellm"),
        "openai": version("openai"),
        "diskcache": version("diskcache"),
        "sarai_llm": version("sarai_llm"),
        "os": platform.platform(),
    }


def git_state() -> str:
    """The commit measured, and whether sarai_llm/ had uncommitted changes."""
    try:
        head = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--", "sarai_llm"], cwd=REPO, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "not a git checkout"
    return f"{head}{' + uncommitted changes in sarai_llm/' if dirty else ''}"


def load() -> str:
    try:
        return " ".join(Path("/proc/loadavg").read_text().split()[:3])
    except OSError:
        return "?"


def start_part(name: str, quick: bool) -> subprocess.Popen[str]:
    cmd = [PY, str(BENCH / PARTS[name]), "--json"] + (["--quick"] if quick else [])
    log(f"part {name}: {' '.join(Path(c).name if i < 2 else c for i, c in enumerate(cmd))}")
    return subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.PIPE, stderr=None, text=True)


def finish_part(proc: subprocess.Popen[str]) -> tuple[list[dict[str, Any]], str | None]:
    stdout, _ = proc.communicate()
    rows: list[dict[str, Any]] = []
    for line in stdout.splitlines():
        if line.startswith("BENCH-JSON "):
            rows = json.loads(line[len("BENCH-JSON ") :])
    if proc.returncode != 0 or not rows:
        return rows, f"exit status {proc.returncode}" + ("" if rows else ", no results")
    return rows, None


def table(rows: list[dict[str, Any]]) -> str:
    header = ["part", "measurement", "value", "compared with", "ratio", "goal", "met", "notes"]
    lines = []
    for r in rows:
        ratio, met = r.get("ratio"), r.get("met")
        lines.append(
            [
                r["section"],
                r["what"],
                fmt_value(r["value"], r["unit"]),
                r.get("vs") or "",
                fmt_ratio(ratio),
                r.get("goal") or "",
                "" if met is None else ("yes" if met else "**NO**"),
                (r.get("note") or "").replace("|", "/"),
            ]
        )
    widths = [max(len(h), *(len(line[i]) for line in lines)) if lines else len(h) for i, h in enumerate(header)]

    def fmt(cells: list[str]) -> str:
        return "| " + " | ".join(c.ljust(w) for c, w in zip(cells, widths, strict=True)) + " |"

    return "\n".join([fmt(header), "|" + "|".join("-" * (w + 2) for w in widths) + "|", *(fmt(c) for c in lines)])


def main() -> int:
    parser = argparse.ArgumentParser(description="sarai_llm benchmark suite")
    parser.add_argument("--quick", action="store_true", help="smoke run: tiny N, meaningless figures")
    parser.add_argument("--variants", action="store_true", help="also run bench/router_variants.py")
    parser.add_argument("--only", default="", help="comma list of parts: " + ",".join(PARTS))
    parser.add_argument("--markdown", type=Path, help="also write the header and table to this file")
    parser.add_argument(
        "--jobs", type=int, default=0, help="parts run at once (default 1; 2 with --quick, whose figures do not matter)"
    )
    args = parser.parse_args()
    parts = [p for p in args.only.split(",") if p] or [p for p in PARTS if p != "variants" or args.variants]
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        parser.error(f"unknown parts {unknown}; choose from {list(PARTS)}")

    info = machine()
    load_before = load()
    started = time.perf_counter()
    all_rows: list[dict[str, Any]] = []
    failures: list[str] = []
    timings: list[str] = []
    jobs = args.jobs or (2 if args.quick else 1)
    pending = list(parts)
    running: list[tuple[str, subprocess.Popen[str], float]] = []
    results: dict[str, tuple[list[dict[str, Any]], str | None]] = {}
    while pending or running:
        while pending and len(running) < jobs:
            part = pending.pop(0)
            running.append((part, start_part(part, args.quick), time.perf_counter()))
        part, proc, t0 = running.pop(0)
        results[part] = finish_part(proc)
        timings.append(f"{part} {time.perf_counter() - t0:.0f} s")
    for part in parts:  # the table keeps the order of the parts
        rows, error = results[part]
        all_rows.extend(rows)
        if error:
            failures.append(f"{part}: {error}")
            all_rows.append({"section": part, "what": "PART FAILED", "value": error, "unit": "", "note": ""})
    total = time.perf_counter() - started

    command = (
        "make bench"
        if not args.quick and not args.only and not args.variants
        else " ".join(["bench/run.py", *sys.argv[1:]])
    )
    goals = [r for r in all_rows if r.get("met") is not None]
    met = sum(1 for r in goals if r["met"])
    head = [
        f"sarai_llm benchmarks{' (QUICK smoke run: figures meaningless)' if args.quick else ''}",
        f"date: {info['date']}; command: {command}; wall time {total:.0f} s ({', '.join(timings)})",
        f"machine: {info['nproc']} CPUs, {info['cpu']}; {info['os']}; load average before {load_before}, "
        f"after {load()}",
        f"python {info['python']}, litellm {info['litellm']}, openai {info['openai']}, "
        f"diskcache {info['diskcache']}, sarai_llm {info['sarai_llm']} at {git_state()}",
        "",
    ]
    text = "\n".join(head) + table(all_rows) + f"\n\ngoals met: {met} of {len(goals)}\n"
    if failures:
        text += "FAILED parts: " + "; ".join(failures) + "\n"
    sys.stdout.write(text)
    if args.markdown:
        args.markdown.write_text(text)
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
