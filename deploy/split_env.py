"""Split one documented ``.env`` into one env file per container: ``env/<service>.env``.

    cd deploy && python3 split_env.py            # reads .env, writes env/*.env (mode 0600)
    python3 split_env.py --env other.env --out /tmp/env

compose.yaml gives each proxbus container only its own file, so the gateway's tokens and the
Proxmox token values never reach the ingest or dispatcher containers, the notifier secrets never
reach the gateway, and so on. Standard library only: it runs on a Docker host without uv.

Which variable goes where:
- ``SHARED`` (NATS connection and auth, site, logging, stream limits, HTTP listeners): every service.
- ``SHARED_BY``: the services named (the ingest spool; ``DISCORD_BUTTON_SECRET``: the dispatcher
  and ingest-discord).
- each service's own names (``OWN``), and for the gateway the Proxmox endpoint variables
  (``PVE_<NODE>_*``, ``PBS_<NODE>_*``, ``<NODE>_FINGERPRINT``, ``CLUSTER_*``...).
- ``PROXBUS_<SERVICE>_<NAME>=value``: ``<NAME>=value`` for that one service only, after the shared
  value (e.g. a NATS user per service: ``PROXBUS_DISPATCHER_NATS_USER=dispatcher``).
Anything else is reported on stderr and written nowhere. Lines are copied as written (quotes
included), so compose reads them exactly as it would have read ``.env``.
"""

from __future__ import annotations

import argparse
import os
import re
import sys
from pathlib import Path

SERVICES = (
    "ingest-syslog",
    "ingest-email",
    "ingest-pve-ws",
    "dispatcher",
    "mcp-gateway",
    "ingest-discord",
)

SHARED = frozenset(
    {
        "PROXBUS_SITE",
        "LOG_LEVEL",
        "LOG_FORMAT",
        "NATS_URL",
        "NATS_CREDS",
        "NATS_USER",
        "NATS_PASSWORD",
        "NATS_TOKEN",
        "NATS_TLS_CA",
        "NATS_TLS_CERT",
        "NATS_TLS_KEY",
        "NATS_CONNECT_TIMEOUT",
        "NATS_JS_DOMAIN",
        "SHUTDOWN_BUDGET",
        "EVENTS_MAX_AGE_DAYS",
        "EVENTS_MAX_BYTES",
        "HEALTH_HOST",
        "HEALTH_PORT",
        "HTTP_REQUEST_TIMEOUT",
        "HTTP_MAX_CONNECTIONS",
        "HTTP_MAX_CONNECTIONS_PER_PEER",
        "HTTP_KEEPALIVE_TIMEOUT",
    }
)

# Settings several (not all) services read: the disk spool of the ingest services that have one;
# the key that signs the dispatcher's Discord notification buttons, checked by ingest-discord.
SPOOLING = ("ingest-syslog", "ingest-pve-ws")
SHARED_BY: dict[str, tuple[str, ...]] = {
    **{
        name: SPOOLING
        for name in (
            "SPOOL_ENABLED",
            "SPOOL_DIR",
            "SPOOL_MAX_BYTES",
            "SPOOL_FSYNC",
            "SPOOL_FSYNC_INTERVAL",
        )
    },
    "DISCORD_BUTTON_SECRET": ("dispatcher", "ingest-discord"),
}

# Read by compose.yaml's ${...} only (host-side port bindings): written nowhere, not reported.
COMPOSE_ONLY = frozenset({"SYSLOG_PUBLISH", "SMTP_PUBLISH", "WEBHOOK_PUBLISH"})

