"""Refuse LiteLLM releases known to be compromised; warn about a planted ``.pth``.

LiteLLM 1.82.7, 1.82.8 and the 1.107 series were published by an attacker, and a compromised
install dropped ``litellm_init.pth``, which Python runs at every start. The checks read package
metadata and directory listings only: LiteLLM is not imported.
"""

from __future__ import annotations

import importlib.util
import site
import sys
from pathlib import Path

from ._log import log
from .errors import UnsafeDependencyError

__all__ = ["COMPROMISED_LITELLM", "check_litellm"]

COMPROMISED_LITELLM = ("1.82.7", "1.82.8", "1.107.")
"""Exact versions, or prefixes ending in ``.``, that are refused."""

_PLANTED_PTH = "litellm_init.pth"
_checked = False


def is_compromised(version: str) -> bool:
    """True when ``version`` is one of :data:`COMPROMISED_LITELLM`."""
    return any(version.startswith(v) if v.endswith(".") else version == v for v in COMPROMISED_LITELLM)


def installed_litellm_version() -> str:
    """The version of the LiteLLM that ``import litellm`` would load ("" when absent).

    Reads the ``dist-info`` folder's name beside the package (fast), else ``importlib.metadata`` (~60 ms).
    """
    spec = importlib.util.find_spec("litellm")
    if spec is None or not spec.submodule_search_locations:
        return ""
    site_dir = Path(next(iter(spec.submodule_search_locations))).parent
    infos = sorted(site_dir.glob("litellm-*.dist-info"))
    if len(infos) == 1:
        return infos[0].name[len("litellm-") : -len(".dist-info")]
    from importlib import metadata

    try:
        return metadata.version("litellm")
    except metadata.PackageNotFoundError:
        return ""


def _site_dirs() -> list[Path]:
    dirs = [*site.getsitepackages(), site.getusersitepackages(), *(p for p in sys.path if p.endswith("-packages"))]
    return [Path(d) for d in dict.fromkeys(dirs)]


def check_litellm(*, force: bool = False) -> None:
    """Check the installed LiteLLM once per process (again with ``force``).

    :raises UnsafeDependencyError: the installed version is compromised.
    """
    global _checked
    if _checked and not force:
        return
    version = installed_litellm_version()
    if version and is_compromised(version):
        raise UnsafeDependencyError(
            f"litellm {version} is a compromised release and is refused: "
            'run `pip install "litellm>=1.108,<2"` in a clean environment and rotate the API keys it could read'
        )
    for planted in (directory / _PLANTED_PTH for directory in _site_dirs()):
        if planted.exists():
            log.warning(
                "%s exists: it was planted by a compromised litellm release and runs at every Python start; "
                "delete it and rotate your API keys",
                planted,
            )
    _checked = True
