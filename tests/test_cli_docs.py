"""docs/cli.md is generated from the CLI itself and must not drift from it."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from sarai_llm import cli

DOC = Path(__file__).resolve().parent.parent / "docs" / "cli.md"
REGENERATE = "sarai-llm --markdown-help > docs/cli.md"


def test_docs_cli_md_is_up_to_date() -> None:
    assert DOC.is_file(), f"docs/cli.md is missing: run `{REGENERATE}`"
    assert DOC.read_text(encoding="utf-8") == cli.render_markdown(), (
        f"docs/cli.md is out of date with the CLI: run `{REGENERATE}` and commit the result"
    )


def test_reference_documents_every_command_and_option() -> None:
    text = cli.render_markdown()
    for command in ("chat", "embed", "health", "stats", "config", "cache info", "cache clear"):
        assert f"`sarai-llm {command}`" in text
    for option in ("--provider NAME", "--model MODEL", "--temperature T", "--max-tokens N", "--system TEXT",
                   "--no-cache", "--stream", "--json", "--explain", "--debug"):  # fmt: skip
        assert f"`{option}`" in text, option
    for code in ("| 0 |", "| 1 |", "| 2 |", "| 3 |"):
        assert code in text


def test_hidden_option_prints_the_same_text() -> None:
    result = subprocess.run(
        [sys.executable, "-m", "sarai_llm", "--markdown-help"], capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0
    assert result.stdout == cli.render_markdown()
    assert "--markdown-help" not in cli.build_parser().format_help()  # hidden from --help
