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


def route_matches(matchers: Iterable[Matcher], event: Event) -> bool:
    """Whether every matcher of a route matches ``event`` (none: every event). A ``node``
    matcher of an event about no node matches the node of the HA service it is about
    (``metadata.service_node``): a route ``node = pve2`` gets the state changes of the
    services on pve2; else the node that reported it (``metadata.reporter``: a lost knet
    peer's ``link.down`` and up lines as pve2 logged them; not an HA service's line, whose
    reporter is the CRM master, not the service's node). Costs one comparison per matcher
    for any other event."""
    for matcher in matchers:
        if matcher.name == "node" and event.node is None:
            stand_in = stand_in_node(event)
            if stand_in is not None:
                if not matcher.matches_value(stand_in):
                    return False
                continue
        if not matcher.matches(event):
            return False
    return True


def stand_in_node(event: Event) -> str | None:
    """The node a ``node`` matcher reads for an event about no node (see ``route_matches``;
    the console's node filter reads the same): the HA service's node, else the reporter of
    a line that is not an HA service's; None for an event about a node or naming neither."""
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
