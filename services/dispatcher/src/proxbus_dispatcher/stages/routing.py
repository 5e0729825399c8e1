"""Route matching, as Alertmanager does it: depth-first, first match wins unless ``continue``."""

from __future__ import annotations

from collections.abc import Iterable

from proxbus_events import Event, Matcher

from ..config import ALL_LABELS, GROUP_LABELS, Route

ALL_LABEL_NAMES = tuple(sorted(GROUP_LABELS))
# metadata key of an HA service's node (ingest-syslog rules.py, ingest-pve-ws clusterlog.py
# and diff.py): a service's ``ha.state`` is about no node (one fingerprint per service)
SERVICE_NODE_KEY = "service_node"
# metadata key of the node that logged an event about no node (proxbus_events.knet)
REPORTER_KEY = "reporter"
# metadata key of a lost knet peer's node name (stages/peers.py, from metadata.peer_nodeid)
PEER_NODE_KEY = "peer_node"


def route_matches(matchers: Iterable[Matcher], event: Event) -> bool:
    """Whether every matcher (of a route, a silence or an inhibit rule) matches ``event``
    (none: every event). A ``node`` matcher of an event about no node reads the nodes it
    stands for (``stand_in_nodes``): ``=``/``=~`` match when one of them does, ``!=``/``!~``
    when none is excluded (``node != pve3`` is not a lost pve3 reported by pve1). Costs one
    comparison per matcher for any other event."""
    for matcher in matchers:
        if matcher.name == "node" and event.node is None:
            stand_ins = stand_in_nodes(event)
            if stand_ins:
                check = any if matcher.op in ("=", "=~") else all
                if not check(matcher.matches_value(node) for node in stand_ins):
                    return False
                continue
        if not matcher.matches(event):
            return False
    return True


def stand_in_nodes(event: Event) -> tuple[str, ...]:
    """The nodes a ``node`` matcher reads for an event about no node (``route_matches``; the
    console's node filter reads the same): the HA service's node (``metadata.service_node``:
    a route ``node = pve2`` gets the state changes of the services on pve2); else, for a line
    that is not an HA service's (whose reporter is the CRM master, not the service's node),
    the lost peer's name (``metadata.peer_node``, set by ``stages/peers.py`` from its knet
    node id) and the node that reported it (``metadata.reporter``): a route, a silence
    ``node = pve3`` covers pve3's loss as its survivors tell it, and one ``node = pve1``
    still gets what pve1 logged. Empty for an event about a node or naming none."""
    if event.node is not None:
        return ()
    meta = event.metadata
    node = meta.get(SERVICE_NODE_KEY)
    if isinstance(node, str):
        return (node,)
    if "sid" in meta:
        return ()
    peer, reporter = meta.get(PEER_NODE_KEY), meta.get(REPORTER_KEY)
    if isinstance(peer, str):
        return (peer, reporter) if isinstance(reporter, str) and reporter != peer else (peer,)
    return (reporter,) if isinstance(reporter, str) else ()


def stand_in_node(event: Event) -> str | None:
    """The node an event about no node is shown under (the console's ``reported by``): the
    HA service's node, else the reporter of a line that is not an HA service's; None for an
    event about a node or naming neither. Matching reads ``stand_in_nodes``."""
    if event.node is not None:
        return None
    meta = event.metadata
    node = meta.get(SERVICE_NODE_KEY)
    if not isinstance(node, str) and "sid" not in meta:
        node = meta.get(REPORTER_KEY)
    return node if isinstance(node, str) else None


def match_routes(route: Route, event: Event) -> list[Route]:
    """The routes ``event`` ends up on (each names one receiver); empty if ``route`` does not match.

    A matching route descends into its children in order; the first matching child stops the
    search unless it has ``continue: true``. A matching route whose children all miss is itself
    the match.
    """
    if not route_matches(route.matchers, event):
        return []
    matched: list[Route] = []
    for child in route.routes:
        found = match_routes(child, event)
        if found:
            matched.extend(found)
            if not child.continue_:
                break
    return matched or [route]


def label_value(event: Event, label: str) -> str:
    value = getattr(event, label)
    if value is None:
        return ""
    return str(value.value if hasattr(value, "value") else value)


def event_labels(event: Event) -> dict[str, str]:
    """Every group label of ``event`` (``ALL_LABEL_NAMES``), as ``label_value`` gives each one;
    spelled out because an incident records them for every event (nine ``getattr`` calls were
    a tenth of opening an incident)."""
    vmid = event.vmid
    return {
        "correlation_id": event.correlation_id or "",
        "fingerprint": event.fingerprint,
        "kind": event.kind,
        "node": event.node or "",
        "severity": event.severity.value,
        "site": event.site,
        "source": event.source.value,
        "title": event.title,
        "vmid": "" if vmid is None else str(vmid),
    }


def group_labels(route: Route, event: Event | dict[str, str]) -> dict[str, str]:
    """The ``group_by`` label values on ``route`` of ``event`` (or of stored label values)."""
    labels = ALL_LABEL_NAMES if route.group_by == (ALL_LABELS,) else route.group_by
    if isinstance(event, dict):
        return {label: event.get(label, "") for label in labels}
    return {label: label_value(event, label) for label in labels}


def group_key(route: Route, labels: dict[str, str]) -> str:
    """A readable, unique key of an aggregation group: route id + label values."""
    inner = ",".join(f"{k}={v!r}" for k, v in sorted(labels.items()))
    return f"{route.id}:{{{inner}}}"
