"""Lost knet peers by name: node id → node name per cluster, from the gateway's NATS RPC.

corosync's kronosnet logs a lost peer by its node id only (``host: 3 link: 0 is down``;
``proxbus_events.knet`` keeps it in ``metadata.peer_nodeid``). Before the filter stages see
an event carrying one, ``PeerNames.name`` sets ``metadata.peer_node`` (``pve3``) when the
cluster's map knows the id: routes, silences and inhibit rules on ``node`` then match the
lost peer (``routing.stand_in_nodes``), and notifications name it (``templates``). The map
comes from the gateway's ``get_cluster_status`` tool (Proxmox ``GET /cluster/status``: pve-manager
``PVE/API2/Cluster.pm`` gives each member's ``name`` and its corosync ``nodeid``; a node
without a cluster is listed with ``nodeid`` 0), asked on ``proxbus.rpc.<site>.<tool>``: only
a gateway serving the event's site (its cluster) answers (``DESIGN.md``, multi-site).

A cluster's map is asked for when an event with a peer id of that site arrives and the map
is missing, older than ``ttl`` (node ids change only when a node joins or leaves), or lacks
the id and was asked for more than ``MIN_INTERVAL`` seconds ago (a node just added). Every
ask of a batch runs at once under ``timeout`` in all; a site whose gateway is absent (no
responders) is not asked again for ``ABSENT_PAUSE`` seconds, one that timed out or failed
for ``FAILED_PAUSE``: intake is never held longer than ``timeout`` per batch. A map that
cannot be refreshed is kept (stale names beat none). Without a name the event is left as it
was. Bounded: ``MAX_CLUSTERS`` maps (least recently used forgotten), ``MAX_NODES`` names
each; an answer that is not what the tool returns is counted and logged (rate-limited),
never raised.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import re
import time
from collections import Counter, OrderedDict
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

from nats.aio.client import Client as NATS
from proxbus_events import Event
from proxbus_runtime import RateLimitedLog, RpcError, RpcTimeout, RpcUnavailable, call_tool

from ..metrics import DispatcherMetrics
from .routing import PEER_NODE_KEY

log = logging.getLogger(__name__)

PEER_NODEID_KEY = "peer_nodeid"  # proxbus_events.knet: the lost peer's corosync node id
CLUSTER_STATUS_TOOL = "get_cluster_status"
DEFAULT_TTL = 600.0
MIN_INTERVAL = 30.0  # between two asks of one site for an id its map lacks
ABSENT_PAUSE = 5.0  # as the Enricher: no gateway serves the site
FAILED_PAUSE = 30.0  # a gateway that timed out or answered an error
MAX_CLUSTERS = 64
MAX_NODES = 512  # names kept per cluster
MAX_ASKS = 4  # sites asked per batch
MAX_NODEID = 2**32 - 1  # corosync's nodeid is a uint32
# pve-common src/PVE/JSONSchema.pm ``pve_verify_node_name`` (format ``pve-node``), at most a
# DNS label long
_NODE_NAME = re.compile(r"[a-zA-Z0-9](?:[a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?")


@dataclass(slots=True)
class ClusterNames:
    """What ``parse_cluster_status`` read: node id → name, and what it left out (reason →
    count). ``usable`` is False when the answer was not the tool's shape at all."""

    names: dict[int, str]
    dropped: Counter[str] = field(default_factory=Counter)
    usable: bool = True


def _nodeid(value: object) -> int | None:
    """A corosync node id as the API gives it (an integer; a string of digits tolerated)."""
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 10:
        value = int(value)
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return value if 0 <= value <= MAX_NODEID else None


def parse_cluster_status(answer: object, max_nodes: int = MAX_NODES) -> ClusterNames:
    """Node id → name from a ``get_cluster_status`` answer (``{"nodes": [{"name",
    "nodeid", ...}]}``, ``proxbus_mcp_gateway.tools.inventory``); pure, never raises.

    An entry that is no object, has no node id, or a name that is no Proxmox node name is
    left out (counted); so is every id two entries give different names (a site of several
    PVE clusters: ids repeat, the name would be a guess), and every entry past ``max_nodes``
    names. A standalone node's id 0 (no corosync) names no peer and is skipped silently.
    """
    if not isinstance(answer, dict):
        return ClusterNames({}, Counter({"answer is not an object": 1}), usable=False)
    nodes = answer.get("nodes")
    if not isinstance(nodes, list):
        return ClusterNames({}, Counter({"answer has no nodes list": 1}), usable=False)
    out = ClusterNames({})
    names, dropped = out.names, out.dropped
    clashing: set[int] = set()
    for seen, item in enumerate(nodes):
        if len(names) + len(clashing) >= max_nodes:
            dropped["more nodes than kept"] += len(nodes) - seen
            break
        if not isinstance(item, dict):
            dropped["node entry is not an object"] += 1
            continue
        nodeid = _nodeid(item.get("nodeid"))
        if nodeid is None:
            dropped["no valid node id"] += 1
            continue
        name = item.get("name")
        if not isinstance(name, str) or not _NODE_NAME.fullmatch(name):
            dropped["not a node name"] += 1
            continue
        if nodeid == 0:
            continue
        if nodeid in clashing:
            dropped["node id of two names"] += 1
            continue
        known = names.get(nodeid)
        if known is not None and known != name:
            del names[nodeid]
            clashing.add(nodeid)
            dropped["node id of two names"] += 2
            continue
        names[nodeid] = name
    return out


