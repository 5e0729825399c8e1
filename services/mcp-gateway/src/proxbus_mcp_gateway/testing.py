"""Test helpers: seed variables for a running simulator, test settings, serving on port 0.

Used by this package's tests and benchmarks; needs ``proxbus_pvesim`` (a dev dependency).
"""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator, Mapping
from dataclasses import dataclass
from typing import Any

from .app import serve_gateway_http
from .auth import Caller, parse_scopes
from .gateway import Gateway
from .settings import Settings

READ_SECRET = "read-secret-0123456789"  # noqa: S105 - test token
OPS_SECRET = "ops-secret-0123456789"  # noqa: S105 - test token
ADMIN_SECRET = "admin-secret-0123456789"  # noqa: S105 - test token
TOKENS = f"reader:read:{READ_SECRET},ops:read+operate:{OPS_SECRET},root:admin:{ADMIN_SECRET}"


def sim_env(sim: Any, *, token: Any = None, mode: str = "CLUSTERED") -> dict[str, str]:
    """Seed variables pointing the gateway at the simulator (PVE cluster + PBS)."""
    tok = token or sim.tokens.admin
    pbs = sim.pbs_tokens.admin
    key = sim.pbs_name.upper().replace("-", "_")
    return {
        "LAB_CONFIGURATION": mode,
        "PVE_CLUSTER_PRIMARY_HOST": f"127.0.0.1:{sim.pve_port}",
        "PVE_CLUSTER_PRIMARY_USER": tok.user,
        "PVE_CLUSTER_PRIMARY_TOKEN_NAME": tok.tokenid,
        "PVE_CLUSTER_PRIMARY_TOKEN_VALUE": tok.secret,
        "VERIFY_SSL": str(sim.ca_path),
        "PBS_NODES": sim.pbs_name,
        f"PBS_{key}_HOST": f"127.0.0.1:{sim.pbs_port}",
        f"PBS_{key}_USER": pbs.user,
        f"PBS_{key}_TOKEN_NAME": pbs.tokenid,
        f"PBS_{key}_TOKEN_VALUE": pbs.secret,
    }


# A raw JSON-RPC ``initialize`` body, for tests that speak HTTP without the SDK client.
INITIALIZE: dict[str, Any] = {
    "jsonrpc": "2.0",
    "id": 1,
    "method": "initialize",
    "params": {
        "protocolVersion": "2025-06-18",
        "capabilities": {},
        "clientInfo": {"name": "test", "version": "1"},
    },
}


def standalone_env(sims: Mapping[str, Any]) -> dict[str, str]:
    """Seed variables for several standalone hosts, one simulator each (name -> simulator)."""
    env = {"LAB_CONFIGURATION": "STANDALONE", "PVE_NODES": ",".join(sims)}
    for name, sim in sims.items():
        key = f"PVE_{name.upper()}"
        tok = sim.tokens.admin
        env |= {
            f"{key}_HOST": f"127.0.0.1:{sim.pve_port}",
            f"{key}_USER": tok.user,
            f"{key}_TOKEN_NAME": tok.tokenid,
            f"{key}_TOKEN_VALUE": tok.secret,
            f"{key}_FINGERPRINT": sim.fingerprint,
        }
    return env


def clusters_env(sims: Mapping[str, Any]) -> dict[str, str]:
    """Seed variables for several clusters (``CLUSTERS``), one simulator each (name ->
    simulator): the first is the un-prefixed cluster (``DEFAULT_CLUSTER`` = its name), the
    others read ``CLUSTER_<NAME>_*``."""
    names = list(sims)
    env = sim_env(sims[names[0]])
    for name in names[1:]:
        prefix = f"CLUSTER_{name.upper().replace('-', '_')}_"
        env |= {prefix + k: v for k, v in sim_env(sims[name]).items()}
    if len(names) > 1:
        env["CLUSTERS"] = ",".join(names[1:])
    return env


def make_settings(**overrides: Any) -> Settings:
    base: dict[str, Any] = {
        "proxbus_site": "lab",
        "nats_enabled": False,
        "api_timeout": 5.0,
        "connect_timeout": 2.0,
        "retry_backoff": 0.01,
        "breaker_cooldown": 30.0,
        "pool_workers": 8,
        # The simulator reports made-up member IPs: never dial them from tests.
        "discover_endpoints": False,
    }
    base.update(overrides)
    return Settings(**base)


@contextlib.asynccontextmanager
async def gateway_on(sim: Any, **overrides: Any) -> AsyncIterator[Gateway]:
    """A started gateway pointed at ``sim`` (settings: ``make_settings(**overrides)``)."""
    gw = Gateway.from_settings(make_settings(**overrides), sim_env(sim))
    gw.start()
    try:
        yield gw
    finally:
        await gw.close()


ADMIN = Caller("test-admin", parse_scopes("admin"), "test")
READER = Caller("test-reader", parse_scopes("read"), "test")


@dataclass
class HttpGateway:
    gateway: Gateway
    url: str
    port: int


@contextlib.asynccontextmanager
async def serve(gw: Gateway) -> AsyncIterator[HttpGateway]:
    """Serve ``gw`` on a free loopback port until the block ends."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    sock.listen(128)
    port = sock.getsockname()[1]
    stop = asyncio.Event()
    task = asyncio.create_task(serve_gateway_http(gw, stop, sock=sock))
    try:
        yield HttpGateway(gw, f"http://127.0.0.1:{port}", port)
    finally:
        stop.set()
        await asyncio.wait_for(task, 10)
        sock.close()
