"""Test helpers: ``run_simulator`` (async), ``run_simulator_in_thread`` (sync) and fixtures.

Load the fixtures with ``pytest_plugins = ["proxbus_pvesim.testing"]``.
"""

from __future__ import annotations

import asyncio
import inspect
import threading
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from pathlib import Path
from typing import Any

import aiohttp

from .auth import ApiToken
from .scenario import Scenario, build_lab, load_scenario
from .server import ApiServer
from .simulator import Simulator

ScenarioLike = Scenario | dict[str, Any] | str | Path | None


def _scenario(spec: ScenarioLike) -> Scenario:
    if isinstance(spec, Scenario):
        return spec
    if isinstance(spec, (str, Path)):
        return load_scenario(spec)
    return build_lab(spec)


@asynccontextmanager
async def run_simulator(
    scenario: ScenarioLike = None,
    *,
    instant: bool = True,
    task_seconds: float | None = None,
    admin: bool = False,
    host: str = "127.0.0.1",
) -> AsyncIterator[Simulator]:
    """Run a simulator on free loopback ports in the current event loop."""
    sim = Simulator(
        _scenario(scenario),
        host=host,
        pve_port=0,
        pbs_port=0,
        admin_port=0 if admin else None,
        instant=instant,
        task_seconds=task_seconds,
    )
    async with sim:
        yield sim


@asynccontextmanager
async def member_listener(sim: Simulator) -> AsyncIterator[ApiServer]:
    """A second PVE API endpoint of the running simulator on a free loopback port.

    It serves the same cluster with the same tokens and certificate, like another member's
    API: point a client at both and stop one (``sim.stop_api()`` or ``listener.stop()``) to
    test failover. Its ``port`` and ``request_count`` tell where it listens and what it served.
    """
    listener = sim.pve_listener(0)
    await listener.start()
    try:
        yield listener
    finally:
        await listener.stop()


def api_session(
    sim: Simulator, token: ApiToken | None = None, *, service: str = "PVE"
) -> aiohttp.ClientSession:
    """An aiohttp session trusting the simulator's CA with ``token`` (default: admin) set.

    Paths are relative to the API root, e.g. ``await s.get("/api2/json/nodes")``.
    """
    tok = token or (sim.tokens.admin if service == "PVE" else sim.pbs_tokens.admin)
    if sim.tls is None:
        raise RuntimeError("simulator is not started")
    connector = aiohttp.TCPConnector(ssl=sim.tls.client_context())
    base = sim.pve_url if service == "PVE" else sim.pbs_url
    return aiohttp.ClientSession(
        base_url=base, connector=connector, headers={"Authorization": tok.header}
    )


class ThreadedSimulator:
    """Proxy to a Simulator running in a background loop; method calls run on that loop."""

    def __init__(self, sim: Simulator, loop: asyncio.AbstractEventLoop) -> None:
        self._sim = sim
        self._loop = loop

    @property
    def simulator(self) -> Simulator:
        """The underlying Simulator (touch its state only through ``call``)."""
        return self._sim

    def call(self, fn: Callable[[Simulator], Any], timeout: float = 30) -> Any:
        """Run ``fn(sim)`` on the simulator's loop and return its (awaited) result."""

        async def runner() -> Any:
            result = fn(self._sim)
            if inspect.isawaitable(result):
                result = await result
            return result

        return asyncio.run_coroutine_threadsafe(runner(), self._loop).result(timeout)

    def __getattr__(self, name: str) -> Any:
        attr = getattr(self._sim, name)
        if not callable(attr):
            return attr

        def method(*args: Any, **kwargs: Any) -> Any:
            return self.call(lambda sim: getattr(sim, name)(*args, **kwargs))

        return method


@contextmanager
def run_simulator_in_thread(
    scenario: ScenarioLike = None,
    *,
    instant: bool = True,
    task_seconds: float | None = None,
    admin: bool = False,
    host: str = "127.0.0.1",
) -> Iterator[ThreadedSimulator]:
    """Run a simulator in a background thread, for synchronous clients such as proxmoxer."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, name="pvesim-loop", daemon=True)
    thread.start()
    sim = Simulator(
        _scenario(scenario),
        host=host,
        pve_port=0,
        pbs_port=0,
        admin_port=0 if admin else None,
        instant=instant,
        task_seconds=task_seconds,
    )
    try:
        asyncio.run_coroutine_threadsafe(sim.start(), loop).result(60)
        yield ThreadedSimulator(sim, loop)
    finally:
        try:
            asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(60)
        finally:
            loop.call_soon_threadsafe(loop.stop)
            thread.join(10)
            loop.close()


try:
    import pytest
    import pytest_asyncio
except ImportError:  # pragma: no cover - fixtures only exist where pytest is installed
    pass
else:

    @pytest_asyncio.fixture
    async def pvesim() -> AsyncIterator[Simulator]:
        """A default-lab simulator in instant mode on free ports, in the test's loop."""
        async with run_simulator(instant=True, admin=True) as sim:
            yield sim

    @pytest.fixture
    def pvesim_thread() -> Iterator[ThreadedSimulator]:
        """A default-lab simulator in a background thread (for proxmoxer and other sync code)."""
        with run_simulator_in_thread(instant=True, admin=True) as sim:
            yield sim
