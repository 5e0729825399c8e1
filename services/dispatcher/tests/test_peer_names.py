"""A lost knet peer is named, and routes/silences on its node cover it (``stages/peers.py``).

corosync's kronosnet logs a lost peer by node id only (libknet threads_heartbeat.c ``host: %u
link: %u is down``): ``proxbus_events.knet`` makes it one ``link.down`` about no node with
``metadata.peer_nodeid``. The dispatcher learns node id → name per site from the gateway's
``get_cluster_status`` over NATS RPC (Proxmox ``GET /cluster/status``, pve-manager
``PVE/API2/Cluster.pm``: each member's ``name`` and corosync ``nodeid``), here a real gateway
against the simulator (``libs/pvesim``), the lines through ingest-syslog's own pipeline.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from proxbus_dispatcher.console.feed import EventFilter
from proxbus_dispatcher.notification import Notification
from proxbus_dispatcher.stages.incidents import Incident
from proxbus_dispatcher.stages.peers import ABSENT_PAUSE, MAX_NODES, parse_cluster_status
from proxbus_dispatcher.stages.routing import route_matches, stand_in_nodes
from proxbus_dispatcher.templates import DEFAULT_TITLE, render, with_peer
from proxbus_events import Event, Matcher, Silence
from proxbus_runtime import SilenceStore

from .conftest import ev, publish, wait_until
from .test_recovery import _settled, _syslog

SITE = "lab"  # the gateway's cluster (proxbus_mcp_gateway.testing.make_settings's site)


def _down(peer: int) -> list[tuple[str, int, str]]:
    return [("corosync", 30, f"  [KNET  ] link: host: {peer} link: 0 is down")]


def _up(peer: int) -> list[tuple[str, int, str]]:
    return [("corosync", 30, f"  [KNET  ] rx: host: {peer} link: 0 is up")]


def _lines(host: str, sent: list[tuple[str, int, str]], site: str = SITE) -> list[Event]:
    """Lines of ``host`` as ingest-syslog's pipeline makes them (``PROXBUS_SITE=site``)."""
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings as SyslogSettings

    pipeline = Pipeline(SyslogSettings(proxbus_site=site))
    events = pipeline.process(
        [Frame(_syslog(host, app, pri, text)) for app, pri, text in sent], "udp", "127.0.0.1"
    )
    assert len(events) == len(sent)
    return events


@contextlib.asynccontextmanager
async def _site_gateway(nc: Any, site: str, nodes: int | list[str]) -> AsyncIterator[Any]:
    """The real gateway of site ``site`` (its cluster) over NATS RPC, against a simulated
    cluster of ``nodes`` (node ids 1, 2, ... in order)."""
    from proxbus_mcp_gateway.gateway import Gateway
    from proxbus_mcp_gateway.rpc import start_rpc
    from proxbus_mcp_gateway.testing import make_settings, sim_env
    from proxbus_pvesim.testing import run_simulator

    async with run_simulator({"cluster": {"name": site, "nodes": nodes}}) as sim:
        gw = Gateway.from_settings(make_settings(proxbus_site=site), sim_env(sim))
        gw.start()
        service = await start_rpc(gw, nc)
        try:
            yield gw
        finally:
            await service.stop()
            await gw.close()


@pytest.fixture
async def gateway(nc: Any) -> AsyncIterator[Any]:
    """The gateway of site ``lab``: a simulated 4-node cluster (pve1..pve4, node ids 1..4)."""
    async with _site_gateway(nc, SITE, 4) as gw:
        yield gw


class _Sender:
    """Publishes lines one at a time, each decided before the next."""

    def __init__(self, js: Any, service: Any) -> None:
        self.js, self.service, self.published = js, service, 0

    async def send(
        self, host: str, sent: list[tuple[str, int, str]], site: str = SITE
    ) -> list[Event]:
        events = _lines(host, sent, site)
        for one in events:
            await publish(self.js, one)
            self.published += 1
            await wait_until(lambda n=self.published: _settled(self.service) >= n)
        return events


