"""A link's return ends its own alert only: ``link.down`` per lost peer (knet) or per interface.

Real lines through ingest-syslog's own pipeline (and ingest-pve-ws's cluster-log classifier)
into a real dispatcher, as ``test_recovery.py`` does. A lost knet peer is one ``link.down``
per surviving node, whatever the links it was reached over (subject ``knet host N``:
kronosnet libknet/threads_heartbeat.c logs ``host: %u link: %u is down`` once per link,
threads_rx.c its ``is up``; ``proxbus_events.knet``): another link's down is a detail, and
only the up of the peer's last link down ends the alert. A host NIC's is its interface
(linux e1000e netdev.c ``NIC Link is Down`` / ``NIC Link is Up``). A recovery line resolves
the ``link.down`` incident of its own site, node and subject (``stages/incidents.py``
``failure_fingerprint``). A lost knet peer's lines are about no node (every survivor logs
them: one happening), their reporter in ``metadata.reporter``: the survivors' reports are one
alert naming them, ended when the last survivor's up comes.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from proxbus_events import Event

from .conftest import publish, wait_until
from .test_recovery import _settled, _syslog

# pve1 loses host 2, then host 3 within the first's burst window, and one of its own NICs
LINKS_LOST = [
    ("corosync", 30, "  [KNET  ] link: host: 2 link: 0 is down"),
    ("corosync", 28, "  [KNET  ] host: host: 2 has no active links"),
    ("corosync", 30, "  [KNET  ] link: host: 3 link: 0 is down"),
    ("corosync", 28, "  [KNET  ] host: host: 3 has no active links"),
    ("corosync", 29, "  [TOTEM ] Token has not been received in 2737 ms"),
    ("kernel", 6, "e1000e 0000:00:19.0 nic0: NIC Link is Down"),
]
HOST_2_BACK = [("corosync", 30, "  [KNET  ] rx: host: 2 link: 0 is up")]
HOST_3_BACK = [("corosync", 30, "  [KNET  ] rx: host: 3 link: 0 is up")]
NIC_BACK = [
    ("kernel", 6, "e1000e 0000:00:19.0 nic0: NIC Link is Up 1000 Mbps Full Duplex, Flow "
                  "Control: Rx/Tx"),
]  # fmt: skip


async def test_a_links_return_ends_only_its_own_links_alert(dispatcher, sink, js) -> None:
    # link.down's fingerprint was the node's (kind, site, node): host 3's down joined host 2's
    # alert (one notification for two lost peers, and the NIC's too), and host 2's link up
    # ended it while host 3 and the NIC were still down. Each peer (and NIC) is its own alert.
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings as SyslogSettings

    hook = await sink()
    service = await dispatcher(None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook")
    pipeline = Pipeline(SyslogSettings())
    published = 0

    async def send(lines: list[tuple[str, int, str]]) -> list[Event]:
        nonlocal published
        frames = [Frame(_syslog("pve1", app, pri, text)) for app, pri, text in lines]
        events = pipeline.process(frames, "udp", "127.0.0.1")
        assert len(events) == len(lines)
        await publish(js, *events)
        published += len(events)
        await wait_until(lambda: _settled(service) >= published)
        return events

    def titles() -> list[str]:
        return [r.json["title"] for r in hook.requests]

    lost = await send(LINKS_LOST)
    assert len({e.fingerprint for e in lost if e.kind == "link.down"}) == 3
    await wait_until(lambda: len(hook.requests) >= 3)
    problems = [
        "[WARNING] Cluster link 0 to host 2 is down",
        "[WARNING] Cluster link 0 to host 3 is down",
        "[WARNING] pve1: Network link nic0 is down",
    ]
    await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    assert titles() == problems, titles()

    def resolved(n: int) -> str:
        return str(hook.requests[n].json["incident"]["resolves"]["title"])

    # host 2 back: its own alert ends, not host 3's nor the NIC's
    await send(HOST_2_BACK)
    await wait_until(lambda: len(hook.requests) >= 4)
    await asyncio.sleep(0.5)
    assert titles()[3:] == ["[INFO] Cluster link 0 to host 2 is up again"], titles()
    assert resolved(3) == "Cluster link 0 to host 2 is down"

    # host 3's alert was still open: its own up ends it (an up with nothing notified to end
    # is not told at info: the notification proves the alert was unresolved)
    await send(HOST_3_BACK)
    await wait_until(lambda: len(hook.requests) >= 5)
    assert titles()[4] == "[INFO] Cluster link 0 to host 3 is up again", titles()
    assert resolved(4) == "Cluster link 0 to host 3 is down"

    # and the NIC's return ends the NIC's
    await send(NIC_BACK)
    await wait_until(lambda: len(hook.requests) >= 6)
    assert titles()[5] == "[INFO] pve1: Network link nic0 is up again", titles()
    assert resolved(5) == "Network link nic0 is down"

    # a second up of a link already back ends nothing more: not told
    await send(HOST_2_BACK)
    await asyncio.sleep(0.5)
    assert len(hook.requests) == 6, titles()


# pve1 loses host 2 and host 3, each reached over corosync's link 0 and link 1 (knet logs
# each link's down); they come back link by link
TWO_PEERS_TWO_LINKS_LOST = [
    ("corosync", 30, "  [KNET  ] link: host: 2 link: 0 is down"),
    ("corosync", 30, "  [KNET  ] link: host: 2 link: 1 is down"),
    ("corosync", 28, "  [KNET  ] host: host: 2 has no active links"),
    ("corosync", 30, "  [KNET  ] link: host: 3 link: 1 is down"),
    ("corosync", 30, "  [KNET  ] link: host: 3 link: 0 is down"),
    ("corosync", 28, "  [KNET  ] host: host: 3 has no active links"),
]
HOST_2_LINK_0_BACK = [("corosync", 30, "  [KNET  ] rx: host: 2 link: 0 is up")]
HOST_3_LINK_1_BACK = [("corosync", 30, "  [KNET  ] rx: host: 3 link: 1 is up")]
HOST_2_LINK_1_BACK = [("corosync", 30, "  [KNET  ] rx: host: 2 link: 1 is up")]
HOST_3_LINK_0_BACK = [("corosync", 30, "  [KNET  ] rx: host: 3 link: 0 is up")]


@pytest.mark.parametrize("sources", ["syslog", "syslog-and-cluster-log"])
async def test_a_peer_lost_over_two_links_is_one_alert_ended_by_its_last_link(
    dispatcher, sink, js, sources: str
) -> None:
    # link.down per link made a peer reached over two links two alerts per survivor (one
    # happening, two notifications), each ended by its own link's up. One alert per peer now:
    # a link's up while the peer's other link is still down ends nothing, the up of the
    # peer's last link down ends the peer's alert only. With both
    # ingest services (the cluster log carries corosync's lines too) every line comes twice:
    # still one alert and one end per peer.
    from proxbus_events.knet import KnetLinks
    from proxbus_ingest_pve_ws.tasks import LogEntry, log_event
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings as SyslogSettings

    hook = await sink()
    service = await dispatcher(None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook")
    pipeline = Pipeline(SyslogSettings())
    site = SyslogSettings().proxbus_site  # one site for both ingest services
    cluster_links = KnetLinks()  # the watcher's memory (watcher.py)
    published = 0
    uid = 0

    def cluster_log_copy(event: Event) -> Event:
        nonlocal uid
        uid += 1
        entry = LogEntry(uid=uid, time=int(event.timestamp.timestamp()), node="pve1", pid=1180,
                         tag="corosync", pri=6, user="root@pam", msg=event.message)  # fmt: skip
        return log_event(entry, cluster="lab", site=site, links=cluster_links)

    async def send(lines: list[tuple[str, int, str]]) -> list[Event]:
        nonlocal published
        frames = [Frame(_syslog("pve1", app, pri, text)) for app, pri, text in lines]
        events = pipeline.process(frames, "udp", "127.0.0.1")
        assert len(events) == len(lines)
        if sources == "syslog-and-cluster-log":
            copies = [cluster_log_copy(e) for e in events]
            for ours, theirs in zip(events, copies, strict=True):
                assert (ours.kind, ours.fingerprint, ours.metadata.get("recovers")) == (
                    theirs.kind, theirs.fingerprint, theirs.metadata.get("recovers"))  # fmt: skip
            events = [one for pair in zip(events, copies, strict=True) for one in pair]
        for one in events:  # one at a time: each decided after the last
            await publish(js, one)
            published += 1
            await wait_until(lambda n=published: _settled(service) >= n)
        return events

    def titles() -> list[str]:
        return [r.json["title"] for r in hook.requests]

    def resolved(n: int) -> str:
        return str(hook.requests[n].json["incident"]["resolves"]["title"])

    lost = await send(TWO_PEERS_TWO_LINKS_LOST)
    assert len({e.fingerprint for e in lost if e.kind == "link.down"}) == 2
    await wait_until(lambda: len(hook.requests) >= 2)
    await asyncio.sleep(0.5)  # a wrong extra notification would be on its way by now
    assert titles() == [
        "[WARNING] Cluster link 0 to host 2 is down",
        "[WARNING] Cluster link 1 to host 3 is down",
    ], titles()

    # one link of each peer back: neither peer's alert ends (nothing told: plain info lines)
    back = await send([*HOST_2_LINK_0_BACK, *HOST_3_LINK_1_BACK])
    assert all("recovers" not in e.metadata for e in back), [e.metadata for e in back]
    assert [e.metadata["links_down"] for e in back[:: len(back) // 2]] == [[1], [0]]
    await asyncio.sleep(0.5)
    assert len(hook.requests) == 2, titles()

    # host 2's last link back: host 2's alert ends, told once; host 3's stays
    await send(HOST_2_LINK_1_BACK)
    await wait_until(lambda: len(hook.requests) >= 3)
    await asyncio.sleep(0.5)
    assert titles()[2:] == ["[INFO] Cluster link 1 to host 2 is up again"], titles()
    assert resolved(2) == "Cluster link 0 to host 2 is down"

    # host 3's last link back ends host 3's
    await send(HOST_3_LINK_0_BACK)
    await wait_until(lambda: len(hook.requests) >= 4)
    await asyncio.sleep(0.5)
    assert titles()[3:] == ["[INFO] Cluster link 0 to host 3 is up again"], titles()
    assert resolved(3) == "Cluster link 1 to host 3 is down"


# host 3 is lost: each survivor's kronosnet logs its link's down (libknet threads_heartbeat.c)
HOST_3_LOST = [
    ("corosync", 30, "  [KNET  ] link: host: 3 link: 0 is down"),
    ("corosync", 28, "  [KNET  ] host: host: 3 has no active links"),
]
SURVIVORS = ("pve1", "pve2", "pve4")


def _both_services(sources: str) -> Any:
    """Lines of a host through ingest-syslog's pipeline and, with ``syslog-and-cluster-log``,
    each one's copy in the cluster log (ingest-pve-ws's classifier with the watcher's memory),
    the copy right after its line."""
    from proxbus_events.knet import KnetLinks
    from proxbus_ingest_pve_ws.tasks import LogEntry, log_event
    from proxbus_ingest_syslog.frames import Frame
    from proxbus_ingest_syslog.pipeline import Pipeline
    from proxbus_ingest_syslog.settings import Settings as SyslogSettings

    pipeline = Pipeline(SyslogSettings())
    site = SyslogSettings().proxbus_site
    cluster_links = KnetLinks()
    uid = 0

    def lines(host: str, sent: list[tuple[str, int, str]]) -> list[Event]:
        nonlocal uid
        frames = [Frame(_syslog(host, app, pri, text)) for app, pri, text in sent]
        events = pipeline.process(frames, "udp", "127.0.0.1")
        assert len(events) == len(sent)
        if sources == "syslog":
            return events
        out = []
        for one in events:
            uid += 1
            entry = LogEntry(uid=uid, time=int(one.timestamp.timestamp()), node=host, pid=1180,
                             tag="corosync", pri=6, user="root@pam", msg=one.message)  # fmt: skip
            copy = log_event(entry, cluster="lab", site=site, links=cluster_links)
            assert (one.kind, one.fingerprint, one.node, one.metadata.get("recovers")) == (
                copy.kind, copy.fingerprint, copy.node, copy.metadata.get("recovers"))  # fmt: skip
            if one.node is None:  # a knet link line: about no node, its reporter named
                assert one.metadata["reporter"] == copy.metadata["reporter"] == host
            out += [one, copy]
        return out

    return lines


@pytest.mark.parametrize("sources", ["syslog", "syslog-and-cluster-log"])
async def test_a_lost_node_is_one_alert_whatever_the_survivors_ended_by_the_last_ones_up(
    dispatcher, sink, js, sources: str
) -> None:
    # every survivor logs host 3's link down: each was a link.down about itself (fingerprint
    # kind, site, node = the survivor, subject knet host 3), three notifications for one lost
    # node, and each survivor's up told the end of its own. One alert naming the survivors
    # now, ended once, when the last survivor that reported host 3 lost sees it again.
    hook = await sink()
    service = await dispatcher(
        None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook", seed_group_wait=1.0
    )
    lines = _both_services(sources)
    published = 0

    async def send(host: str, sent: list[tuple[str, int, str]]) -> list[Event]:
        nonlocal published
        events = lines(host, sent)
        for one in events:  # one at a time: each decided after the last
            await publish(js, one)
            published += 1
            await wait_until(lambda n=published: _settled(service) >= n)
        return events

    def titles() -> list[str]:
        return [r.json["title"] for r in hook.requests]

    lost = [e for host in SURVIVORS for e in await send(host, HOST_3_LOST)]
    downs = [e for e in lost if e.kind == "link.down"]
    assert len(downs) == len(SURVIVORS) * (1 if sources == "syslog" else 2)
    assert {(e.fingerprint, e.node) for e in downs} == {(downs[0].fingerprint, None)}
    await wait_until(lambda: len(hook.requests) >= 1)
    await asyncio.sleep(1.5)  # a wrong extra notification would be on its way by now
    assert titles() == ["[WARNING] Cluster link 0 to host 3 is down"], titles()
    alert = hook.requests[0].json
    assert alert["incident"]["reporters"] == list(SURVIVORS), alert["incident"]
    assert "reported by pve1, pve2, pve4" in alert["body"].splitlines(), alert["body"]

    # two survivors see host 3 again: the third still does not, nothing ends
    await send("pve1", HOST_3_BACK)
    await send("pve2", HOST_3_BACK)
    await asyncio.sleep(1.5)
    assert len(hook.requests) == 1, titles()

    # the last survivor's up ends the alert, told once
    await send("pve4", HOST_3_BACK)
    await wait_until(lambda: len(hook.requests) >= 2)
    await asyncio.sleep(1.5)
    assert titles()[1:] == ["[INFO] Cluster link 0 to host 3 is up again"], titles()
    resolves = hook.requests[1].json["incident"]["resolves"]
    assert resolves["title"] == "Cluster link 0 to host 3 is down"
    assert resolves["reporters"] == list(SURVIVORS)

    # a survivor's up again ends nothing more: not told
    await send("pve2", HOST_3_BACK)
    await asyncio.sleep(1.5)
    assert len(hook.requests) == 2, titles()


@pytest.mark.parametrize("sources", ["syslog", "syslog-and-cluster-log"])
async def test_a_partial_partition_is_one_alert_ended_by_its_reporters_up(
    dispatcher, sink, js, sources: str
) -> None:
    # only pve1 loses host 3: one alert from pve1; an up line of host 3 from a node that
    # never reported it lost (pve2) does not end it, pve1's up does, once
    hook = await sink()
    service = await dispatcher(None, webhook_out_enabled=True, webhook_url=f"{hook.url}/hook")
    lines = _both_services(sources)
    published = 0

    async def send(host: str, sent: list[tuple[str, int, str]]) -> None:
        nonlocal published
        for one in lines(host, sent):
            await publish(js, one)
            published += 1
            await wait_until(lambda n=published: _settled(service) >= n)

    def titles() -> list[str]:
        return [r.json["title"] for r in hook.requests]

    await send("pve1", HOST_3_LOST)
    await wait_until(lambda: len(hook.requests) >= 1)
    assert titles() == ["[WARNING] Cluster link 0 to host 3 is down"], titles()
    assert hook.requests[0].json["incident"]["reporters"] == ["pve1"]

    await send("pve2", HOST_3_BACK)
    await asyncio.sleep(0.5)  # a wrong notification would be on its way by now
    assert len(hook.requests) == 1, titles()

    await send("pve1", HOST_3_BACK)
    await wait_until(lambda: len(hook.requests) >= 2)
    await asyncio.sleep(0.5)
    assert titles()[1:] == ["[INFO] Cluster link 0 to host 3 is up again"], titles()
    assert hook.requests[1].json["incident"]["resolves"]["reporters"] == ["pve1"]