OWN: dict[str, frozenset[str]] = {
    "ingest-syslog": frozenset(
        {
            "EVENT_SYSLOG_ENABLED",
            "SYSLOG_HOST",
            "SYSLOG_PORT",
            "SYSLOG_UDP",
            "SYSLOG_TCP",
            "SYSLOG_TLS_PORT",
            "SYSLOG_TLS_CERT",
            "SYSLOG_TLS_KEY",
            "SYSLOG_REUSE_PORT",
            "SYSLOG_UDP_RECV_BUFFER",
            "SYSLOG_MAX_LINE",
            "SYSLOG_MAX_CONNECTIONS",
            "SYSLOG_PEER_SHARE",
            "SYSLOG_IDLE_TIMEOUT",
            "SYSLOG_DRAIN_TIMEOUT",
            "SYSLOG_TIMEZONE",
            "HOSTNAME_MAP",
            "FILTER_MIN_SEVERITY",
            "FILTER_DROP_APPS",
            "FILTER_KEEP_APPS",
            "FILTER_DROP_REGEX",
            "FILTER_KEEP_REGEX",
            "RATE_LIMIT_PER_SOURCE",
            "RATE_LIMIT_BURST",
            "RATE_LIMIT_BY",
            "RATE_LIMIT_HOSTS_PER_PEER",
            "PUBLISH_BUFFER",
            "PUBLISH_MAX_IN_FLIGHT",
            "PUBLISH_ACK_TIMEOUT",
        }
    ),
    "ingest-email": frozenset(
        {
            "EVENT_EMAIL_ENABLED",
            "SMTP_ENABLED",
            "SMTP_HOST",
            "SMTP_PORT",
            "SMTP_HOSTNAME",
            "SMTP_MAX_SIZE",
            "SMTP_TIMEOUT",
            "SMTP_PUBLISH_TIMEOUT",
            "EMAIL_DEDUP_HOURS",
            "SMTP_MAX_CONNECTIONS",
            "SMTP_MAX_CONNECTIONS_PER_PEER",
            "SMTP_MAX_TRANSACTIONS",
            "SMTP_MAX_LARGE_PARSES",
            "SMTP_TRANSACTION_WAIT",
            "SMTP_SPOOL_THRESHOLD",
            "SMTP_SPOOL_DIR",
            "SMTP_TLS_CERT",
            "SMTP_TLS_KEY",
            "SMTP_REQUIRE_STARTTLS",
            "SMTP_USERNAME",
            "SMTP_PASSWORD",
            "SMTP_AUTH_REQUIRED",
            "SMTP_AUTH_REQUIRE_TLS",
            "IMAP_ENABLED",
            "IMAP_HOST",
            "IMAP_PORT",
            "IMAP_USER",
            "IMAP_PASSWORD",
            "IMAP_MAILBOX",
            "IMAP_TLS",
            "IMAP_TLS_VERIFY",
            "IMAP_TLS_CA",
            "IMAP_MOVE_TO",
            "IMAP_IDLE",
            "IMAP_POLL_SECONDS",
            "IMAP_IDLE_SECONDS",
            "IMAP_TIMEOUT",
            "IMAP_BACKOFF_MAX",
            "IMAP_BATCH",
            "IMAP_PUBLISH_TIMEOUT",
            "IMAP_MAX_SIZE",
        }
    ),
    "ingest-pve-ws": frozenset(
        {
            "EVENT_WS_ENABLED",
            "PVE_WS_CLUSTERS",
            "PVE_WS_POLL_SECONDS",
            "PVE_WS_RPC_TIMEOUT",
            "PVE_WS_LEASE_SECONDS",
            "PVE_WS_REPLICA_ID",
            "PVE_WS_TASK_LOOKBACK",
            "PVE_WS_LOG_LIMIT",
            "PVE_WS_LOG_TAIL_LINES",
            "PVE_WS_STORAGE_WARN",
            "PVE_WS_STORAGE_CRIT",
            "PVE_WS_STORAGE_HYSTERESIS",
            "PVE_WEBHOOK_SECRET",
            "PVE_WEBHOOK_MAX_BYTES",
            "PVE_WEBHOOK_MAX_DEPTH",
            "GOTIFY_LISTEN_URL",
            "GOTIFY_CLIENT_TOKEN",
            "GOTIFY_BACKOFF_MAX",
            "GOTIFY_TIMEOUT",
            "GOTIFY_MAX_ID_JUMP",
            "GOTIFY_RECENT_IDS",
        }
    ),
    "ingest-discord": frozenset(
        {
            "DISCORD_HOST",
            "DISCORD_PORT",
            "DISCORD_PUBLIC_KEY",
            "DISCORD_OPERATORS",
            "DISCORD_GUILDS",
            "DISCORD_CHANNELS",
            "DISCORD_USER_RATE",
            "DISCORD_API_URL",
            "DISCORD_MAX_BODY",
            "DISCORD_MAX_AGE",
            "DISCORD_DEFER_AFTER",
            "DISCORD_CONFIRM_SECONDS",
            "DISCORD_CLUSTER",
            "DISCORD_RPC_TIMEOUT",
            "DISCORD_HTTP_TIMEOUT",
            "DISCORD_EVENTS_LIMIT",
        }
    ),
    "dispatcher": frozenset(
        {
            "ROUTES_FILE",
            "MIN_SEVERITY",
            "DISCORD_OUT_ENABLED",
            "DISCORD_WEBHOOK_URL",
            "GOTIFY_OUT_ENABLED",
            "GOTIFY_URL",
            "GOTIFY_TOKEN",
            "WEBHOOK_OUT_ENABLED",
            "WEBHOOK_URL",
            "WEBHOOK_SECRET",
            "EMAIL_OUT_ENABLED",
            "EMAIL_OUT_HOST",
            "EMAIL_OUT_PORT",
            "EMAIL_OUT_USER",
            "EMAIL_OUT_PASSWORD",
            "EMAIL_OUT_SECURITY",
            "EMAIL_OUT_FROM",
            "EMAIL_OUT_TO",
            "APPRISE_URLS",
            "NATS_OUT_SUBJECT",
            "SEED_GROUP_WAIT",
            "SEED_REPEAT_INTERVAL",
            "SEED_SYSLOG_MIN_SEVERITY",
            "NOTIFY_TIMEZONE",
            "SEED_OK_GROUP_WAIT",
            "SEED_LINES_GROUP_WAIT",
            "MAX_ATTEMPTS",
            "BACKOFF_BASE",
            "BACKOFF_MAX",
            "INTAKE_ENABLED",
            "CONSUMER_DURABLE",
            "CONSUMER_ACK_WAIT",
            "CONSUMER_BATCH",
            "PUBLISH_SUPPRESSED",
            "ENRICH_ENABLED",
            "ENRICH_TIMEOUT",
            "ENRICH_GUEST_TOOL",
            "ENRICH_TASK_LOG_TOOL",
            "PEER_NAMES_TOOL",
            "PEER_NAMES_TTL",
            "DELIVERY_ENABLED",
            "DELIVERY_ACK_WAIT",
            "INCIDENT_WINDOW",
            "ACK_RESOLVE_AFTER",
            "STATE_TTL",
            "CONSOLE_ENABLED",
            "CONSOLE_TOKENS",
            "CONSOLE_TRUSTED_PROXIES",
            "CONSOLE_HEALTH_URLS",
            "CONSOLE_RECENT_EVENTS",
            "CONSOLE_RECENT_BYTES",
            "CONSOLE_MAX_LIVE_PAGES",
            "CONSOLE_LIVE_WRITE_TIMEOUT",
        }
    ),
    "mcp-gateway": frozenset(
        {
            "GATEWAY_HOST",
            "GATEWAY_PORT",
            "GATEWAY_TOKENS",
            "GATEWAY_TOKENS_FILE",
            "GATEWAY_ALLOWED_HOSTS",
            "GATEWAY_ALLOWED_ORIGINS",
            "GATEWAY_TRANSPORT",
            "READ_ONLY",
            "RPC_ENABLED",
            "RPC_SCOPES",
            "NATS_ENABLED",
            "AUDIT_ENABLED",
            "API_TIMEOUT",
            "CONNECT_TIMEOUT",
            "API_RETRIES",
            "RETRY_BACKOFF",
            "POOL_WORKERS",
            "BREAKER_FAILURES",
            "BREAKER_COOLDOWN",
            "CACHE_TTL",
            "DISCOVER_ENDPOINTS",
            "MCP_JSON_RESPONSE",
            "MEMBERSHIP_TTL",
            "MAX_WAIT",
            "MAX_CONCURRENT_CALLS",
            "MAX_CALLS_PER_CALLER",
            "MAX_SESSIONS",
            "MAX_SESSIONS_PER_CALLER",
            "SESSION_IDLE_TIMEOUT",
            "STDIO_SCOPES",
            "INSECURE_NO_AUTH",
            "DEFAULT_CLUSTER",
            # The seed's Proxmox endpoint variables (read from the raw environment):
            "LAB_CONFIGURATION",
            "VERIFY_SSL",
            "CLUSTERS",
            "PVE_NODES",
            "PBS_NODES",
        }
    ),
}

