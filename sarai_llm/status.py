"""The status page: what an operator wants to see without reading JSON.

The metrics server (:func:`sarai_llm.start_metrics_server`, or
``LLM_GATEWAY_METRICS_PORT``) serves, besides ``/metrics``:

* ``/``: one self-contained HTML page (inline CSS and JavaScript, no external
  asset, works offline) with the providers (health, latency, requests,
  errors, tokens, spend), the cache (hit rate, size), spend and savings, and
  a per-caller table. It renders from data embedded in the page, then polls
  ``stats.json`` every :data:`REFRESH_SECONDS` seconds.
* ``/stats.json``: :func:`snapshot`: ``get_stats()`` plus the provider chain
  and the last known health of each provider.

Health never blocks the server: the page shows the last known result of
:meth:`Gateway.health_check <sarai_llm.gateway.Gateway.health_check>`, and when
that is older than :data:`HEALTH_MAX_AGE` seconds (or missing) a snapshot
starts one check in a background thread (bounded by ``health_timeout``), whose
result the next refresh shows.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import threading
import time
from typing import TYPE_CHECKING, Any

from ._log import log

if TYPE_CHECKING:
    from .gateway import Gateway

__all__ = ["HEALTH_MAX_AGE", "REFRESH_SECONDS", "content_security_policy", "render_page", "snapshot", "to_json"]


REFRESH_SECONDS = 2.0
"""How often the page polls ``stats.json``."""
HEALTH_MAX_AGE = 30.0
"""Seconds after which a provider's health result is refreshed in the background."""

_checking: set[int] = set()  # ids of gateways with a background health check running
_checking_lock = threading.Lock()


def snapshot(gateway: Gateway, *, refresh_health: bool = True) -> dict[str, Any]:
    """What the status page shows, JSON-serialisable (never a secret).

    ``{"version", "generated_at", "refresh_seconds", "chain", "stats", "health"}``;
    ``health`` maps each provider of the chain to ``{"ok": bool | None,
    "latency_ms", "error", "checked_at", "age_s", "cooling"}`` (``ok`` is
    ``None`` until a check ran). ``refresh_health`` starts a background check
    when a result is missing or older than :data:`HEALTH_MAX_AGE`.
    """
    from . import __version__

    now = time.time()
    config = gateway.config
    chain = [config.primary_provider, *config.fallback_providers]
    stats = _stats(gateway)
    known = dict(gateway.last_health)
    health: dict[str, dict[str, Any]] = {}
    stale = False
    for name in chain:
        seen = known.get(name)
        checked_at = seen.get("checked_at") if seen else None
        age = now - checked_at if isinstance(checked_at, float) else None
        stale = stale or age is None or age > HEALTH_MAX_AGE
        health[name] = {
            "ok": seen.get("ok") if seen else None,
            "latency_ms": seen.get("latency_ms") if seen else None,
            "error": seen.get("error") if seen else None,
            "checked_at": checked_at,
            "age_s": age,
            "cooling": gateway.cooling(name),
        }
    if stale and refresh_health:
        _check_in_background(gateway)
    return {
        "version": __version__,
        "generated_at": now,
        "refresh_seconds": REFRESH_SECONDS,
        "chain": chain,
        "stats": stats,
        "health": health,
    }


def _stats(gateway: Gateway) -> dict[str, Any]:
    # Read from the server's thread while calls may add a provider or caller:
    # a dict that changes size mid-copy raises; the next try sees it settled.
    for _ in range(5):
        try:
            return gateway.get_stats()
        except RuntimeError:
            time.sleep(0.001)
    return gateway.get_stats()


def _check_in_background(gateway: Gateway) -> None:
    key = id(gateway)
    with _checking_lock:
        if key in _checking:
            return
        _checking.add(key)

    def run() -> None:
        try:
            asyncio.run(gateway.health_check(detailed=True))
        except Exception:  # a failing check is shown as "unknown"; never crash the server
            log.debug("background health check failed", exc_info=True)
        finally:
            with _checking_lock:
                _checking.discard(key)

    threading.Thread(target=run, name="sarai_llm-health", daemon=True).start()


