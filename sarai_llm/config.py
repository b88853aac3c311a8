"""Settings of sarai_llm: one place that says which providers, models and cache to use.

Sources, highest priority first:

1. arguments of :meth:`GatewayConfig.load` (``GatewayConfig.load(cache_ttl=60)``);
2. the process environment (``LLM_GATEWAY_CACHE_TTL=60``, names case-insensitive);
3. the ``.env`` file of the current directory (same names);
4. the YAML file: the path named by the ``config`` argument, else
   ``LLM_GATEWAY_CONFIG`` (environment, then ``.env``), else ``./config.yaml``
   when it exists;
5. the defaults below.

The YAML file holds a top-level ``llm_gateway:`` mapping::

    llm_gateway:
      primary_provider: "ollama"
      fallback_providers: ["local"]        # or "local,openai"
      ollama: {base_url: "http://localhost:11434", default_model: "llama3.2:latest", timeout: 300}
      cache: {enabled: true, ttl: 3600, max_size: 1000}
      # many hosts: cache: {backend: redis, redis_url: "redis://cache-host:6379/0"}

Every invalid value raises :class:`~sarai_llm.errors.ConfigError` naming where it
came from (``LLM_GATEWAY_CACHE_TTL (environment)``, ``/path/config.yaml:
llm_gateway.cache.ttl``, ...) and never quoting an API key. ``redis_url``
(``LLM_GATEWAY_REDIS_URL``) is a secret like the API keys: a URL may hold a password.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterable, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, ClassVar, Literal, Self
from urllib.parse import unquote, urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    ValidationInfo,
    field_validator,
)
from pydantic.fields import FieldInfo
from pydantic_core import PydanticCustomError
from pydantic_settings import (
    BaseSettings,
    DotEnvSettingsSource,
    NoDecode,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    SettingsError,
)

from sarai_llm.errors import ConfigError, redact, register_secrets

__all__ = [
    "ENV_PREFIX",
    "PROVIDERS",
    "CacheConfig",
    "GatewayConfig",
    "ProviderConfig",
]

PROVIDERS: tuple[str, ...] = ("ollama", "openai", "anthropic", "local")
"""Names of the providers sarai_llm knows, in the order they are listed."""

ENV_PREFIX = "LLM_GATEWAY_"
"""Prefix of every environment variable (and ``.env`` entry) read by :class:`GatewayConfig`."""

_ERROR_PREFIX = "Invalid configuration: "
_API_KEY_FIELDS = tuple(f"{name}_api_key" for name in PROVIDERS)
# redis_url is a secret too: a URL may hold a password (redis://:PASSWORD@host:6379/0).
_SECRET_FIELDS = frozenset((*_API_KEY_FIELDS, "redis_url"))
_BASE_URL_FIELDS = tuple(f"{name}_base_url" for name in PROVIDERS)
_OPTIONAL_TEXT_FIELDS = (
    "openai_base_url",
    "anthropic_base_url",
    "ollama_embed_model",
    "openai_embed_model",
    "local_embed_model",
    "cache_dir",
    "config",
)
_DEFAULT_YAML_FILE = "config.yaml"
_YAML_ROOT = "llm_gateway"
# YAML keys of llm_gateway that map one to one onto a field of the same name.
_YAML_FLAT_KEYS = (
    "primary_provider",
    "fallback_providers",
    "num_retries",
    "allowed_fails",
    "cooldown_time",
    "health_timeout",
    "metrics_port",
    "metrics_host",
    "metrics_global",
    "deadline",
)
# YAML key inside a provider section -> suffix of the field "<provider>_<suffix>".
_YAML_PROVIDER_KEYS = {
    "base_url": "base_url",
    "default_model": "model",
    "model": "model",
    "embed_model": "embed_model",
    "timeout": "timeout",
    "api_key": "api_key",
    "input_cost_per_token": "input_cost_per_token",
    "output_cost_per_token": "output_cost_per_token",
}
# YAML key inside the cache section -> field name.
_YAML_CACHE_KEYS = {
    "enabled": "cache_enabled",
    "ttl": "cache_ttl",
    "max_size": "cache_max_size",
    "dir": "cache_dir",
    "namespace": "cache_namespace",
    "backend": "cache_backend",
    "redis_url": "redis_url",
}
_REDIS_SCHEMES = ("redis", "rediss", "unix")

Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
# A price in US dollars per token; None: LiteLLM's price list (0 for ollama and local).
Price = Annotated[float | None, Field(ge=0, allow_inf_nan=False)]


# --- per-provider and cache views ---------------------------------------------


class ProviderConfig(BaseModel):
    """The settings of one provider, as the router needs them (read-only).

    Built by :meth:`GatewayConfig.provider`; ``repr()`` masks the API key.
    """

    model_config = ConfigDict(frozen=True)

    name: str
    """Provider name, one of :data:`PROVIDERS`."""
    base_url: str | None
    """Server URL without trailing ``/``; ``None`` means LiteLLM's default for the provider."""
    api_key: SecretStr | None
    """API key, or ``None`` when the provider needs none or none is set."""
    model: str | None
    """Chat model (``default_model`` in YAML, ``LLM_GATEWAY_<P>_MODEL`` in the environment)."""
    embed_model: str | None
    """Embedding model; ``None`` means the provider cannot embed (always ``None`` for anthropic)."""
    timeout: float
    """Seconds one request may take before it fails (default 300)."""
    input_cost_per_token: float | None = None
    """US dollars per prompt token set in the configuration; ``None``: LiteLLM's price list
    (ollama and local cost 0). See :attr:`priced`."""
    output_cost_per_token: float | None = None
    """US dollars per completion token set in the configuration; ``None``: as :attr:`input_cost_per_token`."""

    @property
    def priced(self) -> bool:
        """Whether the configuration prices this provider's tokens (either price set; the other is then 0)."""
        return self.input_cost_per_token is not None or self.output_cost_per_token is not None

    @property
    def configured(self) -> bool:
        """Whether the provider can be used.

        ollama and local need a base URL (they have one by default); openai and
        anthropic need an API key or a base URL (a compatible server).
        """
        return not self.missing_settings

    @property
    def missing_settings(self) -> list[str]:
        """Environment variables, any one of which would make the provider usable.

        Empty when :attr:`configured` is true.
        """
        prefix = f"{ENV_PREFIX}{self.name.upper()}_"
        if self.name in ("openai", "anthropic"):
            if self.api_key is not None or self.base_url is not None:
                return []
            return [f"{prefix}API_KEY", f"{prefix}BASE_URL"]
        return [] if self.base_url is not None else [f"{prefix}BASE_URL"]


