"""Settings of ingest-email (environment / ``.env``), built once in ``main()``."""

from __future__ import annotations

from pathlib import Path

from proxbus_events import HTTP_PORTS, SMTP_PORT
from proxbus_runtime import ServiceSettings
from pydantic import Field, SecretStr

MIB = 1024 * 1024


class Settings(ServiceSettings):
    """Every variable is documented in the service README."""

    health_port: int = Field(default=HTTP_PORTS["ingest-email"], ge=0, le=65535)
    event_email_enabled: bool = True

    smtp_enabled: bool = True
    smtp_host: str = "0.0.0.0"
    smtp_port: int = Field(default=SMTP_PORT, ge=0, le=65535)
    smtp_hostname: str | None = None
    smtp_max_size: int = Field(default=10 * MIB, gt=0)
    smtp_timeout: float = Field(default=60.0, gt=0)
    smtp_max_connections: int = Field(default=200, ge=1)
    smtp_max_connections_per_peer: int = Field(default=20, ge=1)
    smtp_max_transactions: int = Field(default=8, ge=1)
    smtp_max_large_parses: int = Field(default=1, ge=1)
    smtp_transaction_wait: float = Field(default=30.0, ge=0)
    smtp_spool_threshold: int = Field(default=1 * MIB, ge=0)
    smtp_spool_dir: Path | None = None
    email_dedup_hours: float = Field(default=48.0, ge=24.0)
    smtp_publish_timeout: float = Field(default=10.0, gt=0)
    smtp_tls_cert: Path | None = None
    smtp_tls_key: Path | None = None
    smtp_require_starttls: bool = False
    smtp_username: str | None = None
    smtp_password: SecretStr | None = None
    smtp_auth_required: bool = False
    smtp_auth_require_tls: bool = True

    imap_enabled: bool = False
    imap_host: str = "127.0.0.1"
    imap_port: int | None = Field(default=None, ge=1, le=65535)
    imap_user: str = ""
    imap_password: SecretStr = SecretStr("")
    imap_mailbox: str = "INBOX"
    imap_tls: bool = True
    imap_tls_verify: bool = True
    imap_tls_ca: Path | None = None
    imap_move_to: str | None = None
    imap_idle: bool = True
    imap_poll_seconds: float = Field(default=60.0, gt=0)
    imap_idle_seconds: float = Field(default=600.0, gt=0)
    imap_timeout: float = Field(default=30.0, gt=0)
    imap_backoff_max: float = Field(default=60.0, gt=0)
    imap_max_size: int = Field(default=25 * MIB, gt=0)
    imap_batch: int = Field(default=50, ge=1)
    imap_publish_timeout: float = Field(default=10.0, gt=0)

    @property
    def imap_port_effective(self) -> int:
        if self.imap_port:
            return self.imap_port
        return 993 if self.imap_tls else 143

    @property
    def smtp_active(self) -> bool:
        return self.event_email_enabled and self.smtp_enabled

    @property
    def imap_active(self) -> bool:
        return self.event_email_enabled and self.imap_enabled
