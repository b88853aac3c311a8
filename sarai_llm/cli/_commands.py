"""The command handlers: each returns ``False`` when its check failed (exit code 1); its docstring is the
command's description. Heavy modules are imported by the handler that needs them: ``--help`` stays cheap."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from collections.abc import Callable, Coroutine, Sequence
from pathlib import Path
from typing import Any

from .._global import current, get_gateway
from .._providers import ENV_PREFIX
from ..errors import redact


class UsageError(Exception):
    """A command was used wrongly in a way argparse cannot see (exit code 2)."""


def one_line(text: str) -> str:
    """``text`` with each run of whitespace, newlines included, as one space."""
    return " ".join(text.split())


def _run(coro: Coroutine[Any, Any, Any]) -> Any:
    """Run one command's coroutine on its own event loop, closing the connections it opened."""

    async def command() -> Any:
        try:
            return await coro
        finally:
            if (gateway := current()) is not None:  # None when the command failed before building one
                await gateway.close_connections()

    return asyncio.run(command())


def _read_input(value: str | None, what: str) -> str:
    if value is not None and value != "-":
        return value
    if sys.stdin is None or sys.stdin.isatty():
        raise UsageError(f"no {what}: give it as an argument or pipe it on standard input")
    if not (text := sys.stdin.read().strip()):
        raise UsageError(f"empty {what} on standard input")
    return text


def _jsonable(value: Any) -> Any:
    """A value JSON cannot write as it is: a pydantic model (a result's ``parsed``) as its fields, else its text."""
    dump = getattr(value, "model_dump", None)
    return dump(mode="json") if callable(dump) else str(value)


