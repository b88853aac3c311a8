"""Settings of sarai_llm: one place that says which providers, models and cache to use.

Sources, highest first: arguments of :meth:`GatewayConfig.load`; the environment
(``LLM_GATEWAY_CACHE_TTL=60``, names case-insensitive); ``.env``; the YAML file
(``config``, else ``LLM_GATEWAY_CONFIG``, else ``./config.yaml`` when it exists);
the defaults, per provider from its row of :data:`~sarai_llm._providers.SPECS`::

    llm_gateway:
      primary_provider: "ollama"
      fallback_providers: ["local"]        # or "local,openai"
      ollama: {base_url: "http://localhost:11434", default_model: "llama3.2:latest", timeout: 300}
      cache: {enabled: true, ttl: 3600, max_size: 1000}   # many hosts: backend: redis, redis_url: ...

Settings are stored nested (``config.cache.ttl``) and named flat wherever users see
them (``LLM_GATEWAY_CACHE_TTL``, ``load(cache_ttl=...)``, ``config.cache_ttl``,
:meth:`GatewayConfig.explain`). Errors name the source (``LLM_GATEWAY_CACHE_TTL
(environment)``, ``/path/config.yaml: llm_gateway.cache.ttl``) and never quote a
secret: the API keys and ``redis_url`` (a URL may hold a password).
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, Self
from urllib.parse import unquote, urlsplit

from pydantic import AfterValidator, BaseModel, BeforeValidator, ConfigDict, Field, SecretStr, field_validator
from pydantic_core import PydanticCustomError, ValidationError
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from . import _config_sources as sources
from ._providers import ENV_PREFIX, PROVIDERS, SPECS, ProviderSpec
from .errors import ConfigError, redact, register_secrets

__all__ = ["ENV_PREFIX", "PROVIDERS", "CacheConfig", "CacheSettings"]
__all__ += ["GatewayConfig", "ProviderConfig", "ProviderSettings"]


def _blank_is_none(value: Any) -> Any:
    if isinstance(value, SecretStr):
        value = value.get_secret_value()
    return (value.strip() or None) if isinstance(value, str) else value


def _check_url(url: str, schemes: tuple[str, ...], error: PydanticCustomError) -> str:
    """``url`` when its scheme is one of ``schemes`` and it names a host (a path for ``unix``); never quoted."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 - raises ValueError for a port that is not a number in range
    except ValueError:
        raise error from None
    if parts.scheme.lower() not in schemes or not (parts.path if parts.scheme.lower() == "unix" else parts.hostname):
        raise error
    return url


def _base_url(value: str | None) -> str | None:
    form = "expected an http:// or https:// URL with a host, like http://localhost:11434"
    return (
        None
        if value is None
        else _check_url(value.rstrip("/"), ("http", "https"), PydanticCustomError("base_url", form))
    )


def _redis_url(value: SecretStr | None) -> SecretStr | None:
    form = "expected a redis://, rediss:// or unix:// URL, like redis://localhost:6379/0"
    if value is not None:
        _check_url(value.get_secret_value(), ("redis", "rediss", "unix"), PydanticCustomError("redis_url", form))
    return value


def _url_secrets(url: str) -> list[str]:
    """The parts of a Redis URL to scrub from texts: the URL and its passwords, when it has credentials."""
    parts = urlsplit(url)
    query = dict(item.partition("=")[::2] for item in parts.query.split("&"))
    found = [p for p in (parts.password, query.get("password")) if p]
    return [url, *found, *map(unquote, found)] if found or parts.username is not None else []


def _known_providers(names: list[str]) -> list[str]:
    """``names`` normalised (case, spaces); an unknown one is an error listing the known ones."""
    unknown = ", ".join(repr(n.strip()) for n in names if n.strip().lower() not in PROVIDERS)
    if unknown:
        raise PydanticCustomError(
            "unknown_provider", f"unknown provider {unknown}; expected one of {', '.join(PROVIDERS)}"
        )
    return [n.strip().lower() for n in names]