def peer_nodeid(event: Event) -> int | None:
    """The lost peer's node id an event carries (``metadata.peer_nodeid``), else ``None``."""
    value = event.metadata.get(PEER_NODEID_KEY)
    if not isinstance(value, int) or isinstance(value, bool):
        return None
    return value


@dataclass(slots=True)
class _Cluster:
    names: dict[int, str] = field(default_factory=dict)
    fetched: float | None = None  # when the map was last read (monotonic), None: never
    retry_at: float = 0.0  # not asked again before


class PeerNames:
    """Sets ``metadata.peer_node`` from per-cluster node id → name maps (see the module)."""

    def __init__(
        self,
        nc: NATS,
        metrics: DispatcherMetrics,
        *,
        enabled: bool = True,
        timeout: float = 0.5,
        ttl: float = DEFAULT_TTL,
        tool: str = CLUSTER_STATUS_TOOL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._nc = nc
        self._metrics = metrics
        self.enabled = enabled
        self.timeout = timeout
        self.ttl = ttl
        self._tool = tool
        self._clock = clock
        self._clusters: OrderedDict[str, _Cluster] = OrderedDict()
        self._bad = RateLimitedLog(log, f"unusable {tool} answers", interval=600.0)
        self._failed = RateLimitedLog(log, f"failed {tool} calls", interval=600.0)

    def known(self, cluster: str, nodeid: int) -> str | None:
        """The name of node ``nodeid`` in ``cluster`` as last learned, else ``None``."""
        found = self._clusters.get(cluster)
        return None if found is None else found.names.get(nodeid)

    def name_known(self, event: Event) -> bool:
        """Set ``metadata.peer_node`` from what is already known, asking nothing (the console
        names the bus's events with it: they carry only the node id); whether it named one."""
        if PEER_NODEID_KEY not in event.metadata:  # most events: one dict lookup
            return False
        nodeid = peer_nodeid(event)
        name = None if nodeid is None else self.known(event.site, nodeid)
        if name is None:
            event.metadata.pop(PEER_NODE_KEY, None)  # the dispatcher's key, not a sender's
            return False
        event.metadata[PEER_NODE_KEY] = name
        return True

    async def name(self, events: Iterable[Event]) -> bool:
        """Set ``metadata.peer_node`` on the events carrying a peer id whose name is known,
        asking the gateway first for the sites whose map is due (at most ``timeout``);
        whether it named one."""
        wanted: list[tuple[Event, int]] = []
        for event in events:
            if PEER_NODEID_KEY in event.metadata:  # most events: one dict lookup
                nodeid = peer_nodeid(event)
                if nodeid is not None:
                    wanted.append((event, nodeid))
        if not wanted:
            return False
        if self.enabled:
            now = self._clock()
            due: list[str] = []
            for event, nodeid in wanted:
                if event.site not in due and len(due) < MAX_ASKS and self._due(event, nodeid, now):
                    due.append(event.site)
            if due:
                await self._ask(due)
        named = False
        for event, _ in wanted:
            named = self.name_known(event) or named
        return named

    def _due(self, event: Event, nodeid: int, now: float) -> bool:
        found = self._clusters.get(event.site)
        if found is None:
            return True
        self._clusters.move_to_end(event.site)
        if now < found.retry_at:
            return False
        if found.fetched is None or now - found.fetched >= self.ttl:
            return True
        return nodeid not in found.names and now - found.fetched >= MIN_INTERVAL

    def _cluster(self, site: str) -> _Cluster:
        found = self._clusters.get(site)
        if found is None:
            found = self._clusters[site] = _Cluster()
            while len(self._clusters) > MAX_CLUSTERS:
                self._clusters.popitem(last=False)
        return found

    async def _ask(self, sites: list[str]) -> None:
        tasks = {site: asyncio.create_task(self._fetch(site)) for site in sites}
        _, pending = await asyncio.wait(tasks.values(), timeout=self.timeout)
        if not pending:
            return
        for site, task in tasks.items():
            if task in pending:
                task.cancel()
                self._metrics.peer_names.labels("timeout").inc()
                self._cluster(site).retry_at = self._clock() + FAILED_PAUSE
        with contextlib.suppress(asyncio.CancelledError):
            await asyncio.gather(*pending, return_exceptions=True)

    async def _fetch(self, site: str) -> None:
        outcome, pause = "ok", MIN_INTERVAL
        answer: Any = None
        try:
            answer = await call_tool(
                self._nc,
                self._tool,
                {},
                timeout=self.timeout,
                caller="dispatcher",
                # an absent gateway must cost intake nothing more than one round trip
                no_responders_grace=0,
                cluster=site,
            )
        except RpcUnavailable:
            outcome, pause = "absent", ABSENT_PAUSE
        except RpcTimeout:
            outcome, pause = "timeout", FAILED_PAUSE
        except RpcError as exc:
            outcome, pause = "error", FAILED_PAUSE
            self._failed.record(f"error {exc.code}", site)
        except Exception as exc:  # a closed connection, a draining client: never intake's end
            outcome, pause = "error", FAILED_PAUSE
            self._failed.record(type(exc).__name__, site)
        cluster = self._cluster(site)
        now = self._clock()
        cluster.retry_at = now + pause
        if outcome == "ok":
            parsed = parse_cluster_status(answer)
            for reason, count in parsed.dropped.items():
                self._metrics.peer_names_dropped.labels(reason).inc(count)
                self._bad.record(reason, site)
            if parsed.usable:
                cluster.names, cluster.fetched = parsed.names, now
            else:
                outcome, cluster.retry_at = "invalid", now + FAILED_PAUSE
        self._metrics.peer_names.labels(outcome).inc()
