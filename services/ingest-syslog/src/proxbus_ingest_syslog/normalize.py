"""Turns a parsed, classified syslog line into an ``Event`` (pure)."""

from __future__ import annotations

import ipaddress
from collections.abc import Mapping
from datetime import datetime
from typing import Any

from proxbus_events import (
    Event,
    Severity,
    Source,
    apply_severity_floor,
    deterministic_event_id,
    severity_from_syslog,
)

from .classify import FALLBACK_KIND, Classification
from .parse import SyslogMessage

_SEVERITIES = [severity_from_syslog(code) for code in range(8)]


class NodeNamer:
    """Host name → node name: the configured mapping, else the short name (no domain)."""

    def __init__(self, mapping: Mapping[str, str] | None = None) -> None:
        self._mapping = {k.lower(): v for k, v in (mapping or {}).items()}
        self._cache: dict[str, str | None] = {}

    def __call__(self, hostname: str | None) -> str | None:
        if not hostname:
            return None
        found = self._cache.get(hostname, "")
        if found != "":
            return found
        node = self._name(hostname)
        if len(self._cache) > 4096:
            self._cache.clear()
        self._cache[hostname] = node
        return node

    def _name(self, hostname: str) -> str | None:
        key = hostname.lower()
        if key in self._mapping:
            return self._mapping[key]
        try:
            ipaddress.ip_address(key)
            return key  # an address has no "short name"
        except ValueError:
            pass
        short = key.split(".", 1)[0]
        return self._mapping.get(short, short) or None


def line_severity(msg: SyslogMessage, cls: Classification) -> Severity:
    """Severity from the PRI, raised by the rule's minimum and the contract's floor."""
    severity = _SEVERITIES[msg.pri & 7]
    if cls.severity is not None:
        severity = severity.at_least(cls.severity)
    if cls.kind != FALLBACK_KIND:
        severity = apply_severity_floor(cls.kind, severity)
    return severity


def build_event(
    msg: SyslogMessage,
    cls: Classification,
    *,
    site: str,
    node_of: NodeNamer,
    received_at: datetime,
    severity: Severity | None = None,
    extra: Mapping[str, Any] | None = None,
) -> Event:
    """The event for one line (``severity`` if already computed by the caller)."""
    sender = node_of(msg.hostname)
    node = node_of(cls.node) if cls.node else sender
    timestamp = msg.timestamp or received_at
    title = cls.title
    if title is None:
        title = f"{msg.app}: {msg.message}" if msg.app else msg.message
    meta: dict[str, Any] = {"facility": msg.facility, "syslog_severity": msg.severity}
    if msg.app:
        meta["app"] = msg.app
    if msg.procid:
        meta["pid"] = msg.procid
    if msg.hostname:
        meta["hostname"] = msg.hostname
    if msg.msgid:
        meta["msgid"] = msg.msgid
    if msg.structured_data:
        meta["sd"] = msg.structured_data
    meta["format"] = msg.format
    if msg.truncated:
        meta["truncated"] = True
    if cls.rule:
        meta["rule"] = cls.rule
    if cls.metadata:
        meta.update(cls.metadata)
    if extra:
        meta.update(extra)
    fields: dict[str, Any] = {
        "source": Source.SYSLOG,
        "site": site,
        "node": node,
        "severity": severity or line_severity(msg, cls),
        "kind": cls.kind,
        "title": title or "(empty message)",
        "message": msg.message,
        "timestamp": timestamp,
        "received_at": received_at,
        "vmid": cls.vmid,
        "correlation_id": cls.correlation_id,
        "metadata": meta,
    }
    if cls.dedup_key is not None:
        # Same fact seen twice (two lines, two replicas, a resend) → one stored event.
        bucket = int(timestamp.timestamp()) // 60 * 60 if cls.kind == "oom.kill" else timestamp
        fields["id"] = deterministic_event_id(bucket, site, node, cls.kind, *cls.dedup_key)
    return Event(**fields)