def _routes(url: str) -> str:
    return f"""\
receivers:
  - {{name: peer, type: webhook, url: '{url}/peer'}}
  - {{name: survivor, type: webhook, url: '{url}/survivor'}}
  - {{name: stranger, type: webhook, url: '{url}/stranger'}}
  - {{name: rest, type: webhook, url: '{url}/rest'}}
route:
  receiver: rest
  routes:
    - {{matchers: ["node=pve3"], receiver: peer, continue: true}}
    - {{matchers: ["node=pve1"], receiver: survivor, continue: true}}
    - {{matchers: ["node=pve2"], receiver: stranger, continue: true}}
"""


async def test_a_lost_peer_is_named_and_routed_to_its_node_and_its_reporter(
    gateway: Any, dispatcher: Any, sink: Any, js: Any
) -> None:
    # "Cluster link 0 to host 3 is down": the operator had to know node id 3 is pve3, and a
    # route node = pve3 never got pve3's loss (only the reporter's route did).
    hook = await sink()
    service = await dispatcher(_routes(hook.url))
    sender = _Sender(js, service)

    def got(path: str) -> list[dict[str, Any]]:
        return [r.json for r in hook.requests if r.path == f"/{path}"]

    [down] = await sender.send("pve1", _down(3))
    await wait_until(lambda: len(got("peer")) >= 1 and len(got("survivor")) >= 1)
    await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    for path in ("peer", "survivor"):
        [body] = got(path)
        assert body["title"] == "[WARNING] Cluster link 0 to host 3 (pve3) is down", body
        assert body["incident"]["peer_node"] == "pve3"
        assert body["incident"]["reporters"] == ["pve1"]
        assert body["enrichment"] == {down.id: {"peer_node": "pve3"}}
        assert "peer: pve3" in body["body"].splitlines(), body["body"]
        assert body["events"][0]["fingerprint"] == down.fingerprint  # the name is not in it
    assert got("stranger") == []
    assert got("rest") == []

    await sender.send("pve1", _up(3))
    await wait_until(lambda: len(got("peer")) >= 2 and len(got("survivor")) >= 2)
    await asyncio.sleep(0.5)
    for path in ("peer", "survivor"):
        assert [b["title"] for b in got(path)][1:] == [
            "[INFO] Cluster link 0 to host 3 (pve3) is up again"
        ]
    assert got("stranger") == []
    assert got("rest") == []
    # the map was asked for once, then known
    asked = service.registry.get_sample_value(
        "proxbus_dispatcher_peer_names_total", {"outcome": "ok"}
    )
    assert asked == 1, asked


async def test_the_console_names_the_lost_peer_on_its_live_page_and_its_incident(
    gateway: Any, dispatcher: Any, sink: Any, js: Any
) -> None:
    # the live page showed the bus's event ("host 3", its node filter pve3 showed nothing) and
    # the incident card its first title: only notifications named pve3
    import httpx

    hook = await sink()
    service = await dispatcher(_routes(hook.url))
    sender = _Sender(js, service)
    await sender.send("pve1", _down(3))
    await wait_until(lambda: any(r.path == "/peer" for r in hook.requests))
    url = f"http://127.0.0.1:{service.health.port}"
    named = "Cluster link 0 to host 3 (pve3) is down"
    async with httpx.AsyncClient(base_url=url, timeout=10) as client:
        for path in ("/", "/?node=pve3", "/?node=pve1"):
            deadline = time.monotonic() + 10
            while named not in (page := await client.get(path)).text:
                assert time.monotonic() < deadline, (path, page.text[-2000:])
                await asyncio.sleep(0.1)
        assert "host 3 is down" not in (await client.get("/?node=pve2")).text
        assert named in (await client.get("/incidents")).text
        # the event's own JSON stays as the bus carried it
        assert service.console is not None
        [down_id] = [e.id for e in service.console.feed.newest(EventFilter())]
        raw = (await client.get(f"/events/{down_id}")).text
        assert '"peer_nodeid"' in raw, raw
        assert '"peer_node"' not in raw, raw