# Dynamic names only the gateway reads: PVE_<NODE>_HOST, PBS_<NODE>_TOKEN_VALUE, <NODE>_FINGERPRINT,
# CLUSTER_<NAME>_... (checked after every service's own names, so PVE_WS_* stays with pve-ws).
GATEWAY_PATTERN = re.compile(
    r"^((PVE|PBS)_[A-Z0-9_]+_(HOST|PORT|USER|TOKEN_NAME|TOKEN_VALUE|FINGERPRINT)"
    r"|[A-Z0-9_]+_FINGERPRINT|CLUSTER_[A-Z0-9_]+)$"
)

_ASSIGNMENT = re.compile(r"^\s*(?:export\s+)?([A-Za-z_][A-Za-z0-9_]*)\s*=(.*)$")


def owners(name: str) -> tuple[str, ...]:
    """The services that receive variable ``name`` (empty: nobody reads it)."""
    if name in SHARED:
        return SERVICES
    if name in SHARED_BY:
        return SHARED_BY[name]
    for service, names in OWN.items():
        if name in names:
            return (service,)
    if GATEWAY_PATTERN.match(name):
        return ("mcp-gateway",)
    return ()


def service_prefix(service: str) -> str:
    return f"PROXBUS_{service.upper().replace('-', '_')}_"


