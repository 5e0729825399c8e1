"""The console's event feed against a real nats-server: back-fill, filters, idle unsubscribe."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from proxbus_dispatcher.console.feed import EventFeed, EventFilter, reported_by
from proxbus_events import Matcher
from proxbus_runtime import ensure_streams
from proxbus_runtime.settings import ServiceSettings

from .conftest import ev, publish, wait_until


async def test_feed_backfills_serves_clients_and_unsubscribes_when_idle(nc: Any, js: Any) -> None:
    await ensure_streams(js, ServiceSettings(_env_file=None).stream_limits())  # type: ignore[call-arg]
    await publish(js, ev(title="before", node="pve1"), ev(title="other", node="pve2"))
    feed = EventFeed(nc, js, size=10, idle=0.2)
    await feed.start()
    try:
        assert not feed.subscribed  # nothing costs the intake until a page asks
        await feed.ensure_running()
        assert [e.title for e in feed.newest(EventFilter())] == ["other", "before"]
        client = feed.connect(EventFilter(node="pve1"))
        await publish(js, ev(title="live on pve2", node="pve2"), ev(title="live", node="pve1"))
        event = await client.get()
        assert event.title == "live"
        assert client.queue.empty()
        await nc.publish("proxbus.events.lab.syslog.error.pve1", b"not json")
        await wait_until(lambda: feed.invalid == 1, what="invalid event counted")
        hits = list(feed.matching([Matcher.parse("title=~live.*")]))
        assert [e.title for e in hits] == ["live", "live on pve2"]
        found = feed.find(hits[0].id)
        assert found is not None
        assert found.id == hits[0].id
        # An open live page keeps the subscription; once it is gone the feed lets go.
        feed.disconnect(client)
        await wait_until(lambda: not feed.subscribed, timeout=5, what="idle unsubscribe")
        assert len(feed.recent) == 0
        await feed.ensure_running()
        assert feed.subscribed
        assert len(feed.newest(EventFilter())) == 4  # back-filled again from the stream
    finally:
        await feed.stop()


async def test_incident_board_watches_only_while_used(js: Any) -> None:
    from nats.js.api import KeyValueConfig
    from proxbus_dispatcher.console.incidents import IncidentBoard
    from proxbus_dispatcher.stages.incidents import Incident
    from proxbus_dispatcher.state import STATE_BUCKET, incident_key

    kv = await js.create_key_value(KeyValueConfig(bucket=STATE_BUCKET, history=1))
    first = Incident.open(ev(title="backup failed", kind="backup.failed", vmid=100))
    await kv.put(incident_key(first.fingerprint), first.to_json())
    board = IncidentBoard(js, idle=0.2)
    board.start()
    try:
        assert not board.watching
        await board.ensure_running()
        assert [i.title for i in board.incidents.values()] == ["backup failed"]
        second = Incident.open(ev(title="vm crashed", kind="vm.crashed", vmid=101))
        await kv.put(incident_key(second.fingerprint), second.to_json())
        await wait_until(lambda: len(board.incidents) == 2, what="the watch sees a new incident")
        page = board.page(window=600)
        assert [i.title for i in page.open] == ["vm crashed", "backup failed"]
        assert (page.recent, page.total, page.open_total, page.more) == ([], 2, 2, False)
        # Past the correlation window an incident is listed as recent, no longer open.
        page = board.page(window=600, now=time.time() + 601)
        assert page.open == []
        assert [i.title for i in page.recent] == ["vm crashed", "backup failed"]
        # A page of one: the newest, then the next.
        page = board.page(window=600, limit=1)
        assert ([i.title for i in page.open], page.more) == (["vm crashed"], True)
        page = board.page(window=600, skip=1, limit=1)
        assert ([i.title for i in page.open], page.more) == (["backup failed"], False)
        await wait_until(lambda: not board.watching, timeout=5, what="idle: watch stopped")
        assert board.incidents == {}

    finally:
        await board.stop()


async def test_each_live_filter_narrows_the_first_screen_and_the_live_stream(
    nc: Any, js: Any
) -> None:
    """site, node, severity (a floor), kind (a glob) and source, one at a time and together."""
    await ensure_streams(js, ServiceSettings(_env_file=None).stream_limits())  # type: ignore[call-arg]

    def mix() -> list[Any]:
        return [
            ev(
                title="a",
                site="lab",
                node="pve1",
                severity="info",
                kind="vm.started",
                source="syslog",
            ),
            ev(
                title="b",
                site="home",
                node="pve2",
                severity="error",
                kind="vm.stopped",
                source="email",
            ),
            ev(
                title="c",
                site="lab",
                node="pve2",
                severity="warning",
                kind="backup.failed",
                source="pve-api",
            ),
            ev(
                title="d",
                site="home",
                node="pve1",
                severity="critical",
                kind="vm.crashed",
                source="syslog",
            ),
        ]

    cases = {
        "site=home": (EventFilter(site="home"), ["b", "d"]),
        "node=pve2": (EventFilter(node="pve2"), ["b", "c"]),
        "severity>=warning": (EventFilter(severity="warning"), ["b", "c", "d"]),
        "kind=vm.*": (EventFilter(kind="vm.*"), ["a", "b", "d"]),
        "source=syslog": (EventFilter(source="syslog"), ["a", "d"]),
        "site=lab,kind=vm.*": (EventFilter(site="lab", kind="vm.*"), ["a"]),
        "none": (EventFilter(), ["a", "b", "c", "d"]),
    }
    await publish(js, *mix())
    feed = EventFeed(nc, js, size=50)
    await feed.start()
    try:
        await feed.ensure_running()
        clients = {name: feed.connect(f) for name, (f, _) in cases.items()}
        for name, (f, titles) in cases.items():
            assert sorted(e.title for e in feed.newest(f)) == titles, name
        await publish(js, *mix())  # new ids: the same four arrive live
        for name, (_, titles) in cases.items():
            queue = clients[name].queue
            await wait_until(lambda q=queue, n=titles: q.qsize() == len(n), what=name)
            got = sorted(clients[name].get_nowait().title for _ in titles)
            assert got == titles, name
    finally:
        await feed.stop()
    # From the page's query string: unknown severities are ignored, values are bounded.
    f = EventFilter.from_query({"severity": "loud", "node": " pve1 ", "kind": "k" * 500})
    assert (f.severity, f.node, len(f.kind)) == ("", "pve1", 128)


async def test_recent_events_and_each_live_page_are_bounded_in_bytes(nc: Any, js: Any) -> None:
    """Anyone on the bus can publish events up to NATS's max_payload (1 MiB): the console's
    memory is bounded by bytes, not only by a number of events."""
    from proxbus_dispatcher.console.feed import CLIENT_BYTES, MAX_EVENT_BYTES

    feed = EventFeed(nc, js, size=500, max_bytes=1024 * 1024)
    big = [ev(title=f"big {i}", metadata={"blob": "x" * 100_000}).to_json() for i in range(50)]
    client = feed.connect(EventFilter())
    for raw in big:
        feed.add(raw)
    assert feed.recent_bytes == sum(len(r) for r in feed.recent)
    assert feed.recent_bytes <= 1024 * 1024
    assert feed.recent[-1] == big[-1]  # the newest are kept
    assert 5 <= len(feed.recent) <= 10
    # A page that takes nothing holds at most CLIENT_BYTES; what it takes frees its budget.
    assert client.queued_bytes <= CLIENT_BYTES
    assert client.dropped >= 50 - CLIENT_BYTES // 100_000
    first = client.get_nowait()
    assert first.title == "big 0"
    assert client.queued_bytes <= CLIENT_BYTES - 100_000
    # An event bigger than MAX_EVENT_BYTES is not kept at all (counted).
    huge = ev(title="huge", metadata={"blob": "y" * MAX_EVENT_BYTES}).to_json()
    feed.add(huge)
    assert feed.oversize == 1
    assert huge not in feed.recent


async def test_the_feed_follows_the_stream_and_lets_its_consumer_go_when_idle(
    nc: Any, js: Any
) -> None:
    """Live events come from PROXBUS_EVENTS (at a multi-site hub the sites' events are only
    there: tests/test_multisite.py); the back-fill stops where the follower starts."""
    from proxbus_events import EVENTS_STREAM

    await ensure_streams(js, ServiceSettings(_env_file=None).stream_limits())  # type: ignore[call-arg]
    await publish(js, *(ev(title=f"old {i}") for i in range(3)))
    feed = EventFeed(nc, js, size=50, idle=0.2)
    await feed.start()
    try:
        await feed.ensure_running()
        assert feed.reading == f"{EVENTS_STREAM} from sequence 4", feed.reading
        assert len(await js.consumers_info(EVENTS_STREAM)) == 1  # the follower's
        client = feed.connect(EventFilter())
        await publish(js, *(ev(title=f"new {i}") for i in range(3)))
        await wait_until(lambda: client.queue.qsize() == 3, timeout=5, what="live events")
        assert [client.get_nowait().title for _ in range(3)] == ["new 0", "new 1", "new 2"]
        titles = [e.title for e in feed.newest(EventFilter())]
        assert titles == ["new 2", "new 1", "new 0", "old 2", "old 1", "old 0"]
        assert len(feed.recent) == 6  # nothing both back-filled and live
        feed.disconnect(client)
        await wait_until(lambda: not feed.subscribed, timeout=5, what="idle")
        assert await js.consumers_info(EVENTS_STREAM) == []  # its consumer is deleted
    finally:
        await feed.stop()


async def test_without_jetstream_the_feed_shows_the_publishes(
    make_nats_server: Any,
) -> None:
    import nats

    server = make_nats_server(jetstream=False)
    client_nc = await nats.connect(server.url)
    feed = EventFeed(client_nc, client_nc.jetstream(timeout=2), size=50)
    await feed.start()
    try:
        await feed.ensure_running()
        assert feed.reading.startswith("proxbus.events.> publishes"), feed.reading
        client = feed.connect(EventFilter())
        event = ev(title="published")
        await client_nc.publish("proxbus.events.lab.syslog.error.pve1", event.to_json())
        got = await asyncio.wait_for(client.get(), 5)
        assert got.id == event.id
    finally:
        await feed.stop()
        await client_nc.close()


async def test_an_oom_reports_detail_lines_do_not_push_what_came_before_out_of_the_feed(
    nc: Any, js: Any
) -> None:
    """An OOM report is up to 2,000 detail lines (ingest-syslog's kernel-oom-report window)
    before its kill: they keep a quarter of the recent events' places, not all of them."""
    await ensure_streams(js, ServiceSettings(_env_file=None).stream_limits())  # type: ignore[call-arg]
    detail = {"detail_of": "oom.kill", "rule": "kernel-oom-report"}
    # Back-filled from the stream: 10 events, then a report's 60 detail lines.
    await publish(js, *(ev(title=f"before {i}") for i in range(10)))
    await publish(
        js, *(ev(title=f"frame {i}", severity="info", metadata=detail) for i in range(60))
    )
    feed = EventFeed(nc, js, size=40, idle=60)
    await feed.start()
    try:
        await feed.ensure_running()
        titles = [e.title for e in feed.newest(EventFilter())]
        assert titles == [f"before {i}" for i in reversed(range(10))]
        # Live: 2,000 more detail lines, then the kill.
        for i in range(60, 2060):
            feed.add(ev(title=f"frame {i}", severity="info", metadata=detail).to_json())
        feed.add(ev(title="OOM kill in VM 101", kind="oom.kill").to_json())
        titles = [e.title for e in feed.newest(EventFilter())]
        assert titles == ["OOM kill in VM 101", *(f"before {i}" for i in reversed(range(10)))]
        # With the details: the newest of them (a quarter of 40), in their place.
        titles = [e.title for e in feed.newest(EventFilter(details=True))]
        assert titles[:11] == ["OOM kill in VM 101", *(f"frame {i}" for i in range(2059, 2049, -1))]
        assert titles[11:] == [f"before {i}" for i in reversed(range(10))]
        assert feed.recent_bytes == sum(len(r) for r in feed.recent) + sum(
            len(r) for r in feed.details
        )
    finally:
        await feed.stop()


def test_the_node_filter_shows_the_ha_services_on_that_node_as_routes_do() -> None:
    # An HA service's ha.state is about no node (its node in metadata.service_node, ingest-
    # syslog rules.py, ingest-pve-ws diff.py/clusterlog.py); a route node=pve1 gets it
    # (stages/routing.route_matches), the live page's node=pve1 left it out.
    on_pve1 = ev(kind="ha.state", node=None, vmid=100, title="HA service vm:100: starting service",
                 metadata={"sid": "vm:100", "service_node": "pve1"})  # fmt: skip
    nowhere = ev(kind="ha.state", node=None, vmid=100, title="HA service vm:100: started → fence",
                 metadata={"sid": "vm:100"})  # fmt: skip
    damaged = ev(kind="ha.state", node=None, metadata={"service_node": ["pve1"]})
    own = ev(kind="ha.state", node="pve2", metadata={"service_node": "pve1"})
    pve1 = EventFilter(node="pve1")
    assert pve1.matches(on_pve1)
    assert not pve1.matches(nowhere)
    assert not pve1.matches(damaged)
    assert not pve1.matches(own)  # an event about a node is that node's
    assert EventFilter(node="pve2").matches(own)
    assert not EventFilter(node="pve2").matches(on_pve1)


def test_the_node_filter_shows_a_lost_peer_as_that_node_reported_it_as_routes_do() -> None:
    # knet's link.down of a lost peer is about no node, the survivor that logged it in
    # metadata.reporter (proxbus_events.knet); a route node=pve2 gets it (route_matches), so
    # the live page's node=pve2 shows it too; an HA service line's reporter (the CRM master)
    # is not the service's node and does not count.
    lost = ev(kind="link.down", node=None, title="Cluster link 0 to host 3 is down",
              metadata={"reporter": "pve2", "subject_id": "knet host 3"})  # fmt: skip
    crm = ev(kind="ha.state", node=None, vmid=100, title="HA service vm:100: started → fence",
             metadata={"sid": "vm:100", "reporter": "pve2"})  # fmt: skip
    assert EventFilter(node="pve2").matches(lost)
    assert not EventFilter(node="pve1").matches(lost)
    assert not EventFilter(node="pve2").matches(crm)
    assert reported_by(lost) == "pve2"
    assert reported_by(crm) == ""  # an HA service's line: its CRM master is no stand-in
    assert reported_by(ev(kind="link.down", node="pve1", metadata={"reporter": "pve2"})) == ""
