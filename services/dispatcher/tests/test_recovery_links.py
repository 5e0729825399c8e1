"""A link's return ends its own link's alert only (link.down per link: the fingerprint subject).

Real lines through ingest-syslog's own pipeline into a real dispatcher, as
``test_recovery.py`` does. Each knet link is its own ``link.down`` (subject ``knet host N
link L``: kronosnet libknet/threads_heartbeat.c logs ``host: %u link: %u is down`` once per
link, threads_rx.c its ``is up``); a host NIC's is its interface (linux e1000e netdev.c ``NIC
Link is Down`` / ``NIC Link is Up``). A recovery line resolves the ``link.down`` incident of
its own site, node and subject (``stages/incidents.py`` ``failure_fingerprint``).
"""

from __future__ import annotations

import asyncio

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
    # ended it while host 3 and the NIC were still down. Each link is its own alert now.
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
        "[WARNING] pve1: Cluster link 0 to host 2 is down",
        "[WARNING] pve1: Cluster link 0 to host 3 is down",
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
    assert titles()[3:] == ["[INFO] pve1: Cluster link 0 to host 2 is up again"], titles()
    assert resolved(3) == "Cluster link 0 to host 2 is down"

    # host 3's alert was still open: its own up ends it (an up with nothing notified to end
    # is not told at info: the notification proves the alert was unresolved)
    await send(HOST_3_BACK)
    await wait_until(lambda: len(hook.requests) >= 5)
    assert titles()[4] == "[INFO] pve1: Cluster link 0 to host 3 is up again", titles()
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
