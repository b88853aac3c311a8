"""Settings of sarai_llm: which providers, models and cache to use; the README's table documents each.

Sources, highest first: :meth:`GatewayConfig.load`'s arguments; the environment (``LLM_GATEWAY_CACHE_TTL=60``, any
case); ``.env``; the YAML file (``config``, else ``LLM_GATEWAY_CONFIG``, else ``./config.yaml`` if it exists, under
``llm_gateway:``); the defaults (per provider: :data:`~sarai_llm._providers.SPECS`). Settings are stored nested
(``config.cache.ttl``), named flat (``cache_ttl``); errors name the source, never quote a key or URL credentials."""

from __future__ import annotations

import os
from collections.abc import Iterator, Mapping
from contextvars import ContextVar
from pathlib import Path
from typing import Annotated, Any, Literal, Self

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    SecretStr,
    SkipValidation,
    field_validator,
    model_validator,
)
from pydantic_core import ValidationError
from pydantic_settings import BaseSettings, NoDecode, PydanticBaseSettingsSource, SettingsConfigDict, SettingsError

from . import _config_fields as fields
from . import _config_sources as sources
from ._providers import (
    ENV_PREFIX,
    PROVIDERS,
    SPECS,
    ProviderSpec,
    custom_spec,
    public_url,
    url_secrets,
)
from .errors import ConfigError, redact, register_secrets

__all__ = ["ENV_PREFIX", "PROVIDERS", "CacheConfig", "CacheSettings"]
__all__ += ["CustomProviderSettings", "DeploymentSettings", "GatewayConfig", "ProviderConfig", "ProviderSettings"]
_DEFAULTS_ONLY: ContextVar[bool] = ContextVar("sarai_llm_config_defaults_only", default=False)  # see defaults()


class DeploymentSettings(BaseModel):
    """One server of a provider (``deployments:``); what it leaves out it takes from its provider."""

    model_config = ConfigDict(frozen=True, extra="forbid", str_strip_whitespace=True)

    base_url: Annotated[str, fields.url("base_url", ("http", "https"), fields.HTTP_FORM)]
    api_key: fields.Secret = None
    model: fields.Text = None
    weight: float = Field(default=1.0, gt=0, allow_inf_nan=False)  # share of the calls, relative to the others
    max_concurrent: int | None = Field(default=None, ge=1)

    def public(self) -> dict[str, Any]:
        shown = self.model_dump(exclude_none=True) | {"base_url": public_url(self.base_url)}
        return shown | ({"api_key": "***"} if self.api_key else {})


