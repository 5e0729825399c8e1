"""Service lifecycle: SIGINT/SIGTERM set a stop event; the service drains and exits in time."""

from __future__ import annotations

import asyncio
import logging
import signal
from collections.abc import Callable, Coroutine
from typing import Any

from .logs import configure_logging
from .settings import ServiceSettings

log = logging.getLogger(__name__)

SHUTDOWN_GRACE = 10.0

ServiceMain = Callable[[asyncio.Event], Coroutine[Any, Any, None]]


async def serve_until_stopped(
    main: ServiceMain, *, name: str, grace: float = SHUTDOWN_GRACE
) -> int:
    """Run ``main(stop)``; on SIGINT/SIGTERM set ``stop`` and give it ``grace`` seconds to return."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.create_task(main(stop), name=name)
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task in done:
            task.result()
            return 0
        log.info("%s: stop requested, draining (up to %.0fs)", name, grace)
        try:
            await asyncio.wait_for(asyncio.shield(task), grace)
        except TimeoutError:
            log.error("%s did not stop within %.0fs; cancelling", name, grace)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            return 1
        log.info("%s stopped", name)
        return 0
    finally:
        stopper.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def run_service(main: ServiceMain, *, name: str, settings: ServiceSettings) -> int:
    """Configure logging and run a service's async ``main(stop)`` to completion; exit code."""
    configure_logging(settings.log_level, settings.log_format, service=name)
    try:
        return asyncio.run(serve_until_stopped(main, name=name))
    except KeyboardInterrupt:
        return 130
    except Exception:
        log.exception("%s failed", name)
        return 1
