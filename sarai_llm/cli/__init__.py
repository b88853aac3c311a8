"""Command line of sarai_llm: one shared, configured way to call LLMs.

Settings come from LLM_GATEWAY_* environment variables, the .env file of the
current directory and config.yaml (or the file named by LLM_GATEWAY_CONFIG),
in that order, then the defaults. `sarai-llm config --explain` shows which
source set each value."""

# This docstring is --help's description; docs/cli.md is `sarai-llm --markdown-help`. No LiteLLM import.
from __future__ import annotations

import argparse
import contextlib
import functools
import inspect
import logging
import os
import sys
import traceback
from collections.abc import Callable, Iterator, Sequence
from typing import Any, TypeAlias

from .._providers import PROVIDERS
from .._version import __version__
from ..errors import AllProvidersFailedError, ConfigError, InvalidRequestError, NoProvidersError, SaraiLLMError
from . import _commands as _cmd
from ._commands import UsageError, one_line

__all__ = ["EXIT_CHECK_FAILED", "EXIT_OK", "EXIT_REQUEST_FAILED", "EXIT_USAGE"]
__all__ += ["build_parser", "exit_code_for", "main", "render_markdown"]

PROG = "sarai-llm"

EXIT_OK, EXIT_CHECK_FAILED, EXIT_USAGE, EXIT_REQUEST_FAILED = 0, 1, 2, 3
_EXIT_CODES = (  # their meanings, for docs/cli.md
    (EXIT_OK, "success"),
    (EXIT_CHECK_FAILED, "a check failed (`health`: a provider is down)"),
    (EXIT_USAGE, "bad usage or configuration (invalid arguments or settings, no usable provider)"),
    (EXIT_REQUEST_FAILED, "the request failed (all providers failed, stream interrupted, other gateway error)"),
    (130, "interrupted (Ctrl-C)"),
)

_EPILOG = """\
exit codes: 0 success; 1 a check failed (health: a provider is down);
2 bad usage or configuration; 3 the request failed; 130 interrupted.
Errors are one line on stderr; --debug shows tracebacks and DEBUG logs."""

_CACHE = """\
Inspect or empty the response cache shared by every process that uses the same
store: the cache directory (LLM_GATEWAY_CACHE_DIR) or the Redis server."""

_EXPORT = """\
Export the effective configuration for another server.

`export litellm-proxy` writes a LiteLLM Proxy config.yaml with the same
providers, models, fallbacks, retries and cache (see sarai_llm.cli.export).
Secrets are written as os.environ/... references, never in clear."""

Handler = Callable[[argparse.Namespace], bool | None]  # False: a check failed
_Commands: TypeAlias = "argparse._SubParsersAction[argparse.ArgumentParser]"
_HINTS = (  # what to run next, after an error of this kind
    (AllProvidersFailedError, " (check the providers with `sarai-llm health`)"),
    (NoProvidersError, " (see `sarai-llm config --explain`)"),
)
_USAGE_ERRORS = (UsageError, ConfigError, InvalidRequestError, NoProvidersError)
_FORMATTER = functools.partial(argparse.RawDescriptionHelpFormatter, max_help_position=32)


def _add(parser: argparse._ActionsContainer, *options: tuple[str, str], **kwargs: Any) -> None:
    """Add ``(flags, help)`` options: ``"--x N"`` takes a value named N (with ``kwargs``), ``"--x"`` is a switch."""
    for flags, help_text in options:
        *names, last = flags.split()
        if names and last.isupper():
            parser.add_argument(*names, metavar=last, help=help_text, **kwargs)
        else:
            parser.add_argument(*names, last, action="store_true", help=help_text)


def _command(commands: _Commands, name: str, summary: str, run: Handler | str) -> argparse.ArgumentParser:
    """A command run by a handler (its docstring is the description), or a group given its description."""
    description = run if isinstance(run, str) else inspect.cleandoc(run.__doc__ or "")
    parser = commands.add_parser(name, help=summary, description=description, formatter_class=_FORMATTER)
    # --debug works after the command too; SUPPRESS keeps a --debug given before it.
    parser.add_argument("--debug", action="store_true", default=argparse.SUPPRESS, help=_DEBUG)
    if not isinstance(run, str):
        parser.set_defaults(handler=run)
    return parser


def _group(commands: _Commands, name: str, summary: str, description: str) -> _Commands:
    parser = _command(commands, name, summary, description)
    return parser.add_subparsers(title="commands", dest=f"{name}_command", metavar="COMMAND", required=True)


