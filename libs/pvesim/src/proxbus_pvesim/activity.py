"""Background activity for the demo: a lab where guests start and stop, backups run and fail."""

from __future__ import annotations

import asyncio
import logging
import random
from typing import Any

import aiohttp

from .simulator import Simulator

log = logging.getLogger(__name__)


class DemoActivity:
    """Drives the simulator through its own HTTPS API like an operator would.

    Every ``interval`` seconds one action: start a stopped guest, shut a running one down,
    back one up (a quarter of backups fail), and now and then a guest crashes or updates
    are announced. Each produces the tasks, cluster log, syslog lines and mails a real
    cluster would.
    """

    def __init__(self, sim: Simulator, interval: float = 20.0, seed: int | None = None) -> None:
        self.sim = sim
        self.interval = interval
        self.rng = random.Random(seed)  # noqa: S311 - a demo, not security
        self.actions = 0

    def _session(self) -> aiohttp.ClientSession:
        assert self.sim.tls is not None
        return aiohttp.ClientSession(
            base_url=self.sim.pve_url,
            connector=aiohttp.TCPConnector(ssl=self.sim.tls.client_context()),
            headers={"Authorization": self.sim.tokens.admin.header},
            timeout=aiohttp.ClientTimeout(total=10),
        )

    async def run(self, stop: asyncio.Event) -> None:
        """Act every ``interval`` seconds until ``stop`` is set; errors are logged, not raised."""
        async with self._session() as http:
            while not stop.is_set():
                try:
                    await asyncio.wait_for(stop.wait(), self.interval)
                    return
                except TimeoutError:
                    pass
                try:
                    log.info("demo: %s", await self.step(http))
                except (aiohttp.ClientError, TimeoutError, LookupError) as exc:
                    log.warning("demo action failed: %s", exc)

    async def step(self, http: aiohttp.ClientSession) -> str:
        """Perform one random action; a description of what was done."""
        self.actions += 1
        guests = [g for g in self.sim.lab.guests.values() if g.node in self.sim.lab.nodes]
        running = [g for g in guests if g.status == "running"]
        stopped = [g for g in guests if g.status == "stopped"]
        roll = self.rng.random()
        if roll < 0.05 and running:
            g = self.rng.choice(running)
            self.sim.crash_guest(g.vmid)
            return f"guest {g.vmid} crashed"
        if roll < 0.07:
            self.sim.announce_package_updates()
            return "package updates announced"
        if roll < 0.35:
            g = self.rng.choice(guests)
            fail = self.rng.random() < 0.25
            if fail:
                self.sim.fail_next_backup(g.vmid)
            await self._post(http, f"/nodes/{g.node}/vzdump", {"vmid": g.vmid, "mode": "snapshot"})
            return f"backup of {g.vmid}" + (" (will fail)" if fail else "")
        if (roll < 0.7 and stopped) or not running:
            g = self.rng.choice(stopped)
            await self._post(http, f"/nodes/{g.node}/{g.kind}/{g.vmid}/status/start", {})
            return f"start {g.vmid}"
        g = self.rng.choice(running)
        await self._post(http, f"/nodes/{g.node}/{g.kind}/{g.vmid}/status/shutdown", {})
        return f"shutdown {g.vmid}"

    @staticmethod
    async def _post(http: aiohttp.ClientSession, path: str, data: dict[str, Any]) -> None:
        async with http.post(f"/api2/json{path}", data=data) as resp:
            if resp.status >= 400:
                raise LookupError(f"{path}: {resp.status} {resp.reason}")