class ProviderSettings(BaseModel):
    """One provider's section: ``llm_gateway.<name>`` in YAML, ``LLM_GATEWAY_<NAME>_<KEY>`` in the environment."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    base_url: fields.BaseURL = None  # without trailing "/"; None: LiteLLM's default (openai, anthropic) or not usable
    model: str = Field(min_length=1)  # chat model; "default_model" or "model" in YAML
    embed_model: fields.Text = None  # None: the provider cannot embed (always None for anthropic)
    timeout: fields.Seconds = 300.0  # seconds one request may take
    api_key: fields.Secret = None
    input_cost_per_token: fields.Price = None  # None: LiteLLM's price list (free providers cost 0); see ``priced``
    output_cost_per_token: fields.Price = None
    max_concurrent: int | None = Field(default=None, ge=1)  # calls in flight at once; more wait in order
    deployments: Annotated[tuple[DeploymentSettings, ...], NoDecode, BeforeValidator(fields.deployments)] = ()

    @classmethod
    def from_spec(cls, spec: ProviderSpec) -> ProviderSettings:
        return cls(base_url=spec.default_base_url, model=spec.default_model, embed_model=spec.default_embed_model)

    def __repr_args__(self) -> Iterator[tuple[str | None, Any]]:  # str() and repr(): a base URL's user info as ***
        for name, value in super().__repr_args__():
            yield name, public_url(value) if name == "base_url" and value else value


class CustomProviderSettings(ProviderSettings):
    """A provider defined in configuration (``llm_gateway.providers.<name>``) by LiteLLM model strings."""

    model: Annotated[str, AfterValidator(fields.litellm_model)]
    embed_model: Annotated[fields.Text, AfterValidator(fields.litellm_model)] = None


class ProviderConfig(ProviderSettings):
    """The settings of one provider, or of one of its deployments, as the router needs them (read-only); built by
    :meth:`GatewayConfig.provider`. Models are without the LiteLLM prefix, which ``spec`` holds."""

    name: str
    spec: SkipValidation[ProviderSpec] = Field(
        repr=False,
        exclude=True,
        default_factory=lambda data: (
            SPECS.get(data["name"]) or custom_spec(data["name"], f"openai/{data['model']}", None, data["base_url"])
        ),
    )
    weight: float = 1.0  # a deployment's share of the calls
    deployments: tuple[ProviderConfig, ...] = ()  # type: ignore[assignment]  # each a server of its own; () if one

    @property
    def targets(self) -> tuple[ProviderConfig, ...]:
        """Where calls go: the deployments, or the provider itself."""
        return self.deployments or (self,)

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
        if self.name not in SPECS or self.base_url is not None or (by_key and self.api_key is not None):
            return []
        prefix = f"{ENV_PREFIX}{self.name.upper()}_"
        return [f"{prefix}API_KEY", f"{prefix}BASE_URL"] if by_key else [f"{prefix}BASE_URL"]


class CacheSettings(BaseModel):
    """The cache section: ``llm_gateway.cache`` in YAML, ``LLM_GATEWAY_CACHE_<KEY>`` in the environment."""

    model_config = ConfigDict(frozen=True, extra="ignore", str_strip_whitespace=True)

    enabled: bool = True
    ttl: fields.Seconds = 3600.0  # seconds an entry stays valid
    max_size: int = Field(default=1000, ge=1)  # entries held before the least recently used is evicted
    memory_mb: float = Field(default=64.0, gt=0, allow_inf_nan=False)  # bound of the in-process front, MB
    dir: fields.UserPath = None  # of the disk cache; None: $XDG_CACHE_HOME/sarai_llm or ~/.cache/sarai_llm
    namespace: str = ""  # separates the entries of applications sharing one store
    backend: Annotated[Literal["disk", "redis"], fields.lower] = "disk"  # "disk": one host, "redis": many


class CacheConfig(CacheSettings):
    """The response cache's settings (read-only); see :attr:`GatewayConfig.cache_settings`."""

    redis_url: SecretStr | None = None  # server of the "redis" backend (a secret: it may hold a password)


