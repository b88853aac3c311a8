"""Where settings come from. Each source keeps what it provided by flat name (``cache_ttl``, stored as ``cache.ttl``)
so that errors can say ``LLM_GATEWAY_CACHE_TTL (environment)`` or ``/path/config.yaml: llm_gateway.cache.ttl``."""

from __future__ import annotations

import os
import re
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from difflib import get_close_matches
from functools import cached_property
from pathlib import Path
from typing import Any

from pydantic import SecretStr, ValidationError
from pydantic.fields import FieldInfo
from pydantic_settings import BaseSettings, PydanticBaseSettingsSource

from ._providers import ENV_PREFIX, url_secrets
from .errors import ConfigError, redact, register_secrets

ERROR_PREFIX = "Invalid configuration: "
YAML_ROOT = "llm_gateway"
Layout = Mapping[str, tuple[str, str | None]]  # flat name -> (model field, key in its section or None if top-level)
# The traced sources of the load under way, for the settings class to read afterwards.
CURRENT_LOAD: ContextVar[list[TracedSource] | None] = ContextVar("sarai_llm_config_load", default=None)
NAME = re.compile(r"[a-z][a-z0-9_]*")  # of a provider
CUSTOM_FIELD = "custom_providers"  # the model field of the providers defined in configuration
ENV_LABELS = ("environment", ".env")  # sources that define a custom provider only for the chain's names
_custom_keys: tuple[str, ...] = ()  # settings of a custom provider, longest first; see configure_custom
_reserved: frozenset[str] = frozenset()  # names a custom provider cannot have: the model's fields
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def configure_custom(keys: Iterable[str], reserved: Iterable[str]) -> None:
    global _custom_keys, _reserved
    _custom_keys, _reserved = tuple(sorted(keys, key=len, reverse=True)), frozenset(reserved)


def custom_name(flat: str) -> tuple[str, str] | None:
    """``("vllm_big", "embed_model")`` for the flat name of a custom provider's setting, ``vllm_big_embed_model``."""
    for key in _custom_keys:
        name = flat.removesuffix("_" + key)
        if name != flat and NAME.fullmatch(name) and name not in _reserved:
            return name, key
    return None


def nest(flat: Mapping[str, Any], layout: Layout) -> dict[str, Any]:
    data: dict[str, Any] = {}
    for name, value in flat.items():
        field, key = layout.get(name, (name, None))
        if name not in layout and (custom := custom_name(name)):
            data.setdefault(CUSTOM_FIELD, {}).setdefault(custom[0], {})[custom[1]] = value
        elif key is None:
            data[field] = value
        else:
            data.setdefault(field, {})[key] = value
    return data


def did_you_mean(key: str, known: Iterable[str]) -> str:
    close = get_close_matches(key, list(known), n=1)
    return f" (did you mean '{close[0]}'?)" if close else ""


class TracedSource(PydanticBaseSettingsSource):
    """One of pydantic-settings' sources (``inner``: arguments, environment, .env) that keeps what it provided."""

    def __init__(
        self, settings_cls: type[BaseSettings], layout: Layout, label: str, inner: PydanticBaseSettingsSource | None
    ) -> None:
        super().__init__(settings_cls)
        self.layout, self.label, self.inner = layout, label, inner

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        return None, field_name, False  # unused (__call__ is overridden), but abstract

    def __call__(self) -> dict[str, Any]:
        return nest(self.flat, self.layout)

    @cached_property
    def flat(self) -> dict[str, Any]:
        """The values this source provided, by flat setting name; keys the layout does not know are dropped."""
        data = self.inner() if self.inner is not None else {}
        flat: dict[str, Any] = {}
        for name, (field, key) in self.layout.items():
            section = data.get(field)
            if key is None and field in data:
                flat[name] = section
            elif key is not None and isinstance(section, Mapping) and key in section:
                flat[name] = section[key]
        for name, section in (data.get(CUSTOM_FIELD) or {}).items():  # arguments: nested already
            flat.update((f"{name}_{key}", value) for key, value in section.items())
        env = getattr(self.inner, "env_vars", None) or {}  # the environment's and .env's: custom providers
        prefix = ENV_PREFIX.lower()
        for var, value in env.items():
            name = var.removeprefix(prefix)
            if name != var and name not in self.layout and custom_name(name):
                flat[name] = value
        return flat

    @property
    def custom(self) -> set[str]:
        """The custom providers this source has settings of."""
        return {found[0] for name in self.flat if name not in self.layout and (found := custom_name(name))}

    def describe(self, name: str) -> str:
        """Where the setting ``name`` came from, as error messages say it."""
        plain = {"argument": f"argument {name}", "environment": f"{ENV_PREFIX}{name.upper()} (environment)"}
        if self.label in plain:
            return plain[self.label]
        env_file = getattr(self.inner, "env_file", None)
        files = [env_file] if isinstance(env_file, str | os.PathLike) else list(env_file or [])
        found = ", ".join(str(p.resolve()) for p in (Path(f).expanduser() for f in files) if p.is_file())
        return f"{ENV_PREFIX}{name.upper()} (.env file {found or '.env'})"


