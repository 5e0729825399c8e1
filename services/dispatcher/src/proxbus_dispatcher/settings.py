"""Dispatcher settings: environment / ``.env``; the seed's notifier toggles keep working."""

from __future__ import annotations

from pathlib import Path

from proxbus_events import HTTP_PORTS, Severity, checked_secret
from proxbus_runtime import ServiceSettings
from pydantic import Field, SecretStr, field_validator, model_validator


class Settings(ServiceSettings):
    """Everything the dispatcher reads from the environment (see README)."""

    health_port: int = Field(default=HTTP_PORTS["dispatcher"], ge=0, le=65535)
    # The web console on this port takes writes: loopback unless CONSOLE_TOKENS are set.
    health_host: str = "127.0.0.1"
    routes_file: Path | None = None
    min_severity: Severity = Severity.INFO

    # intake
    intake_enabled: bool = True
    consumer_durable: str = "dispatcher"
    consumer_ack_wait: float = Field(default=30.0, gt=0)
    consumer_batch: int = Field(default=256, ge=1, le=10_000)
    publish_suppressed: bool = True
    # incidents and persisted state
    incident_window: float = Field(default=600.0, ge=0)
    # an acknowledged alert stays acknowledged until it is quiet for this long (stages/ack)
    ack_resolve_after: float = Field(default=3600.0, gt=0)
    state_ttl: float = Field(default=7 * 86400.0, gt=0)
    # enrichment through the gateway's NATS RPC
    enrich_enabled: bool = True
    enrich_timeout: float = Field(default=0.5, gt=0, le=10)
    enrich_guest_tool: str = "get_guest_status"
    enrich_task_log_tool: str = "get_task_log"
    # node id -> name of lost knet peers (stages/peers.py; on and timed as the enrichment)
    peer_names_tool: str = "get_cluster_status"
    peer_names_ttl: float = Field(default=600.0, ge=1, le=86400)
    # delivery
    delivery_enabled: bool = True
    delivery_ack_wait: float = Field(default=60.0, gt=0)

    # web console (console/)
    console_enabled: bool = True
    console_tokens: SecretStr | None = None
    # reverse proxies whose X-Forwarded-For names the console's client (console/auth.py)
    console_trusted_proxies: str | None = None
    console_health_urls: str | None = None
    console_recent_events: int = Field(default=500, ge=10, le=10_000)
    console_recent_bytes: int = Field(default=16 * 1024**2, ge=1024**2, le=1024**3)
    console_max_live_pages: int = Field(default=64, ge=1, le=10_000)
    console_live_write_timeout: float = Field(default=30.0, gt=0, le=3600)

    # seed-style toggles (used when ROUTES_FILE is not set)
    seed_group_wait: float = Field(default=0.0, ge=0)
    seed_repeat_interval: float = Field(default=0.0, ge=0)
    # plain log lines (syslog.message) are notified from this severity (or MIN_SEVERITY if higher)
    seed_syslog_min_severity: Severity = Severity.NOTICE
    # successes (kinds *.ok) go out as one digest per node after this many seconds (0: at once)
    seed_ok_group_wait: float = Field(default=600.0, ge=0)
    # plain log lines go out as one digest per node after this many seconds (0: at once): a
    # node leaving or rejoining the cluster is ~20 notice lines on every node within a second
    seed_lines_group_wait: float = Field(default=30.0, ge=0)
    discord_out_enabled: bool = False
    discord_webhook_url: SecretStr | None = None
    # Signs the "Silence 1h" / "Acknowledge" buttons of discord receivers with buttons: true
    # (ingest-discord checks them with the same secret); unset: no buttons are sent.
    discord_button_secret: SecretStr | None = None
    gotify_out_enabled: bool = False
    gotify_url: str | None = None
    gotify_token: SecretStr | None = None
    webhook_out_enabled: bool = False
    webhook_url: SecretStr | None = None
    webhook_secret: SecretStr | None = None
    email_out_enabled: bool = False
    # EMAIL_OUT_* (not SMTP_*): ingest-email's SMTP receiver owns SMTP_* in a shared .env.
    email_out_host: str | None = None
    email_out_port: int = 587
    email_out_user: str | None = None
    email_out_password: SecretStr | None = None
    email_out_security: str = "starttls"
    email_out_from: str | None = None
    email_out_to: str | None = None
    apprise_urls: SecretStr | None = None
    nats_out_subject: str | None = None
    notify_timezone: str = "UTC"  # the seed receivers' `timezone` (an IANA name)
    max_attempts: int | None = Field(default=None, ge=1, le=1000)  # None: until max_age
    backoff_base: float = Field(default=1.0, gt=0)
    backoff_max: float = Field(default=300.0, gt=0)

    @field_validator("discord_button_secret", mode="before")
    @classmethod
    def _button_secret(cls, value: object) -> object:
        return checked_secret(value)

    @property
    def button_secret(self) -> bytes | None:
        """DISCORD_BUTTON_SECRET as the HMAC key, or ``None``."""
        secret = self.discord_button_secret
        return secret.get_secret_value().encode() if secret is not None else None

    @model_validator(mode="after")
    def _console_safe_bind(self) -> Settings:
        from .console import TokenFormatError, is_loopback, parse_console_tokens
        from .console.auth import parse_trusted_proxies
        from .console.health import parse_health_urls

        if not self.console_enabled:
            return self
        secret = self.console_tokens.get_secret_value() if self.console_tokens else None
        try:
            tokens = parse_console_tokens(secret)
        except TokenFormatError as exc:
            raise ValueError(str(exc)) from None
        if self.console_health_urls:
            parse_health_urls(self.console_health_urls)
        parse_trusted_proxies(self.console_trusted_proxies)  # TrustedProxiesError: ValueError
        if not tokens and not is_loopback(self.health_host):
            raise ValueError(
                f"HEALTH_HOST={self.health_host} is not loopback and the web console would "
                "take writes from the network without a token: set CONSOLE_TOKENS="
                "name:operate:secret, or CONSOLE_ENABLED=false, or HEALTH_HOST=127.0.0.1"
            )
        return self
