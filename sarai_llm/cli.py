"""The ``sarai-llm`` command line: try a prompt, check providers, inspect config and cache.

Run ``sarai-llm --help`` (or ``python -m sarai_llm --help``). The reference in
``docs/cli.md`` is generated from this module (``sarai-llm --markdown-help``)
and a test fails when it is out of date.

Importing this module, ``--help`` and ``sarai-llm config`` never import
LiteLLM: only ``chat`` and ``embed`` load it, on a cache miss.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Callable, Coroutine, Iterator, Sequence
from typing import TYPE_CHECKING, Any, TypeVar

if TYPE_CHECKING:
    from .config import GatewayConfig

__all__ = [
    "EXIT_CHECK_FAILED",
    "EXIT_OK",
    "EXIT_REQUEST_FAILED",
    "EXIT_USAGE",
    "build_parser",
    "exit_code_for",
    "main",
    "render_markdown",
]

PROG = "sarai-llm"

EXIT_OK = 0
"""The command did what was asked."""
EXIT_CHECK_FAILED = 1
"""A check failed: ``health`` found a provider down."""
EXIT_USAGE = 2
"""Bad usage or configuration: wrong arguments, invalid settings, no usable provider."""
EXIT_REQUEST_FAILED = 3
"""The request failed: every provider failed, a stream was cut, or another gateway error."""

_EXIT_CODES = (
    (EXIT_OK, "success"),
    (EXIT_CHECK_FAILED, "a check failed (`health`: a provider is down)"),
    (EXIT_USAGE, "bad usage or configuration (invalid arguments or settings, no usable provider)"),
    (EXIT_REQUEST_FAILED, "the request failed (all providers failed, stream interrupted, other gateway error)"),
    (130, "interrupted (Ctrl-C)"),
)

# Listed here rather than imported from sarai_llm.config, which loads pydantic:
# `--help` stays fast. tests/test_cli.py checks it against config.PROVIDERS.
_PROVIDER_NAMES = ("ollama", "openai", "anthropic", "local")

T = TypeVar("T")
Handler = Callable[[argparse.Namespace], int]


class UsageError(Exception):
    """A command was used wrongly in a way argparse cannot see (exit code 2)."""


# --- texts -----------------------------------------------------------------------

_DESCRIPTION = """\
Command line of sarai_llm: one shared, configured way to call LLMs.

Settings come from LLM_GATEWAY_* environment variables, the .env file of the
current directory and config.yaml (or the file named by LLM_GATEWAY_CONFIG),
in that order, then the defaults. `sarai-llm config --explain` shows which
source set each value."""

_EPILOG = """\
exit codes: 0 success; 1 a check failed (health: a provider is down);
2 bad usage or configuration; 3 the request failed; 130 interrupted.
Errors are one line on stderr; --debug shows tracebacks and DEBUG logs."""

_CHAT_DESCRIPTION = """\
Send one prompt and print the answer.

The prompt is PROMPT, or standard input when PROMPT is missing or "-"
(echo "hola" | sarai-llm chat). Providers are tried in order: --provider
(default: the configured primary), then the configured fallbacks."""

_EMBED_DESCRIPTION = """\
Embed one text and print its vector as a JSON list.

The text is TEXT, or standard input when TEXT is missing or "-". With --json
the output is an object with the text, the number of dimensions and the
vector."""

_HEALTH_DESCRIPTION = """\
Check the configured providers (the primary and the fallbacks) with the
cheapest request each offers (a model listing), and print a table.

Exit code 1 when a provider is down."""

_STATS_DESCRIPTION = """\
Print the gateway's statistics as JSON (the shape of sarai_llm.get_stats()).

Counters live in the process that made the calls: in a fresh `sarai-llm`
process the request, error and hit counters are zero. The cache section still
shows the shared on-disk cache's current size."""

_CONFIG_DESCRIPTION = """\
Print the effective settings, after merging the environment, .env,
config.yaml and the defaults. API keys are shown as *** (set) or (unset),
never in clear.

With --explain, also show where each value came from: default, environment,
.env, or the path of the YAML file."""