class YamlSource(TracedSource):
    """YAML file, found through the sources above; ``names``: YAML ``(section, key)`` or ``(key, None)`` -> name."""

    def __init__(self, higher: Sequence[TracedSource], names: Mapping[tuple[str, str | None], str]) -> None:
        super().__init__(higher[0].settings_cls, higher[0].layout, "YAML file", None)
        self.higher, self.names = tuple(higher), names
        self.path: Path | None = None
        self._where: dict[str, str] = {}

    def describe(self, name: str) -> str:
        return f"{self.path}: {self._where.get(name, name)}"

    @cached_property
    def flat(self) -> dict[str, Any]:
        self.path = self._locate()
        if self.path is None:
            return {}
        self.label = str(self.path)
        flat: dict[str, Any] = {}
        top = {key: name for (key, sub), name in self.names.items() if sub is None}
        sections = {key for key, sub in self.names if sub is not None}
        for key, value in read_yaml_section(self.path).items():
            if key == "providers":
                flat.update(self._custom(value))
                continue
            if key not in sections:
                flat[self._name(top, key, YAML_ROOT, hints=[*sections, "providers"])] = value
                continue
            known = {sub: name for (field, sub), name in self.names.items() if field == key and sub is not None}
            for sub, sub_value in _mapping(value, self.path, f"{YAML_ROOT}.{key}").items():
                flat[self._name(known, sub, f"{YAML_ROOT}.{key}")] = sub_value
        return flat

    def _custom(self, value: Any) -> dict[str, Any]:
        """The settings of ``llm_gateway.providers``, by flat name (``groq_model``)."""
        assert self.path is not None
        flat: dict[str, Any] = {}
        for name, section in _mapping(value, self.path, f"{YAML_ROOT}.providers").items():
            where = f"{YAML_ROOT}.providers.{name}"
            if not isinstance(name, str) or not NAME.fullmatch(name) or name in _reserved:
                problem = "a built-in provider or a setting" if name in _reserved else "lowercase letters, digits, _"
                raise ConfigError(f"{ERROR_PREFIX}{self.path}: {where}: not a name for a new provider ({problem})")
            known = {key: f"{name}_{key}" for key in _custom_keys}
            for key, setting in _mapping(section, self.path, where).items():
                flat[self._name(known, key, where)] = setting
        return flat

    def _name(self, known: dict[str, str], key: Any, where: str, hints: Iterable[str] = ()) -> str:
        """The flat name of YAML ``where.key``; an unknown key, or one set twice (model and default_model), raises."""
        if key not in known:
            hint = did_you_mean(str(key), [*known, *hints])
            raise ConfigError(f"{ERROR_PREFIX}{self.path}: {where}.{key}: unknown key{hint}")
        name = known[key]
        if name in self._where:
            first = self._where[name].rsplit(".", 1)[-1]
            raise ConfigError(f"{ERROR_PREFIX}{self.path}: {where}: '{first}' and '{key}' both set; keep one")
        self._where[name] = f"{where}.{key}"
        return name

    def _locate(self) -> Path | None:
        for source in self.higher:
            value = source.flat.get("config")
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            origin = source.describe("config")
            if not isinstance(value, str | os.PathLike):
                raise ConfigError(f"{ERROR_PREFIX}{origin}: expected a file path, got {type(value).__name__}")
            path = Path(os.fspath(value)).expanduser().resolve()
            if not path.is_file():
                reason = "is not a file" if path.exists() else "file not found"
                raise ConfigError(f"{ERROR_PREFIX}{origin}: {path}: {reason}")
            return path
        return Path("config.yaml").resolve() if Path("config.yaml").is_file() else None


