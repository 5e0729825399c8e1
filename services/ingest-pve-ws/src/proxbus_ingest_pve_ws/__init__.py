"""ingest-pve-ws: Proxmox API watcher (via the gateway's NATS RPC), PVE webhook receiver,
Gotify stream listener."""

from .app import PveWsService, run
from .reader import ProxmoxReader, RpcReader
from .settings import Settings
from .watcher import ClusterWatcher, WatchOptions

__all__ = [
    "ClusterWatcher",
    "ProxmoxReader",
    "PveWsService",
    "RpcReader",
    "Settings",
    "WatchOptions",
    "run",
]
