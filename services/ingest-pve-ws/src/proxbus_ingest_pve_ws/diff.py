"""``/cluster/resources`` + HA status snapshots and the facts in their difference. Pure, no I/O."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any

from proxbus_events import (
    Event,
    Severity,
    Source,
    compute_fingerprint,
    deterministic_event_id,
    guest_id,
    short_host,
)

# Task types after which a guest is legitimately stopped (or gone from this node).
_STOP_TASK_NAMES = """qmstop vzstop qmshutdown vzshutdown qmigrate vzmigrate qmdestroy vzdestroy
vzdump qmsuspend vzsuspend qmreboot vzreboot qmrestore vzrestore hastop hamigrate harelocate
qmclone qmmove qmreset"""
STOP_TASKS = frozenset(_STOP_TASK_NAMES.split())
START_TASKS = frozenset({"qmstart", "vzstart", "hastart"})
CLOCK_SLACK = 10  # seconds of clock difference tolerated between PVE and the watcher
NO_UPTIME_WINDOW = 300  # stop tasks considered when the guest's boot time is unknown
_HA_BAD = {"error": Severity.ERROR, "fence": Severity.ERROR, "recovery": Severity.WARNING}


@dataclass(slots=True)
class Thresholds:
    """Storage fill levels: ``warn``/``crit`` fractions and the hysteresis to go back."""

    warn: float = 0.85
    crit: float = 0.95
    hysteresis: float = 0.02


@dataclass(slots=True)
class Snapshot:
    """What the watcher knows about a cluster at ``taken_at`` (JSON-serialisable)."""

    taken_at: float
    guests: dict[str, dict[str, Any]] = field(default_factory=dict)
    nodes: dict[str, str] = field(default_factory=dict)
    storage: dict[str, dict[str, Any]] = field(default_factory=dict)
    ha: dict[str, dict[str, Any]] = field(default_factory=dict)
    quorate: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any] | None) -> Snapshot | None:
        if not data or not isinstance(data.get("taken_at"), int | float):
            return None
        return cls(
            taken_at=float(data["taken_at"]),
            guests=dict(data.get("guests") or {}),
            nodes=dict(data.get("nodes") or {}),
            storage=dict(data.get("storage") or {}),
            ha=dict(data.get("ha") or {}),
            quorate=data.get("quorate"),
        )


def storage_level(fraction: float, previous: int, t: Thresholds) -> int:
    """0 normal, 1 above ``warn``, 2 above ``crit``; going down needs ``hysteresis`` below."""
    up = 2 if fraction >= t.crit else 1 if fraction >= t.warn else 0
    if up >= previous:
        return up
    # Falling: only step down once clearly below the threshold that was crossed.
    if previous == 2 and fraction >= t.crit - t.hysteresis:
        return 2
    if previous >= 1 and fraction >= t.warn - t.hysteresis:
        return 1
    return up


def _add_resource(
    snap: Snapshot,
    r: Mapping[str, Any],
    prev_storage: Mapping[str, Any],
    thresholds: Thresholds,
) -> None:
    """Add one ``/cluster/resources`` entry to ``snap``.

    Raises:
        TypeError, ValueError: the entry has fields of the wrong type.
    """
    rtype = r.get("type")
    vmid = r.get("vmid")
    if rtype in ("qemu", "lxc"):
        if isinstance(vmid, bool) or not isinstance(vmid, int) or not 0 < vmid <= 999_999_999:
            return
        if r.get("template"):
            return
        snap.guests[str(r["vmid"])] = {
            "type": rtype,
            "status": str(r.get("status") or "unknown"),
            "node": str(r.get("node") or ""),
            "uptime": int(r.get("uptime") or 0),
            "name": str(r.get("name") or ""),
        }
        if isinstance(r.get("pid"), int):  # not in /cluster/resources today; used when present
            snap.guests[str(r["vmid"])]["pid"] = r["pid"]
    elif rtype == "node" and isinstance(r.get("node"), str):
        snap.nodes[r["node"]] = str(r.get("status") or "unknown")
    elif rtype == "storage" and isinstance(r.get("storage"), str):
        total, used = r.get("maxdisk") or 0, r.get("disk") or 0
        if not isinstance(total, int | float) or total <= 0:
            return
        fraction = float(used) / float(total)
        shared = bool(r.get("shared"))
        # A shared storage is listed once per node with the same usage: track it once.
        key = f"_/{r['storage']}" if shared else f"{r.get('node') or '_'}/{r['storage']}"
        if key in snap.storage:
            return
        prev_level = int(prev_storage.get(key, {}).get("level", 0))
        snap.storage[key] = {
            "storage": r["storage"],
            "node": str(r.get("node") or ""),
            "shared": shared,
            "fraction": round(fraction, 4),
            "used": int(used),
            "total": int(total),
            "level": storage_level(fraction, prev_level, thresholds),
        }


def build_snapshot(
    resources: Iterable[Mapping[str, Any]],
    ha_status: Iterable[Mapping[str, Any]] | None,
    *,
    now: float,
    previous: Snapshot | None,
    thresholds: Thresholds,
) -> Snapshot:
    """A snapshot from ``/cluster/resources`` and ``/cluster/ha/status/current`` entries."""
    snap = Snapshot(taken_at=now)
    prev_storage = previous.storage if previous else {}
    for r in resources:
        try:
            _add_resource(snap, r, prev_storage, thresholds)
        except (TypeError, ValueError, OverflowError):
            continue  # one malformed entry must not stop the watcher
    for h in ha_status or ():
        if h.get("type") == "service" and isinstance(h.get("sid"), str):
            snap.ha[h["sid"]] = {
                "state": str(h.get("state") or ""),
                "node": str(h.get("node") or ""),
            }
            if isinstance(h.get("crm_state"), str) and h["crm_state"]:
                snap.ha[h["sid"]]["crm_state"] = h["crm_state"]
        elif h.get("type") == "quorum" and "quorate" in h:
            snap.quorate = bool(h.get("quorate"))
    return snap


def _crm_state(ha: Mapping[str, Any]) -> str:
    """A service's state as the CRM names it (``crm_state``), else the verbose ``state``."""
    return str(ha.get("crm_state") or ha.get("state") or "")