_CACHE_DESCRIPTION = """\
Inspect or empty the response cache shared by every process that uses the same
store: the cache directory (LLM_GATEWAY_CACHE_DIR) or the Redis server."""


# --- the parser ----------------------------------------------------------------------


class _MarkdownHelpAction(argparse.Action):
    """Hidden ``--markdown-help``: print the reference in Markdown (docs/cli.md) and exit."""

    def __init__(self, option_strings: Sequence[str], dest: str, **kwargs: Any) -> None:
        super().__init__(option_strings, dest, nargs=0, default=argparse.SUPPRESS, help=argparse.SUPPRESS)

    def __call__(
        self,
        parser: argparse.ArgumentParser,
        namespace: argparse.Namespace,
        values: Any,
        option_string: str | None = None,
    ) -> None:
        sys.stdout.write(render_markdown(parser))
        parser.exit()


def _formatter(prog: str) -> argparse.HelpFormatter:
    return argparse.RawDescriptionHelpFormatter(prog, max_help_position=32)


def _debug_parent(top_level: bool) -> argparse.ArgumentParser:
    # --debug works before or after the command; in subcommands its default is
    # SUPPRESS so that it does not overwrite a --debug given before the command.
    parent = argparse.ArgumentParser(add_help=False)
    parent.add_argument(
        "--debug",
        action="store_true",
        default=False if top_level else argparse.SUPPRESS,
        help="show tracebacks and DEBUG logs (sarai_llm and LiteLLM) on stderr",
    )
    return parent


def _add_command(
    commands: argparse._SubParsersAction[argparse.ArgumentParser],
    name: str,
    summary: str,
    description: str,
    handler: Handler | None,
) -> argparse.ArgumentParser:
    parser = commands.add_parser(
        name,
        help=summary,
        description=description,
        formatter_class=_formatter,
        parents=[_debug_parent(top_level=False)],
    )
    if handler is not None:
        parser.set_defaults(handler=handler)
    return parser


