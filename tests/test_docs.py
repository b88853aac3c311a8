"""The README keeps up with the code: every setting is documented."""

from __future__ import annotations

from pathlib import Path

from sarai_llm.config import ENV_PREFIX, GatewayConfig

README = (Path(__file__).resolve().parent.parent / "README.md").read_text()


def test_every_setting_is_in_the_readme() -> None:
    missing = [
        f"{ENV_PREFIX}{name.upper()}"
        for name in GatewayConfig.setting_names()
        if f"`{ENV_PREFIX}{name.upper()}`" not in README
    ]
    assert missing == []