class CacheConfig(BaseModel):
    """The settings of the response cache (read-only); see :attr:`GatewayConfig.cache_settings`."""

    model_config = ConfigDict(frozen=True)

    enabled: bool
    """Whether responses are cached (default ``True``)."""
    ttl: float
    """Seconds an entry stays valid (default 3600)."""
    max_size: int
    """Entries held before the least recently used is evicted (default 1000)."""
    dir: Path | None
    """Directory of the disk cache; ``None`` means the per-user ``~/.cache/sarai_llm``."""
    namespace: str
    """Prefix that separates the entries of several applications sharing one directory (default ``""``)."""
    backend: Literal["disk", "redis"] = "disk"
    """Where the shared entries live: ``"disk"`` (diskcache in :attr:`dir`, one host) or ``"redis"``."""
    redis_url: SecretStr | None = None
    """URL of the Redis server of the ``"redis"`` backend (a secret: it may hold a password)."""


# --- sources that remember what they provided ---------------------------------


class _TracedSource(PydanticBaseSettingsSource):
    """A settings source that keeps the values it provided, for provenance and error messages."""

    label: str = "default"

    def __init__(self, settings_cls: type[BaseSettings]) -> None:
        super().__init__(settings_cls)
        self._data: dict[str, Any] | None = None

    def get_field_value(self, field: FieldInfo, field_name: str) -> tuple[Any, str, bool]:
        # Unused: __call__ is overridden. Required by the abstract base class.
        return None, field_name, False

    def __call__(self) -> dict[str, Any]:
        if self._data is None:
            fields = self.settings_cls.model_fields
            self._data = {key: value for key, value in self._load().items() if key in fields}
        return self._data

    def _load(self) -> dict[str, Any]:
        raise NotImplementedError

    def describe(self, field_name: str) -> str:
        """Where ``field_name`` came from, as error messages say it."""
        raise NotImplementedError


