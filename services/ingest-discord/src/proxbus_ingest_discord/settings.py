"""Settings of ingest-discord (environment / ``.env``), built once in ``main()``."""

from __future__ import annotations

from proxbus_events import HTTP_PORTS, checked_secret
from proxbus_runtime import ServiceSettings
from pydantic import Field, SecretStr, ValidationInfo, field_validator, model_validator

from .dedupe import TOKEN_LIFETIME
from .followup import DISCORD_API
from .operators import Access, Operators, parse_ids
from .signature import PUBLIC_KEY_RE


class Settings(ServiceSettings):
    """The interactions endpoint, its Discord application and how commands reach the gateway."""

    # /discord/interactions, /health and /metrics share this listener.
    discord_host: str = "0.0.0.0"
    discord_port: int = Field(default=HTTP_PORTS["ingest-discord"], ge=0, le=65535)
    discord_public_key: str = Field(description="the application's Ed25519 public key, 64 hex")
    discord_operators: str = Field(
        default="", description="user:<id>, role:<id> or <id>, comma-separated"
    )
    discord_guilds: str = Field(
        default="", description="server ids whose members may use /proxbus, comma-separated"
    )
    discord_channels: str = Field(
        default="", description="channel ids (and their threads) /proxbus answers in; empty: all"
    )
    discord_api_url: str = Field(default=DISCORD_API, pattern=r"^https?://")
    discord_max_body: int = Field(default=64 * 1024, ge=1024, le=8 * 1024**2)
    # At most the ledger's memory of interaction ids (15 min): a longer window would accept a
    # captured request again once its id is forgotten.
    discord_max_age: float = Field(default=300.0, gt=0, le=TOKEN_LIFETIME)
    discord_defer_after: float = Field(default=2.0, gt=0, le=2.5)
    discord_confirm_seconds: float = Field(default=300.0, gt=0, le=900)
    discord_cluster: str | None = Field(default=None, pattern=r"^[a-z0-9][a-z0-9_-]{0,63}$")
    discord_rpc_timeout: float = Field(default=30.0, gt=0, le=600)
    discord_http_timeout: float = Field(default=10.0, gt=0, le=120)
    discord_events_limit: int = Field(default=10, ge=1, le=50)
    discord_user_rate: int = Field(default=20, ge=1, le=600)
    # Shared with the dispatcher, which signs its notifications' buttons with it; unset: every
    # notification button is refused (the dispatcher sends none without it either).
    discord_button_secret: SecretStr | None = None

    @field_validator("discord_button_secret", mode="before")
    @classmethod
    def _button_secret(cls, value: object) -> object:
        return checked_secret(value)

    @field_validator("discord_public_key")
    @classmethod
    def _hex_key(cls, value: str) -> str:
        value = value.strip()
        if not PUBLIC_KEY_RE.match(value):
            raise ValueError("must be 64 hex digits (Developer Portal → General Information)")
        return value.lower()

    @field_validator("discord_operators")
    @classmethod
    def _operators(cls, value: str) -> str:
        Operators.parse(value)
        return value

    @field_validator("discord_guilds", "discord_channels")
    @classmethod
    def _ids(cls, value: str, info: ValidationInfo) -> str:
        parse_ids(value, str(info.field_name).upper())
        return value

    @field_validator("discord_cluster", mode="before")
    @classmethod
    def _empty_cluster(cls, value: object) -> object:
        return None if value == "" else value

    @model_validator(mode="after")
    def _one_listener(self) -> Settings:
        # The runtime serves /health and /metrics on HEALTH_HOST:HEALTH_PORT; here that server
        # also carries /discord/interactions, so DISCORD_HOST/DISCORD_PORT decide (DESIGN.md).
        self.health_host, self.health_port = self.discord_host, self.discord_port
        return self

    @property
    def button_secret(self) -> bytes | None:
        """DISCORD_BUTTON_SECRET as the HMAC key, or ``None``."""
        secret = self.discord_button_secret
        return secret.get_secret_value().encode() if secret is not None else None

    @property
    def operators(self) -> Operators:
        return Operators.parse(self.discord_operators)

    @property
    def access(self) -> Access:
        return Access(
            self.operators,
            parse_ids(self.discord_guilds, "DISCORD_GUILDS"),
            parse_ids(self.discord_channels, "DISCORD_CHANNELS"),
        )
