"""``import sarai_llm`` vs ``import litellm``: wall time, RSS and network connects, vs a bare interpreter.

    .venv/bin/python bench/import_cost.py [--quick] [--json]

Each import runs in a fresh subprocess (``python -c ...``) from an empty
working directory, without any ``LLM_GATEWAY_*`` variable. The LiteLLM side
runs with ``LITELLM_LOCAL_MODEL_COST_MAP=True`` (without it, LiteLLM fetches
its price list from the network at import; offline that blocks 5-10 s).

* time: median wall time of the whole subprocess (start, import, exit), minus
  the median of a bare interpreter start (``python -c pass``), runs interleaved;
  plus ``-X importtime``'s cumulative figure for the package itself.
* RSS: ``VmRSS`` of the child after the import (and ``VmHWM``, its peak).
* connects: a ``sitecustomize`` (separate runs, so it does not add to the
  time; with ``--quick`` LiteLLM's figures come from that one run) counts
  ``socket.connect`` / ``connect_ex`` / ``getaddrinfo`` calls made during the
  import and until exit.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import PY, Results, median, print_table  # noqa: E402

SITECUSTOMIZE = """
import atexit, os, socket, sys
_counts = {"connect": 0, "getaddrinfo": 0}
_targets = []
_connect, _connect_ex, _gai = socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo
def connect(self, address):
    _counts["connect"] += 1; _targets.append(repr(address)); return _connect(self, address)
def connect_ex(self, address):
    _counts["connect"] += 1; _targets.append(repr(address)); return _connect_ex(self, address)
def getaddrinfo(host, *a, **k):
    _counts["getaddrinfo"] += 1; _targets.append(repr(host)); return _gai(host, *a, **k)
socket.socket.connect, socket.socket.connect_ex, socket.getaddrinfo = connect, connect_ex, getaddrinfo
@atexit.register
def _report():
    with open(os.environ["BENCH_CONNECTS_OUT"], "w") as f:
        f.write(repr((_counts, _targets[:5])))
"""

PROBE = (
    "import time as _t; _s=_t.perf_counter(); {stmt}; _e=_t.perf_counter()\n"
    "rss=hwm=0\n"
    "for l in open('/proc/self/status'):\n"
    "    if l.startswith('VmRSS:'): rss=int(l.split()[1])\n"
    "    if l.startswith('VmHWM:'): hwm=int(l.split()[1])\n"
    "print('PROBE', rss, hwm, _e-_s)\n"
)

SIDES = {
    "bare interpreter": "pass",
    "import sarai_llm": "import sarai_llm",
    "import litellm": "import litellm",
}


def _env(extra: dict[str, str] | None = None) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("LLM_GATEWAY_")}
    env["LITELLM_LOCAL_MODEL_COST_MAP"] = "True"
    env.pop("PYTHONPATH", None)
    env.update(extra or {})
    return env


def _probe(stmt: str, cwd: str) -> tuple[float, int, int, float]:
    """(wall seconds of the subprocess, VmRSS KB, VmHWM KB, in-process seconds of the statement)."""
    t0 = time.perf_counter()
    out = subprocess.run(
        [PY, "-c", PROBE.format(stmt=stmt)], cwd=cwd, env=_env(), check=True, capture_output=True, text=True
    ).stdout
    wall = time.perf_counter() - t0
    m = re.search(r"PROBE (\d+) (\d+) ([\d.e-]+)", out)
    assert m, out
    return wall, int(m.group(1)), int(m.group(2)), float(m.group(3))


def _connects(stmt: str, cwd: str) -> tuple[int, int, list[str], tuple[float, int, int, float]]:
    """(connects, DNS lookups, first targets, probe figures of that run)."""
    with tempfile.TemporaryDirectory(prefix="sarai-bench-site-") as site:
        Path(site, "sitecustomize.py").write_text(SITECUSTOMIZE)
        out = Path(site, "connects.txt")
        env = _env({"PYTHONPATH": site, "BENCH_CONNECTS_OUT": str(out)})
        t0 = time.perf_counter()
        stdout = subprocess.run(
            [PY, "-c", PROBE.format(stmt=stmt)], cwd=cwd, env=env, check=True, capture_output=True, text=True
        ).stdout
        wall = time.perf_counter() - t0
        counts, targets = eval(out.read_text())  # noqa: S307 - our own repr
    m = re.search(r"PROBE (\d+) (\d+) ([\d.e-]+)", stdout)
    assert m, stdout
    return (
        counts["connect"],
        counts["getaddrinfo"],
        targets,
        (wall, int(m.group(1)), int(m.group(2)), float(m.group(3))),
    )


def _importtime(module: str, cwd: str) -> float:
    """``-X importtime``'s cumulative microseconds for ``module`` itself."""
    err = subprocess.run(
        [PY, "-X", "importtime", "-c", f"import {module}"], cwd=cwd, env=_env(), capture_output=True, text=True
    ).stderr
    for line in err.splitlines():
        parts = [p.strip() for p in line.split("|")]
        if len(parts) == 3 and parts[2] == module:
            return float(parts[1])
    return float("nan")


