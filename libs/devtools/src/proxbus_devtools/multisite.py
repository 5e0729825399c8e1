"""Multi-site topology: a hub nats-server (one node or a three-node cluster) and site leaf nodes.

Each site's nats-server is a leaf node of the hub with its own JetStream domain and its own
PROXBUS_EVENTS, so a site keeps storing what it receives while its link is down. The hub's own
PROXBUS_EVENTS *sources* every site's PROXBUS_EVENTS through ``$JS.<site>.API``: the dispatcher
and every other hub-side reader keep reading one stream, and a link that comes back resumes
sourcing where it stopped (nothing lost, the hub's duplicate window drops a message sent twice).

The leaf connection carries RPC, ``$SRV`` discovery, inboxes and the JetStream API of the other
domain, but never the subjects of the streams and buckets every domain has of its own
(``ISOLATED_SUBJECTS``): without the deny rules, a hub publish to ``proxbus.deliveries.x`` would
also be stored by every site's PROXBUS_DELIVERIES (and a site's events stored twice at the hub).

Used by ``proxbus sites link`` (hub set-up), ``proxbus up --sites N`` and the acceptance tests;
``deploy/multisite`` holds the same configuration for containers.
"""

from __future__ import annotations

import dataclasses
import json
import logging
import secrets
import socket
import subprocess
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from nats.js import JetStreamContext
from nats.js.api import ExternalStream, StreamConfig, StreamSource
from proxbus_events import EVENTS_STREAM, StreamLimits
from proxbus_runtime import ensure_streams

from .ports import bound_socket
from .procs import kill_process, stop_process

log = logging.getLogger("proxbus.multisite")

# Subjects of the streams and KV buckets every JetStream domain has of its own: a leaf connection
# must neither send nor receive them.
ISOLATED_SUBJECTS = (
    "proxbus.events.>",
    "proxbus.deliveries.>",
    "proxbus.dlq.>",
    "proxbus.audit.>",
    "$KV.>",
)
HUB_DOMAIN = "hub"
_NAME = r"^[A-Za-z0-9_-]+$"


def _check_name(name: str) -> str:
    import re

    if not re.match(_NAME, name):
        raise ValueError(f"invalid site / domain name {name!r} (letters, digits, _ and -)")
    return name


def _q(value: str | Path) -> str:
    """A quoted NATS configuration string (JSON quoting is valid there)."""
    return json.dumps(str(value))


def _list(values: Iterable[str]) -> str:
    return "[" + ", ".join(_q(v) for v in values) + "]"


@dataclass(slots=True, frozen=True)
class LeafUser:
    """The credentials one site's leaf node logs in to the hub with."""

    user: str
    password: str


def hub_config(
    *,
    name: str,
    port: int,
    leaf_port: int,
    store_dir: Path | str,
    leaf_users: Sequence[LeafUser],
    domain: str = HUB_DOMAIN,
    cluster_port: int | None = None,
    routes: Sequence[str] = (),
    host: str = "127.0.0.1",
    monitor_port: int | None = None,
) -> str:
    """The nats-server configuration of a hub node (``cluster_port`` + ``routes``: one of three)."""
    users = ", ".join(f"{{user: {_q(u.user)}, password: {_q(u.password)}}}" for u in leaf_users)
    lines = [
        f"server_name: {_q(name)}",
        f"listen: {_q(f'{host}:{port}')}",
        f"jetstream {{ store_dir: {_q(store_dir)}, domain: {_q(_check_name(domain))} }}",
        "leafnodes {",
        f"  listen: {_q(f'{host}:{leaf_port}')}",
        f"  authorization {{ users: [{users}] }}",
        "}",
    ]
    if monitor_port is not None:
        lines.append(f"http: {_q(f'{host}:{monitor_port}')}")
    if cluster_port is not None:
        lines += [
            "cluster {",
            f"  name: {_q(domain)}",
            f"  listen: {_q(f'{host}:{cluster_port}')}",
            f"  routes: {_list(routes)}",
            "}",
        ]
    return "\n".join(lines) + "\n"


def site_config(
    *,
    name: str,
    port: int,
    store_dir: Path | str,
    hub_leaf_urls: Sequence[str],
    leaf_user: LeafUser,
    jetstream: bool = True,
    isolate: bool = True,
    host: str = "127.0.0.1",
    monitor_port: int | None = None,
) -> str:
    """The nats-server configuration of a site: a leaf node of the hub in its own domain ``name``.

    ``hub_leaf_urls`` are ``nats-leaf://host:port`` (or ``tls://``) without credentials.
    ``isolate=False`` leaves out the deny rules (only to show what they prevent).
    """
    _check_name(name)
    urls = []
    for url in hub_leaf_urls:
        scheme, _, rest = url.partition("://")
        urls.append(f"{scheme}://{leaf_user.user}:{leaf_user.password}@{rest}")
    lines = [f"server_name: {_q(name)}", f"listen: {_q(f'{host}:{port}')}"]
    if jetstream:
        lines.append(f"jetstream {{ store_dir: {_q(store_dir)}, domain: {_q(name)} }}")
    lines += [
        "leafnodes {",
        "  remotes: [",
        "    {",
        f"      urls: {_list(urls)}",
    ]
    if isolate:
        lines += [
            f"      deny_imports: {_list(ISOLATED_SUBJECTS)}",
            f"      deny_exports: {_list(ISOLATED_SUBJECTS)}",
        ]
    lines += [
        "    }",
        "  ]",
        "}",
    ]
    if monitor_port is not None:
        lines.append(f"http: {_q(f'{host}:{monitor_port}')}")
    return "\n".join(lines) + "\n"