def _print(as_json: bool, value: Any, text: Callable[[], str]) -> None:
    """Print ``value`` as indented JSON (``--json``), else what ``text`` returns."""
    print(json.dumps(value, indent=2, ensure_ascii=False, default=_jsonable) if as_json else text())


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join("  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in rows)


def chat(args: argparse.Namespace) -> None:
    """Send one prompt and print the answer.

    The prompt is PROMPT, or standard input when PROMPT is missing or "-"
    (echo "hola" | sarai-llm chat). Providers are tried in order: --provider
    (default: the configured primary), then the configured fallbacks.

    On a terminal the answer is printed as it arrives; piped or redirected, or
    with --json, it is printed once complete. --stream and --no-stream choose.
    """
    if args.stream and args.json:
        raise UsageError("--stream and --json cannot be combined")
    system = [{"role": "system", "content": args.system}] if args.system else []
    messages = [*system, {"role": "user", "content": _read_input(args.prompt, "prompt")}]
    options: dict[str, Any] = {"model": args.model, "provider": args.provider, "max_tokens": args.max_tokens}
    options.update(temperature=args.temperature, use_cache=not args.no_cache)
    if not (args.stream or (not args.no_stream and not args.json and sys.stdout.isatty())):
        result = _run(get_gateway().chat(messages, **options))
        _print(args.json, result, lambda: str(result["content"]))
        return

    async def stream() -> None:
        async for piece in get_gateway().stream_chat(messages, **options):
            sys.stdout.write(piece)
            sys.stdout.flush()

    _run(stream())
    sys.stdout.write("\n")


def embed(args: argparse.Namespace) -> None:
    """Embed one text and print its vector as a JSON list.

    The text is TEXT, or standard input when TEXT is missing or "-". With --json
    the output is an object with the text, the number of dimensions and the
    vector.
    """
    text = _read_input(args.text, "text")
    vector = _run(get_gateway().embed(text, model=args.model, provider=args.provider, use_cache=not args.no_cache))
    _print(args.json, {"text": text, "dimensions": len(vector), "embedding": vector}, lambda: json.dumps(vector))


def health(args: argparse.Namespace) -> bool:
    """Check the configured providers (the primary and the fallbacks) with the
    cheapest request each offers (a model listing), and print a table.

    Exit code 1 when a provider is down (one without a URL to probe is "unchecked").
    """
    gateway = get_gateway()
    results: dict[str, Any] = _run(gateway.health_check(args.provider, detailed=True))
    primary = gateway.config.chain[0]
    rows = [("PROVIDER", "ROLE", "STATUS", "LATENCY", "DETAIL")]
    for name, r in results.items():
        role = "requested" if args.provider is not None else "primary" if name == primary else "fallback"
        detail = one_line(r.get("error") or "")
        status = "unchecked" if r["ok"] is None else "up" if r["ok"] else "down"
        rows.append((name, role, status, f"{r['latency_ms']:.0f} ms", detail))
    _print(args.json, results, lambda: _table(rows))
    return all(r["ok"] is not False for r in results.values())


def stats(args: argparse.Namespace) -> None:
    """Print the gateway's statistics as JSON (the shape of sarai_llm.get_stats()).

    Counters live in the process that made the calls: in a fresh `sarai-llm`
    process the request, error and hit counters are zero. The cache section still
    shows the shared on-disk cache's current size.
    """
    _print(True, get_gateway().get_stats(), str)


def _show(value: Any) -> str:
    if value is None or isinstance(value, bool):
        return {None: "(unset)", True: "true", False: "false"}[value]
    if isinstance(value, list):
        return ",".join(map(str, value)) or "(none)"
    return str(int(value)) if isinstance(value, float) and value.is_integer() else str(value) or '""'


def config(args: argparse.Namespace) -> None:
    """Print the effective settings, after merging the environment, .env,
    config.yaml and the defaults. API keys are shown as *** (set) or (unset),
    never in clear.

    With --explain, also show where each value came from: default, environment,
    .env, or the path of the YAML file.

    With --check, only load the settings as a gateway would (FILE as the YAML
    file), print one line if they are valid, else the error (exit code 2): run
    it before an edit of config.yaml reaches running gateways.
    """
    from ..cache import default_cache_dir
    from ..config import GatewayConfig

    if args.check is not None:
        checked = GatewayConfig.load(**({"config": args.check} if args.check else {}))
        if checked.config_file is None:
            raise UsageError("nothing to check: ./config.yaml not found (give FILE or set LLM_GATEWAY_CONFIG)")
        print(f"{checked.config_file}: OK (providers tried in order: {', '.join(checked.chain)})")
        return
    loaded = GatewayConfig.load()
    settings, sources = loaded.public_dict(), loaded.explain()

    def text() -> str:
        rows = [["SETTING", "VALUE"] + (["SOURCE"] if args.explain else [])]
        for name, value in settings.items():
            shown = f"(unset: {default_cache_dir()})" if name == "cache_dir" and value is None else _show(value)
            rows.append([f"{ENV_PREFIX}{name.upper()}", shown] + ([sources[name]] if args.explain else []))
        where = loaded.config_file if loaded.config_file is not None else "none (./config.yaml not found)"
        return f"{_table(rows)}\n\nconfig file: {where}"

    explained = {name: {"value": value, "source": sources[name]} for name, value in settings.items()}
    _print(args.json, explained if args.explain else settings, text)


def cache_info(args: argparse.Namespace) -> None:
    """Print where the cache is shared (its directory or server), its number of entries, max_size and ttl."""
    cache = get_gateway().cache
    if cache is None:
        _print(args.json, {"enabled": False}, lambda: "cache: disabled (LLM_GATEWAY_CACHE_ENABLED=false)")
        return
    figures = cache.stats()
    info: dict[str, Any] = {"enabled": True, "store": redact(str(figures["store"])), "namespace": cache.namespace}
    info |= {name: figures[name] for name in ("size", "max_size", "ttl", "errors")}
    rows = [("store", info["store"]), ("entries", f"{info['size']} of {info['max_size']}")]
    rows += [("ttl", f"{info['ttl']} s"), ("namespace", info["namespace"] or "(none)")]
    _print(args.json, info, lambda: _table(rows))


def cache_clear(args: argparse.Namespace) -> None:
    """Drop every cached answer, for every process sharing the cache."""
    cache = get_gateway().cache
    if cache is None:
        print("cache: disabled (LLM_GATEWAY_CACHE_ENABLED=false); nothing to clear")
        return
    before = len(cache)
    cache.clear()
    print(f"cleared {before} entr{'y' if before == 1 else 'ies'} from {redact(str(cache.stats()['store']))}")


def export_litellm_proxy(args: argparse.Namespace) -> None:
    """Write a LiteLLM Proxy config.yaml (litellm --config FILE) equivalent to the effective settings."""
    from ..config import GatewayConfig
    from .export import render_litellm_proxy_yaml

    text = render_litellm_proxy_yaml(GatewayConfig.load())
    if args.output is None:
        sys.stdout.write(text)
        return
    try:
        Path(args.output).write_text(text, encoding="utf-8")
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    print(f"wrote {args.output}", file=sys.stderr)