class _WrappedSource(_TracedSource):
    """One of pydantic-settings' own sources (arguments, environment, .env), traced."""

    def __init__(self, settings_cls: type[BaseSettings], inner: PydanticBaseSettingsSource, label: str) -> None:
        super().__init__(settings_cls)
        self.inner = inner
        self.label = label

    def _load(self) -> dict[str, Any]:
        return self.inner()

    def describe(self, field_name: str) -> str:
        if self.label == "argument":
            return f"argument {field_name}"
        env_name = f"{ENV_PREFIX}{field_name.upper()}"
        if self.label == "environment":
            return f"{env_name} (environment)"
        return f"{env_name} (.env file {self._dotenv_path()})"

    def _dotenv_path(self) -> str:
        env_file = getattr(self.inner, "env_file", None) if isinstance(self.inner, DotEnvSettingsSource) else None
        files = [env_file] if isinstance(env_file, str | os.PathLike) else list(env_file or [])
        existing = [Path(f).expanduser() for f in files]
        existing = [p.resolve() for p in existing if p.is_file()]
        return ", ".join(str(p) for p in existing) or ".env"


class _YamlSource(_TracedSource):
    """The YAML file, located through the sources above it (argument, environment, .env)."""

    def __init__(self, settings_cls: type[BaseSettings], higher: Sequence[_TracedSource]) -> None:
        super().__init__(settings_cls)
        self.higher = tuple(higher)
        self.path: Path | None = None
        self._where: dict[str, str] = {}

    @property
    def label(self) -> str:  # type: ignore[override]
        return str(self.path)

    def describe(self, field_name: str) -> str:
        return f"{self.path}: {self._where.get(field_name, field_name)}"

    def _load(self) -> dict[str, Any]:
        self.path = self._locate()
        if self.path is None:
            return {}
        section = _gateway_section(_read_yaml(self.path), self.path)
        flat, self._where = _flatten_yaml(section, self.path)
        return flat

    def _locate(self) -> Path | None:
        for source in self.higher:
            value = source().get("config")
            if value is None or (isinstance(value, str) and not value.strip()):
                continue
            origin = source.describe("config")
            if not isinstance(value, str | os.PathLike):
                raise ConfigError(f"{_ERROR_PREFIX}{origin}: expected a file path, got {type(value).__name__}")
            path = Path(os.fspath(value)).expanduser().resolve()
            if not path.is_file():
                reason = "is not a file" if path.exists() else "file not found"
                raise ConfigError(f"{_ERROR_PREFIX}{origin}: {path}: {reason}")
            return path
        default = Path(_DEFAULT_YAML_FILE)
        return default.resolve() if default.is_file() else None


# --- YAML reading --------------------------------------------------------------


def _read_yaml(path: Path) -> Any:
    import yaml  # deferred: only loads that have a YAML file pay for it

    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise ConfigError(f"{_ERROR_PREFIX}{path}: not UTF-8 text") from None
    except OSError as exc:
        raise ConfigError(f"{_ERROR_PREFIX}{path}: cannot read: {exc.strerror or exc}") from exc
    try:
        return yaml.safe_load(text)
    except yaml.YAMLError as exc:
        # PyYAML's own text quotes the offending line, which may hold an API key: build ours.
        mark = getattr(exc, "problem_mark", None)
        problem = getattr(exc, "problem", None) or type(exc).__name__
        where = f" at line {mark.line + 1}, column {mark.column + 1}" if mark is not None else ""
        raise ConfigError(f"{_ERROR_PREFIX}{path}: invalid YAML{where}: {problem}") from None


def _gateway_section(document: Any, path: Path) -> dict[Any, Any]:
    if document is None or document == {}:
        return {}
    if not isinstance(document, dict) or _YAML_ROOT not in document:
        raise ConfigError(f"{_ERROR_PREFIX}{path}: expected a top-level '{_YAML_ROOT}:' mapping")
    return _mapping(document[_YAML_ROOT], path, _YAML_ROOT)


def _mapping(value: Any, path: Path, where: str) -> dict[Any, Any]:
    if value is None:
        return {}
    if not isinstance(value, dict):
        raise ConfigError(f"{_ERROR_PREFIX}{path}: {where}: expected a mapping, got {type(value).__name__}")
    return value