def _add_provider_options(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--provider",
        metavar="NAME",
        help=f"provider tried first ({', '.join(_PROVIDER_NAMES)}); default: the configured primary",
    )
    parser.add_argument("--model", metavar="MODEL", help="model of the first attempt; default: the provider's model")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sarai-llm`` (cheap: imports nothing heavy)."""
    from . import __version__

    parser = argparse.ArgumentParser(
        prog=PROG,
        description=_DESCRIPTION,
        epilog=_EPILOG,
        formatter_class=_formatter,
        parents=[_debug_parent(top_level=True)],
    )
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    parser.add_argument("--markdown-help", action=_MarkdownHelpAction)
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)

    chat = _add_command(commands, "chat", "send a prompt, print the answer", _CHAT_DESCRIPTION, _cmd_chat)
    chat.add_argument("prompt", nargs="?", metavar="PROMPT", help='the user message; "-" or missing: read stdin')
    _add_provider_options(chat)
    chat.add_argument(
        "--temperature", type=float, default=0.7, metavar="T", help="sampling temperature, 0 to 2 (default 0.7)"
    )
    chat.add_argument(
        "--max-tokens", type=int, metavar="N", help="upper bound of generated tokens (default: the provider's)"
    )
    chat.add_argument("--system", metavar="TEXT", help="a system message sent before the prompt")
    chat.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    chat.add_argument("--stream", action="store_true", help="print the answer piece by piece as it arrives")
    chat.add_argument(
        "--json",
        action="store_true",
        help="print the whole result (content, model, provider, usage, cached, latency_ms, ...) as JSON",
    )

    embed = _add_command(commands, "embed", "embed a text, print the vector", _EMBED_DESCRIPTION, _cmd_embed)
    embed.add_argument("text", nargs="?", metavar="TEXT", help='the text to embed; "-" or missing: read stdin')
    _add_provider_options(embed)
    embed.add_argument("--no-cache", action="store_true", help="neither read nor write the response cache")
    embed.add_argument("--json", action="store_true", help='print {"text", "dimensions", "embedding"} as JSON')

    health = _add_command(
        commands, "health", "check the providers (exit 1 if one is down)", _HEALTH_DESCRIPTION, _cmd_health
    )
    health.add_argument("--provider", metavar="NAME", help="check only this provider")
    health.add_argument("--json", action="store_true", help="print {provider: {ok, latency_ms, error}} as JSON")

    _add_command(commands, "stats", "print this process's statistics as JSON", _STATS_DESCRIPTION, _cmd_stats)

    config = _add_command(
        commands, "config", "print the effective settings (keys masked)", _CONFIG_DESCRIPTION, _cmd_config
    )
    config.add_argument("--explain", action="store_true", help="also show which source set each value")
    config.add_argument("--json", action="store_true", help="print the settings as a JSON object")

    cache = _add_command(commands, "cache", "inspect or clear the response cache", _CACHE_DESCRIPTION, None)
    cache_commands = cache.add_subparsers(title="commands", dest="cache_command", metavar="COMMAND", required=True)
    info = _add_command(
        cache_commands,
        "info",
        "print the cache's store, size and limits",
        "Print where the cache is shared (its directory or server), its number of entries, max_size and ttl.",
        _cmd_cache_info,
    )
    info.add_argument("--json", action="store_true", help="print the cache's figures as JSON")
    _add_command(
        cache_commands,
        "clear",
        "drop every cached answer",
        "Drop every cached answer, for every process sharing the cache.",
        _cmd_cache_clear,
    )
    _add_export_commands(commands)
    return parser


# --- helpers -----------------------------------------------------------------------------


def _run(coro: Coroutine[Any, Any, T]) -> T:
    """Run one command's coroutine on its own event loop, closing the connections it opened."""
    import asyncio

    import sarai_llm

    async def command() -> T:
        try:
            return await coro
        finally:
            gateway = sarai_llm._gateway  # None when the command failed before building one
            if gateway is not None:
                await gateway.close_connections()

    return asyncio.run(command())


def _read_input(value: str | None, what: str) -> str:
    if value is not None and value != "-":
        return value
    stdin = sys.stdin
    if stdin is None or stdin.isatty():
        raise UsageError(f"no {what}: give it as an argument or pipe it on standard input")
    text = stdin.read().strip()
    if not text:
        raise UsageError(f"empty {what} on standard input")
    return text


def _print_json(value: Any) -> None:
    print(json.dumps(value, indent=2, ensure_ascii=False, default=str))


def _table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in rows]
    return "\n".join(lines)


def _one_line(text: str) -> str:
    return " ".join(text.split())


# --- commands --------------------------------------------------------------------------


def _cmd_chat(args: argparse.Namespace) -> int:
    if args.stream and args.json:
        raise UsageError("--stream and --json cannot be combined")
    prompt = _read_input(args.prompt, "prompt")
    messages: list[dict[str, str]] = []
    if args.system:
        messages.append({"role": "system", "content": args.system})
    messages.append({"role": "user", "content": prompt})
    options: dict[str, Any] = {
        "model": args.model,
        "provider": args.provider,
        "temperature": args.temperature,
        "max_tokens": args.max_tokens,
        "use_cache": not args.no_cache,
    }
    import sarai_llm

    if args.stream:

        async def stream() -> None:
            async for piece in sarai_llm.stream_chat(messages, **options):
                sys.stdout.write(piece)
                sys.stdout.flush()

        _run(stream())
        sys.stdout.write("\n")
        return EXIT_OK
    result = _run(sarai_llm.chat(messages, **options))
    if args.json:
        _print_json(result)
    else:
        print(result["content"])
    return EXIT_OK