class GatewayConfig(BaseSettings):
    """All settings of sarai_llm, read-only; build it with :meth:`load`. Secrets are :class:`~pydantic.SecretStr`."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        env_nested_delimiter="_",
        env_nested_max_split=1,  # LLM_GATEWAY_CACHE_MAX_SIZE -> cache.max_size
        nested_model_default_partial_update=True,  # LLM_GATEWAY_OLLAMA_MODEL keeps ollama's other defaults
        env_file=".env",
        env_file_encoding="utf-8",
        env_ignore_empty=True,
        dotenv_filtering="only_existing",
        extra="ignore",
        frozen=True,
        str_strip_whitespace=True,
    )

    # Declared in this order on purpose: fallback_providers' validator reads primary_provider.
    primary_provider: Annotated[str, AfterValidator(lambda v: fields.provider_names([v])[0])] = "ollama"
    # A comma or JSON list, tried in order when the primary fails; the primary and duplicates are dropped.
    fallback_providers: Annotated[list[str], NoDecode, BeforeValidator(fields.split_list)] = Field(default_factory=list)
    # One ProviderSettings section per row of the provider table: config.ollama, config.openai, ...
    for _spec in SPECS.values():
        __annotations__[_spec.name] = ProviderSettings
        vars()[_spec.name] = ProviderSettings.from_spec(_spec)
    del _spec
    custom_providers: dict[str, CustomProviderSettings] = Field(default_factory=dict)  # llm_gateway.providers
    cache: CacheSettings = CacheSettings()  # cache_settings adds redis_url
    redis_url: fields.RedisURL = None  # for cache_backend=redis: redis://[:password@]host:6379/0 (a secret)
    num_retries: int = Field(default=0, ge=0)  # of the same provider before falling back
    allowed_fails: int = Field(default=3, ge=0)  # consecutive failures after which a provider cools down
    cooldown_time: float = Field(default=30.0, ge=0, allow_inf_nan=False)  # seconds a provider is then skipped
    health_timeout: fields.Seconds = 5.0  # seconds per provider
    deadline: fields.Seconds | None = None  # seconds a whole call may take across its chain; None: no bound
    metrics_port: int | None = Field(default=None, ge=1, le=65535)  # of the Prometheus endpoint; None: not served
    metrics_host: str = "127.0.0.1"
    metrics_global: bool = False  # prometheus-client's global registry instead of the gateway's own
    config: fields.UserPath = None  # YAML file; None: ./config.yaml when it exists
    watch_config: bool = True  # apply edits of the YAML and .env files to a running gateway

    _provenance: dict[str, str] = {}
    _config_file: Path | None = None
    _layout: dict[str, tuple[str, str | None]] = {}  # _LAYOUT and the custom providers' settings (groq_model)
    _arguments: dict[str, Any] = {}  # of load(), for reload()
    _env_file: Path | None = None
    _from_defaults = False  # built by defaults(): read no file, so watches none

    def __init__(self, **values: Any) -> None:
        known = (*_LAYOUT, "_env_file")
        for key in values:
            if key.lower() not in known and not sources.custom_name(key.lower()):
                hint = sources.did_you_mean(key.lower(), known)
                raise ConfigError(f"{sources.ERROR_PREFIX}argument {key}: unknown setting{hint}")
        traced: list[sources.TracedSource] = []
        token = sources.CURRENT_LOAD.set(traced)
        try:
            super().__init__(**sources.nest({k.lower(): v for k, v in values.items()}, _LAYOUT))
            self._layout = _LAYOUT | {f"{n}_{k}": (n, k) for n in self.custom_providers for k in _CUSTOM_KEYS}
        except ValidationError as exc:
            message, echoes_secret = sources.validation_message(exc, traced, _LAYOUT, _SECRETS)
            raise ConfigError(message) from (None if echoes_secret else exc)
        except (SettingsError, OSError) as exc:
            raise ConfigError(f"{sources.ERROR_PREFIX}{redact(str(exc))}") from exc
        finally:
            sources.CURRENT_LOAD.reset(token)
        self._arguments = dict(values)
        env_file = next((getattr(s.inner, "env_file", None) for s in traced if s.label == ".env"), None)
        self._env_file = Path(env_file).resolve() if isinstance(env_file, str | os.PathLike) else None
        first = {name: next((s for s in traced if name in s.flat), None) for name in self._layout}
        self._provenance = {name: "default" if s is None else s.label for name, s in first.items()}
        self._config_file = next((s.path for s in traced if isinstance(s, sources.YamlSource)), None)
        register_secrets(self._secret_values())
        for field in ("primary_provider", "fallback_providers"):
            names = [self.primary_provider] if field == "primary_provider" else self.fallback_providers
            for name in (n for n in names if n not in SPECS and n not in self.custom_providers):
                where = source.describe(field) if (source := first[field]) is not None else field
                define = f"{ENV_PREFIX}{name.upper()}_MODEL or llm_gateway.providers.{name}.model to a LiteLLM model"
                raise ConfigError(
                    f"{sources.ERROR_PREFIX}{where}: unknown provider '{name}'; "
                    f"{fields.EXPECTED_PROVIDER}, or define it: set {define} string (like groq/llama3-8b-8192)"
                )
        if self.cache.backend == "redis" and self.redis_url is None:
            source = first["cache_backend"]
            where = source.describe("cache_backend") if source is not None else "cache_backend (default)"
            need = f"{ENV_PREFIX}REDIS_URL (like redis://localhost:6379/0; YAML: llm_gateway.cache.redis_url)"
            raise ConfigError(f"{sources.ERROR_PREFIX}{where}: the redis cache backend needs {need}")

    @classmethod
    def load(cls, **overrides: Any) -> Self:
        """Read the settings from every source and validate them.

        :param overrides: settings by flat name, winning over every source (``load(cache_ttl=60)``); ``config=``
            names the YAML file, ``_env_file=`` the dotenv file (default ``".env"``; ``None``: none).
        :raises ConfigError: an invalid value (naming its source), an unknown argument, or a bad YAML file."""
        return cls(**overrides)

    @classmethod
    def defaults(cls, **overrides: Any) -> Self:
        """The defaults with ``overrides`` applied, as :meth:`load` but reading no environment, ``.env`` or YAML."""
        token = _DEFAULTS_ONLY.set(True)
        try:
            config = cls(**overrides)
        finally:
            _DEFAULTS_ONLY.reset(token)
        config._from_defaults = True
        return config

    @classmethod
    def setting_names(cls) -> tuple[str, ...]:
        """Every setting's flat name (``cache_ttl``) in display order."""
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
        inner = {"argument": init_settings, "environment": env_settings, ".env": dotenv_settings}
        traced = [sources.TracedSource(settings_cls, _LAYOUT, label, source) for label, source in inner.items()]
        traced = traced[:1] if _DEFAULTS_ONLY.get() else [*traced, sources.YamlSource(traced, _YAML_NAMES)]
        if (record := sources.CURRENT_LOAD.get()) is not None:
            record.extend(traced)
        return tuple(traced)

    @field_validator("fallback_providers")
    @classmethod
    def _valid_fallbacks(cls, value: list[str], info: Any) -> list[str]:
        names = fields.provider_names([v for v in value if v.strip()])
        return list(dict.fromkeys(n for n in names if n != info.data.get("primary_provider")))

    @model_validator(mode="before")
    @classmethod
    def _defined_providers(cls, data: Any) -> Any:
        """Keeps the custom providers that have a model and are named by the YAML file, an argument or the chain:
        stray variables (``LLM_GATEWAY_DEFAULT_MODEL``, ``LLM_GATEWAY_FOO_TIMEOUT``) define nothing."""
        custom = data.get(sources.CUSTOM_FIELD) if isinstance(data, dict) else None
        if isinstance(custom, dict):  # one in the chain without a model is then named as unknown, with the fix
            chain = [data.get("primary_provider"), *fields.split_list(data.get("fallback_providers"))]
            named = {str(n).strip().lower() for n in chain} | {
                name for s in sources.CURRENT_LOAD.get() or () if s.label not in sources.ENV_LABELS for name in s.custom
            }
            data[sources.CUSTOM_FIELD] = {
                n: v for n, v in custom.items() if not isinstance(v, dict) or ("model" in v and n in named)
            }
        return data

    def __getattr__(self, name: str) -> Any:
        """A setting by flat name: ``config.cache_ttl`` is ``config.cache.ttl``."""
        field, key = _LAYOUT.get(name, (name, None))
        if key is None and (custom := sources.custom_name(name)) and custom[0] in self.custom_providers:
            return getattr(self.custom_providers[custom[0]], custom[1])
        if key is None:
            return super().__getattr__(name)  # type: ignore[misc]  # pydantic's own: private attributes
        return getattr(getattr(self, field), key)

    def provider(self, name: str) -> ProviderConfig:
        """The settings of provider ``name`` (case and spaces ignored); :class:`ConfigError` for an unknown one."""
        key = name.strip().lower()
        if key in self.custom_providers:
            custom = self.custom_providers[key]
            spec = custom_spec(key, custom.model, custom.embed_model, custom.base_url)
            values = dict(custom, model=spec.default_model, embed_model=spec.default_embed_model)
        elif key in SPECS:
            spec, section = SPECS[key], getattr(self, key)
            embed_model = section.embed_model if spec.can_embed else None
            if spec.can_embed and spec.default_embed_model is None:
                embed_model = embed_model or section.model  # embeds with its chat model
            values = dict(section, embed_model=embed_model)
        else:
            raise ConfigError(f"Unknown provider {name!r}; {fields.EXPECTED_PROVIDER}")
        servers = [values | d.model_dump(exclude_none=True) for d in values.pop("deployments")]
        for server in servers:
            server["model"] = server["model"].removeprefix(spec.chat_prefix + "/")
        return ProviderConfig(
            name=key, spec=spec, **values, deployments=tuple(ProviderConfig(name=key, spec=spec, **s) for s in servers)
        )

    @property
    def providers(self) -> dict[str, ProviderConfig]:
        """Every provider: the built-in ones, then those defined in configuration."""
        return {name: self.provider(name) for name in self.provider_names}

    @property
    def provider_names(self) -> tuple[str, ...]:
        """The names :meth:`provider` knows, in the order of :attr:`providers`."""
        return (*PROVIDERS, *self.custom_providers)

    @property
    def chain(self) -> list[str]:
        return [self.primary_provider, *self.fallback_providers]

    @property
    def cache_settings(self) -> CacheConfig:
        return CacheConfig(**dict(self.cache), redis_url=self.redis_url)

    @property
    def config_file(self) -> Path | None:
        """The YAML file that was read (absolute), or ``None`` when there was none."""
        return self._config_file

    @property
    def watched_files(self) -> tuple[Path, ...]:
        """The files :meth:`reload` reads again: the YAML file (``./config.yaml`` if there was none) and ``.env``."""
        if self._from_defaults:
            return ()
        yaml_file = self._config_file or (None if self.config is not None else Path("config.yaml").resolve())
        return tuple(p for p in (yaml_file, self._env_file) if p is not None)

    def reload(self) -> Self:
        """The settings read again from the same sources, with the same arguments; :class:`ConfigError` as load."""
        return type(self)(**self._arguments)

    def explain(self) -> dict[str, str]:
        """Flat name -> source: ``"argument"``, ``"environment"``, ``".env"``, the YAML file's path, ``"default"``."""
        return {name: self._provenance.get(name, "default") for name in self._layout or _LAYOUT}

    def public_dict(self) -> dict[str, Any]:
        """Every effective setting, JSON-serialisable, by flat name; secrets as ``"***"`` when set, paths as text."""
        result = {name: getattr(self, name) for name in self._layout or _LAYOUT}
        result |= {name: str(value) for name, value in result.items() if isinstance(value, Path)}
        result |= {name: "***" for name, value in result.items() if isinstance(value, SecretStr)}
        result |= {name: public_url(v) for name, v in result.items() if name.endswith("_base_url") and v}
        result |= {name: [d.public() for d in v] for name, v in result.items() if name.endswith("_deployments")}
        return result | {"fallback_providers": list(self.fallback_providers)}

    def _secret_values(self) -> list[str]:
        """The values :func:`~sarai_llm.errors.redact` must scrub: API keys, the credentials in the Redis URL and
        the base URLs."""
        servers = [s for p in self.providers.values() for s in (p, *p.deployments)]
        values = [s.api_key.get_secret_value() for s in servers if s.api_key]
        urls = [s.base_url for s in servers] + ([self.redis_url.get_secret_value()] if self.redis_url else [])
        return values + [secret for url in urls for secret in url_secrets(url)]