def read_yaml_section(path: Path) -> dict[Any, Any]:
    """The ``llm_gateway`` mapping of a YAML file; errors name the file, never quoting it (it may hold a key)."""
    import yaml  # deferred: only loads that have a YAML file pay for it

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{ERROR_PREFIX}{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{ERROR_PREFIX}{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{ERROR_PREFIX}{path}: invalid YAML{where}: {problem}") from None
    if document is None or document == {}:
        return {}
    if not isinstance(document, dict) or YAML_ROOT not in document:
        raise ConfigError(f"{ERROR_PREFIX}{path}: expected a top-level '{YAML_ROOT}:' mapping")
    return _mapping(_expand(document[YAML_ROOT], path, YAML_ROOT), path, YAML_ROOT)


def _expand(value: Any, path: Path, where: str) -> Any:
    """``value`` with each ``${VAR}`` in its text replaced by that environment variable; an unset one raises."""
    if isinstance(value, dict):
        return {key: _expand(v, path, f"{where}.{key}") for key, v in value.items()}
    if isinstance(value, list):
        return [_expand(v, path, f"{where}[{i}]") for i, v in enumerate(value)]
    if not isinstance(value, str):
        return value

    def variable(match: re.Match[str]) -> str:
        if (found := os.environ.get(match[1])) is None:
            raise ConfigError(f"{ERROR_PREFIX}{path}: {where}: environment variable {match[1]} is not set")
        return found

    return _VARIABLE.sub(variable, value)


def _mapping(value: Any, path: Path, where: str) -> dict[Any, Any]:
    if value is not None and not isinstance(value, dict):
        raise ConfigError(f"{ERROR_PREFIX}{path}: {where}: expected a mapping, got {type(value).__name__}")
    return value or {}


def validation_message(
    exc: ValidationError, sources: Sequence[TracedSource], layout: Layout, secrets: frozenset[str]
) -> tuple[str, bool]:
    """Pydantic's errors as one line per setting naming its source, never echoing a secret; and whether a
    secret setting failed (pydantic's own text of ``exc`` would quote it: it must not be chained)."""
    names = {place: name for name, place in layout.items()}
    parts: dict[str, None] = {}  # in order, without repeats
    echoes_secret = False
    for error in exc.errors(include_url=False):
        loc = [str(part) for part in error["loc"][:3]] + ["", "", ""]
        name = f"{loc[1]}_{loc[2]}" if loc[0] == CUSTOM_FIELD else names.get((loc[0], loc[1] or None), loc[0])
        used = 3 if loc[0] == CUSTOM_FIELD else 2 if (loc[0], loc[1]) in names else 1
        # The place inside the setting's value, as in deployments[1].weight:
        inner = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"][used:])
        source = next((s for s in sources if name in s.flat), None)
        where = source.describe(name) if source is not None else f"{name} (default)"
        where += inner if isinstance(source, YamlSource) or not inner else f", at {inner.lstrip('.')}"
        message = "unknown key" if error["type"] == "extra_forbidden" else error["msg"]
        text = f"{where}: {message}"
        if (
            name in secrets
            or "api_key" in error["loc"]
            or (isinstance(error.get("input"), str) and url_secrets(error["input"]))
        ):
            echoes_secret = True  # pydantic's text quotes the value: a key, or a URL with credentials
        elif error["type"] not in ("missing", "extra_forbidden") and "input" in error:
            shown = repr(error["input"])
            text += f" (got {shown if len(shown) <= 80 else shown[:77] + '...'})"
        parts[text] = None
    # A key typed into the wrong field would be echoed: scrub every key any source offered.
    offered = [s.flat.get(name) for s in sources for name in secrets]
    register_secrets(
        v.get_secret_value() if isinstance(v, SecretStr) else v for v in offered if isinstance(v, str | SecretStr)
    )
    return redact(ERROR_PREFIX + "; ".join(parts)), echoes_secret