_Seconds = Annotated[float, Field(gt=0, allow_inf_nan=False)]
_Price = Annotated[float | None, Field(ge=0, allow_inf_nan=False)]
# Blank text (an empty environment variable, "" in YAML) means unset.
_Text = Annotated[str | None, BeforeValidator(_blank_is_none)]
_Secret = Annotated[SecretStr | None, BeforeValidator(_blank_is_none)]
_BaseURL = Annotated[_Text, AfterValidator(_base_url)]
_lower = BeforeValidator(lambda v: v.strip().lower() if isinstance(v, str) else v)
_UserPath = Annotated[Path | None, BeforeValidator(_blank_is_none), AfterValidator(lambda p: p and p.expanduser())]


class ProviderSettings(BaseModel):
    """One provider's section: ``llm_gateway.<name>`` in YAML, ``LLM_GATEWAY_<NAME>_<KEY>`` in the environment."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    base_url: _BaseURL = None
    """Server URL without trailing ``/``; ``None``: LiteLLM's default (openai, anthropic) or not usable."""
    model: str = Field(min_length=1)
    """Chat model (``default_model`` or ``model`` in YAML, ``LLM_GATEWAY_<P>_MODEL`` in the environment)."""
    embed_model: _Text = None
    """Embedding model; ``None``: the provider cannot embed (always ``None`` for anthropic)."""
    timeout: _Seconds = 300.0
    """Seconds one request may take before it fails (default 300)."""
    api_key: _Secret = None
    """API key, or ``None`` when the provider needs none or none is set."""
    input_cost_per_token: _Price = None
    """US dollars per prompt token; ``None``: LiteLLM's price list (free providers cost 0). See ``priced``."""
    output_cost_per_token: _Price = None
    """US dollars per completion token; ``None``: as :attr:`input_cost_per_token`."""

    @classmethod
    def from_spec(cls, spec: ProviderSpec) -> ProviderSettings:
        """The defaults of ``spec``'s provider."""
        return cls(base_url=spec.default_base_url, model=spec.default_model, embed_model=spec.default_embed_model)


class ProviderConfig(ProviderSettings):
    """The settings of one provider, as the router needs them (read-only); built by :meth:`GatewayConfig.provider`."""

    name: str
    """Provider name, one of :data:`PROVIDERS`."""

    @property
    def spec(self) -> ProviderSpec:
        """The provider's row of the provider table."""
        return SPECS[self.name]

    @property
    def priced(self) -> bool:
        """Whether the configuration prices this provider's tokens (either price set; the other is then 0)."""
        return self.input_cost_per_token is not None or self.output_cost_per_token is not None

    @property
    def configured(self) -> bool:
        """Whether the provider can be used: it has a base URL, or an API key where that is enough."""
        return not self.missing_settings

    @property
    def missing_settings(self) -> list[str]:
        """Environment variables, any one of which would make the provider usable; empty when :attr:`configured`."""
        by_key = self.name in SPECS and self.spec.key_makes_usable
        if self.base_url is not None or (by_key and self.api_key is not None):
            return []
        prefix = f"{ENV_PREFIX}{self.name.upper()}_"
        return [f"{prefix}API_KEY", f"{prefix}BASE_URL"] if by_key else [f"{prefix}BASE_URL"]


class CacheSettings(BaseModel):
    """The cache section: ``llm_gateway.cache`` in YAML, ``LLM_GATEWAY_CACHE_<KEY>`` in the environment."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    enabled: bool = True
    """Whether responses are cached (default ``True``)."""
    ttl: _Seconds = 3600.0
    """Seconds an entry stays valid (default 3600)."""
    max_size: int = Field(default=1000, ge=1)
    """Entries held before the least recently used is evicted (default 1000)."""
    dir: _UserPath = None
    """Directory of the disk cache; ``None``: ``$XDG_CACHE_HOME/sarai_llm`` or ``~/.cache/sarai_llm``."""
    namespace: str = ""
    """Prefix that separates the entries of applications sharing one store (default ``""``)."""
    backend: Annotated[Literal["disk", "redis"], _lower] = "disk"
    """Where entries live: ``"disk"`` (diskcache in :attr:`dir`, one host) or ``"redis"`` (many hosts)."""


class CacheConfig(CacheSettings):
    """The response cache's settings (read-only); see :attr:`GatewayConfig.cache_settings`."""

    redis_url: SecretStr | None = None
    """URL of the Redis server of the ``"redis"`` backend (a secret: it may hold a password)."""