def _finite(value: Any) -> Any:
    if isinstance(value, float):
        return value if value == value and value not in (float("inf"), float("-inf")) else None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def to_json(data: dict[str, Any]) -> str:
    """``data`` as JSON that a browser can parse (a NaN or infinity becomes ``null``)."""
    return json.dumps(_finite(data), default=str)


def render_page(data: dict[str, Any], nonce: str | None = None) -> tuple[str, str]:
    """The HTML of the status page with ``data`` (a :func:`snapshot`) embedded.

    :returns: ``(html, nonce)``: the nonce the inline script and style carry,
        for the ``Content-Security-Policy`` header.
    """
    nonce = nonce or secrets.token_urlsafe(16)
    # Inside <script type="application/json">, "<", ">" and "&" must not appear raw.
    embedded = to_json(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    html = (
        _PAGE.replace("{{NONCE}}", nonce)
        .replace("{{REFRESH_MS}}", str(int(float(data.get("refresh_seconds", REFRESH_SECONDS)) * 1000)))
        .replace("{{DATA}}", embedded)
    )
    return html, nonce


def content_security_policy(nonce: str) -> str:
    """The CSP header of the page: nothing but its own inline script and style, and ``stats.json``."""
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )


_PAGE = """<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>sarai_llm status</title>
<style nonce="{{NONCE}}">
:root { --fg: #1d2330; --muted: #6b7385; --line: #e3e6ee; --bg: #f6f7fb; --card: #fff;
        --up: #1f9d55; --down: #d64545; --unknown: #9aa1b1; --accent: #3b5bdb; }
* { box-sizing: border-box; }
body { margin: 0; font: 14px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, sans-serif;
       color: var(--fg); background: var(--bg); }
header { display: flex; flex-wrap: wrap; align-items: baseline; gap: 12px 24px; padding: 16px 24px;
         background: var(--card); border-bottom: 1px solid var(--line); }
header h1 { font-size: 18px; margin: 0; }
header .muted { color: var(--muted); }
main { padding: 16px 24px 32px; max-width: 1280px; }
.cards { display: grid; grid-template-columns: repeat(auto-fill, minmax(120px, 1fr)); gap: 12px; }
.card { background: var(--card); border: 1px solid var(--line); border-radius: 8px; padding: 10px 12px; }
.card .label { color: var(--muted); font-size: 11px; text-transform: uppercase; letter-spacing: .04em;
               white-space: nowrap; }
.card .value { font-size: 18px; font-weight: 600; font-variant-numeric: tabular-nums; white-space: nowrap; }
h2 { font-size: 15px; margin: 24px 0 8px; }
table { width: 100%; border-collapse: collapse; background: var(--card); border: 1px solid var(--line);
        border-radius: 8px; overflow: hidden; }
th, td { padding: 7px 10px; text-align: right; border-bottom: 1px solid var(--line); white-space: nowrap;
         font-variant-numeric: tabular-nums; }
th:first-child, td:first-child { text-align: left; }
th { font-size: 12px; color: var(--muted); font-weight: 600; background: #fafbfd; }
tr:last-child td { border-bottom: 0; }
.health { display: inline-flex; align-items: center; gap: 6px; }
.dot { width: 9px; height: 9px; border-radius: 50%; background: var(--unknown); display: inline-block; }
.up .dot { background: var(--up); } .down .dot { background: var(--down); }
.badge { font-size: 11px; padding: 1px 6px; border-radius: 9px; background: #fff4e5; color: #a35200; }
.empty { color: var(--muted); text-align: left; }
#live.ok { color: var(--up); } #live.stale { color: var(--down); }
footer { color: var(--muted); margin-top: 24px; }
a { color: var(--accent); }
</style>
</head>
<body>
<header>
  <h1>sarai_llm status</h1>
  <span class="muted">chain: <span id="chain"></span></span>
  <span class="muted">version <span id="version"></span></span>
  <span><span id="live" class="ok">&#9679; live</span> <span class="muted">updated <span id="updated"></span>,
    every <span id="every"></span> s</span></span>
</header>
<main>
  <section class="cards" id="cards"></section>
  <h2>Providers</h2>
  <table id="providers"><thead><tr>
    <th>provider</th><th>health</th><th>checked</th><th>check</th><th>requests</th><th>errors</th><th>error rate</th>
    <th>p50</th><th>p95</th><th>tokens</th><th>spent</th><th>saved</th>
  </tr></thead><tbody></tbody></table>
  <h2>Cache</h2>
  <table id="cache"><thead><tr>
    <th>state</th><th>hits</th><th>misses</th><th>hit rate</th><th>size</th><th>max size</th>
    <th>evictions</th><th>coalesced</th><th>ttl</th>
  </tr></thead><tbody></tbody></table>
  <h2>Callers</h2>
  <table id="callers"><thead><tr>
    <th>caller</th><th>requests</th><th>cache hits</th><th>errors</th><th>spent</th><th>saved</th>
  </tr></thead><tbody></tbody></table>
  <footer>Raw numbers: <a href="stats.json">stats.json</a> &middot; Prometheus: <a href="metrics">metrics</a></footer>
</main>
<script id="initial" type="application/json">{{DATA}}</script>
<script nonce="{{NONCE}}">
"use strict";
const REFRESH_MS = {{REFRESH_MS}};
const FORMATS = {
  int: (v) => String(v),
  rate: (v) => (v * 100).toFixed(1) + "%",
  usd: (v) => "$" + v.toFixed(6),
  ms: (v) => v.toFixed(1) + " ms",
  s: (v) => String(v) + " s",
  ago: (v) => Math.round(v) + " s ago",
};
function get(obj, path) {
  return path.reduce((o, k) => (o == null ? undefined : o[k]), obj);
}
function cell(tag, kind, key, value) {
  // data-k names the get_stats() value shown, data-v holds it raw (tests read both).
  const el = document.createElement(tag);
  if (value === undefined || value === null) { el.textContent = "\\u2013"; return el; }
  el.dataset.k = key;
  el.dataset.v = JSON.stringify(value);
  el.textContent = FORMATS[kind](value);
  return el;
}
function text(tag, value, cls) {
  const el = document.createElement(tag);
  el.textContent = value;
  if (cls) el.className = cls;
  return el;
}
function row(cells) {
  const tr = document.createElement("tr");
  cells.forEach((c) => tr.appendChild(c));
  return tr;
}
function fill(id, rows, columns, emptyText) {
  const body = document.querySelector("#" + id + " tbody");
  body.replaceChildren();
  if (!rows.length) {
    const td = text("td", emptyText, "empty");
    td.colSpan = columns;
    body.appendChild(row([td]));
  }
  rows.forEach((r) => body.appendChild(r));
}
function card(label, kind, key, value) {
  const div = text("div", "", "card");
  div.appendChild(text("div", label, "label"));
  const v = cell("div", kind, key, value);
  v.classList.add("value");
  div.appendChild(v);
  return div;
}
function healthCell(name, h) {
  const td = document.createElement("td");
  const span = document.createElement("span");
  const state = h == null || h.ok === null || h.ok === undefined ? "unknown" : h.ok ? "up" : "down";
  span.className = "health " + state;
  span.appendChild(text("span", "", "dot"));
  const label = text("span", state);
  label.dataset.k = "health." + name + ".ok";
  label.dataset.v = JSON.stringify(h ? h.ok : null);
  span.appendChild(label);
  if (h && h.error) span.title = h.error;
  td.appendChild(span);
  if (h && h.cooling) {
    td.appendChild(document.createTextNode(" "));
    td.appendChild(text("span", "cooling down", "badge"));
  }
  return td;
}
function render(d) {
  const s = d.stats;
  const cost = s.cost || { spent_usd: 0, saved_usd: 0, providers: {}, callers: {} };
  document.getElementById("chain").textContent = d.chain.join(" \\u2192 ");
  document.getElementById("version").textContent = d.version;
  document.getElementById("updated").textContent = new Date(d.generated_at * 1000).toLocaleTimeString();
  document.getElementById("every").textContent = String(d.refresh_seconds);
  const cards = [
    card("requests", "int", "total_requests", s.total_requests),
    card("errors", "int", "total_errors", s.total_errors),
    card("error rate", "rate", "error_rate", s.error_rate),
    card("fallbacks", "int", "total_fallbacks", s.total_fallbacks),
  ];
  if (s.cache) {
    cards.push(card("cache hit rate", "rate", "cache.hit_rate", s.cache.hit_rate));
    cards.push(card("cache size", "int", "cache.size", s.cache.size));
  }
  cards.push(card("spent", "usd", "cost.spent_usd", cost.spent_usd));
  cards.push(card("saved by cache", "usd", "cost.saved_usd", cost.saved_usd));
  document.getElementById("cards").replaceChildren(...cards);

  const names = [...d.chain];
  Object.keys(s.providers).forEach((n) => { if (!names.includes(n)) names.push(n); });
  fill("providers", names.map((n) => {
    const p = s.providers[n] || {};
    const h = d.health[n];
    const c = cost.providers[n] || {};
    const k = "providers." + n + ".";
    return row([
      text("td", n), healthCell(n, h),
      cell("td", "ago", "health." + n + ".age_s", h ? h.age_s : null),
      cell("td", "ms", "health." + n + ".latency_ms", h ? h.latency_ms : null),
      cell("td", "int", k + "requests", p.requests), cell("td", "int", k + "errors", p.errors),
      cell("td", "rate", k + "error_rate", p.error_rate),
      cell("td", "ms", k + "latency_p50_ms", p.latency_p50_ms),
      cell("td", "ms", k + "latency_p95_ms", p.latency_p95_ms),
      cell("td", "int", k + "total_tokens", p.total_tokens),
      cell("td", "usd", "cost.providers." + n + ".spent_usd", c.spent_usd),
      cell("td", "usd", "cost.providers." + n + ".saved_usd", c.saved_usd),
    ]);
  }), 12, "no provider configured");

  if (s.cache) {
    const c = s.cache;
    fill("cache", [row([
      text("td", "on"), cell("td", "int", "cache.hits", c.hits), cell("td", "int", "cache.misses", c.misses),
      cell("td", "rate", "cache.hit_rate", c.hit_rate), cell("td", "int", "cache.size", c.size),
      cell("td", "int", "cache.max_size", c.max_size), cell("td", "int", "cache.evictions", c.evictions),
      cell("td", "int", "cache.coalesced", c.coalesced), cell("td", "s", "cache.ttl", c.ttl),
    ])], 9, "");
  } else {
    fill("cache", [], 9, "off (LLM_GATEWAY_CACHE_ENABLED=false)");
  }

  const callers = Object.keys(s.callers || {}).sort();
  fill("callers", callers.map((n) => {
    const c = s.callers[n];
    const m = cost.callers[n] || {};
    const k = "callers." + n + ".";
    return row([
      text("td", n), cell("td", "int", k + "requests", c.requests), cell("td", "int", k + "cache_hits", c.cache_hits),
      cell("td", "int", k + "errors", c.errors),
      cell("td", "usd", "cost.callers." + n + ".spent_usd", m.spent_usd),
      cell("td", "usd", "cost.callers." + n + ".saved_usd", m.saved_usd),
    ]);
  }), 6, "no call named its caller yet (pass caller=\\"module\\")");
  document.body.dataset.rendered = String(d.generated_at);
}
async function poll() {
  const live = document.getElementById("live");
  try {
    const response = await fetch("stats.json", { cache: "no-store" });
    if (!response.ok) throw new Error("HTTP " + response.status);
    render(await response.json());
    live.className = "ok";
    live.textContent = "\\u25CF live";
  } catch (err) {
    live.className = "stale";
    live.textContent = "\\u25CF not reachable";
  }
}
render(JSON.parse(document.getElementById("initial").textContent));
setInterval(poll, REFRESH_MS);
</script>
</body>
</html>
"""