async def test_a_silence_on_a_node_mutes_its_loss_and_its_end_and_what_it_reported(
    gateway: Any, dispatcher: Any, sink: Any, js: Any
) -> None:
    # A planned reboot of pve3, silenced as node = pve3: the survivors' alert about it (no
    # node, its reporter pve1) still went out, and its end. pve2 silenced: pve2's own lines
    # about the peers it lost during its reboot are noise too.
    hook = await sink()
    service = await dispatcher(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h'}}]\n"
        "route: {receiver: hook}\n"
    )
    store = await SilenceStore.open(js)
    for node in ("pve3", "pve2"):
        await store.add(
            Silence.for_duration([Matcher.parse(f"node={node}")], timedelta(hours=1), "t")
        )
    assert service.intake is not None
    silences = service.intake.silences
    await wait_until(lambda: len(silences.silences) == 2)
    sender = _Sender(js, service)

    def titles() -> list[str]:
        return [r.json["title"] for r in hook.requests]

    await sender.send("pve1", _down(3))  # the silenced peer, as a survivor logs it
    await sender.send("pve2", _down(1))  # logged by the silenced node
    await sender.send("pve1", _down(4))  # neither: told
    await wait_until(lambda: len(hook.requests) >= 1)
    await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    assert titles() == ["[WARNING] Cluster link 0 to host 4 (pve4) is down"], titles()

    await sender.send("pve1", _up(3))
    await sender.send("pve2", _up(1))
    await sender.send("pve1", _up(4))
    await wait_until(lambda: len(hook.requests) >= 2)
    await asyncio.sleep(0.5)
    assert titles()[1:] == ["[INFO] Cluster link 0 to host 4 (pve4) is up again"], titles()
    silenced = service.registry.get_sample_value(
        "proxbus_dispatcher_suppressed_total", {"reason": "silenced"}
    )
    assert silenced == 4, silenced


async def test_without_a_gateway_a_lost_peer_is_told_as_before_and_not_asked_for_again(
    dispatcher: Any, sink: Any, js: Any
) -> None:
    # No gateway answers: one fast "no responders", then a pause (ABSENT_PAUSE) in which the
    # next batches are not held by another ask; the alert is as it was, by node id.
    hook = await sink()
    service = await dispatcher(
        f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h'}}]\n"
        "route: {receiver: hook}\n"
    )
    sender = _Sender(js, service)

    def asked(outcome: str) -> float | None:
        return service.registry.get_sample_value(
            "proxbus_dispatcher_peer_names_total", {"outcome": outcome}
        )

    started = time.monotonic()
    await sender.send("pve1", _down(3))
    await wait_until(lambda: len(hook.requests) >= 1)
    assert asked("absent") == 1
    await sender.send("pve1", _up(3))
    await wait_until(lambda: len(hook.requests) >= 2)
    took = time.monotonic() - started
    assert took < ABSENT_PAUSE, f"{took:.1f} s: the pause may be over, nothing to tell"
    assert asked("absent") == 1  # paused: the second batch did not ask
    assert asked("timeout") is None
    first, second = (r.json for r in hook.requests)
    assert first["title"] == "[WARNING] Cluster link 0 to host 3 is down"
    assert first["incident"]["peer_node"] is None
    assert first["enrichment"] == {}
    assert second["title"] == "[INFO] Cluster link 0 to host 3 is up again"