def _explained(vmid: str, run_start: float, tasks: Iterable[Mapping[str, Any]]) -> bool:
    for t in tasks:
        ttype = t.get("type", t.get("worker_type"))
        tid = str(t.get("id", t.get("worker_id")) or "")
        start = t.get("starttime")
        if (
            ttype in STOP_TASKS
            and tid == vmid
            and isinstance(start, int)
            and start >= run_start - CLOCK_SLACK
        ):
            return True
    return False


def _started_since(vmid: str, since: float, tasks: Iterable[Mapping[str, Any]]) -> bool:
    """A start task for ``vmid`` began after ``since`` and did not fail."""
    for t in tasks:
        ttype = t.get("type", t.get("worker_type"))
        tid = str(t.get("id", t.get("worker_id")) or "")
        start = t.get("starttime")
        status = t.get("status")
        if (
            ttype in START_TASKS
            and tid == vmid
            and isinstance(start, int)
            and start > since  # PVE and watcher clocks NTP-synced; one missed start at worst
            and (status is None or status == "OK" or str(status).startswith("WARNINGS"))
        ):
            return True
    return False


def restart_evidence(
    vmid: str, was: Mapping[str, Any], now: Mapping[str, Any], prev_at: float, cur_at: float,
    tasks: Iterable[Mapping[str, Any]],
) -> str | None:  # fmt: skip
    """Why a guest running in both snapshots runs a new process now (or None).

    PVE reports a running guest's uptime as the age of its process (qemu-server
    ``PVE/QemuServer.pm`` ``vmstatus``: host uptime minus the process start time), so a boot
    time later than the previous one is a new process; a changed ``pid`` where the entry has
    one; or a successful start task since the previous snapshot (the guest must have stopped).
    """
    if was.get("pid") and now.get("pid") and was["pid"] != now["pid"]:
        return "pid"
    was_up = int(was.get("uptime") or 0)
    if was_up > 0:
        prev_boot = prev_at - was_up
        cur_boot = cur_at - int(now.get("uptime") or 0)
        if cur_boot > prev_boot + CLOCK_SLACK:
            return "uptime"
    if _started_since(vmid, prev_at, tasks):
        return "start task"
    return None