def run(reps_small: int, reps_litellm: int) -> Results:
    res = Results("import")
    with tempfile.TemporaryDirectory(prefix="sarai-bench-cwd-") as cwd:
        probes: dict[str, list[tuple[float, int, int, float]]] = {k: [] for k in SIDES}
        for side in ("bare interpreter", "import sarai_llm"):  # warm the page cache and .pyc files
            _probe(SIDES[side], cwd)
        for i in range(reps_small):  # interleaved, so machine load hits every side alike
            for side, stmt in SIDES.items():
                if side == "import litellm" and i >= reps_litellm:
                    continue
                probes[side].append(_probe(stmt, cwd))
        connects = {side: _connects(stmt, cwd) for side, stmt in SIDES.items()}
        if not probes["import litellm"]:  # --quick: one litellm import only, the counting one
            probes["import litellm"].append(connects["import litellm"][3])
        it_sarai = median([_importtime("sarai_llm", cwd) for _ in range(max(1, reps_small // 2))])

    def med(side: str, i: int) -> float:
        return median([p[i] for p in probes[side]])

    bare = med("bare interpreter", 0) * 1000
    s_ms = med("import sarai_llm", 0) * 1000 - bare
    l_ms = med("import litellm", 0) * 1000 - bare
    s_in, l_in = med("import sarai_llm", 3) * 1000, med("import litellm", 3) * 1000
    s_rss, s_hwm = med("import sarai_llm", 1) / 1024, med("import sarai_llm", 2) / 1024
    l_rss, b_rss = med("import litellm", 1) / 1024, med("bare interpreter", 1) / 1024
    s_conn = connects["import sarai_llm"][0] + connects["import sarai_llm"][1]
    l_conn = connects["import litellm"][0] + connects["import litellm"][1]
    n_s, n_l = len(probes["import sarai_llm"]), len(probes["import litellm"])
    best_s = (min(p[0] for p in probes["import sarai_llm"]) - min(p[0] for p in probes["bare interpreter"])) * 1000
    res.add("bare interpreter start (python -c pass)", bare, "ms", note=f"median of {n_s}; RSS {b_rss:.1f} MB")
    res.add(
        "import sarai_llm: wall time over a bare start",
        s_ms,
        "ms",
        vs="import litellm, same way",
        ratio=l_ms / s_ms if s_ms > 0 else None,
        goal="<= 10 ms",
        met=s_ms <= 10,
        note=f"median of {n_s} subprocesses; best minus best {best_s:.1f} ms",
    )
    res.add(
        "import sarai_llm: in-process import time",
        s_in,
        "ms",
        vs="import litellm, same way",
        ratio=l_in / s_in,
        note=f"perf_counter around the import; -X importtime cumulative {it_sarai / 1000:.1f} ms",
    )
    res.add(
        "import litellm: wall time over a bare start", l_ms, "ms", note=f"median of {n_l}; in-process {l_in:,.0f} ms"
    )
    res.add(
        "import sarai_llm: RSS after import",
        s_rss,
        "MB",
        vs="import litellm",
        ratio=l_rss / s_rss,
        goal="<= 40 MB",
        met=s_rss <= 40,
        note=f"bare interpreter {b_rss:.1f} MB (so +{s_rss - b_rss:.1f} MB), peak {s_hwm:.1f} MB",
    )
    res.add("import litellm: RSS after import", l_rss, "MB")
    res.add(
        "import sarai_llm: network connects + DNS lookups",
        f"{s_conn}",
        vs=f"import litellm: {l_conn}",
        goal="0",
        met=s_conn == 0,
        note=f"targets seen: sarai_llm {connects['import sarai_llm'][2]}, litellm {connects['import litellm'][2]}",
    )
    return res


def main() -> None:
    parser = argparse.ArgumentParser(description="import cost")
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--json", action="store_true")
    args = parser.parse_args()
    res = run(reps_small=2 if args.quick else 15, reps_litellm=0 if args.quick else 2)
    if args.json:
        res.emit()
    else:
        print_table(res.rows)
        print(json.dumps([r["note"] for r in res.rows if r["note"]], indent=1))


if __name__ == "__main__":
    main()