async def test_each_sites_lost_peer_is_named_by_that_sites_gateway(
    nc: Any, dispatcher: Any, sink: Any, js: Any
) -> None:
    # two sites on one bus (a hub), each gateway serving its own cluster: node id 3 is pve3
    # at lab and far3 at far; the name comes from the event's site's gateway
    # (proxbus.rpc.<site>.get_cluster_status), never from whichever gateway answers first
    hook = await sink()
    async with (
        _site_gateway(nc, "lab", 3),
        _site_gateway(nc, "far", ["far1", "far2", "far3"]),
    ):
        service = await dispatcher(
            f"receivers: [{{name: hook, type: webhook, url: '{hook.url}/h'}}]\n"
            "route: {receiver: hook}\n"
        )
        sender = _Sender(js, service)
        await sender.send("pve1", _down(3), "lab")
        await sender.send("far1", _down(3), "far")
        await sender.send("far2", _down(9), "far")  # no such node: no name, as before
        await sender.send("gone1", _down(3), "gone")  # no gateway serves site gone: no name
        await wait_until(lambda: len(hook.requests) >= 4)
    told = {(r.json["event"]["site"], r.json["title"]) for r in hook.requests}
    assert told == {
        ("lab", "[WARNING] Cluster link 0 to host 3 (pve3) is down"),
        ("far", "[WARNING] Cluster link 0 to host 3 (far3) is down"),
        ("far", "[WARNING] Cluster link 0 to host 9 is down"),
        ("gone", "[WARNING] Cluster link 0 to host 3 is down"),
    }, told


# --- the parts, with plain inputs -----------------------------------------------------------


def test_the_cluster_status_answer_gives_node_ids_and_names() -> None:
    # the gateway's answer as it gives it (tools/inventory.py get_cluster_status)
    answer = {
        "cluster": "lab",
        "quorate": True,
        "nodes": [
            {"name": "pve1", "online": True, "ip": "10.0.0.11", "local": True, "nodeid": 1},
            {"name": "pve2", "online": False, "ip": None, "local": False, "nodeid": 2},
        ],
        "errors": [],
    }
    parsed = parse_cluster_status(answer)
    assert parsed.names == {1: "pve1", 2: "pve2"}
    assert parsed.usable
    assert not parsed.dropped


@pytest.mark.parametrize(
    "answer",
    [None, [], "nodes", 3, {"nodes": None}, {"nodes": "pve1"}, {"nodes": {"1": "pve1"}}],
)
def test_an_answer_that_is_not_the_tools_shape_names_nothing(answer: object) -> None:
    parsed = parse_cluster_status(answer)
    assert parsed.names == {}
    assert not parsed.usable
    assert sum(parsed.dropped.values()) == 1


def test_bad_node_entries_are_left_out_and_counted() -> None:
    nodes: list[object] = [
        None,
        "pve1",
        ["pve1", 1],
        {"name": "pve1"},  # no id
        {"name": "pve1", "nodeid": True},  # a bool is no id
        {"name": "pve1", "nodeid": 1.5},
        {"name": "pve1", "nodeid": -1},
        {"name": "pve1", "nodeid": 2**40},
        {"name": "pve1", "nodeid": "1e3"},
        {"name": ["pve1"], "nodeid": 1},
        {"name": "", "nodeid": 1},
        {"name": "pve 1", "nodeid": 1},
        {"name": "pve1\n[WARNING] fake", "nodeid": 1},
        {"name": "-pve1", "nodeid": 1},
        {"name": "p" * 64, "nodeid": 1},
        {"name": "standalone", "nodeid": 0},  # a node without a cluster: no peer, not counted
        {"name": "pve3", "nodeid": "3"},  # digits as a string: tolerated
        {"name": "pve4", "nodeid": 4, "extra": {"deep": [1] * 10}},
    ]
    parsed = parse_cluster_status({"nodes": nodes})
    assert parsed.names == {3: "pve3", 4: "pve4"}
    assert parsed.usable
    assert sum(parsed.dropped.values()) == len(nodes) - 3, parsed.dropped


def test_a_node_id_given_two_names_names_neither() -> None:
    # a site of two PVE clusters: both have a node 1; the name would be a guess
    parsed = parse_cluster_status(
        {
            "nodes": [
                {"name": "a1", "nodeid": 1},
                {"name": "b1", "nodeid": 1},
                {"name": "a2", "nodeid": 2},
                {"name": "c1", "nodeid": 1},
                {"name": "a2", "nodeid": 2},  # the same twice: still a2
            ]
        }
    )
    assert parsed.names == {2: "a2"}
    assert parsed.dropped["node id of two names"] == 3