def diff_snapshots(
    prev: Snapshot,
    cur: Snapshot,
    tasks: list[Mapping[str, Any]],
    *,
    cluster: str,
    site: str,
) -> list[Event]:
    """Facts nobody announced, between two snapshots of one cluster.

    ``tasks`` are the ``/cluster/tasks`` entries (running and finished) read *after*
    ``cur``'s resources, so any stop that led to ``cur`` has its task in the list.
    """
    events: list[Event] = []

    def emit(
        kind: str,
        severity: Severity,
        node: str | None,
        title: str,
        message: str,
        ident: tuple[object, ...],
        vmid: int | None = None,
        fingerprint_title: str | None = None,
        **meta: Any,
    ) -> None:
        short = short_host(node) if node else None
        events.append(
            Event(
                id=deterministic_event_id(prev.taken_at, cluster, *ident),
                source=Source.PVE_API,
                site=site,
                node=short,
                severity=severity,
                kind=kind,
                title=title,
                message=message,
                timestamp=cur.taken_at,
                vmid=vmid,
                fingerprint=compute_fingerprint(
                    kind, site, short, vmid, fingerprint_title or title
                ),
                metadata={"cluster": cluster, **meta},
            )
        )

    for name, status in sorted(cur.nodes.items()):
        before = prev.nodes.get(name)
        went_down = before == "online" and status != "online"
        came_back = before is not None and before != "online" and status == "online"
        if went_down or came_back:
            emit(
                "node.offline",
                Severity.ERROR if went_down else Severity.INFO,
                name,
                f"Node {name} is {status}" if went_down else f"Node {name} is back online",
                f"Node {name} went from {before} to {status} (cluster {cluster}).",
                (name, "node.offline" if went_down else "node.online", prev.taken_at),
                fingerprint_title=f"node {name} offline",
                previous=before,
                status=status,
                resolved=came_back,
            )

    for vmid, g in sorted(cur.guests.items(), key=lambda kv: int(kv[0])):
        was = prev.guests.get(vmid)
        if not was or was["status"] != "running" or g["status"] != "stopped":
            continue
        if cur.nodes.get(g["node"], "online") != "online":
            continue  # the node is gone; node.offline tells that story
        uptime = int(was.get("uptime") or 0)
        run_start = prev.taken_at - uptime if uptime > 0 else prev.taken_at - NO_UPTIME_WINDOW
        if _explained(vmid, run_start, tasks):
            continue
        guest = "VM" if g["type"] == "qemu" else "CT"
        label = f"{guest} {vmid}" + (f" ({g['name']})" if g["name"] else "")
        emit(
            "vm.crashed",
            Severity.CRITICAL,
            g["node"],
            f"{label} stopped unexpectedly on {g['node']}",
            f"{label} was running on {g['node']} and is now stopped, with no stop, shutdown "
            f"or migration task for it since it started.",
            (vmid, "crashed", int(run_start)),
            vmid=int(vmid),
            fingerprint_title=f"{guest} crashed",
            previous_uptime=uptime,
            guest_type=g["type"],
        )

    for vmid, g in sorted(cur.guests.items(), key=lambda kv: int(kv[0])):
        was = prev.guests.get(vmid)
        if not was or was["status"] != "running" or g["status"] != "running":
            continue
        if was["node"] != g["node"]:
            continue  # moved: a migration, or HA recovery after a node loss (node.offline)
        evidence = restart_evidence(vmid, was, g, prev.taken_at, cur.taken_at, tasks)
        if evidence is None:
            continue
        uptime = int(was.get("uptime") or 0)
        run_start = prev.taken_at - uptime if uptime > 0 else prev.taken_at - NO_UPTIME_WINDOW
        if _explained(vmid, run_start, tasks):
            continue  # stopped/rebooted by a task: a restart someone asked for
        guest = "VM" if g["type"] == "qemu" else "CT"
        label = f"{guest} {vmid}" + (f" ({g['name']})" if g["name"] else "")
        emit(
            "vm.crashed",
            Severity.CRITICAL,
            g["node"],
            f"{label} crashed and was started again on {g['node']}",
            f"{label} was running on {g['node']} and now runs a new process ({evidence}), "
            "with no stop, shutdown, reboot or migration task for it since it started.",
            (vmid, "crashed", int(run_start)),
            vmid=int(vmid),
            fingerprint_title=f"{guest} crashed",
            previous_uptime=uptime,
            guest_type=g["type"],
            restarted=True,
            evidence=evidence,
        )

    for key, s in sorted(cur.storage.items()):
        before_level = int(prev.storage.get(key, {}).get("level", 0))
        level = int(s["level"])
        if level == before_level:
            continue
        pct = f"{s['fraction'] * 100:.1f}%"
        where = "shared" if s["shared"] else s["node"]
        name = f"storage {s['storage']} on {where}"
        if level > before_level:
            sev = Severity.ERROR if level == 2 else Severity.WARNING
            title = f"Storage {s['storage']} on {where} is {pct} full"
        else:
            sev = Severity.WARNING if level == 1 else Severity.INFO
            title = f"Storage {s['storage']} on {where} back to {pct}"
        emit(
            "storage.full",
            sev,
            None if s["shared"] else s["node"],
            title,
            f"{name}: {s['used']} of {s['total']} bytes used ({pct}).",
            (key, "storage", before_level, level),
            fingerprint_title=f"storage {s['storage']} full",
            storage=s["storage"],
            fraction=s["fraction"],
            level=level,
            previous_level=before_level,
            resolved=level == 0,
        )

    for sid, h in sorted(cur.ha.items()):
        ha_was = prev.ha.get(sid)
        if ha_was is None:
            continue
        # The CRM's state (crm_state: Manager.pm's service state, the one its syslog line
        # "service 'vm:N': state changed from 'a' to 'b'" names), not the verbose one (Tools.pm
        # get_verbose_service_state: 'started' not yet running is 'starting'), so the API
        # and syslog report one change with one state; the verbose state where the manager
        # has none for the service yet ('queued', 'deleting').
        state, was_state = _crm_state(h), _crm_state(ha_was)
        if state == was_state:
            continue
        sev = _HA_BAD.get(state, Severity.INFO)
        where = f" on {h['node']}" if h["node"] else ""  # the event has no node: the title says
        vmid_s = sid.split(":", 1)[-1]
        # About no node, as ingest-syslog and the cluster log say it: pve-ha-manager's CRM
        # master logs the change (Manager.pm change_service_state) naming the service's node
        # only when the change sets it, so no node is named by every source; the service's
        # node (API2/HA/Status.pm: the manager's service node) goes in service_node.
        emit(
            "ha.state",
            sev,
            None,
            f"HA {sid} is {state}{where} (was {was_state})",
            f"HA service {sid} changed from {was_state} to {state} on {h['node']}.",
            (sid, "ha", was_state, state),
            vmid=guest_id(vmid_s),
            fingerprint_title=f"ha {sid} state",
            sid=sid,
            state=state,
            previous_state=was_state,
            verbose_state=h["state"],
            **({"service_node": short_host(h["node"])} if h["node"] else {}),
        )

    if prev.quorate is True and cur.quorate is False:
        emit(
            "quorum.lost",
            Severity.ERROR,
            None,
            f"Cluster {cluster} lost quorum",
            f"The HA manager reports cluster {cluster} as not quorate.",
            ("quorum.lost",),
        )
    return events
