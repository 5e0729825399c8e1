"""Multi-site (issue 18): a hub nats-server and two sites as leaf nodes, each in its JetStream domain.

Real processes on loopback: the nats-servers of ``proxbus_devtools.multisite.LocalTopology``
(configuration files with leafnode credentials and the deny rules of ``ISOLATED_SUBJECTS``),
one ingest-syslog per site (``NATS_JS_DOMAIN=<site>``) and the dispatcher at the hub posting to
the recording sink. The hub's PROXBUS_EVENTS sources the sites' through ``$JS.<site>.API``,
linked with ``proxbus sites link`` as an operator would.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import json
import re
import secrets
import socket
import subprocess
import threading
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import nats
import nats.errors
import pytest
from nats.js.api import Placement, StreamConfig, StreamSource
from proxbus_devtools.multisite import ConfiguredNats, LocalTopology, wait_for_jetstream
from proxbus_devtools.testing import free_port, nats_server_binary, require_binary, wait_until
from proxbus_events import (
    AUDIT_STREAM,
    DELIVERIES_STREAM,
    DLQ_STREAM,
    EVENTS_STREAM,
    Event,
    StreamLimits,
)
from proxbus_pvesim.__main__ import gateway_env
from proxbus_pvesim.testing import run_simulator
from proxbus_runtime import EventPublisher, RpcUnavailable, call_tool, ensure_streams

BIN = Path(__import__("sys").executable).parent
MARKER = re.compile(r"\bms-[0-9a-f]{8}-[a-z0-9]+-\d+\b")


class LinkProxy:
    """A TCP relay on loopback between a site's leaf and the hub: ``cut()`` drops the link
    (the listener and every connection), ``restore()`` listens again on the same port."""

    def __init__(self) -> None:
        self.port = free_port()
        self.target = 0
        self._listener: socket.socket | None = None
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()

    def restore(self) -> None:
        listener = socket.socket()
        listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        listener.bind(("127.0.0.1", self.port))
        listener.listen(8)
        self._listener = listener
        threading.Thread(target=self._accept, args=(listener,), daemon=True).start()

    def cut(self) -> None:
        with self._lock:
            conns, self._conns = self._conns, []
            listener, self._listener = self._listener, None
        for sock in [*conns, *([listener] if listener else [])]:
            with contextlib.suppress(OSError):
                sock.shutdown(socket.SHUT_RDWR)
            sock.close()

    def _accept(self, listener: socket.socket) -> None:
        while True:
            try:
                client, _ = listener.accept()
            except OSError:
                return
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=5)
                upstream.settimeout(None)
            except OSError:
                client.close()
                continue
            with self._lock:
                self._conns += [client, upstream]
            for a, b in ((client, upstream), (upstream, client)):
                threading.Thread(target=self._pipe, args=(a, b), daemon=True).start()

    @staticmethod
    def _pipe(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for sock in (src, dst):
                with contextlib.suppress(OSError):
                    sock.shutdown(socket.SHUT_RDWR)


@pytest.fixture
def link_proxy() -> Iterator[LinkProxy]:
    proxy = LinkProxy()
    try:
        yield proxy
    finally:
        proxy.cut()


@pytest.fixture
def topology(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[LocalTopology]:
    """Hub (``request.param`` nodes, default 1) with leaf sites site1, site2 (and site3 without
    JetStream when asked for through ``request.param == "nojs"``; site1's leaf through the
    ``link_proxy`` with ``"proxy"``)."""
    binary = require_binary("nats-server", nats_server_binary())
    param = getattr(request, "param", 1)
    if param == "proxy":
        proxy: LinkProxy = request.getfixturevalue("link_proxy")
        topo = LocalTopology(
            binary, tmp_path / "nats", sites=("site1", "site2"), leaf_via={"site1": proxy.port}
        )
        proxy.target = topo.leaf_ports[0]
        proxy.restore()
    elif param == "nojs":
        topo = LocalTopology(
            binary,
            tmp_path / "nats",
            sites=("site1", "site3"),
            site_jetstream={"site3": False},
        )
    else:
        topo = LocalTopology(
            binary, tmp_path / "nats", sites=("site1", "site2"), hub_nodes=int(param)
        )
    try:
        topo.start()
        yield topo
    finally:
        topo.kill()


@pytest.fixture
def nats_server(topology: LocalTopology) -> ConfiguredNats:
    """The ``stack`` and ``nc`` fixtures of tests/conftest.py talk to the (first) hub node."""
    return topology.hub[0]


@pytest.fixture
async def hub(topology: LocalTopology) -> Any:
    nc = await nats.connect(
        topology.hub_url.split(","), max_reconnect_attempts=-1, reconnect_time_wait=0.2
    )
    await wait_for_jetstream(nc.jetstream(timeout=2), 60)
    try:
        yield nc
    finally:
        await nc.close()


def markers(sink: Any) -> Counter[str]:
    found: Counter[str] = Counter()
    for receipt in sink.receipts:
        for event in receipt.events:
            found.update(set(MARKER.findall(event["title"] + "\n" + event["message"])))
    return found


def sites_of(sink: Any) -> dict[str, str]:
    """Marker → the ``site`` of the event that carried it."""
    out = {}
    for receipt in sink.receipts:
        for event in receipt.events:
            for m in MARKER.findall(event["title"] + "\n" + event["message"]):
                out[m] = event["site"]
    return out


def problems(sink: Any, want: set[str]) -> dict[str, Any]:
    got = markers(sink)
    return {
        "missing": sorted(want - set(got))[:20],
        "missing_count": len(want - set(got)),
        "twice": sorted(m for m, n in got.items() if n > 1)[:20],
        "unexpected": sorted(set(got) - want)[:20],
    }


def link(topology: LocalTopology, *extra: str) -> str:
    """``proxbus sites link`` against the hub, as the operator (or the hub's init) runs it."""
    result = subprocess.run(
        [str(BIN / "proxbus"), "--nats-url", topology.hub_url, "sites", "link",
         *topology.leaves, *extra],
        capture_output=True, text=True, timeout=90, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def site_ingest(stack: Any, topology: LocalTopology, site: str, **env: str) -> Any:
    return stack.ingest_syslog(
        NATS_URL=topology.leaves[site].url,
        NATS_JS_DOMAIN=site,
        PROXBUS_SITE=site,
        **env,
    )


def hub_dispatcher(stack: Any, topology: LocalTopology, sink: Any, **env: str) -> Any:
    return stack.dispatcher(
        stack.routes(), sink, NATS_URL=topology.hub_url, INCIDENT_WINDOW="0", **env
    )


async def send(stack: Any, ingest: Any, marks: list[str], host: str = "pve1") -> None:
    await stack.send_syslog(ingest, [stack.syslog_line(f"line {m}", host=host) for m in marks])


async def start_and_warm_up(
    stack: Any, topology: LocalTopology, sink: Any, label: str = ""
) -> tuple[dict[str, Any], str, list[str]]:
    """Link the sites, start an ingest per site and the hub's dispatcher, deliver one line a site.

    Returns the ingests by site, the run's marker prefix and the warm-up markers.
    """
    link(topology)
    ingests = {site: site_ingest(stack, topology, site) for site in topology.leaves}
    dispatcher = hub_dispatcher(stack, topology, sink)
    await stack.healthy(*ingests.values(), dispatcher, timeout=40)
    run = secrets.token_hex(4)
    warmup = [f"ms-{run}-{label}{site}-0" for site in topology.leaves]
    for mark, ingest in zip(warmup, ingests.values(), strict=True):
        await send(stack, ingest, [mark])
    await stack.wait_until(lambda: set(warmup) <= set(markers(sink)), "warm-up delivered")
    return ingests, run, warmup


async def delivered_once(stack: Any, sink: Any, hub: Any, want: set[str], what: str) -> None:
    """Wait until every marker in ``want`` reached the sink, then check: once each, nothing else."""
    await stack.wait_until(
        lambda: want <= set(markers(sink)),
        what,
        timeout=60,
        detail=lambda: problems(sink, want),
    )
    await stack.wait_quiescent(hub, timeout=30)
    assert problems(sink, want) == {
        "missing": [], "missing_count": 0, "twice": [], "unexpected": []
    }  # fmt: skip


async def test_two_sites_reach_the_hub_sink_once_each_with_their_site_label(
    topology: LocalTopology, stack: Any, sink: Any, hub: Any
) -> None:
    out = link(topology)
    assert "$JS.site1.API" in out
    assert "$JS.site2.API" in out
    ingests = {site: site_ingest(stack, topology, site) for site in topology.leaves}
    dispatcher = hub_dispatcher(stack, topology, sink)
    await stack.healthy(*ingests.values(), dispatcher, timeout=40)

    run = secrets.token_hex(4)
    want: dict[str, str] = {}
    for site, ingest in ingests.items():
        marks = [f"ms-{run}-{site}-{i}" for i in range(10)]
        await send(stack, ingest, marks)
        want.update(dict.fromkeys(marks, site))
    await stack.wait_until(
        lambda: set(want) <= set(markers(sink)),
        "every site's events delivered at the hub",
        timeout=30,
        detail=lambda: problems(sink, set(want)),
    )
    await stack.wait_quiescent(hub)
    assert problems(sink, set(want)) == {
        "missing": [], "missing_count": 0, "twice": [], "unexpected": []
    }  # fmt: skip
    labels = sites_of(sink)
    assert {m: labels[m] for m in want} == want

    hjs = hub.jetstream(timeout=5)
    # Each site event is in the hub's stream once (sourced, not also captured over the leaf).
    assert (await hjs.stream_info(EVENTS_STREAM)).state.messages == len(want)
    # The hub's deliveries, dead letters, audit and KV writes stay in the hub's domain.
    assert (await hjs.stream_info(DELIVERIES_STREAM)).state.last_seq > 0
    await hjs.publish("proxbus.deliveries.leak-test", b"x")
    await hjs.publish("proxbus.dlq.leak-test", b"x")
    await hjs.publish("proxbus.audit.hub.leak_test", b"x")
    await (await hjs.key_value("proxbus_silences")).put("leak-test", b"x")
    for site in topology.leaves:
        site_nc = await nats.connect(topology.leaves[site].url)
        try:
            sjs = site_nc.jetstream(domain=site, timeout=5)
            for stream in (DELIVERIES_STREAM, DLQ_STREAM, AUDIT_STREAM, "KV_proxbus_silences"):
                assert (await sjs.stream_info(stream)).state.last_seq == 0, (site, stream)
            # ...and a site's audit stays at the site.
            ack = await sjs.publish(f"proxbus.audit.{site}.leak_test", b"x")
            assert ack.domain == site
        finally:
            await site_nc.close()
    assert (await hjs.stream_info(AUDIT_STREAM)).state.messages == 1
    assert (await hjs.stream_info(DLQ_STREAM)).state.messages == 1


def test_the_local_plan_never_takes_a_port_the_caller_keeps_for_its_services(
    tmp_path: Path,
) -> None:
    """CI once hung ``up --sites 2`` when a NATS server took a syslog port chosen earlier."""
    # The kernel hands recently freed ports out again; 40 plans of 13 ports each against 16
    # just-freed ones make a collision likely if the plan did not avoid them.
    for attempt in range(40):
        keep = [free_port() for _ in range(16)]
        root = tmp_path / str(attempt)
        topo = LocalTopology(
            "nats-server", root, sites=("a", "b", "c", "d"), hub_nodes=3,
            hub_port=keep[0], avoid_ports=keep,
        )  # fmt: skip
        ports = [n.port for n in topo.hub] + topo.leaf_ports
        ports += [n.port for n in topo.leaves.values()]
        assert ports[0] == keep[0]
        assert len(set(ports)) == len(ports)
        assert not set(ports[1:]) & set(keep)
        routes = re.findall(r"127\.0\.0\.1:(\d+)", (root / "hub-1" / "nats.conf").read_text())
        assert not {int(p) for p in routes} & set(keep[1:])


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_hub_down_for_60s_then_every_site_event_arrives_once(
    topology: LocalTopology, stack: Any, sink: Any, hub: Any
) -> None:
    ingests, run, warmup = await start_and_warm_up(stack, topology, sink, "warm")

    for node in topology.hub:
        node.stop()
    # The sites keep receiving for 60 s: one line a second per site, all stored locally.
    down: list[str] = []
    started = time.monotonic()
    i = 0
    while time.monotonic() - started < 60:
        for site, ingest in ingests.items():
            mark = f"ms-{run}-{site}-{i}"
            await send(stack, ingest, [mark])
            down.append(mark)
        i += 1
        await asyncio.sleep(1.0)  # the pace of the traffic, not a synchronisation
    for site in topology.leaves:
        site_nc = await nats.connect(topology.leaves[site].url)
        try:
            sjs = site_nc.jetstream(domain=site, timeout=5)
            await wait_until(lambda sjs=sjs: _stored(sjs, 1 + i), timeout=20)
        finally:
            await site_nc.close()
    for node in topology.hub:
        node.start()

    want = set(warmup) | set(down)
    await delivered_once(stack, sink, hub, want, "every event of the outage delivered")
    assert all(sites_of(sink)[m] == m.split("-")[2].removeprefix("warm") for m in want)


@pytest.mark.slow
@pytest.mark.parametrize("topology", ["proxy"], indirect=True)
async def test_a_cut_leaf_link_loses_nothing_while_the_hub_keeps_running(
    topology: LocalTopology, link_proxy: LinkProxy, stack: Any, sink: Any, hub: Any
) -> None:
    ingests, run, warmup = await start_and_warm_up(stack, topology, sink)

    link_proxy.cut()
    cut = [f"ms-{run}-site1-{i}" for i in range(1, 31)]
    live = [f"ms-{run}-site2-{i}" for i in range(1, 31)]
    await send(stack, ingests["site1"], cut)
    await send(stack, ingests["site2"], live)
    # site2's link is up: its events arrive while site1's wait at site1.
    await stack.wait_until(lambda: set(live) <= set(markers(sink)), "site2 live", timeout=30)
    site_nc = await nats.connect(topology.leaves["site1"].url)
    try:
        sjs = site_nc.jetstream(domain="site1", timeout=5)
        await wait_until(lambda: _stored(sjs, 1 + len(cut)), timeout=20)
    finally:
        await site_nc.close()
    assert not set(cut) & set(markers(sink))
    link_proxy.restore()
    want = {*warmup, *cut, *live}
    await delivered_once(stack, sink, hub, want, "site1's events after the link is back")


async def _stored(sjs: Any, count: int) -> bool:
    return int((await sjs.stream_info(EVENTS_STREAM)).state.messages) >= count


async def test_a_service_restart_keeps_the_hub_sources(
    topology: LocalTopology, stack: Any, sink: Any, hub: Any
) -> None:
    link(topology)
    hjs = hub.jetstream(timeout=5)
    before = (await hjs.stream_info(EVENTS_STREAM)).config.sources
    assert before is not None
    assert len(before) == 2
    dispatcher = hub_dispatcher(stack, topology, sink)
    ingest = site_ingest(stack, topology, "site2")
    await stack.healthy(dispatcher, ingest, timeout=40)
    # A restart runs ensure_streams again (SIGTERM, then a new process).
    dispatcher.running.terminate()
    assert dispatcher.running.wait(15) == 0
    dispatcher = hub_dispatcher(stack, topology, sink, EVENTS_MAX_AGE_DAYS="3")
    await stack.healthy(dispatcher, timeout=40)
    info = await hjs.stream_info(EVENTS_STREAM)
    assert info.config.max_age == pytest.approx(3 * 86400)  # an owned field did change
    assert [
        (s.name, s.external.api if s.external else None) for s in info.config.sources or []
    ] == [(s.name, s.external.api if s.external else None) for s in before]
    mark = f"ms-{secrets.token_hex(4)}-site2-0"
    await send(stack, ingest, [mark])
    await stack.wait_until(lambda: markers(sink)[mark] == 1, "sourcing still works")


def _discord_ports() -> tuple[int, dict[str, int], dict[str, str]]:
    port = free_port()
    return port, {"http": port}, {"DISCORD_HOST": "127.0.0.1", "DISCORD_PORT": str(port)}


@pytest.mark.parametrize("topology", ["nojs"], indirect=True)
@pytest.mark.parametrize(
    "service",
    ["ingest-syslog", "ingest-email", "ingest-pve-ws", "dispatcher", "mcp-gateway",
     "ingest-discord"],
)  # fmt: skip
async def test_site_leaf_without_jetstream_is_one_clear_error_not_a_crash_loop(
    topology: LocalTopology, stack: Any, sink: Any, service: str
) -> None:
    """Every service asks the JetStream API of its domain (``$JS.site3.API``, watched here),
    and where none answers it logs one clear line and retries, alive."""
    leaf = topology.leaves["site3"]
    watcher = await nats.connect(leaf.url)
    attempts = 0

    async def count(msg: Any) -> None:
        nonlocal attempts
        attempts += 1

    try:
        # Every JetStream attempt of the service passes here (unanswered, like no JetStream).
        await watcher.subscribe("$JS.site3.API.>", cb=count)
        await watcher.flush()
        env = {"NATS_URL": leaf.url, "NATS_JS_DOMAIN": "site3", "PROXBUS_SITE": "site3"}
        if service == "dispatcher":
            ingest = stack.dispatcher(stack.routes(), sink, **env)
        elif service == "mcp-gateway":
            ingest = stack.spawn(service, "proxbus-mcp-gateway", _gateway_ports, **env)
        elif service == "ingest-discord":
            ingest = stack.spawn(
                service, "proxbus-ingest-discord", _discord_ports,
                DISCORD_PUBLIC_KEY="ab" * 32, **env,
            )  # fmt: skip
        else:
            spawn = {
                "ingest-syslog": stack.ingest_syslog,
                "ingest-email": stack.ingest_email,
                "ingest-pve-ws": stack.ingest_pve_ws,
            }[service]
            ingest = spawn(**env)
        await wait_until(lambda: attempts >= 3, timeout=60)
        assert ingest.alive, stack.report()
        log = ingest.tail(20_000)
        errors = [line for line in log.splitlines() if "JetStream is not available" in line]
        assert len(errors) == 1, log  # one clear line (then a summary a minute), no traceback
        assert "domain 'site3'" in errors[0]
        assert "Traceback" not in log
    finally:
        await watcher.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
@pytest.mark.parametrize("topology", [3], indirect=True)
async def test_r3_hub_kill_9_of_the_stream_leader_loses_nothing(
    topology: LocalTopology, stack: Any, sink: Any, hub: Any
) -> None:
    link(topology, "--replicas", "3")
    ingest = site_ingest(stack, topology, "site1")
    dispatcher = hub_dispatcher(stack, topology, sink)
    await stack.healthy(ingest, dispatcher, timeout=60)
    hjs = hub.jetstream(timeout=5)
    # The dispatcher's start (ensure_streams) kept the operator's replicas and sources.
    info = await hjs.stream_info(EVENTS_STREAM)
    assert info.config.num_replicas == 3
    assert [s.external.api for s in info.config.sources or [] if s.external] == [
        "$JS.site1.API",
        "$JS.site2.API",
    ]
    assert (await hjs.stream_info(DELIVERIES_STREAM)).config.num_replicas == 3
    link(topology, "--replicas", "3")  # also scales what the dispatcher created (its KV state)
    state = await hjs.stream_info("KV_proxbus_dispatcher_state")
    assert state.config.num_replicas == 3
    info = await hjs.stream_info(EVENTS_STREAM)
    assert info.cluster is not None
    leader = info.cluster.leader
    run = secrets.token_hex(4)
    sent: list[str] = []

    async def steady(n: int) -> None:
        for _ in range(n):
            mark = f"ms-{run}-site1-{len(sent)}"
            await send(stack, ingest, [mark])
            sent.append(mark)
            await asyncio.sleep(0.05)  # the pace of a steady stream

    await steady(60)
    victim = next(node for node in topology.hub if node.name == leader)
    victim.kill()
    await steady(140)
    want = set(sent)
    await stack.wait_until(
        lambda: want <= set(markers(sink)),
        f"every event delivered after kill -9 of {leader}",
        timeout=60,
        detail=lambda: problems(sink, want),
    )
    got = markers(sink)
    assert sorted(m for m in want if got[m] == 0) == []


@pytest.mark.parametrize("isolate", [True, False])
async def test_hub_deliveries_reach_a_site_stream_only_without_the_deny_rules(
    tmp_path: Path, isolate: bool
) -> None:
    """What the leaf's deny rules are for: a stream captures publishes across a leaf link."""
    binary = require_binary("nats-server", nats_server_binary())
    topo = LocalTopology(binary, tmp_path / "nats", sites=("site1",), isolate=isolate)
    topo.start()
    hub = site = None
    try:
        hub = await nats.connect(topo.hub_url)
        site = await nats.connect(topo.leaves["site1"].url)
        hjs, sjs = hub.jetstream(timeout=5), site.jetstream(domain="site1", timeout=5)
        await wait_for_jetstream(hjs)
        await ensure_streams(hjs)
        await ensure_streams(sjs)
        probe = 0

        async def leaf_up() -> bool:
            # RPC-style traffic crosses in both cases: it shows the leaf link is up.
            nonlocal probe
            probe += 1
            try:
                await hub.request(f"probe.{probe}", b"", timeout=0.5)
                return True
            except nats.errors.Error:
                return False

        async def answer(msg: Any) -> None:
            await msg.respond(b"ok")

        await site.subscribe("probe.*", cb=answer)
        await site.flush()
        await wait_until(leaf_up, timeout=20)
        await hjs.publish("proxbus.deliveries.discord", b"x")
        await wait_until(lambda: _last_seq(hjs, DELIVERIES_STREAM, 1), timeout=5)
        if not isolate:
            await wait_until(lambda: _last_seq(sjs, DELIVERIES_STREAM, 1), timeout=5)
        # A round trip over the link after the publish, then the site's count.
        assert await leaf_up()
        leaked = (await sjs.stream_info(DELIVERIES_STREAM)).state.last_seq
        assert leaked == (0 if isolate else 1)
    finally:
        for client in (hub, site):
            if client is not None:
                await client.close()
        topo.kill()


async def _last_seq(js: Any, stream: str, seq: int) -> bool:
    return int((await js.stream_info(stream)).state.last_seq) >= seq


def _gateway_ports() -> tuple[int, dict[str, int], dict[str, str]]:
    port = free_port()
    return port, {"http": port}, {"GATEWAY_HOST": "127.0.0.1", "GATEWAY_PORT": str(port)}


async def test_hub_rpc_reaches_the_gateway_of_each_site_and_audit_stays_there(
    topology: LocalTopology, stack: Any, hub: Any
) -> None:
    await ensure_streams(hub.jetstream(timeout=5))  # as any hub service does at start
    async with run_simulator(instant=True) as sim:
        gateways = {
            site: stack.spawn(
                f"mcp-gateway-{site}",
                "proxbus-mcp-gateway",
                _gateway_ports,
                **{
                    **gateway_env(sim),
                    "NATS_URL": topology.leaves[site].url,
                    "NATS_JS_DOMAIN": site,
                    "PROXBUS_SITE": site,
                },
            )
            for site in topology.leaves
        }
        await stack.healthy(*gateways.values(), timeout=40)
        for site in [*topology.leaves, *topology.leaves]:

            async def answered(site: str = site) -> bool:
                try:
                    answer = await call_tool(hub, "list_clusters", {}, cluster=site, caller="hub")
                except RpcUnavailable:  # the gateway's subscription is not at the hub yet
                    return False
                assert answer["default"] == site
                return True

            await wait_until(answered, timeout=20)
        vms = await call_tool(hub, "get_vms", {}, cluster="site2", caller="hub", timeout=10)
        assert vms["count"] > 0
    hjs = hub.jetstream(timeout=5)
    assert (await hjs.stream_info(AUDIT_STREAM)).state.messages == 0
    for site in topology.leaves:
        site_nc = await nats.connect(topology.leaves[site].url)
        try:
            sjs = site_nc.jetstream(domain=site, timeout=5)
            audit = await sjs.stream_info(AUDIT_STREAM, subjects_filter="proxbus.audit.>")
            subjects = set(audit.state.subjects or {})
            assert subjects, site
            assert all(s.startswith(f"proxbus.audit.{site}.") for s in subjects), subjects
        finally:
            await site_nc.close()


async def _link_with_site_streams(topology: LocalTopology) -> None:
    """Link the sites, and create each site's streams as the site's services do at start."""
    link(topology)
    for site, leaf in topology.leaves.items():
        site_nc = await nats.connect(leaf.url)
        try:
            await ensure_streams(site_nc.jetstream(domain=site, timeout=5))
        finally:
            await site_nc.close()


async def _publish_at(url: str, domain: str, site: str, title: str) -> str:
    """An event stored in ``domain``'s PROXBUS_EVENTS, as a service there publishes it; its id."""
    nc = await nats.connect(url)
    try:
        event = Event(source="gateway", site=site, severity="info", kind="test.tail", title=title)
        ack = await EventPublisher(nc.jetstream(domain=domain, timeout=5)).publish(event)
        assert ack.domain == domain
        return event.id
    finally:
        await nc.close()


@pytest.mark.slow
@pytest.mark.timeout(240)
async def test_events_tail_at_the_hub_shows_the_sites_events_once_across_a_hub_restart(
    topology: LocalTopology, stack: Any, hub: Any
) -> None:
    """The sites' events reach the hub by sourcing, never as publishes on the hub: the tail
    reads the hub's PROXBUS_EVENTS from now on (and keeps its place over a hub restart)."""
    await _link_with_site_streams(topology)
    run = secrets.token_hex(4)
    hjs = hub.jetstream(timeout=5)
    leaves = topology.leaves
    await _publish_at(leaves["site1"].url, "site1", "site1", f"ms-{run}-before-0")
    await wait_until(lambda: _stored(hjs, 1), timeout=20)  # sourced: older than the tail
    tail = await asyncio.create_subprocess_exec(
        str(BIN / "proxbus"), "--nats-url", topology.hub_url, "events", "tail", "--json",
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
        env=stack.env(PROXBUS_DATA_DIR=str(stack.dir)), cwd=stack.dir,
    )  # fmt: skip
    assert tail.stdout is not None
    assert tail.stderr is not None
    printed: Counter[str] = Counter()

    async def read_until(want: set[str], what: str, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while not want <= set(printed):
            left = deadline - time.monotonic()
            assert left > 0, f"{what}: tail printed {dict(printed)}, wanted {sorted(want)}"
            try:
                line = await asyncio.wait_for(tail.stdout.readline(), left)  # type: ignore[union-attr]
            except TimeoutError:
                continue
            assert line, "tail exited"
            event = json.loads(line)
            printed.update(MARKER.findall(event["title"]))
            assert event["site"] == event["title"].split("-")[2], event

    try:
        banner = (await asyncio.wait_for(tail.stderr.readline(), 20)).decode()
        assert banner.startswith("listening on proxbus.events."), banner
        first = {f"ms-{run}-{site}-1" for site in ("site1", "site2", "hub")}
        for site in ("site1", "site2"):
            await _publish_at(leaves[site].url, site, site, f"ms-{run}-{site}-1")
        await _publish_at(topology.hub_url, "hub", "hub", f"ms-{run}-hub-1")
        await read_until(first, "every site's event and the hub's")

        # The hub goes away (its consumers with it) while site1 keeps storing events.
        for node in topology.hub:
            node.stop()
        await _publish_at(leaves["site1"].url, "site1", "site1", f"ms-{run}-site1-2")
        for node in topology.hub:
            node.start()
        await wait_for_jetstream(hjs, 30)
        await _publish_at(leaves["site2"].url, "site2", "site2", f"ms-{run}-site2-2")
        second = {f"ms-{run}-site1-2", f"ms-{run}-site2-2"}
        # nats-server resumes sourcing with a backoff: ~40 s after a hub restart on loopback.
        await read_until(second, "the events of and after the hub's restart", timeout=120)
        # A later event comes after anything printed twice would have been.
        await _publish_at(leaves["site2"].url, "site2", "site2", f"ms-{run}-site2-3")
        await read_until({f"ms-{run}-site2-3"}, "a later event")
    finally:
        if tail.returncode is None:
            tail.terminate()
        await asyncio.wait_for(tail.wait(), 15)
    assert printed == Counter(first | second | {f"ms-{run}-site2-3"})  # once each, nothing older
    assert "(PROXBUS_EVENTS in the local domain)" in banner, banner
    assert tail.returncode == 0


class LivePage:
    """``GET /events/stream`` of the console, read over HTTP: the ids of the events it sent,
    with the time each arrived."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.ids: list[tuple[str, float]] = []
        self.connected = asyncio.Event()
        self.task: asyncio.Task[None] | None = None

    async def _read(self) -> None:
        timeout = httpx.Timeout(10.0, read=60.0)
        async with (
            httpx.AsyncClient(timeout=timeout) as client,
            client.stream("GET", self.url) as response,
        ):
            assert response.status_code == 200, response.status_code
            async for line in response.aiter_lines():
                if line == ": connected":
                    self.connected.set()
                elif line.startswith("id: "):
                    self.ids.append((line[4:], time.monotonic()))

    async def __aenter__(self) -> LivePage:
        self.task = asyncio.create_task(self._read())
        done, _ = await asyncio.wait(
            {self.task, asyncio.ensure_future(self.connected.wait())}, timeout=20,
            return_when=asyncio.FIRST_COMPLETED,
        )  # fmt: skip
        if self.task in done:
            self.task.result()  # the page failed: its error
        assert self.connected.is_set(), "the live page did not connect"
        return self

    async def __aexit__(self, *_: object) -> None:
        assert self.task is not None
        self.task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await self.task

    def count(self, event_id: str) -> int:
        return sum(1 for i, _ in self.ids if i == event_id)

    def arrived(self, event_id: str) -> float | None:
        return next((t for i, t in self.ids if i == event_id), None)


@pytest.mark.timeout(180)
async def test_the_hubs_console_shows_a_sites_new_event_live_once(
    topology: LocalTopology, stack: Any, sink: Any, hub: Any
) -> None:
    """Issue 16 at a multi-site hub (issue 18): the console runs in the hub's dispatcher, the
    sites' events reach the hub only by stream sourcing. An event published at a site after
    the live page opened appears on it within 5 s, once; the back-fill has the older one."""
    await _link_with_site_streams(topology)
    run = secrets.token_hex(4)
    hjs = hub.jetstream(timeout=5)
    leaves = topology.leaves
    # One older event at each site, both sourced before the page opens: the hub's source of a
    # site is up only once it has carried something (it failed once under load when site2's
    # link was still being set up as its "live" event was published).
    older = [
        await _publish_at(leaves[site].url, site, site, f"ms-{run}-{site}-0")
        for site in ("site1", "site2")
    ]
    await wait_until(lambda: _stored(hjs, 2), timeout=20)
    dispatcher = hub_dispatcher(stack, topology, sink)
    await stack.healthy(dispatcher, timeout=40)
    base = f"http://127.0.0.1:{dispatcher.health_port}"
    async with LivePage(base + "/events/stream") as page:
        async with httpx.AsyncClient(timeout=10) as client:
            first_screen = (await client.get(base + "/")).text
            status = (await client.get(base + "/status")).text
        for site in ("site1", "site2"):  # the back-fill, read from the hub's stream
            assert f"ms-{run}-{site}-0" in first_screen
        assert "1 live page reading PROXBUS_EVENTS from sequence" in status, status
        published: dict[str, float] = {}
        for site in ("site1", "site2"):
            event_id = await _publish_at(leaves[site].url, site, site, f"ms-{run}-{site}-1")
            published[event_id] = time.monotonic()
            await wait_until(
                lambda i=event_id: page.arrived(i) is not None,  # type: ignore[misc]
                timeout=5,
                what=f"{site}'s new event on the hub's live page",
                detail=lambda: (page.ids, stack.report()),
            )
        hub_id = await _publish_at(topology.hub_url, "hub", "hub", f"ms-{run}-hub-1")
        # A later event comes after anything sent twice would have been.
        last = await _publish_at(leaves["site2"].url, "site2", "site2", f"ms-{run}-site2-2")
        await wait_until(lambda: page.arrived(last) is not None, timeout=5, what="a later event")
        await wait_until(lambda: page.arrived(hub_id) is not None, timeout=5, what="the hub's")
    for event_id, sent in published.items():
        arrived = page.arrived(event_id)
        assert arrived is not None
        assert arrived - sent < 5
    # Each once; the older one is on the first screen (back-fill), never sent live.
    assert Counter(i for i, _ in page.ids) == Counter([*published, hub_id, last])
    assert not set(older) & {i for i, _ in page.ids}


async def test_ensure_streams_keeps_an_operators_mirror_and_placement_across_a_restart(
    tmp_path: Path,
) -> None:
    """Sources are kept (above); so are a mirror and a placement an operator set, while the
    fields the contract owns are still brought up to date at every start."""
    binary = require_binary("nats-server", nats_server_binary())
    conf = tmp_path / "nats.conf"
    port = free_port()
    conf.write_text(
        f'server_name: "n1"\nlisten: "127.0.0.1:{port}"\nserver_tags: ["ssd", "az:1"]\n'
        f'jetstream {{ store_dir: "{tmp_path / "js"}", domain: "hub" }}\n'
    )
    server = ConfiguredNats("n1", binary, conf, port, tmp_path / "nats-server.log")
    server.start()
    nc = None
    try:
        nc = await nats.connect(server.url)
        js = nc.jetstream(timeout=5)
        await js.add_stream(name="UPSTREAM", subjects=["upstream.>"])
        # The operator made the hub's audit a mirror before any service started...
        await js.add_stream(
            StreamConfig(name=AUDIT_STREAM, mirror=StreamSource(name="UPSTREAM"), max_age=3600)
        )
        await ensure_streams(js)
        # ...and pinned the events to the SSD servers once they existed.
        events = await js.stream_info(EVENTS_STREAM)
        await js.update_stream(
            dataclasses.replace(events.config, placement=Placement(tags=["ssd"]))
        )
        await nc.close()
        server.stop()
        server.start()
        nc = await nats.connect(server.url)
        js = nc.jetstream(timeout=5)
        await ensure_streams(js, StreamLimits(events_max_age=3600))  # a service's start
        events = await js.stream_info(EVENTS_STREAM)
        assert events.config.max_age == pytest.approx(3600)  # owned: updated
        assert events.config.placement is not None
        assert events.config.placement.tags == ["ssd"]
        audit = await js.stream_info(AUDIT_STREAM)
        assert audit.config.mirror is not None
        assert audit.config.mirror.name == "UPSTREAM"
        assert not audit.config.subjects  # a mirror has none of its own
        await js.publish("upstream.x", b"mirrored")
        await wait_until(lambda: _last_seq(js, AUDIT_STREAM, 1), timeout=10)
    finally:
        if nc is not None:
            await nc.close()
        server.kill()