def site_source(site: str) -> StreamSource:
    """The hub's source for ``site``'s PROXBUS_EVENTS, read through ``$JS.<site>.API``."""
    return StreamSource(
        name=EVENTS_STREAM, external=ExternalStream(api=f"$JS.{_check_name(site)}.API")
    )


def _source_key(source: StreamSource) -> tuple[str, str | None]:
    api = source.external.api if source.external is not None else None
    return source.name, api


async def link_sites(
    js: JetStreamContext,
    sites: Sequence[str],
    *,
    replicas: int | None = None,
    limits: StreamLimits | None = None,
) -> list[str]:
    """Make the hub's PROXBUS_EVENTS source every site in ``sites``; returns the sites added.

    Idempotent and additive: sources already there (an operator's included) are kept. With
    ``replicas``, the contract's streams and KV buckets in this domain are scaled to that many
    replicas (a clustered hub), whoever created them.

    Raises:
        nats.js.errors.Error: JetStream is not available in this domain.
    """
    limits = limits or StreamLimits()
    if replicas is not None:
        limits = dataclasses.replace(limits, replicas=replicas)
    await ensure_streams(js, limits)
    info = await js.stream_info(EVENTS_STREAM)
    sources = list(info.config.sources or [])
    have = {_source_key(s) for s in sources}
    added = []
    for site in sites:
        source = site_source(site)
        if _source_key(source) not in have:
            sources.append(source)
            have.add(_source_key(source))
            added.append(site)
    if added:
        await js.update_stream(dataclasses.replace(info.config, sources=sources))
        log.info("PROXBUS_EVENTS now sources %s", ", ".join(added))
    if replicas is not None:
        await scale_streams(js, replicas)
    return added


async def scale_streams(js: JetStreamContext, replicas: int) -> list[str]:
    """Set ``num_replicas`` of every proxbus stream and KV bucket here; returns those changed."""
    changed = []
    for info in await js.streams_info():
        config: StreamConfig = info.config
        name = config.name or ""
        if not (name.startswith("PROXBUS_") or name.startswith("KV_proxbus_")):
            continue
        if config.num_replicas != replicas:
            await js.update_stream(dataclasses.replace(config, num_replicas=replicas))
            changed.append(name)
    if changed:
        log.info("scaled to R%d: %s", replicas, ", ".join(changed))
    return changed


async def wait_for_jetstream(js: JetStreamContext, timeout: float = 30.0) -> None:
    """Wait until JetStream answers in ``js``'s domain (a new cluster elects its meta leader first).

    Raises:
        TimeoutError: JetStream did not answer within ``timeout``.
    """
    import asyncio

    import nats.errors
    import nats.js.errors

    deadline = time.monotonic() + timeout
    while True:
        try:
            await js.account_info()
            return
        except (nats.errors.Error, nats.js.errors.Error, TimeoutError) as exc:
            if time.monotonic() > deadline:
                raise TimeoutError(f"JetStream not available after {timeout}s: {exc}") from None
            await asyncio.sleep(0.2)


# --- local processes (proxbus up --sites, tests) ------------------------------------------


def _free_ports(count: int, avoid: Iterable[int] = ()) -> list[int]:
    """``count`` distinct loopback ports, free a moment ago and none of ``avoid``.

    The sockets are held until all are chosen, so the kernel cannot hand out one port twice;
    ``avoid`` keeps the ports a caller was given (``--syslog-port``...) out of the plan.
    """
    taken = set(avoid)
    socks: list[socket.socket] = []
    ports: list[int] = []
    try:
        while len(ports) < count:
            s = bound_socket()
            socks.append(s)
            port = int(s.getsockname()[1])
            if port not in taken:
                taken.add(port)
                ports.append(port)
        return ports
    finally:
        for s in socks:
            s.close()


def _wait_for_port(port: int, timeout: float) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.5):
                return True
        except OSError:
            time.sleep(0.02)
    return False


