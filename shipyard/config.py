"""Every Shipyard setting, declared once.

Precedence: explicit argument > environment (``SHIPYARD_<NAME>``) > ``shipyard.toml`` in
the working directory > default. Paths default to folders under ``SHIPYARD_HOME``
(``~/.shipyard``), so two homes never see each other's data.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr, ValidationError, field_validator, model_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

from shipyard.errors import ConfigError


class Settings(BaseSettings):
    """Shipyard configuration; read from the environment with the ``SHIPYARD_`` prefix."""

    model_config = SettingsConfigDict(
        env_prefix="SHIPYARD_", toml_file="shipyard.toml", extra="ignore", frozen=True
    )

    home: Path = Field(default_factory=lambda: Path.home() / ".shipyard")
    db: str = Field("", description="SQLAlchemy URL of the metadata store; default SQLite in home")
    artifacts: str = Field(
        "", description="fsspec URL of the artifact root; default home/artifacts"
    )
    url: str = Field("", description="Platform server URL; unset means in-process stores")
    workspace: str = Field("default", description="Workspace used when none is given")
    token: SecretStr | None = Field(None, description="Bearer token sent to the platform server")
    metric_flush_size: int = Field(1000, ge=1, description="Buffered metric points per flush")
    metric_flush_interval: float = Field(2.0, gt=0, description="Seconds between metric flushes")
    host: str = Field("127.0.0.1", description="Platform server bind address")
    port: int = Field(5005, ge=0, le=65535, description="Platform server port")
    max_request_bytes: int = Field(
        64 * 1024 * 1024, ge=1024, description="Largest JSON request body the server accepts"
    )
    http_timeout: float = Field(30.0, gt=0, description="Seconds the SDK waits on the server")

    # security
    auth: Literal["auto", "on", "off"] = Field(
        "auto", description="auto: required unless the server binds to a loopback address"
    )
    allow_unauthenticated_network: bool = Field(
        False, description="Really serve without auth on a non-loopback address (logged loudly)"
    )
    jwt_algorithm: Literal["HS256", "RS256", "ES256"] = Field("HS256", description="JWT signing")
    jwt_secret: SecretStr | None = Field(
        None, description="HS256 secret; unset generates SHIPYARD_HOME/jwt-secret (0600)"
    )
    access_token_ttl: int = Field(900, ge=30, le=86400, description="Access token seconds")
    refresh_token_ttl: int = Field(
        30 * 86400, ge=300, description="Refresh token lifetime in seconds"
    )
    admin_user: str = Field("admin", description="Name of the first admin user")
    admin_password: SecretStr | None = Field(
        None, description="Password of the first admin; there is never a default"
    )
    cors_origins: list[str] = Field(
        default_factory=list, description="Origins allowed by CORS; empty turns CORS off"
    )
    online_store: str = Field(
        "", description="Online feature store URL (sqlite:///... or redis://...); default SQLite"
    )
    scheduler: bool = Field(
        False, description="Run pipeline schedules and triggers in the platform server"
    )

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        return (init_settings, env_settings, TomlConfigSettingsSource(settings_cls))

    @field_validator("home", mode="after")
    @classmethod
    def _expand_home(cls, value: Path) -> Path:
        return value.expanduser().absolute()

    @field_validator("url", mode="after")
    @classmethod
    def _strip_url(cls, value: str) -> str:
        return value.rstrip("/")

    @model_validator(mode="after")
    def _derive_paths(self) -> Settings:
        if not self.db:
            object.__setattr__(self, "db", f"sqlite:///{self.home / 'shipyard.db'}")
        if not self.artifacts:
            object.__setattr__(self, "artifacts", (self.home / "artifacts").as_uri())
        return self

    @property
    def is_remote(self) -> bool:
        """True when the SDK talks to a platform server instead of local stores."""
        return bool(self.url)


def load_settings(**overrides: Any) -> Settings:
    """Build settings, turning validation failures into a ConfigError that names the key."""
    try:
        return Settings(**overrides)
    except ValidationError as exc:
        problems = "; ".join(
            f"SHIPYARD_{'_'.join(str(p) for p in err['loc']).upper()}: {err['msg']} "
            f"(got {err.get('input')!r})"
            for err in exc.errors()
        )
        raise ConfigError(f"Invalid configuration: {problems}") from exc
