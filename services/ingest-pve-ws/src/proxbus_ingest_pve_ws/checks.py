"""``--test-connection`` checks of ingest-pve-ws beyond NATS.

The API watcher holds no Proxmox credentials: it reads through the gateway's NATS RPC. So for
each watched cluster it checks what the watcher will meet: a gateway answers, every Proxmox
endpoint behind it answers with its token (``test_connectivity``), and that token may read the
whole cluster log and HA state (``whoami``: ``Sys.Syslog`` and ``Sys.Audit`` on ``/``; without
``Sys.Syslog`` PVE returns only the token's own cluster-log entries and the watcher quietly
misses the rest, see PVE's ``GET /cluster/log`` permissions). The Gotify listener, when on, is
checked with a read-only call that proves its client token.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from nats.aio.client import Client as NATS
from proxbus_runtime import Check, RpcError, RpcTimeout, RpcUnavailable, call_tool, check_connection

from .settings import Settings

CHECK_TIMEOUT = 5.0
WATCHER_PRIVILEGES = ("Sys.Audit", "Sys.Syslog")
CALLER = "ingest-pve-ws --test-connection"


async def _connect(settings: Settings) -> NATS:
    """Quiet, one attempt; a failure names the NATS URL (without credentials)."""
    return await check_connection(settings, "ingest-pve-ws")


async def _call(settings: Settings, tool: str, arguments: dict[str, Any]) -> Any:
    """One gateway tool over NATS; clear errors when no gateway answers."""

    nc = await _connect(settings)
    try:
        return await call_tool(
            nc,
            tool,
            arguments,
            timeout=min(settings.pve_ws_rpc_timeout, CHECK_TIMEOUT),
            caller=CALLER,
        )
    except RpcUnavailable:
        raise ConnectionError(
            "no mcp-gateway answers on NATS (proxbus.rpc.*): is it running?"
        ) from None
    except RpcTimeout:
        raise ConnectionError(f"the gateway did not answer {tool} in time") from None
    except RpcError as exc:
        raise ConnectionError(f"gateway: {exc}") from None
    finally:
        await nc.close()


async def check_endpoints(settings: Settings, cluster: str) -> str:
    """Every PVE/PBS endpoint the gateway has for ``cluster`` answers ``GET /version``."""
    result = await _call(settings, "test_connectivity", {"cluster": cluster})
    items = result.get("items", []) if isinstance(result, dict) else []
    if not items:
        raise ConnectionError(f"the gateway has no Proxmox endpoint for cluster {cluster}")
    failed = [f"{i.get('endpoint')}: {i.get('error')}" for i in items if not i.get("ok")]
    if failed:
        raise ConnectionError(f"{len(failed)} of {len(items)} endpoints fail: " + "; ".join(failed))
    versions = sorted({str(i.get("version")) for i in items})
    return f"{len(items)} endpoints answer (version {', '.join(versions)})"


async def check_privileges(settings: Settings, cluster: str) -> str:
    """The gateway's PVE token has what the watcher reads with: Sys.Audit and Sys.Syslog on /."""
    result = await _call(settings, "whoami", {"cluster": cluster})
    perms = result.get("proxmox_permissions") if isinstance(result, dict) else None
    root = (perms or {}).get("/") or {}
    missing = [p for p in WATCHER_PRIVILEGES if p not in root]
    if missing:
        why = {
            "Sys.Syslog": "the cluster log shows only the token's own entries",
            "Sys.Audit": "no HA state, node status or other users' tasks",
        }
        raise PermissionError(
            f"the Proxmox token lacks {', '.join(missing)} on / ("
            + "; ".join(why[p] for p in missing)
            + "): see docs/proxmox-tokens.md"
        )
    return "Sys.Audit and Sys.Syslog on /"


async def check_gotify(settings: Settings) -> str:
    """``GET /current/user`` with the client token: proves URL and token, changes nothing."""
    url = (settings.gotify_listen_url or "").rstrip("/")
    parts = urlsplit(url)
    where = f"{parts.hostname}:{parts.port or (443 if parts.scheme == 'https' else 80)}"
    token = settings.gotify_client_token.get_secret_value() if settings.gotify_client_token else ""
    timeout = aiohttp.ClientTimeout(total=min(settings.gotify_timeout, CHECK_TIMEOUT))
    try:
        async with (
            aiohttp.ClientSession(timeout=timeout) as http,
            http.get(f"{url}/current/user", headers={"X-Gotify-Key": token}) as response,
        ):
            status = response.status
            body = await response.json(content_type=None) if status == 200 else None
    except (aiohttp.ClientError, OSError, TimeoutError, ValueError) as exc:
        raise ConnectionError(f"Gotify at {where}: {type(exc).__name__}") from None
    if status in (401, 403):
        raise PermissionError(f"Gotify at {where} refused the client token (HTTP {status})")
    if status != 200 or not isinstance(body, dict):
        raise ConnectionError(f"Gotify at {where}: HTTP {status}")
    return f"Gotify at {where}, client token of user {body.get('name', '?')}"


def connection_checks(settings: Settings) -> dict[str, Check]:
    """The checks ``proxbus-ingest-pve-ws --test-connection`` runs after NATS and JetStream."""
    checks: dict[str, Check] = {}
    if settings.event_ws_enabled:
        for cluster in settings.clusters:

            def endpoints(c: str = cluster) -> Awaitable[str]:
                return check_endpoints(settings, c)

            def privileges(c: str = cluster) -> Awaitable[str]:
                return check_privileges(settings, c)

            checks[f"proxmox {cluster}"] = endpoints
            checks[f"proxmox {cluster} privileges"] = privileges
    if settings.gotify_listen_url:

        def gotify() -> Awaitable[str]:
            return check_gotify(settings)

        checks["gotify"] = gotify
    return checks
