"""The status page (``status.html``: self-contained, offline) and its data, :func:`snapshot`.

Health never blocks the server: a snapshot shows each provider's last known check, and starts one
in a background thread when that is missing or older than :data:`HEALTH_MAX_AGE` seconds.
"""

from __future__ import annotations

import asyncio
import json
import threading
import time
from functools import cache
from typing import TYPE_CHECKING, Any

from .._log import log
from .._version import __version__

if TYPE_CHECKING:
    from .._gateway import Gateway

__all__ = ["HEALTH_MAX_AGE", "REFRESH_SECONDS", "content_security_policy", "render_page", "snapshot", "to_json"]

REFRESH_SECONDS = 2.0
"""Seconds between the page's polls of ``stats.json``."""
HEALTH_MAX_AGE = 30.0
"""Seconds after which a provider's health result is refreshed in the background."""

_checks: dict[int, threading.Thread] = {}  # id(gateway) -> its latest background health check
_checks_lock = threading.Lock()


def snapshot(gateway: Gateway, *, refresh_health: bool = True) -> dict[str, Any]:
    """What the status page shows, JSON-serialisable, never a secret; safe from any thread: ``{"version",
    "generated_at", "refresh_seconds", "chain", "stats", "health"}``, ``health`` mapping each provider of the chain
    to ``{"ok" (None: unchecked), "latency_ms", "error", "checked_at", "age_s" (seconds), "cooling"}``."""
    now, chain, stats = time.time(), gateway.config.chain, gateway.get_stats()
    health: dict[str, dict[str, Any]] = {}
    known = dict(list(gateway.last_health.items()))
    for name in chain:
        seen = known.get(name) or {}
        checked_at = seen.get("checked_at")
        age = now - checked_at if isinstance(checked_at, float) else None
        fields = {"ok": seen.get("ok"), "latency_ms": seen.get("latency_ms"), "error": seen.get("error")}
        health[name] = {**fields, "checked_at": checked_at, "age_s": age, "cooling": gateway.cooling(name)}
    if refresh_health and any(h["age_s"] is None or h["age_s"] > HEALTH_MAX_AGE for h in health.values()):
        _check_in_background(gateway)
    return dict(
        version=__version__, generated_at=now, refresh_seconds=REFRESH_SECONDS, chain=chain, stats=stats, health=health
    )


def _check_in_background(gateway: Gateway) -> None:
    with _checks_lock:
        if (running := _checks.get(id(gateway))) is None or not running.is_alive():
            thread = threading.Thread(target=_check, args=(gateway,), name="sarai_llm-health", daemon=True)
            _checks[id(gateway)] = thread
            thread.start()


def _check(gateway: Gateway) -> None:
    try:
        asyncio.run(gateway.health_check(detailed=True))
    except Exception:  # a failing check is shown as "unknown"; never crash the server
        log.debug("background health check failed", exc_info=True)


def to_json(data: dict[str, Any]) -> str:
    """``data`` as JSON that a browser can parse (a NaN or infinity becomes ``null``)."""
    text = json.dumps(data, default=str)
    return json.dumps(json.loads(text, parse_constant=lambda _: None)) if "NaN" in text or "Infinity" in text else text


@cache
def _page() -> str:
    from importlib import resources

    return resources.files(__name__.rpartition(".")[0]).joinpath("status.html").read_text(encoding="utf-8")


def render_page(data: dict[str, Any], nonce: str | None = None) -> tuple[str, str]:
    """``(html, nonce)``: the page with ``data`` (a :func:`snapshot`) embedded, and the nonce of its
    inline script and style (for :func:`content_security_policy`)."""
    if not nonce:
        import secrets

        nonce = secrets.token_urlsafe(16)
    # Inside <script type="application/json">, "<", ">" and "&" must not appear raw.
    embedded = to_json(data).replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    refresh_ms = str(int(float(data.get("refresh_seconds", REFRESH_SECONDS)) * 1000))
    html = _page().replace("{{NONCE}}", nonce).replace("{{REFRESH_MS}}", refresh_ms).replace("{{DATA}}", embedded)
    return html, nonce


def content_security_policy(nonce: str) -> str:
    """The page's CSP header: nothing but its own inline script and style, and ``stats.json``."""
    return (
        f"default-src 'none'; script-src 'nonce-{nonce}'; style-src 'nonce-{nonce}'; "
        "connect-src 'self'; img-src data:; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"
    )
