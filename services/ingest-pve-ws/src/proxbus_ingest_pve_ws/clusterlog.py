"""``/cluster/log`` entries → kind, node, vmid: the shared rule table, keyed by the entry's tag.

Pure, no I/O. The cluster log carries what the daemons wrote with their syslog tag
(pve-cluster ``src/PVE/Cluster.pm`` ``log_msg``); the rules are the subset of the syslog
service's that can appear there. Fencing lines are about the fenced node, not the node
that reported them (DESIGN.md "Kind vocabulary"); an HA service's state is about no node.
pve-ha-manager writes its lines to syslog only (``src/PVE/HA/Env/PVE2.pm`` ``log``; nothing
in it calls ``PVE::Cluster::log_msg``), so a real cluster log does not carry the HA rules'
lines: they are kept in step with ingest-syslog's for a log that does (tests/
test_ha_across_sources.py).
"""

from __future__ import annotations

import re
from typing import TYPE_CHECKING

from proxbus_events.classification import (
    ANY_PROGRAM,
    Builder,
    Classification,
    Rule,
    RuleTable,
    rule,
)
from proxbus_events.knet import KnetLinks, knet_link_down, knet_link_up
from proxbus_events.proxmox import guest_id

if TYPE_CHECKING:
    from .tasks import LogEntry  # annotations only: tasks imports this module

FALLBACK_KIND = "syslog.message"
_HA_NODES = "pve-ha-manager src/PVE/HA/NodeStatus.pm"
# a node's return to the membership (NodeStatus.pm update) ends its node.offline
_NODE_RETURNS = frozenset({("unknown", "online"), ("gone", "online")})


def _about_node(kind: str) -> Builder[LogEntry]:
    def build(m: re.Match[str], entry: LogEntry) -> Classification:
        node = m["node"]
        groups = m.groupdict()
        old, new = groups.get("old"), groups.get("new")
        meta = {"reporter": entry.node, "ha_node": node}
        if old:
            meta |= {"old_state": old, "new_state": new or "unknown"}
        if kind == "ha.state" and (old, new) in _NODE_RETURNS:
            meta["recovers"] = "node.offline"  # as ingest-syslog's _ha_node_state
        title = {
            "node.fencing": f"Fencing node {node}",
            "node.fenced": f"Node {node} fenced",
            "node.offline": f"Node {node} is offline (HA state {old} → unknown)",
        }.get(kind, f"HA node {node}: {old} → {new}")
        return Classification(kind=kind, title=title, node=node, metadata=meta)

    return build


_PARAM_NODE = re.compile(r"\(node = (?P<node>[^,)\s]{1,64})")


def _service(m: re.Match[str], entry: LogEntry) -> Classification:
    """An HA service's state: about no node, as ingest-syslog's ``_ha_service_state`` and the
    API diff (``diff.py``) say it, so one happening is one fingerprint (the line comes from
    the CRM master and names the service's node only in ``  (node = X)``: Manager.pm
    ``change_service_state``)."""
    sid = m["sid"]
    meta = {"sid": sid, "old_state": m["old"], "new_state": m["new"]}
    title = f"HA service {sid}: {m['old']} → {m['new']}"
    if param := _PARAM_NODE.search(entry.msg, m.end()):
        meta["service_node"] = param["node"]
        title += f" on {param['node']}"
    return Classification(
        kind="ha.state",
        title=title,
        vmid=guest_id(sid.partition(":")[2]),
        metadata=meta,
        no_node=True,
    )


def _titled(kind: str, title: str) -> Builder[LogEntry]:
    def build(m: re.Match[str], entry: LogEntry) -> Classification:
        return Classification(kind=kind, title=title)

    return build


# Titles in ingest-syslog's words for the same lines (its rules.py), so a notification names
# the happening, not the daemon's level word ("[status] notice:").
# knet's link lines are built by the code ingest-syslog builds them with (proxbus_events.knet:
# subject ``knet host N``, the peer), so one knet line through both services is one
# fingerprint (tests/test_clusterlog.py); ``classify_log_entry`` applies the watcher's memory
# of the links down per (node, peer) (``KnetLinks``) as ingest-syslog's classifier does.
def _link_down(m: re.Match[str], entry: LogEntry) -> Classification:
    return knet_link_down(int(m["host"]), int(m["link"]))