def _layout() -> dict[str, tuple[str, str | None]]:
    """Flat setting name -> (field, key in its section); in display order, as the environment names them."""
    layout: dict[str, tuple[str, str | None]] = {}
    for field, info in GatewayConfig.model_fields.items():
        if field == sources.CUSTOM_FIELD:
            continue  # named by each custom provider's settings: groq_model (see _config_sources.custom_name)
        spec = SPECS.get(field)
        keys = list(CacheSettings.model_fields) if info.annotation is CacheSettings else []
        if spec is not None:
            keys = [k for k in ProviderSettings.model_fields if k != "embed_model" or spec.can_embed]
            if spec.key_makes_usable:  # listed first: the key is what these are usually configured with
                keys.sort(key=lambda k: k != "api_key")
        layout.update({f"{field}_{key}": (field, key) for key in keys} if keys else {field: (field, None)})
    return layout


_LAYOUT = _layout()
_CUSTOM_KEYS = tuple(k for k in CustomProviderSettings.model_fields)
sources.configure_custom(_CUSTOM_KEYS, {field for field, _ in _LAYOUT.values()})
_SECTIONS = frozenset(field for field, key in _LAYOUT.values() if key is not None)
_SECRETS = frozenset(name for name in _LAYOUT if name.endswith("_api_key") or name == "redis_url")
# YAML (section, key) -> flat name: no config, redis_url in the cache section, a provider's model also default_model.
_YAML_NAMES = {place: name for name, place in _LAYOUT.items() if name not in ("config", "redis_url")}
_YAML_NAMES |= {("cache", "redis_url"): "redis_url", **{(p, "default_model"): f"{p}_model" for p in PROVIDERS}}