def _cmd_embed(args: argparse.Namespace) -> int:
    text = _read_input(args.text, "text")
    import sarai_llm

    vector = _run(sarai_llm.embed(text, model=args.model, provider=args.provider, use_cache=not args.no_cache))
    if args.json:
        _print_json({"text": text, "dimensions": len(vector), "embedding": vector})
    else:
        print(json.dumps(vector))
    return EXIT_OK


def _cmd_health(args: argparse.Namespace) -> int:
    import sarai_llm

    gateway = sarai_llm.get_gateway()
    results: dict[str, Any] = _run(gateway.health_check(args.provider, detailed=True))
    if args.json:
        _print_json(results)
    else:
        config = gateway.config
        rows = [("PROVIDER", "ROLE", "STATUS", "LATENCY", "DETAIL")]
        for name, result in results.items():
            role = "primary" if name == config.primary_provider else "fallback"
            if args.provider is not None:
                role = "requested"
            status = "up" if result["ok"] else "down"
            latency = f"{result['latency_ms']:.0f} ms"
            rows.append((name, role, status, latency, _one_line(result.get("error") or "")))
        print(_table(rows))
    return EXIT_OK if all(r["ok"] for r in results.values()) else EXIT_CHECK_FAILED


def _cmd_stats(args: argparse.Namespace) -> int:
    import sarai_llm

    _print_json(sarai_llm.get_stats())
    return EXIT_OK


def _show(value: Any) -> str:
    if value is None:
        return "(unset)"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    if isinstance(value, list):
        return ",".join(str(v) for v in value) if value else "(none)"
    return str(value) if value != "" else '""'


def _cmd_config(args: argparse.Namespace) -> int:
    from .config import ENV_PREFIX, GatewayConfig

    config: GatewayConfig = GatewayConfig.load()
    settings = config.public_dict()
    sources = config.explain()
    if args.json:
        if args.explain:
            _print_json({name: {"value": value, "source": sources[name]} for name, value in settings.items()})
        else:
            _print_json(settings)
        return EXIT_OK
    header = ["SETTING", "VALUE"] + (["SOURCE"] if args.explain else [])
    rows = [header]
    for name, value in settings.items():
        shown = _show(value)
        if name == "cache_dir" and value is None:
            from .cache import default_cache_dir

            shown = f"(unset: {default_cache_dir()})"
        row = [f"{ENV_PREFIX}{name.upper()}", shown]
        if args.explain:
            row.append(sources[name])  # default, environment, .env, or the YAML file's path
        rows.append(row)
    print(_table(rows))
    config_file = config.config_file
    print(f"\nconfig file: {config_file if config_file is not None else 'none (./config.yaml not found)'}")
    return EXIT_OK


def _cache_or_none() -> Any:
    import sarai_llm

    return sarai_llm.get_gateway().cache


def _store(cache: Any, figures: dict[str, Any] | None = None) -> str:
    """Where the cache's entries are shared (a directory, or a server without credentials)."""
    from .errors import redact

    figures = figures if figures is not None else cache.stats()
    where = figures.get("store") or figures.get("directory") or getattr(cache, "directory", None)
    return redact(str(where))


def _cmd_cache_info(args: argparse.Namespace) -> int:
    cache = _cache_or_none()
    if cache is None:
        if args.json:
            _print_json({"enabled": False})
        else:
            print("cache: disabled (LLM_GATEWAY_CACHE_ENABLED=false)")
        return EXIT_OK
    figures = cache.stats()
    info = {
        "enabled": True,
        "store": _store(cache, figures),
        "namespace": cache.namespace,
        "size": figures["size"],
        "max_size": figures["max_size"],
        "ttl": figures["ttl"],
        "errors": figures.get("errors", 0),
    }
    if args.json:
        _print_json(info)
    else:
        rows = [
            ("store", str(info["store"])),
            ("entries", f"{info['size']} of {info['max_size']}"),
            ("ttl", f"{info['ttl']} s"),
            ("namespace", info["namespace"] or "(none)"),
        ]
        print(_table(rows))
    return EXIT_OK