_DEFAULTS_ONLY: ContextVar[bool] = ContextVar("sarai_llm_config_defaults_only", default=False)


class GatewayConfig(BaseSettings):
    """All settings of sarai_llm, read-only; build it with :meth:`load`.

    Each name of :meth:`setting_names` is the variable ``LLM_GATEWAY_<NAME>`` and an
    attribute (``config.cache_ttl`` is ``config.cache.ttl``). Secrets are
    :class:`~pydantic.SecretStr`: never in ``repr()``, :meth:`public_dict` or errors.
    """

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,  # LLM_GATEWAY_CACHE_MAX_SIZE -> cache.max_size
        nested_model_default_partial_update=True,  # LLM_GATEWAY_OLLAMA_MODEL keeps ollama's other defaults
        case_sensitive=False,
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        dotenv_filtering="only_existing",
        extra="ignore",
        frozen=True,
        str_strip_whitespace=True,
    )

    # Declared in this order on purpose: fallback_providers' validator reads primary_provider.
    primary_provider: Annotated[str, AfterValidator(lambda v: _known_providers([v])[0])] = "ollama"
    """Provider tried first, one of :data:`PROVIDERS` (default ``"ollama"``)."""
    fallback_providers: Annotated[list[str], NoDecode] = Field(default_factory=list)
    """Providers tried in order when the primary fails (default none): a comma or JSON list; the primary and
    duplicates are dropped."""
    # One ProviderSettings section per row of the provider table: config.ollama, config.openai, ...
    for _spec in SPECS.values():
        __annotations__[_spec.name] = ProviderSettings
        vars()[_spec.name] = ProviderSettings.from_spec(_spec)
    del _spec
    cache: CacheSettings = CacheSettings()
    """The response cache's section; :attr:`cache_settings` adds :attr:`redis_url`."""
    redis_url: Annotated[_Secret, AfterValidator(_redis_url)] = None
    """URL of the Redis server for ``cache_backend=redis`` (``redis://[:password@]host:6379/0``; a secret)."""
    num_retries: int = Field(default=0, ge=0)
    """Retries of the same provider before falling back (default 0)."""
    allowed_fails: int = Field(default=3, ge=0)
    """Consecutive failures after which a provider cools down (default 3)."""
    cooldown_time: float = Field(default=30.0, ge=0, allow_inf_nan=False)
    """Seconds a cooling-down provider is skipped (default 30)."""
    health_timeout: _Seconds = 5.0
    """Seconds a health check may take per provider (default 5)."""
    deadline: _Seconds | None = None
    """Seconds a whole call may take across its chain of providers (default: no bound)."""
    metrics_port: int | None = Field(default=None, ge=1, le=65535)
    """Port of the Prometheus HTTP endpoint (default none: not served)."""
    metrics_host: str = "127.0.0.1"
    """Address the Prometheus endpoint binds (default loopback only)."""
    metrics_global: bool = False
    """Register the metrics in prometheus-client's global registry (default: the gateway's own)."""
    config: _UserPath = None
    """YAML file to read (``LLM_GATEWAY_CONFIG``); default ``./config.yaml`` when it exists."""

    _provenance: dict[str, str] = {}
    _config_file: Path | None = None

    def __init__(self, **values: Any) -> None:
        """Load the settings as :meth:`load` documents."""
        sources.check_argument_names(values, (*_LAYOUT, "_env_file"))
        traced: list[sources.TracedSource] = []
        token = sources.CURRENT_LOAD.set(traced)
        try:
            super().__init__(**sources.nest({k.lower(): v for k, v in values.items()}, _LAYOUT))
        except ValidationError as exc:
            message, echoes_secret = sources.validation_message(exc, traced, _LAYOUT, _SECRETS)
            raise ConfigError(message) from (None if echoes_secret else exc)
        except (SettingsError, OSError) as exc:
            raise ConfigError(f"{sources.ERROR_PREFIX}{redact(str(exc))}") from exc
        finally:
            sources.CURRENT_LOAD.reset(token)
        first = {name: sources.first_source(traced, name) for name in _LAYOUT}
        self._provenance = {name: "default" if s is None else s.label for name, s in first.items()}
        self._config_file = next((s.path for s in traced if isinstance(s, sources.YamlSource)), None)
        register_secrets(self._secret_values())
        if self.cache.backend == "redis" and self.redis_url is None:
            source = first["cache_backend"]
            where = source.describe("cache_backend") if source is not None else "cache_backend (default)"
            raise ConfigError(
                f"{sources.ERROR_PREFIX}{where}: the redis cache backend needs {ENV_PREFIX}REDIS_URL "
                "(like redis://localhost:6379/0; YAML: llm_gateway.cache.redis_url)"
            )

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Read the settings from every source and validate them.

        :param overrides: settings by flat name that win over every other source
            (``load(primary_provider="openai", cache_ttl=60)``). ``config=`` names the
            YAML file; ``_env_file=`` the dotenv file (default ``".env"``; ``None``: none).
        :raises ConfigError: a value is invalid (the message names the source and the
            setting), an argument is unknown, or a named YAML file is missing or malformed.
        """
        return cls(**overrides)

    @classmethod
    def defaults(cls, **overrides: Any) -> Self:
        """The defaults with ``overrides`` applied, as :meth:`load` but reading no environment, ``.env`` or YAML."""
        token = _DEFAULTS_ONLY.set(True)
        try:
            return cls(**overrides)
        finally:
            _DEFAULTS_ONLY.reset(token)

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """Every setting's flat name (``cache_ttl``) in display order; each is also ``LLM_GATEWAY_<NAME>``."""
        return tuple(_LAYOUT)

    def model_copy(self, *, update: Mapping[str, Any] | None = None, deep: bool = False) -> Self:
        """A copy with settings replaced by flat name, unvalidated (prefer :meth:`load`); explained as arguments."""
        nested = sources.nest(update or {}, _LAYOUT)
        for field, value in nested.items():
            if field in _SECTIONS and isinstance(value, dict):
                nested[field] = getattr(self, field).model_copy(update=value)
        copy = super().model_copy(update=nested, deep=deep)
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
        traced = [sources.TracedSource(settings_cls, _LAYOUT, "argument", init_settings)]
        if not _DEFAULTS_ONLY.get():
            traced.append(sources.TracedSource(settings_cls, _LAYOUT, "environment", env_settings))
            traced.append(sources.TracedSource(settings_cls, _LAYOUT, ".env", dotenv_settings))
            traced.append(sources.YamlSource(traced[:], _YAML_NAMES))
        record = sources.CURRENT_LOAD.get()
        if record is not None:
            record.extend(traced)
        return tuple(traced)

    # --- validators ---

    @field_validator("fallback_providers", mode="before")
    @classmethod
    def _split_fallbacks(cls, value: Any) -> Any:
        if value is None:
            return []
        if not isinstance(value, str):
            return value
        if not value.strip().startswith("["):
            return value.split(",")
        try:
            return json.loads(value)
        except ValueError:
            raise PydanticCustomError("json_list", "expected a comma list or a JSON list") from None

    @field_validator("fallback_providers")
    @classmethod
    def _valid_fallbacks(cls, value: list[str], info: Any) -> list[str]:
        names = _known_providers([v for v in value if v.strip()])
        return list(dict.fromkeys(n for n in names if n != info.data.get("primary_provider")))

    # --- views ---

    def __getattr__(self, name: str) -> Any:
        """A setting by flat name: ``config.cache_ttl`` is ``config.cache.ttl``."""
        field, key = _LAYOUT.get(name, (name, None))
        if key is None:
            return super().__getattr__(name)  # type: ignore[misc]  # pydantic's own: private attributes
        return getattr(getattr(self, field), key)

    def provider(self, name: str) -> ProviderConfig:
        """The settings of provider ``name`` (case and spaces ignored); :class:`ConfigError` for an unknown one."""
        spec = SPECS.get(name.strip().lower())
        if spec is None:
            raise ConfigError(f"Unknown provider {name!r}; expected one of {', '.join(PROVIDERS)}")
        section: ProviderSettings = getattr(self, spec.name)
        embed_model = section.embed_model if spec.can_embed else None
        if spec.can_embed and spec.default_embed_model is None:
            embed_model = embed_model or section.model  # embeds with its chat model
        return ProviderConfig(name=spec.name, **dict(section, embed_model=embed_model))

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
        """The response cache's settings: :attr:`cache` and :attr:`redis_url`."""
        return CacheConfig(**dict(self.cache), redis_url=self.redis_url)

    @property
    def config_file(self) -> Path | None:
        """The YAML file that was read (absolute), or ``None`` when there was none."""
        return self._config_file

    def explain(self) -> dict[str, str]:
        """Flat name -> source: ``"argument"``, ``"environment"``, ``".env"``, the YAML file's path, ``"default"``."""
        return {name: self._provenance.get(name, "default") for name in _LAYOUT}

    def public_dict(self) -> dict[str, Any]:
        """Every effective setting, JSON-serialisable, by flat name; secrets as ``"***"`` when set, paths as text."""
        result: dict[str, Any] = {}
        for name in _LAYOUT:
            value = getattr(self, name)
            if isinstance(value, SecretStr):
                value = "***"
            elif isinstance(value, Path | list):
                value = str(value) if isinstance(value, Path) else list(value)
            result[name] = value
        return result

    def _secret_values(self) -> list[str]:
        """The values :func:`~sarai_llm.errors.redact` must scrub: API keys, and a Redis URL's credentials."""
        keys = (getattr(self, name).api_key for name in PROVIDERS)
        values = [key.get_secret_value() for key in keys if key]
        return values + (_url_secrets(self.redis_url.get_secret_value()) if self.redis_url else [])