def _unknown_key(path: Path, where: str, key: object, known: Iterable[str]) -> ConfigError:
    from difflib import get_close_matches

    close = get_close_matches(str(key), list(known), n=1)
    hint = f" (did you mean '{close[0]}'?)" if close else ""
    return ConfigError(f"{_ERROR_PREFIX}{path}: {where}.{key}: unknown key{hint}")


def _flatten_yaml(section: dict[Any, Any], path: Path) -> tuple[dict[str, Any], dict[str, str]]:
    """Map the ``llm_gateway`` mapping onto flat field names; also return each field's YAML path."""
    flat: dict[str, Any] = {}
    where: dict[str, str] = {}
    for key, value in section.items():
        if key in _YAML_FLAT_KEYS:
            flat[key], where[key] = value, f"{_YAML_ROOT}.{key}"
        elif key in PROVIDERS:
            _flatten_provider(str(key), _mapping(value, path, f"{_YAML_ROOT}.{key}"), path, flat, where)
        elif key == "cache":
            for sub, sub_value in _mapping(value, path, f"{_YAML_ROOT}.cache").items():
                if sub not in _YAML_CACHE_KEYS:
                    raise _unknown_key(path, f"{_YAML_ROOT}.cache", sub, _YAML_CACHE_KEYS)
                field_name = _YAML_CACHE_KEYS[sub]
                flat[field_name], where[field_name] = sub_value, f"{_YAML_ROOT}.cache.{sub}"
        else:
            raise _unknown_key(path, _YAML_ROOT, key, (*_YAML_FLAT_KEYS, *PROVIDERS, "cache"))
    return flat, where


def _flatten_provider(
    name: str, section: dict[Any, Any], path: Path, flat: dict[str, Any], where: dict[str, str]
) -> None:
    prefix = f"{_YAML_ROOT}.{name}"
    if "model" in section and "default_model" in section:
        raise ConfigError(f"{_ERROR_PREFIX}{path}: {prefix}: 'model' and 'default_model' both set; keep one")
    known = [k for k, suffix in _YAML_PROVIDER_KEYS.items() if f"{name}_{suffix}" in GatewayConfig.model_fields]
    for key, value in section.items():
        if key not in known:
            raise _unknown_key(path, prefix, key, known)
        field_name = f"{name}_{_YAML_PROVIDER_KEYS[key]}"
        flat[field_name], where[field_name] = value, f"{prefix}.{key}"


# --- validation helpers --------------------------------------------------------


def _normalise_provider(name: str) -> str:
    return name.strip().lower()


def _provider_error(names: Iterable[str]) -> PydanticCustomError:
    listed = ", ".join(repr(n) for n in names)
    return PydanticCustomError(
        "unknown_provider",
        f"unknown provider {listed}; expected one of {', '.join(PROVIDERS)}",
    )


def _url_error() -> PydanticCustomError:
    return PydanticCustomError(
        "base_url", "expected an http:// or https:// URL with a host, like http://localhost:11434"
    )


def _check_base_url(value: str) -> str:
    url = value.strip().rstrip("/")
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise _url_error() from None
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise _url_error()
    return url


def _check_redis_url(value: str) -> str:
    """Accept ``redis://``, ``rediss://`` (TLS) and ``unix://`` URLs; the error never quotes the URL."""
    try:
        parts = urlsplit(value)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        parts = None
    ok = parts is not None and parts.scheme.lower() in _REDIS_SCHEMES
    if ok and parts is not None:
        ok = bool(parts.path) if parts.scheme.lower() == "unix" else bool(parts.hostname)
    if not ok:
        raise PydanticCustomError(
            "redis_url", "expected a redis://, rediss:// or unix:// URL, like redis://localhost:6379/0"
        )
    return value


def _url_secrets(url: str) -> list[str]:
    """The parts of a Redis URL to scrub from texts: the URL and its password, when it has credentials."""
    parts = urlsplit(url)
    if parts.password is None and parts.username is None and "password=" not in parts.query:
        return []
    found = [url]
    if parts.password:
        found += [parts.password, unquote(parts.password)]
    for item in parts.query.split("&"):
        name, _, value = item.partition("=")
        if name == "password" and value:
            found += [value, unquote(value)]
    return found