def test_a_huge_answer_keeps_a_bounded_map() -> None:
    nodes = [{"name": f"n{i}", "nodeid": i} for i in range(1, 100_001)]
    started = time.monotonic()
    parsed = parse_cluster_status({"nodes": nodes})
    assert len(parsed.names) == MAX_NODES
    assert parsed.dropped["more nodes than kept"] == len(nodes) - MAX_NODES
    assert time.monotonic() - started < 1.0  # stops at the bound, does not walk the rest


def _lost(peer: str | None, reporter: str = "pve1", **meta: Any) -> Event:
    metadata: dict[str, Any] = {"peer_nodeid": 3, "reporter": reporter, **meta}
    if peer is not None:
        metadata["peer_node"] = peer
    return ev(node=None, kind="link.down", severity="warning", metadata=metadata,
              title="Cluster link 0 to host 3 is down")  # fmt: skip


def test_node_matchers_read_the_lost_peer_and_its_reporter() -> None:
    lost = _lost("pve3")

    def matches(text: str, event: Event) -> bool:
        return route_matches([Matcher.parse(text)], event)

    assert stand_in_nodes(lost) == ("pve3", "pve1")
    assert matches("node=pve3", lost)
    assert matches("node=pve1", lost)  # the survivor's route gets it as before
    assert not matches("node=pve2", lost)
    assert matches("node=~pve[34]", lost)
    assert not matches("node!=pve3", lost)  # not "anything but pve3"
    assert not matches("node!=pve1", lost)
    assert matches("node!=pve2", lost)
    assert not matches("node!~pve.*", lost)
    # unnamed (no gateway): as before, the reporter only
    assert stand_in_nodes(_lost(None)) == ("pve1",)
    assert not matches("node=pve3", _lost(None))
    assert matches("node!=pve3", _lost(None))
    # a peer that reported itself (a damaged line) is one candidate
    assert stand_in_nodes(_lost("pve1")) == ("pve1",)
    # an HA service's line still reads its service's node only
    ha = ev(node=None, kind="ha.state", metadata={"sid": "vm:100", "reporter": "pve2",
                                                  "peer_node": "pve3"})  # fmt: skip
    assert stand_in_nodes(ha) == ()
    # an event about a node is that node's
    own = ev(node="pve2", kind="link.down", metadata={"peer_node": "pve3", "reporter": "pve1"})
    assert not matches("node=pve3", own)


def test_an_inhibit_rule_on_a_node_covers_its_lost_peer_alert() -> None:
    from proxbus_dispatcher.config import InhibitRuleConfig
    from proxbus_dispatcher.stages.inhibition import Inhibitor

    rule = InhibitRuleConfig.model_validate(
        {"source_matchers": ["kind=vm.crashed"], "target_matchers": ["node=pve3"]}
    )
    inhibitor = Inhibitor([rule])
    assert inhibitor.observe(ev(kind="vm.crashed", node="pve1"))
    assert inhibitor.inhibiting_rule(_lost("pve3")) == 0
    assert inhibitor.inhibiting_rule(_lost(None)) is None
    # as a source too: a lost pve3 is a source of a rule whose source is node = pve3
    source = InhibitRuleConfig.model_validate(
        {"source_matchers": ["node=pve3", "kind=link.down"], "target_matchers": ["kind=vm.*"]}
    )
    inhibitor = Inhibitor([source])
    assert inhibitor.observe(_lost("pve3"))
    assert inhibitor.inhibiting_rule(ev(kind="vm.crashed", node="pve1")) == 0


def test_the_live_pages_node_filter_shows_a_named_lost_peer_under_its_node() -> None:
    assert EventFilter(node="pve3").matches(_lost("pve3"))
    assert EventFilter(node="pve1").matches(_lost("pve3"))
    assert not EventFilter(node="pve3").matches(_lost(None))
    assert not EventFilter(node="pve2").matches(_lost("pve3"))