def _layout() -> dict[str, tuple[str, str | None]]:
    """Flat setting name -> (field, key in its section); in display order, as the environment names them."""
    layout: dict[str, tuple[str, str | None]] = {}
    for field, info in GatewayConfig.model_fields.items():
        spec = SPECS.get(field)
        keys: list[str] = []
        if info.annotation is CacheSettings:
            keys = list(CacheSettings.model_fields)
        elif spec is not None:
            keys = [k for k in ProviderSettings.model_fields if k != "embed_model" or spec.can_embed]
            if spec.key_makes_usable:  # listed first: the key is what these are usually configured with
                keys.sort(key=lambda k: k != "api_key")
        layout.update({f"{field}_{key}": (field, key) for key in keys} if keys else {field: (field, None)})
    return layout


_LAYOUT = _layout()
_SECTIONS = frozenset(field for field, key in _LAYOUT.values() if key is not None)
_SECRETS = frozenset(name for name in _LAYOUT if name.endswith("_api_key") or name == "redis_url")
# YAML (section, key) -> flat name. A YAML file does not name another (config), keeps redis_url in its cache
# section, and may call a provider's model default_model (the seed's name).
_YAML_NAMES = {place: name for name, place in _LAYOUT.items() if name not in ("config", "redis_url")}
_YAML_NAMES |= {("cache", "redis_url"): "redis_url", **{(p, "default_model"): f"{p}_model" for p in PROVIDERS}}