def _short_repr(value: Any, limit: int = 80) -> str:
    text = repr(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


_CURRENT_LOAD: ContextVar[list[_TracedSource] | None] = ContextVar("sarai_llm_config_load", default=None)


# --- the settings --------------------------------------------------------------


class GatewayConfig(BaseSettings):
    """All settings of sarai_llm, merged from arguments, environment, ``.env``, YAML and defaults.

    Build it with :meth:`load`. Each field is also the environment variable
    ``LLM_GATEWAY_<FIELD>`` (``LLM_GATEWAY_CACHE_TTL`` sets :attr:`cache_ttl`).
    The instance is read-only; API keys are :class:`~pydantic.SecretStr` and
    never appear in ``repr()``, ``str()``, :meth:`public_dict` or error messages.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        case_sensitive=False,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        dotenv_filtering="only_existing",
        extra="ignore",
        frozen=True,
        str_strip_whitespace=True,
    )

    # Fields are declared in this order on purpose: fallback_providers' validator reads primary_provider.
    primary_provider: str = "ollama"
    """Provider tried first, one of :data:`PROVIDERS` (default ``"ollama"``)."""
    fallback_providers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Providers tried in order when the primary fails (default none).

    A comma list (``openai,local``) or a JSON list; duplicates and the primary are dropped.
    """

    ollama_base_url: str = "http://localhost:11434"
    """Ollama server URL (default ``http://localhost:11434``); a trailing ``/api`` is accepted."""
    ollama_model: str = Field(default="llama3.2:latest", min_length=1)
    """Ollama chat model (default ``llama3.2:latest``)."""
    ollama_embed_model: str | None = "nomic-embed-text"
    """Ollama embedding model (default ``nomic-embed-text``)."""
    ollama_timeout: Seconds = 300.0
    """Seconds per Ollama request (default 300)."""
    ollama_api_key: SecretStr | None = None
    """API key for an Ollama server behind an authenticating proxy (default none)."""
    ollama_input_cost_per_token: Price = None
    """US dollars per prompt token on ollama (default: 0, a local model)."""
    ollama_output_cost_per_token: Price = None
    """US dollars per completion token on ollama (default: 0, a local model)."""

    openai_api_key: SecretStr | None = None
    """OpenAI API key (default none)."""
    openai_base_url: str | None = None
    """URL of an OpenAI-compatible server (default: LiteLLM's, the OpenAI API)."""
    openai_model: str = Field(default="gpt-4o-mini", min_length=1)
    """OpenAI chat model (default ``gpt-4o-mini``)."""
    openai_embed_model: str | None = "text-embedding-3-small"
    """OpenAI embedding model (default ``text-embedding-3-small``)."""
    openai_timeout: Seconds = 300.0
    """Seconds per OpenAI request (default 300)."""
    openai_input_cost_per_token: Price = None
    """US dollars per prompt token on openai (default: LiteLLM's price list)."""
    openai_output_cost_per_token: Price = None
    """US dollars per completion token on openai (default: LiteLLM's price list)."""

    anthropic_api_key: SecretStr | None = None
    """Anthropic API key (default none)."""
    anthropic_base_url: str | None = None
    """URL of an Anthropic-compatible server (default: LiteLLM's, the Anthropic API)."""
    anthropic_model: str = Field(default="claude-3-5-sonnet-20241022", min_length=1)
    """Anthropic chat model (default ``claude-3-5-sonnet-20241022``); Anthropic has no embeddings."""
    anthropic_timeout: Seconds = 300.0
    """Seconds per Anthropic request (default 300)."""
    anthropic_input_cost_per_token: Price = None
    """US dollars per prompt token on anthropic (default: LiteLLM's price list)."""
    anthropic_output_cost_per_token: Price = None
    """US dollars per completion token on anthropic (default: LiteLLM's price list)."""

    local_base_url: str = "http://localhost:8080"
    """URL of a local OpenAI-compatible server: llama.cpp, LocalAI, vLLM (default ``http://localhost:8080``)."""
    local_model: str = Field(default="local-model", min_length=1)
    """Chat model name the local server expects (default ``local-model``)."""
    local_embed_model: str | None = None
    """Embedding model of the local server (default: the same as :attr:`local_model`)."""
    local_timeout: Seconds = 300.0
    """Seconds per request to the local server (default 300)."""
    local_api_key: SecretStr | None = None
    """API key of the local server, when it wants one (default none)."""
    local_input_cost_per_token: Price = None
    """US dollars per prompt token on local (default: 0, a local model)."""
    local_output_cost_per_token: Price = None
    """US dollars per completion token on local (default: 0, a local model)."""

    cache_enabled: bool = True
    """Whether responses are cached (default ``True``)."""
    cache_ttl: Seconds = 3600.0
    """Seconds a cached response stays valid (default 3600)."""
    cache_max_size: int = Field(default=1000, ge=1)
    """Entries the cache holds before evicting the least recently used (default 1000)."""
    cache_dir: Path | None = None
    """Directory of the disk cache (default none: ``$XDG_CACHE_HOME/sarai_llm`` or ``~/.cache/sarai_llm``)."""
    cache_namespace: str = ""
    """Prefix separating applications that share one cache directory (default ``""``)."""
    cache_backend: Literal["disk", "redis"] = "disk"
    """Where cached answers are shared: ``disk`` (diskcache, one host) or ``redis`` (many hosts; default ``disk``)."""
    redis_url: SecretStr | None = None
    """URL of the Redis server for ``cache_backend=redis`` (``redis://[:password@]host:6379/0``; a secret)."""

    num_retries: int = Field(default=0, ge=0)
    """Retries of the same provider before falling back (default 0)."""
    allowed_fails: int = Field(default=3, ge=0)
    """Consecutive failures after which a provider cools down (default 3)."""
    cooldown_time: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    """Seconds a cooling-down provider is skipped (default 30)."""
    health_timeout: Seconds = 5.0
    """Seconds a health check may take per provider (default 5)."""
    deadline: Seconds | None = None
    """Seconds a whole call may take across its chain of providers (default: no bound)."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Port of the Prometheus HTTP endpoint (default none: not served)."""
    metrics_host: str = "127.0.0.1"
    """Address the Prometheus endpoint binds (default loopback only)."""
    metrics_global: bool = False
    """Register the metrics in prometheus-client's global registry (default: the gateway's own)."""
    config: Path | None = None
    """YAML file to read (``LLM_GATEWAY_CONFIG``); default ``./config.yaml`` when it exists."""

    _provenance: dict[str, str] = PrivateAttr(default_factory=dict)
    _config_file: Path | None = PrivateAttr(default=None)

    _init_options: ClassVar[frozenset[str]] = frozenset({"_env_file"})

    def __init__(self, **values: Any) -> None:
        """Load the settings; prefer :meth:`load`, which documents the arguments.

        :raises ConfigError: a value is invalid, or a named YAML file is missing or malformed.
        """
        _check_argument_names(values, self._init_options)
        sources: list[_TracedSource] = []
        token = _CURRENT_LOAD.set(sources)
        try:
            super().__init__(**values)
        except ValidationError as exc:
            message, echoes_secret = _validation_message(exc, sources)
            raise ConfigError(message) from (None if echoes_secret else exc)
        except (SettingsError, OSError) as exc:
            raise ConfigError(f"{_ERROR_PREFIX}{redact(str(exc))}") from exc
        finally:
            _CURRENT_LOAD.reset(token)
        provenance: dict[str, str] = {}
        for name in type(self).model_fields:
            source = _first_source(sources, name)
            provenance[name] = "default" if source is None else source.label
        self._provenance = provenance
        self._config_file = next((s.path for s in sources if isinstance(s, _YamlSource)), None)
        register_secrets(self._secret_values())
        if self.cache_backend == "redis" and self.redis_url is None:
            source = _first_source(sources, "cache_backend")
            where = source.describe("cache_backend") if source is not None else "cache_backend (default)"
            raise ConfigError(
                f"{_ERROR_PREFIX}{where}: the redis cache backend needs {ENV_PREFIX}REDIS_URL "
                "(like redis://localhost:6379/0; YAML: llm_gateway.cache.redis_url)"
            )

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Read the settings from every source and validate them.

        :param overrides: field values that win over every other source
            (``GatewayConfig.load(primary_provider="openai", cache_ttl=60)``).
            ``config=`` names the YAML file. ``_env_file=`` names the dotenv file
            (default ``".env"``; ``None`` reads none).
        :raises ConfigError: a value is invalid (the message names the source and the
            field), an argument is unknown, or a named YAML file is missing or malformed.
        """
        return cls(**overrides)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with some fields replaced; :meth:`explain` reports them as ``"argument"``.

        Like pydantic's, the ``update`` values are not validated: prefer :meth:`load`.
        """
        copy = super().model_copy(update=update, deep=deep)
        if update:
            copy._provenance = {**self._provenance, **dict.fromkeys(update, "argument")}
            register_secrets(copy._secret_values())
        return copy

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        """Order the sources: arguments, environment, ``.env``, YAML (defaults come last)."""
        init = _WrappedSource(settings_cls, init_settings, "argument")
        env = _WrappedSource(settings_cls, env_settings, "environment")
        dotenv = _WrappedSource(settings_cls, dotenv_settings, ".env")
        traced: list[_TracedSource] = [init, env, dotenv, _YamlSource(settings_cls, (init, env, dotenv))]
        record = _CURRENT_LOAD.get()
        if record is not None:
            record.extend(traced)
        return tuple(traced)

    # --- validators ---

    @field_validator("primary_provider")
    @classmethod
    def _valid_primary(cls, value: str) -> str:
        name = _normalise_provider(value)
        if name not in PROVIDERS:
            raise _provider_error([value])
        return name

    @field_validator("fallback_providers", mode="before")
    @classmethod
    def _split_fallbacks(cls, value: Any) -> Any:
        if value is None:
            return []
        if isinstance(value, str):
            text = value.strip()
            if text.startswith("["):
                try:
                    return json.loads(text)
                except ValueError:
                    raise PydanticCustomError("json_list", "expected a comma list or a JSON list") from None
            return text.split(",")
        return value

    @field_validator("fallback_providers")
    @classmethod
    def _valid_fallbacks(cls, value: list[str], info: ValidationInfo) -> list[str]:
        names = [_normalise_provider(v) for v in value if v.strip()]
        unknown = [v.strip() for v in value if v.strip() and _normalise_provider(v) not in PROVIDERS]
        if unknown:
            raise _provider_error(unknown)
        primary = info.data.get("primary_provider")
        chain: list[str] = []
        for name in names:
            if name != primary and name not in chain:
                chain.append(name)
        return chain

    @field_validator(*_SECRET_FIELDS, *_OPTIONAL_TEXT_FIELDS, mode="before")
    @classmethod
    def _blank_is_unset(cls, value: Any) -> Any:
        if isinstance(value, SecretStr):
            value = value.get_secret_value()
        if isinstance(value, str):
            value = value.strip()
            return value or None
        return value

    @field_validator(*_BASE_URL_FIELDS)
    @classmethod
    def _valid_base_url(cls, value: str | None) -> str | None:
        return None if value is None else _check_base_url(value)

    @field_validator("cache_backend", mode="before")
    @classmethod
    def _normalise_backend(cls, value: Any) -> Any:
        return value.strip().lower() if isinstance(value, str) else value

    @field_validator("redis_url")
    @classmethod
    def _valid_redis_url(cls, value: SecretStr | None) -> SecretStr | None:
        if value is not None:
            _check_redis_url(value.get_secret_value())
        return value

    @field_validator("cache_dir", "config")
    @classmethod
    def _expand_user(cls, value: Path | None) -> Path | None:
        return None if value is None else value.expanduser()

    # --- views ---

    def provider(self, name: str) -> ProviderConfig:
        """The settings of one provider.

        :param name: a name of :data:`PROVIDERS` (case and surrounding spaces ignored).
        :raises ConfigError: ``name`` is not a known provider.
        """
        key = _normalise_provider(name)
        if key not in PROVIDERS:
            raise ConfigError(f"Unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}")
        embed_model: str | None = getattr(self, f"{key}_embed_model", None)
        if key == "local":
            embed_model = embed_model or self.local_model
        return ProviderConfig(
            name=key,
            base_url=getattr(self, f"{key}_base_url"),
            api_key=getattr(self, f"{key}_api_key", None),
            model=getattr(self, f"{key}_model"),
            embed_model=embed_model,
            timeout=getattr(self, f"{key}_timeout"),
            input_cost_per_token=getattr(self, f"{key}_input_cost_per_token"),
            output_cost_per_token=getattr(self, f"{key}_output_cost_per_token"),
        )

    @property
    def providers(self) -> dict[str, ProviderConfig]:
        """Every provider's settings, keyed by name, in the order of :data:`PROVIDERS`."""
        return {name: self.provider(name) for name in PROVIDERS}

    @property
    def chain(self) -> list[str]:
        """Providers in the order they are tried: the primary, then the fallbacks."""
        return [self.primary_provider, *self.fallback_providers]

    @property
    def cache_settings(self) -> CacheConfig:
        """The response cache's settings (``cache_*`` fields)."""
        return CacheConfig(
            enabled=self.cache_enabled,
            ttl=self.cache_ttl,
            max_size=self.cache_max_size,
            dir=self.cache_dir,
            namespace=self.cache_namespace,
            backend=self.cache_backend,
            redis_url=self.redis_url,
        )

    @property
    def config_file(self) -> Path | None:
        """The YAML file that was read (absolute), or ``None`` when there was none."""
        return self._config_file

    def explain(self) -> dict[str, str]:
        """Which source set each field.

        :returns: field name -> ``"argument"``, ``"environment"``, ``".env"``, the
            absolute path of the YAML file, or ``"default"``.
        """
        return {name: self._provenance.get(name, "default") for name in type(self).model_fields}

    def public_dict(self) -> dict[str, Any]:
        """Every effective setting, JSON-serialisable, keyed by field name.

        API keys appear as ``"***"`` when set and ``None`` when not; paths as strings.
        """
        result: dict[str, Any] = {}
        for name in type(self).model_fields:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "***"
            elif isinstance(value, Path):
                value = str(value)
            elif isinstance(value, list):
                value = list(value)
            result[name] = value
        return result

    def _secret_values(self) -> list[str]:
        """The values :func:`~sarai_llm.errors.redact` must scrub: API keys, and a Redis URL's credentials."""
        values = [key.get_secret_value() for key in (getattr(self, name) for name in _API_KEY_FIELDS) if key]
        if self.redis_url is not None:
            values += _url_secrets(self.redis_url.get_secret_value())
        return values


# --- loading helpers -----------------------------------------------------------


def _check_argument_names(values: dict[str, Any], init_options: frozenset[str]) -> None:
    fields = GatewayConfig.model_fields
    for key in values:
        if key in init_options or key.lower() in fields:
            continue
        from difflib import get_close_matches

        close = get_close_matches(key.lower(), list(fields), n=1)
        hint = f" (did you mean '{close[0]}'?)" if close else ""
        raise ConfigError(f"{_ERROR_PREFIX}argument {key}: unknown setting{hint}")


def _first_source(sources: Sequence[_TracedSource], field_name: str) -> _TracedSource | None:
    return next((source for source in sources if field_name in source()), None)


def _validation_message(exc: ValidationError, sources: Sequence[_TracedSource]) -> tuple[str, bool]:
    """Turn pydantic's errors into one line per field naming its source; never echo a secret.

    :returns: the message, and whether a secret field failed (pydantic's own text
        of ``exc`` would then quote the secret, so it must not be chained).
    """
    parts: list[str] = []
    echoes_secret = False
    for error in exc.errors(include_url=False):
        field_name = str(error["loc"][0]) if error["loc"] else ""
        source = _first_source(sources, field_name)
        where = source.describe(field_name) if source is not None else f"{field_name} (default)"
        text = f"{where}: {error['msg']}"
        if field_name in _SECRET_FIELDS:
            echoes_secret = True
        elif error["type"] != "missing" and "input" in error:
            text += f" (got {_short_repr(error['input'])})"
        if text not in parts:
            parts.append(text)
    # A key typed into the wrong field would be echoed: scrub every key any source offered.
    offered = [s().get(name) for s in sources for name in _SECRET_FIELDS]
    register_secrets(
        v.get_secret_value() if isinstance(v, SecretStr) else v for v in offered if isinstance(v, str | SecretStr)
    )
    return redact(_ERROR_PREFIX + "; ".join(parts)), echoes_secret