@dataclass(slots=True)
class ConfiguredNats:
    """A nats-server process started from a configuration file (same file and port on restart)."""

    name: str
    binary: str
    config_path: Path
    port: int
    log_path: Path
    env: Mapping[str, str] | None = None  # for a configuration with $VARIABLES
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"nats://127.0.0.1:{self.port}"

    def start(self, timeout: float = 15.0) -> None:
        if self.running:
            return
        self.proc = subprocess.Popen(
            [self.binary, "-c", str(self.config_path), "--log", str(self.log_path)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
            env=dict(self.env) if self.env is not None else None,
        )
        if not _wait_for_port(self.port, timeout):
            self.kill()
            tail = (
                self.log_path.read_text(errors="replace")[-2000:] if self.log_path.exists() else ""
            )
            raise RuntimeError(f"nats-server {self.name} did not start:\n{tail}")

    def stop(self, timeout: float = 10.0) -> None:
        """SIGTERM (SIGKILL after ``timeout``)."""
        stop_process(self.proc, timeout)
        self.proc = None

    def kill(self) -> None:
        """SIGKILL, as a crash."""
        kill_process(self.proc)
        self.proc = None

    @property
    def running(self) -> bool:
        return self.proc is not None and self.proc.poll() is None


@dataclass(slots=True)
class LocalTopology:
    """A hub (``hub_nodes`` = 1 or 3) and leaf sites on loopback, configured in ``root``.

    ``site_jetstream`` maps a site to False for a leaf without JetStream.
    """

    binary: str
    root: Path
    sites: Sequence[str] = ("site1", "site2")
    hub_nodes: int = 1
    site_jetstream: Mapping[str, bool] = field(default_factory=dict)
    hub_port: int | None = None
    isolate: bool = True
    # site -> a loopback port the site's leaf dials instead of the hub's (a proxy to cut links)
    leaf_via: Mapping[str, int] = field(default_factory=dict)
    hub: list[ConfiguredNats] = field(default_factory=list)
    leaves: dict[str, ConfiguredNats] = field(default_factory=dict)
    leaf_ports: list[int] = field(default_factory=list)
    # ports the caller uses for something else (the services' listeners): never planned here
    avoid_ports: Iterable[int] = ()

    def __post_init__(self) -> None:
        if self.hub_nodes not in (1, 3):
            raise ValueError("the hub runs one node or a three-node cluster")
        avoid = {*self.avoid_ports, *([self.hub_port] if self.hub_port is not None else [])}
        n = self.hub_nodes
        free = iter(_free_ports(3 * n + len(self.sites), avoid))
        users = {site: LeafUser(site, f"leaf-{site}-{secrets.token_hex(4)}") for site in self.sites}
        ports = [next(free) for _ in range(n)]
        if self.hub_port is not None:
            ports[0] = self.hub_port
        self.leaf_ports = [next(free) for _ in range(n)]
        cluster_ports = [next(free) for _ in range(n)]
        if n == 1:
            cluster_ports = []
        for i in range(self.hub_nodes):
            name = "hub" if self.hub_nodes == 1 else f"hub-{i + 1}"
            folder = self.root / name
            folder.mkdir(parents=True, exist_ok=True)
            routes = [f"nats-route://127.0.0.1:{p}" for j, p in enumerate(cluster_ports) if j != i]
            text = hub_config(
                name=name,
                port=ports[i],
                leaf_port=self.leaf_ports[i],
                store_dir=folder / "js",
                leaf_users=list(users.values()),
                cluster_port=cluster_ports[i] if cluster_ports else None,
                routes=routes,
            )
            path = folder / "nats.conf"
            path.write_text(text)
            self.hub.append(
                ConfiguredNats(name, self.binary, path, ports[i], folder / "nats-server.log")
            )
        for site in self.sites:
            folder = self.root / site
            folder.mkdir(parents=True, exist_ok=True)
            port = next(free)
            text = site_config(
                name=site,
                port=port,
                store_dir=folder / "js",
                hub_leaf_urls=[
                    f"nats-leaf://127.0.0.1:{p}"
                    for p in ([self.leaf_via[site]] if site in self.leaf_via else self.leaf_ports)
                ],
                leaf_user=users[site],
                jetstream=self.site_jetstream.get(site, True),
                isolate=self.isolate,
            )
            path = folder / "nats.conf"
            path.write_text(text)
            self.leaves[site] = ConfiguredNats(
                site, self.binary, path, port, folder / "nats-server.log"
            )

    @property
    def hub_url(self) -> str:
        """Every hub node, comma-separated (as ``NATS_URL``)."""
        return ",".join(node.url for node in self.hub)

    def start(self) -> None:
        for node in self.hub:
            node.start()
        for leaf in self.leaves.values():
            leaf.start()

    def stop(self) -> None:
        for leaf in self.leaves.values():
            leaf.stop()
        for node in self.hub:
            node.stop()

    def kill(self) -> None:
        for server in [*self.leaves.values(), *self.hub]:
            server.kill()
