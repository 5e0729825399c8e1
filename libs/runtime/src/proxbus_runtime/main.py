"""``main``: the one entry point every console script calls.

Settings (CLI overrides validated like the environment) → logging → the service under
SIGINT/SIGTERM, or a sub-command, or ``--test-connection``. Invalid settings exit 2 with one
line on stderr and no traceback.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import signal
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

import nats
import nats.errors
import nats.js.errors
from nats.aio.client import Client as NATS
from proxbus_events import BUCKETS, ConfigError, stream_specs
from pydantic import ValidationError
from pydantic_settings import SettingsError

from .errors import StopRequested
from .logs import configure_logging
from .settings import STOP_GRACE, ServiceSettings, nats_options, public_url

log = logging.getLogger("proxbus.main")

S = TypeVar("S", bound=ServiceSettings)
Serve = Callable[[S, asyncio.Event], Awaitable[None]]
Check = Callable[[], Awaitable[str | None]]
"""A connection check: returns an optional detail, raises (any exception) on failure."""

CHECKS_TIMEOUT = 12.0  # of the 15 s a person waits for --test-connection
EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2


def settings_error(exc: Exception) -> str:
    """One line naming each bad variable, never its value (it may be a secret)."""
    if isinstance(exc, ValidationError):
        parts = []
        for error in exc.errors():
            name = str(error["loc"][0]).upper() if error["loc"] else ""
            message = str(error["msg"]).removeprefix("Value error, ")
            parts.append(f"{name}: {message}" if name else message)
        return "; ".join(parts)
    return " ".join(str(exc).split())


def build_settings(settings_type: type[S], overrides: Mapping[str, Any] | None = None) -> S:
    """``settings_type`` from the environment, ``.env`` and ``overrides`` (which win), validated.

    Raises:
        ConfigError: invalid settings (one line, see ``settings_error``).
    """
    try:
        return settings_type(**{k: v for k, v in (overrides or {}).items() if v is not None})
    except (ValidationError, SettingsError, ValueError) as exc:
        raise ConfigError(settings_error(exc)) from None


async def serve_until_stopped(
    serve: Callable[[asyncio.Event], Awaitable[None]], *, name: str, grace: float
) -> int:
    """Run ``serve(stop)``; SIGINT/SIGTERM set ``stop``, then it has ``grace`` seconds to return."""
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    task = asyncio.ensure_future(serve(stop))
    stopper = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({task, stopper}, return_when=asyncio.FIRST_COMPLETED)
        if task not in done:
            log.info("%s: stop requested, draining (up to %.1fs)", name, grace)
            # Not wait_for: what the task raises (StopRequested, a failure) is judged below.
            await asyncio.wait({task}, timeout=grace)
            if not task.done():
                log.error("%s did not stop within %.1fs; cancelling", name, grace)
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)
                return EXIT_FAILED
        with contextlib.suppress(StopRequested):  # told to stop before it was up: a clean exit
            task.result()
        log.info("%s stopped", name)
        return EXIT_OK
    finally:
        stopper.cancel()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.remove_signal_handler(sig)


def nats_checks(settings: ServiceSettings, name: str) -> dict[str, Check]:
    """``nats`` (the server answers) and ``jetstream`` (streams and buckets in place)."""
    from .service import jetstream_missing
    from .streams import ensure_streams

    state: dict[str, Any] = {}

    async def check_nats() -> str:
        nc = state["nc"] = await check_connection(settings, name)
        url = public_url(nc.connected_url.geturl()) if nc.connected_url else ""
        version = nc.connected_server_version
        return f"{url}, server {version.major}.{version.minor}.{version.patch}"

    async def check_jetstream() -> str:
        nc = state.get("nc")
        if nc is None:
            raise ConnectionError("no NATS connection")
        try:
            js = nc.jetstream(domain=settings.nats_js_domain, timeout=5.0)
            await ensure_streams(js, settings.stream_limits())
        except (nats.js.errors.ServiceUnavailableError, nats.errors.NoRespondersError):
            # No responders on $JS.API, which nats-py raises without a word.
            raise ConnectionError(jetstream_missing(settings)) from None
        finally:
            await nc.close()
        return f"{len(stream_specs(settings.stream_limits()))} streams, {len(BUCKETS)} buckets"

    return {"nats": check_nats, "jetstream": check_jetstream}


async def check_connection(settings: ServiceSettings, name: str) -> NATS:
    """A NATS connection for a ``--test-connection`` check: one attempt per server, no log lines.

    A check prints its own line: failed attempts and closing log nothing (no "NATS errors"
    WARNING among the check lines).

    Raises:
        ConnectionError: no server answered; names the URL (without credentials).
    """
    options = nats_options(settings, f"proxbus-{name}-check")
    options.update(
        allow_reconnect=False, max_reconnect_attempts=1, error_cb=_quiet, disconnected_cb=_quiet
    )
    try:
        return await nats.connect(**options)
    except (nats.errors.Error, OSError) as exc:
        reason = " ".join(str(exc).split()).removeprefix("nats: ") or type(exc).__name__
        raise ConnectionError(f"{public_url(settings.nats_url)}: {reason}") from None


async def _quiet(*_: object) -> None:
    return None


async def run_checks(checks: Mapping[str, Check], timeout: float = CHECKS_TIMEOUT) -> int:
    """Print ``name: ok`` or ``name: FAIL <reason>`` per check, all within ``timeout``; exit code."""
    deadline = time.monotonic() + timeout
    failed = False
    for name, check in checks.items():
        remaining = deadline - time.monotonic()
        try:
            if remaining <= 0:
                raise TimeoutError("no time left of the checks' budget")
            detail = await asyncio.wait_for(check(), remaining)
        except Exception as exc:
            failed = True
            reason = " ".join(str(exc).split()) or type(exc).__name__
            if isinstance(exc, TimeoutError | nats.errors.TimeoutError) and not str(exc):
                reason = "timed out"
            print(f"{name}: FAIL {reason}", flush=True)
        else:
            print(f"{name}: ok{f' ({detail})' if detail else ''}", flush=True)
    return EXIT_FAILED if failed else EXIT_OK


def main(
    name: str,
    settings_type: type[S],
    serve: Serve[S],
    *,
    argv: Sequence[str] | None = None,
    parser: argparse.ArgumentParser | None = None,
    overrides: Callable[[argparse.Namespace], Mapping[str, Any]] | None = None,
    commands: Mapping[str, Callable[[argparse.Namespace, S], int]] | None = None,
    checks: Callable[[S], Mapping[str, Check]] | None = None,
) -> int:
    """Run the console script of service ``name``; the process exit code.

    ``parser`` may define sub-commands (``dest="command"``) handled by ``commands``; without
    one (or with ``serve``/``run``) the service runs. ``overrides(args)`` maps CLI options to
    settings fields (``None`` = not given). ``checks(settings)`` adds the service's own checks
    to ``--test-connection`` after the NATS ones.
    """
    prog = f"proxbus-{name}"
    parser = parser or argparse.ArgumentParser(prog=prog)
    parser.add_argument(
        "--test-connection",
        action="store_true",
        help="check NATS, JetStream and the service's upstreams, print one line each, exit",
    )
    args = parser.parse_args(argv)
    try:
        settings = build_settings(settings_type, overrides(args) if overrides else None)
    except ConfigError as exc:
        print(f"{prog}: invalid settings: {exc}", file=sys.stderr)
        return EXIT_USAGE
    configure_logging(settings.log_level, settings.log_format, service=name)
    command = getattr(args, "command", None)
    try:
        if commands and isinstance(command, str) and command in commands:
            return commands[command](args, settings)
        if args.test_connection:
            all_checks = {**nats_checks(settings, name), **(checks(settings) if checks else {})}
            return asyncio.run(run_checks(all_checks))

        async def run(stop: asyncio.Event) -> None:
            await serve(settings, stop)

        grace = min(settings.shutdown_budget + 0.5, STOP_GRACE - 0.2)
        return asyncio.run(serve_until_stopped(run, name=name, grace=grace))
    except ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return EXIT_USAGE
    except KeyboardInterrupt:
        return 130
    except Exception:
        log.exception("%s failed", name)
        return EXIT_FAILED
