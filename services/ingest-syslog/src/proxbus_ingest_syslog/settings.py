"""Configuration of the syslog receiver (environment / ``.env``)."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from proxbus_events import HTTP_PORTS, SYSLOG_PORT, Severity
from proxbus_runtime import SpoolSettings
from pydantic import Field, field_validator, model_validator


class Settings(SpoolSettings):
    """Every ``SYSLOG_*`` / filter / limit variable the service reads, on top of the shared ones."""

    health_port: int = Field(default=HTTP_PORTS["ingest-syslog"], ge=0, le=65535)
    # The seed's toggle: false keeps the service up (health, metrics) with no listener.
    event_syslog_enabled: bool = True

    syslog_host: str = "0.0.0.0"
    syslog_port: int = Field(default=SYSLOG_PORT, ge=0, le=65535)
    syslog_udp: bool = True
    syslog_tcp: bool = True
    syslog_tls_port: int | None = Field(default=None, ge=0, le=65535)
    syslog_tls_cert: Path | None = None
    syslog_tls_key: Path | None = None
    syslog_reuse_port: bool = True
    syslog_udp_recv_buffer: int = Field(
        default=4 * 1024 * 1024, ge=0, description="SO_RCVBUF bytes (capped by rmem_max)"
    )
    syslog_max_line: int = Field(default=64 * 1024, ge=256, le=16 * 1024 * 1024)
    syslog_max_connections: int = Field(default=1000, ge=1)
    syslog_peer_share: float = Field(
        default=0.1, gt=0, le=1, description="share of SYSLOG_MAX_CONNECTIONS one address may hold"
    )
    syslog_idle_timeout: float = Field(default=300.0, gt=0)
    syslog_drain_timeout: float = Field(default=1.5, ge=0, le=5)
    syslog_timezone: str = "UTC"

    hostname_map: str = Field(
        default="", description="comma-separated full=short pairs, e.g. pve1.lab.example=pve1"
    )

    filter_min_severity: Severity = Severity.DEBUG
    filter_drop_apps: str = ""
    filter_keep_apps: str = ""
    filter_drop_regex: str = ""
    filter_keep_regex: str = ""
    rate_limit_per_source: float = Field(default=0.0, ge=0, description="lines/s, 0 = off")
    rate_limit_burst: int = Field(default=1000, ge=1)
    # peer: the sending address (a sender cannot escape by changing the host name it claims);
    # host: the claimed name per address, for rsyslog relays forwarding many nodes.
    rate_limit_by: Literal["peer", "host"] = "peer"
    rate_limit_hosts_per_peer: int = Field(default=256, ge=1, le=10_000)

    publish_buffer: int = Field(default=10_000, ge=1)
    publish_max_in_flight: int = Field(default=512, ge=1)
    publish_ack_timeout: float = Field(default=5.0, gt=0)

    @field_validator("syslog_timezone")
    @classmethod
    def _known_zone(cls, value: str) -> str:
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError(f"unknown time zone {value!r}") from exc
        return value

    @field_validator("filter_drop_regex", "filter_keep_regex")
    @classmethod
    def _valid_regex(cls, value: str) -> str:
        if value:
            try:
                re.compile(value)
            except re.error as exc:
                raise ValueError(f"invalid regular expression {value!r}: {exc}") from exc
        return value

    @field_validator("hostname_map")
    @classmethod
    def _valid_map(cls, value: str) -> str:
        parse_hostname_map(value)
        return value

    @model_validator(mode="after")
    def _tls_complete(self) -> Settings:
        if (self.syslog_tls_port is None) != (self.syslog_tls_cert is None):
            raise ValueError("SYSLOG_TLS_PORT and SYSLOG_TLS_CERT must be set together")
        return self

    def hostnames(self) -> dict[str, str]:
        return parse_hostname_map(self.hostname_map)

    def timezone(self) -> ZoneInfo:
        return ZoneInfo(self.syslog_timezone)

    @property
    def max_connections_per_peer(self) -> int:
        return max(1, int(self.syslog_max_connections * self.syslog_peer_share))

    @property
    def tls_enabled(self) -> bool:
        return self.syslog_tls_port is not None and self.syslog_tls_cert is not None


def parse_hostname_map(text: str) -> dict[str, str]:
    """``"a.example=a,b=c"`` → ``{"a.example": "a", "b": "c"}`` (keys lower-cased).

    Raises:
        ValueError: a pair is not ``name=short``.
    """
    out: dict[str, str] = {}
    for pair in text.split(","):
        pair = pair.strip()
        if not pair:
            continue
        name, sep, short = pair.partition("=")
        if not sep or not name.strip() or not short.strip():
            raise ValueError(f"HOSTNAME_MAP entry {pair!r} is not of the form name=short")
        out[name.strip().lower()] = short.strip()
    return out


def split_list(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]