async def test_the_silence_preview_lists_what_a_node_silence_mutes(nc: Any, js: Any) -> None:
    # the console's preview of a silence read the events' own node: node = pve2 listed
    # neither pve2's report of a lost peer nor an HA service's state on pve2, which the
    # silence mutes (stages/silence.py reads node matchers as routes do)
    from proxbus_dispatcher.console.feed import EventFeed
    from proxbus_runtime import ensure_streams
    from proxbus_runtime.settings import ServiceSettings

    await ensure_streams(js, ServiceSettings(_env_file=None).stream_limits())  # type: ignore[call-arg]
    reported = _lost(None, reporter="pve2")
    service = ev(node=None, kind="ha.state", title="HA service vm:100: started",
                 metadata={"sid": "vm:100", "service_node": "pve2"})  # fmt: skip
    other = _lost(None, reporter="pve1")
    await publish(js, reported, service, other)
    feed = EventFeed(nc, js, size=10, idle=60)
    await feed.start()
    try:
        await feed.ensure_running()
        await wait_until(lambda: len(feed.newest(EventFilter())) == 3)
        hits = [e.id for e in feed.matching([Matcher.parse("node=pve2")])]
        assert hits == [service.id, reported.id]
    finally:
        await feed.stop()


def test_a_name_learned_later_joins_the_same_alert_and_names_it() -> None:
    # the first survivor's line came while the gateway was away: no name; the second one's
    # carries it: one incident (the name is not in the fingerprint), now named
    first, second = _lost(None), _lost("pve3", reporter="pve2")
    assert first.fingerprint == second.fingerprint
    incident = Incident.open(first)
    assert incident.summary()["peer_node"] is None
    assert incident.admits(second, 600.0)
    incident.add(second)
    assert incident.summary()["peer_node"] == "pve3"
    assert incident.reporters == {"pve1": None, "pve2": None}
    assert Incident.from_json(incident.to_json()).peer_node == "pve3"
    damaged = incident.to_json().replace(b'"peer_node":"pve3"', b'"peer_node":["pve3"]')
    assert damaged != incident.to_json()
    assert Incident.from_json(damaged).peer_node is None


@pytest.mark.parametrize(
    ("title", "peer", "named"),
    [
        ("Cluster link 0 to host 3 is down", "pve3", "Cluster link 0 to host 3 (pve3) is down"),
        (
            "Cluster link 1 to host 3 is up again; link 0 still down",
            "pve3",
            "Cluster link 1 to host 3 (pve3) is up again; link 0 still down",
        ),
        ("Cluster link 0 to host 3 is down", None, "Cluster link 0 to host 3 is down"),
        ("Cluster link 0 to host 3 is down", ["pve3"], "Cluster link 0 to host 3 is down"),
        ("pve3 is gone", "pve3", "pve3 is gone"),  # named already
        ("Peer lost", "pve3", "Peer lost (pve3)"),
        ("Cluster link 0 to host 33 is down", "pve33", "Cluster link 0 to host 33 (pve33) is down"),
    ],
)
def test_titles_name_the_lost_peer(title: str, peer: object, named: str) -> None:
    assert with_peer(title, peer) == named


def test_the_default_title_and_the_console_row_name_the_lost_peer() -> None:
    from proxbus_dispatcher.notifiers.console import ConsoleReceiver, format_notification

    lost = _lost("pve3")
    incident = Incident.open(lost).summary()
    n = Notification(id="d", receiver="c", route="r", events=[lost], incidents=[incident])
    assert render(DEFAULT_TITLE, n.template_context(), 256) == (
        "[WARNING] Cluster link 0 to host 3 (pve3) is down"
    )
    row = format_notification(ConsoleReceiver(name="c", type="console"), n)
    assert "Cluster link 0 to host 3 (pve3) is down" in row.splitlines()[0]
    # without an incident (a hand-made delivery): the enrichment's name
    bare = Notification(
        id="d", receiver="c", route="r", events=[lost], enrichment={lost.id: {"peer_node": "pve3"}}
    )
    assert render(DEFAULT_TITLE, bare.template_context(), 256) == (
        "[WARNING] Cluster link 0 to host 3 (pve3) is down"
    )
    unnamed = Notification(id="d", receiver="c", route="r", events=[_lost(None)])
    assert render(DEFAULT_TITLE, unnamed.template_context(), 256) == (
        "[WARNING] Cluster link 0 to host 3 is down"
    )