_DEBUG = "show tracebacks and DEBUG logs (sarai_llm and LiteLLM) on stderr"
_PROVIDER = ("--provider NAME", f"provider tried first ({', '.join(PROVIDERS)}); default: the configured primary")
_MODEL = ("--model MODEL", "model of the first attempt; default: the provider's model")
_NO_CACHE = ("--no-cache", "neither read nor write the response cache")
_CHECK = ("--check FILE", "only validate the YAML file FILE (default: the configured one); exit 2 if invalid")


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of ``sarai-llm`` (cheap: imports nothing heavy)."""
    parser = argparse.ArgumentParser(prog=PROG, description=__doc__, epilog=_EPILOG, formatter_class=_FORMATTER)
    parser.add_argument("--debug", action="store_true", help=_DEBUG)
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    commands = parser.add_subparsers(title="commands", dest="command", metavar="COMMAND", required=True)

    chat = _command(commands, "chat", "send a prompt, print the answer", _cmd.chat)
    chat.add_argument("prompt", nargs="?", metavar="PROMPT", help='the user message; "-" or missing: read stdin')
    _add(chat, _PROVIDER, _MODEL)
    _add(chat, ("--temperature T", "sampling temperature, 0 to 2 (default 0.7)"), type=float, default=0.7)
    _add(chat, ("--max-tokens N", "upper bound of generated tokens (default: the provider's)"), type=int)
    _add(chat, ("--system TEXT", "a system message sent before the prompt"), _NO_CACHE)
    streaming = chat.add_mutually_exclusive_group()
    _add(streaming, ("--stream", "print the answer piece by piece as it arrives (the default on a terminal)"))
    _add(streaming, ("--no-stream", "wait for the whole answer, then print it (the default piped, or with --json)"))
    _add(chat, ("--json", "print the whole result (content, usage, tool_calls, parsed, latency_ms, ...) as JSON"))
    embed = _command(commands, "embed", "embed a text, print the vector", _cmd.embed)
    embed.add_argument("text", nargs="?", metavar="TEXT", help='the text to embed; "-" or missing: read stdin')
    _add(embed, _PROVIDER, _MODEL, _NO_CACHE, ("--json", 'print {"text", "dimensions", "embedding"} as JSON'))
    health = _command(commands, "health", "check the providers (exit 1 if one is down)", _cmd.health)
    _add(health, ("--provider NAME", "check only this provider"))
    _add(health, ("--json", "print {provider: {ok, latency_ms, error}} as JSON"))
    _command(commands, "stats", "print this process's statistics as JSON", _cmd.stats)
    config = _command(commands, "config", "print the effective settings (keys masked)", _cmd.config)
    _add(config, ("--explain", "also show which source set each value"))
    _add(config, ("--json", "print the settings as a JSON object"))
    _add(config, _CHECK, nargs="?", const="")

    cache = _group(commands, "cache", "inspect or clear the response cache", _CACHE)
    info = _command(cache, "info", "print the cache's store, size and limits", _cmd.cache_info)
    _add(info, ("--json", "print the cache's figures as JSON"))
    _command(cache, "clear", "drop every cached answer", _cmd.cache_clear)
    export = _group(commands, "export", "export the configuration for another server", _EXPORT)
    proxy = _command(export, "litellm-proxy", "write a LiteLLM Proxy config.yaml", _cmd.export_litellm_proxy)
    _add(proxy, ("-o --output FILE", "write to FILE instead of standard output"))
    return parser


def exit_code_for(exc: BaseException) -> int:
    """The exit code for an error raised by a command: ``EXIT_USAGE`` or ``EXIT_REQUEST_FAILED``."""
    return EXIT_USAGE if isinstance(exc, _USAGE_ERRORS) else EXIT_REQUEST_FAILED


_TEMPLATE = """\
# `{prog}` command line reference

<!-- Generated by `sarai-llm --markdown-help > docs/cli.md`; do not edit by hand. -->
<!-- tests/test_cli_docs.py fails when this file is out of date. -->

{description}

```
{usage}
```

Also runnable as `python -m sarai_llm`.

## Global options

{options}
`-h, --help` and `--debug` are accepted by every command, before or after its name.

## Exit codes

| Code | Meaning |
|---|---|
{codes}

Errors print one line on standard error (`sarai-llm: error: ...`), never a traceback
unless `--debug` is given, and never an API key.

