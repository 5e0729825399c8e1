"""Admin HTTP endpoint (loopback, bearer token) driving faults and scenario events."""

from __future__ import annotations

import inspect
import json
import secrets
from typing import TYPE_CHECKING, Any

from aiohttp import web

if TYPE_CHECKING:
    from .simulator import Simulator

ALLOWED = frozenset(
    {
        "crash_guest",
        "fail_next_backup",
        "corrupt_backup",
        "set_node_offline",
        "set_node_online",
        "fence_node",
        "set_quorum",
        "fill_storage",
        "add_latency",
        "fail_requests",
        "drop_connections",
        "clear_faults",
        "stop_api",
        "start_api",
        "fail_replication",
        "announce_package_updates",
        "set_targets",
    }
)


def _json(data: Any, status: int = 200) -> web.Response:
    return web.Response(status=status, text=json.dumps(data), content_type="application/json")


class AdminServer:
    """``GET /state``, ``GET /requests``, ``GET /tokens``, ``POST /faults/<name>``."""

    def __init__(self, sim: Simulator, host: str, port: int) -> None:
        self.sim = sim
        self.host = host
        self.port = port
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        """Base URL of the admin endpoint."""
        return f"http://{self.host}:{self.port}"

    async def start(self) -> None:
        """Bind the admin listener."""
        app = web.Application(middlewares=[self._auth])
        app.router.add_get("/state", self._state)
        app.router.add_get("/requests", self._requests)
        app.router.add_get("/tokens", self._tokens)
        app.router.add_post("/faults/{name}", self._fault)
        self._runner = web.AppRunner(
            app, access_log=None, shutdown_timeout=0.5, handle_signals=False
        )
        await self._runner.setup()
        site = web.TCPSite(self._runner, self.host, self.port)
        await site.start()
        self.port = int(self._runner.addresses[0][1])

    async def stop(self) -> None:
        """Close the admin listener."""
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @web.middleware
    async def _auth(self, request: web.Request, handler: Any) -> web.StreamResponse:
        given = request.headers.get("Authorization", "")
        if not secrets.compare_digest(given.encode(), f"Bearer {self.sim.admin_token}".encode()):
            return _json({"error": "unauthorized"}, 401)
        resp: web.StreamResponse = await handler(request)
        return resp

    async def _state(self, request: web.Request) -> web.Response:
        sim = self.sim
        return _json(
            {
                "pve_url": sim.pve_url,
                "pbs_url": sim.pbs_url if sim.pbs else None,
                "fingerprint": sim.fingerprint,
                "ca_path": str(sim.ca_path),
                "request_count": sim.request_count,
                "quorate": sim.lab.quorate,
                "nodes": {n.name: n.online for n in sim.lab.nodes.values()},
                "api_running": {
                    "pve": bool(sim.pve and sim.pve.running),
                    "pbs": bool(sim.pbs and sim.pbs.running),
                },
                "emitted": dict(sim.emitter.sent),
                "emit_failed": dict(sim.emitter.failed),
                "pending_backup_failures": {str(k): v for k, v in sim.faults_pve_backup.items()},
            }
        )

    async def _requests(self, request: web.Request) -> web.Response:
        log = [
            {"time": r.time, "method": r.method, "path": r.path, "status": r.status}
            for r in self.sim.request_log[-500:]
        ]
        return _json({"count": self.sim.request_count, "recent": log})

    async def _tokens(self, request: web.Request) -> web.Response:
        return _json({"pve": self.sim.pve_auth.describe(), "pbs": self.sim.pbs_auth.describe()})

    async def _fault(self, request: web.Request) -> web.Response:
        name = request.match_info["name"].replace("-", "_")
        if name not in ALLOWED:
            return _json({"error": f"unknown fault {name!r}", "allowed": sorted(ALLOWED)}, 404)
        try:
            body = await request.json() if request.can_read_body else {}
        except ValueError:
            return _json({"error": "body must be a JSON object"}, 400)
        if not isinstance(body, dict):
            return _json({"error": "body must be a JSON object"}, 400)
        method = getattr(self.sim, name)
        try:
            inspect.signature(method).bind(**body)
        except TypeError as exc:
            return _json({"error": str(exc)}, 400)
        try:
            result = method(**body)
            if inspect.isawaitable(result):
                await result
        except (KeyError, ValueError, RuntimeError) as exc:
            return _json({"error": str(exc)}, 400)
        return _json({"ok": True})