def _link_up(m: re.Match[str], entry: LogEntry) -> Classification:
    return knet_link_up(int(m["host"]), int(m["link"]))


def _auth(m: re.Match[str], entry: LogEntry) -> Classification:
    user, rhost = m["user"] or "", m["rhost"] or ""
    who = (f" for {user}" if user else "") + (f" from {rhost}" if rhost else "")
    meta = {**({"rhost": rhost} if rhost else {}), **({"user": user} if user else {})}
    return Classification(kind="auth.failed", title=f"Authentication failure{who}", metadata=meta)


def _r(
    name: str, tags: str, pattern: str, kind: str, build: Builder[LogEntry], source: str
) -> Rule[LogEntry]:
    return rule(name, tags, pattern, kind, build, source=source)


RULES: list[Rule[LogEntry]] = [
    _r("ha-fenced", "pve-ha-crm",
       r"fencing: acknowledged - got agent lock for node '(?P<node>[^']+)'", "node.fenced",
       _about_node("node.fenced"), _HA_NODES),
    _r("ha-fence", "pve-ha-crm",
       r"node '(?P<node>[^']+)': state changed from '(?P<old>\w+)' => 'fence'", "node.fencing",
       _about_node("node.fencing"), _HA_NODES),
    _r("ha-node-offline", "pve-ha-crm",
       r"node '(?P<node>[^']+)': state changed from '(?P<old>(?!fence')\w+)' => 'unknown'",
       "node.offline", _about_node("node.offline"), _HA_NODES),
    _r("ha-node-state", "pve-ha-crm",
       r"node '(?P<node>[^']+)': state changed from '(?P<old>\w+)' => '(?P<new>\w+)'",
       "ha.state", _about_node("ha.state"), _HA_NODES),
    _r("ha-service-state", "pve-ha-crm pve-ha-lrm",
       r"service '(?P<sid>[^']+)': state changed from '(?P<old>\w+)' to '(?P<new>\w+)'",
       "ha.state", _service, "pve-ha-manager src/PVE/HA/Manager.pm"),
    _r("quorum-lost", "pmxcfs", r"\[status\] notice: node lost quorum", "quorum.lost",
       _titled("quorum.lost", "Node lost quorum"), "pve-cluster src/pmxcfs/status.c"),
    _r("knet-link-down", "corosync",
       r"\[KNET\s*\] link: host: (?P<host>\d{1,5}) link: (?P<link>\d{1,3}) is down",
       "link.down", _link_down, "kronosnet libknet/threads_heartbeat.c"),
    _r("knet-link-up", "corosync",
       r"\[KNET\s*\] (?:rx|link|heartbeat): host: (?P<host>\d{1,5}) link: (?P<link>\d{1,3}) "
       r"is up$",
       FALLBACK_KIND, _link_up, "kronosnet libknet/threads_heartbeat.c, threads_rx.c"),
    _r("auth-failed", ANY_PROGRAM,
       r"authentication failure(?:; rhost=(?P<rhost>\S+)(?: user=(?P<user>\S+))?)?",
       "auth.failed", _auth, "pve-access-control src/PVE/API2/AccessControl.pm"),
]  # fmt: skip
TABLE: RuleTable[LogEntry] = RuleTable(RULES, FALLBACK_KIND)


_KNET_RULES = frozenset(("knet-link-down", "knet-link-up"))


def classify_log_entry(entry: LogEntry, links: KnetLinks | None = None) -> Classification:
    """What a cluster log entry means (program = its tag).

    ``links``: the watcher's memory of the knet links down per (node, peer), so a lost peer's
    second link down is a detail of its alert and a link up ends the alert only with the
    peer's last link (``proxbus_events.knet``); without it every knet line stands alone (a
    down is the peer's alert, an up ends it).
    """
    cls = TABLE.classify(entry.tag, entry.msg, entry)
    if links is not None and cls.rule in _KNET_RULES:
        links.classify(entry.node, cls, float(entry.time))
    return cls
