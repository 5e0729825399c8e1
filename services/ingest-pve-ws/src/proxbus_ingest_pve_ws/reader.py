"""Read-only access to the Proxmox API through the gateway's NATS RPC (no credentials here)."""

from __future__ import annotations

import re
from typing import Any, Protocol

from nats.aio.client import Client as NATS
from proxbus_events import parse_upid
from proxbus_runtime import RpcError, call_tool

CALLER = "ingest-pve-ws"
_NODE = re.compile(r"^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$")
_PATH_UNSAFE = frozenset("/?#%")


class ProxmoxReader(Protocol):
    """``GET`` a Proxmox API path of one cluster; returns the ``data`` member."""

    async def get(self, cluster: str, path: str, params: dict[str, Any] | None = None) -> Any:
        """Raises ``RpcError`` (incl. ``RpcTimeout``) when the API cannot be read."""
        ...


class RpcReader:
    """``ProxmoxReader`` over the gateway's generic ``proxmox_api`` tool (method GET)."""

    def __init__(self, nc: NATS, *, timeout: float = 5.0, tool: str = "proxmox_api") -> None:
        self._nc = nc
        self._timeout = timeout
        self._tool = tool

    async def get(self, cluster: str, path: str, params: dict[str, Any] | None = None) -> Any:
        args: dict[str, Any] = {"cluster": cluster, "method": "GET", "path": path}
        if params:
            args["params"] = params
        result = await call_tool(self._nc, self._tool, args, timeout=self._timeout, caller=CALLER)
        # The tool may wrap the API's answer (``{"data": ...}``) or return it bare.
        if isinstance(result, dict) and "data" in result and len(result) <= 3:
            return result["data"]
        return result


def task_log_path(node: str, upid: str) -> str:
    """``/nodes/{node}/tasks/{upid}/log`` after validating both parts.

    Raises:
        RpcError: ``node`` or ``upid`` is not well-formed (never sent to the API).
    """
    if not _NODE.match(node) or parse_upid(upid) is None or _PATH_UNSAFE & set(upid):
        raise RpcError("proxmox_api", 400, f"refusing malformed node/UPID {node!r}/{upid!r}")
    return f"/nodes/{node}/tasks/{upid}/log"