def split(lines: list[str]) -> tuple[dict[str, list[str]], list[str]]:
    """(service -> lines of its env file, names nobody reads) for the lines of one ``.env``."""
    out: dict[str, list[str]] = {s: [] for s in SERVICES}
    overrides: dict[str, list[str]] = {s: [] for s in SERVICES}
    unknown: list[str] = []
    for raw in lines:
        m = _ASSIGNMENT.match(raw)
        if m is None:
            continue  # blank, comment, or not an assignment
        name, value = m.group(1), m.group(2)
        for service in SERVICES:
            prefix = service_prefix(service)
            if name.startswith(prefix) and len(name) > len(prefix):
                overrides[service].append(f"{name[len(prefix) :]}={value}")
                break
        else:
            targets = owners(name)
            if not targets and name not in COMPOSE_ONLY:
                unknown.append(name)
            for service in targets:
                out[service].append(f"{name}={value}")
    # Per-service overrides come after the shared lines: in an env file the last value wins.
    for service in SERVICES:
        out[service].extend(overrides[service])
    return out, unknown


def write(files: dict[str, list[str]], out_dir: Path) -> list[Path]:
    """Write ``<out_dir>/<service>.env`` for every service (0600: they hold secrets)."""
    out_dir.mkdir(parents=True, exist_ok=True)
    written = []
    for service, lines in files.items():
        path = out_dir / f"{service}.env"
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as fh:
            fh.write(f"# generated by split_env.py for {service}: edit .env, then rerun it\n")
            fh.writelines(f"{line}\n" for line in lines)
        os.chmod(path, 0o600)
        written.append(path)
    return written


def main(argv: list[str] | None = None) -> int:
    here = Path(__file__).resolve().parent
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", type=Path, default=here / ".env", help="default: deploy/.env")
    parser.add_argument("--out", type=Path, default=here / "env", help="default: deploy/env")
    args = parser.parse_args(argv)
    if not args.env.is_file():
        print(f"{args.env}: no such file (cp .env.example .env first)", file=sys.stderr)
        return 2
    files, unknown = split(args.env.read_text().splitlines())
    for name in unknown:
        print(f"{args.env}: {name} is read by no service; not written anywhere", file=sys.stderr)
    for path in write(files, args.out):
        print(f"wrote {path} ({len(files[path.stem])} variables)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