## Commands
"""


def _subcommands(parser: argparse.ArgumentParser) -> list[tuple[str, argparse.ArgumentParser, str]]:
    actions = [a for a in parser._actions if isinstance(a, argparse._SubParsersAction)]
    summaries = {choice.dest: choice.help or "" for a in actions for choice in a._choices_actions}
    return [(name, sub, summaries.get(name, "")) for a in actions for name, sub in a.choices.items()]


def _visible(parser: argparse.ArgumentParser) -> list[argparse.Action]:
    return [a for a in parser._actions if a.help != argparse.SUPPRESS and not isinstance(a, argparse._SubParsersAction)]


def _signature(action: argparse.Action) -> str:
    name = str(action.metavar or (action.dest.upper() if action.option_strings else action.dest))
    name = f"[{name}]" if action.nargs == "?" else name  # an optional value
    if not action.option_strings:
        return name
    flags = ", ".join(action.option_strings)
    return flags if action.nargs == 0 else f"{flags} {name}"


def _usage(path: str, parser: argparse.ArgumentParser) -> str:
    visible = _visible(parser)
    parts = [path, *(["[options]"] if any(a.option_strings for a in visible) else [])]
    parts += [_signature(a) for a in visible if not a.option_strings]
    return " ".join(parts + (["COMMAND"] if _subcommands(parser) else []))


def _arguments(parser: argparse.ArgumentParser, *, common: bool = True) -> list[str]:
    actions = _visible(parser)
    if not common:  # -h and --debug are documented once, under "Global options"
        actions = [a for a in actions if not isinstance(a, argparse._HelpAction) and a.dest != "debug"]
    rows = [(_signature(a), (a.help or "").replace("|", "\\|")) for a in actions]
    return ["| Argument | Meaning |", "|---|---|", *(f"| `{s}` | {h} |" for s, h in rows), ""] if rows else []


def _document(path: str, parser: argparse.ArgumentParser, level: int, lines: list[str]) -> None:
    for name, sub, summary in _subcommands(parser):
        sub_path = f"{path} {name}"
        lines += [f"{'#' * level} `{sub_path}`", "", (sub.description or summary).rstrip(), ""]
        lines += ["```", _usage(sub_path, sub), "```", "", *_arguments(sub, common=False)]
        _document(sub_path, sub, level + 1, lines)


def render_markdown(parser: argparse.ArgumentParser | None = None) -> str:
    """The command line reference in Markdown, as kept in ``docs/cli.md`` (default: of :func:`build_parser`), from
    the parser's own texts rather than argparse's help: the same whatever the terminal's width or Python's version."""
    parser = parser or build_parser()
    codes = "\n".join(f"| {code} | {meaning} |" for code, meaning in _EXIT_CODES)
    options, description = "\n".join(_arguments(parser)), (parser.description or "").rstrip()
    usage = _usage(parser.prog, parser)
    lines = [_TEMPLATE.format(prog=parser.prog, description=description, usage=usage, options=options, codes=codes)]
    _document(parser.prog, parser, 3, lines)
    return "\n".join(lines).rstrip() + "\n"


@contextlib.contextmanager
def _debug_logging() -> Iterator[None]:
    """DEBUG logs of sarai_llm (LiteLLM's included) on this run's stderr."""
    logger, handler = logging.getLogger("sarai_llm"), logging.StreamHandler(sys.stderr)
    handler.setFormatter(logging.Formatter("%(asctime)s %(name)s %(levelname)s: %(message)s"))
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
    if list(sys.argv[1:] if argv is None else argv) == ["--markdown-help"]:  # hidden: writes docs/cli.md
        sys.stdout.write(render_markdown())
        return EXIT_OK
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:  # --help, --version, or a usage error argparse reported
        return exc.code if isinstance(exc.code, int) else EXIT_USAGE
    debug = bool(getattr(args, "debug", False))
    try:
        with _debug_logging() if debug else contextlib.nullcontext():
            handler: Handler = args.handler
            return EXIT_CHECK_FAILED if handler(args) is False else EXIT_OK
    except KeyboardInterrupt:
        print(f"{PROG}: interrupted", file=sys.stderr)
        return 130
    except BrokenPipeError:  # the reader went away (`sarai-llm embed x | head -c 10`): not an error of ours
        with contextlib.suppress(OSError, ValueError):
            os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except Exception as exc:
        if debug:
            traceback.print_exc()
        if isinstance(exc, SaraiLLMError | UsageError):
            hint = next((hint for kind, hint in _HINTS if isinstance(exc, kind)), "")
            message = f"{PROG}: error: {one_line(str(exc))}{hint}"
        else:
            detail = "" if debug else " (run with --debug for the traceback)"
            message = f"{PROG}: unexpected error: {type(exc).__name__}: {one_line(str(exc))}{detail}"
        print(message, file=sys.stderr)
        return exit_code_for(exc)