def _cmd_cache_clear(args: argparse.Namespace) -> int:
    cache = _cache_or_none()
    if cache is None:
        print("cache: disabled (LLM_GATEWAY_CACHE_ENABLED=false); nothing to clear")
        return EXIT_OK
    before = len(cache)
    cache.clear()
    print(f"cleared {before} entr{'y' if before == 1 else 'ies'} from {_store(cache)}")
    return EXIT_OK


# --- export (sarai_llm.proxy_export) ---------------------------------------------------------

_EXPORT_DESCRIPTION = """\
Export the effective configuration for another server.

`export litellm-proxy` writes a LiteLLM Proxy config.yaml with the same
providers, models, fallbacks, retries and cache (see sarai_llm.proxy_export).
Secrets are written as os.environ/... references, never in clear."""


def _add_export_commands(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    export = _add_command(commands, "export", "export the configuration for another server", _EXPORT_DESCRIPTION, None)
    targets = export.add_subparsers(title="commands", dest="export_command", metavar="COMMAND", required=True)
    proxy = _add_command(
        targets,
        "litellm-proxy",
        "write a LiteLLM Proxy config.yaml",
        "Write a LiteLLM Proxy config.yaml (litellm --config FILE) equivalent to the effective settings.",
        _cmd_export_litellm_proxy,
    )
    proxy.add_argument("-o", "--output", metavar="FILE", help="write to FILE instead of standard output")


def _cmd_export_litellm_proxy(args: argparse.Namespace) -> int:
    from .config import GatewayConfig
    from .proxy_export import render_litellm_proxy_yaml

    text = render_litellm_proxy_yaml(GatewayConfig.load())
    if args.output is None:
        sys.stdout.write(text)
        return EXIT_OK
    try:
        with open(args.output, "w", encoding="utf-8") as file:
            file.write(text)
    except OSError as exc:
        raise UsageError(f"cannot write {args.output}: {exc.strerror or exc}") from exc
    print(f"wrote {args.output}", file=sys.stderr)
    return EXIT_OK


# --- errors and entry point ----------------------------------------------------------------


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error raised by a command (see the module's exit-code constants)."""
    from .errors import ConfigError, InvalidRequestError, NoProvidersError

    if isinstance(exc, UsageError | ConfigError | InvalidRequestError | NoProvidersError):
        return EXIT_USAGE
    return EXIT_REQUEST_FAILED


def _hint(exc: BaseException) -> str:
    from .errors import AllProvidersFailedError, NoProvidersError

    if isinstance(exc, AllProvidersFailedError):
        return " (check the providers with `sarai-llm health`)"
    if isinstance(exc, NoProvidersError):
        return " (see `sarai-llm config --explain`)"
    return ""


class _StderrHandler(logging.Handler):
    """Writes to whatever ``sys.stderr`` is when the record is emitted (tests replace it)."""

    def emit(self, record: logging.LogRecord) -> None:
        try:
            sys.stderr.write(self.format(record) + "\n")
        except Exception:
            self.handleError(record)


@contextlib.contextmanager
def _logging(debug: bool) -> Iterator[None]:
    """DEBUG logs of sarai_llm (LiteLLM's included) on stderr while a command runs with --debug."""
    if not debug:
        yield
        return
    handler = _StderrHandler()
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
    logger = logging.getLogger("sarai_llm")
    level = logger.level
    logger.addHandler(handler)
    logger.setLevel(logging.DEBUG)
    try:
        yield
    finally:
        logger.removeHandler(handler)
        logger.setLevel(level)


def main(argv: Sequence[str] | None = None) -> int:
    """Run ``sarai-llm`` with ``argv`` (default ``sys.argv[1:]``); return the exit code."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse reported
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    handler: Handler = args.handler
    try:
        with _logging(debug):
            return handler(args)
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:
        # The reader went away (`sarai-llm embed x | head -c 10`): not an error of ours.
        _silence_stdout()
        return EXIT_OK
    except Exception as exc:
        if debug:
            import traceback

            traceback.print_exc()
        from .errors import SaraiLLMError

        if isinstance(exc, SaraiLLMError | UsageError):
            message = f"{PROG}: error: {_one_line(str(exc))}{_hint(exc)}"
        else:
            detail = "" if debug else " (run with --debug for the traceback)"
            message = f"{PROG}: unexpected error: {type(exc).__name__}: {_one_line(str(exc))}{detail}"
        print(message, file=sys.stderr)
        return exit_code_for(exc)


def _silence_stdout() -> None:
    import os

    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())
    except (OSError, ValueError):
        pass


# --- the reference, in Markdown ---------------------------------------------------------------


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    found: list[tuple[str, argparse.ArgumentParser, str]] = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            summaries = {choice.dest: choice.help or "" for choice in action._choices_actions}
            for name, sub in action.choices.items():
                found.append((name, sub, summaries.get(name, "")))
    return found


def _visible(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)]


def _signature(action: argparse.Action) -> str:
    if not action.option_strings:
        name = str(action.metavar or action.dest)
        return f"[{name}]" if action.nargs == "?" else name
    flags = ", ".join(action.option_strings)
    if action.nargs == 0:
        return flags
    return f"{flags} {action.metavar or action.dest.upper()}"


def _usage(path: str, parser: argparse.ArgumentParser) -> str:
    parts = [path]
    if any(a.option_strings for a in _visible(parser)):
        parts.append("[options]")
    parts += [_signature(a) for a in _visible(parser) if not a.option_strings]
    if _subcommands(parser):
        parts.append("COMMAND")
    return " ".join(parts)


def _arguments_table(parser: argparse.ArgumentParser, *, common: bool = True) -> list[str]:
    actions = _visible(parser)
    if not common:  # -h and --debug are documented once, under "Global options"
        actions = [a for a in actions if not isinstance(a, argparse._HelpAction) and a.dest != "debug"]
    if not actions:
        return []
    lines = ["| Argument | Meaning |", "|---|---|"]
    for action in actions:
        text = (action.help or "").replace("|", "\\|")
        lines.append(f"| `{_signature(action)}` | {text} |")
    return lines + [""]


def _document(path: str, parser: argparse.ArgumentParser, level: int, lines: list[str]) -> None:
    for name, sub, summary in _subcommands(parser):
        sub_path = f"{path} {name}"
        lines += [f"{'#' * level} `{sub_path}`", ""]
        lines += [(sub.description or summary).rstrip(), ""]
        lines += ["```", _usage(sub_path, sub), "```", ""]
        lines += _arguments_table(sub, common=False)
        _document(sub_path, sub, level + 1, lines)


def render_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The command line reference in Markdown, as kept in ``docs/cli.md``.

    Built from the parser itself (descriptions, arguments, help texts), not
    from argparse's formatted help, so it does not depend on the terminal's
    width or the Python version.
    """
    parser = parser or build_parser()
    lines = [
        f"# `{PROG}` command line reference",
        "",
        "<!-- Generated by `sarai-llm --markdown-help > docs/cli.md`; do not edit by hand. -->",
        "<!-- tests/test_cli_docs.py fails when this file is out of date. -->",
        "",
        (parser.description or "").rstrip(),
        "",
        "```",
        _usage(PROG, parser),
        "```",
        "",
        "Also runnable as `python -m sarai_llm`.",
        "",
        "## Global options",
        "",
        *_arguments_table(parser),
        "`-h, --help` and `--debug` are accepted by every command, before or after its name.",
        "",
        "## Exit codes",
        "",
        "| Code | Meaning |",
        "|---|---|",
        *(f"| {code} | {meaning} |" for code, meaning in _EXIT_CODES),
        "",
        "Errors print one line on standard error (`sarai-llm: error: ...`), never a traceback",
        "unless `--debug` is given, and never an API key.",
        "",
        "## Commands",
        "",
    ]
    _document(PROG, parser, 3, lines)
    return "\n".join(lines).rstrip() + "\n"


if __name__ == "__main__":
    sys.exit(main())
