"""Fault injection and scenario events (the Python API behind the admin endpoint)."""

from __future__ import annotations

import time
from typing import TYPE_CHECKING, Any

from .emit import Emitter, SmtpTarget, SyslogTarget, WebhookTarget
from .faults import DropRule, ErrorRule
from .model import Guest, Lab
from .notify import fencing_notification, package_updates_notification, replication_notification
from .tasks import ClusterLog

if TYPE_CHECKING:
    from .server import ApiServer

_REASONS = {
    500: "Internal Server Error",
    502: "Bad Gateway",
    503: "Service Unavailable",
    504: "Gateway Timeout",
    595: "Connection timed out",
    596: "Broken pipe",
}


class ControlMixin:
    """Fault and event methods of :class:`~proxbus_pvesim.simulator.Simulator`."""

    lab: Lab
    emitter: Emitter
    cluster_log: ClusterLog
    faults_pve_backup: dict[int, str]
    pbs_corrupt: set[tuple[str, str]]
    pve: ApiServer | None
    pbs: ApiServer | None
    _forced_quorum: bool | None = None

    if TYPE_CHECKING:  # provided by the Simulator

        def set_guest_stopped(self, g: Guest, task: Any = None) -> None: ...

    def _guest(self, vmid: int) -> Guest:
        g = self.lab.guests.get(int(vmid))
        if g is None:
            raise KeyError(f"no guest {vmid}")
        return g

    def _server(self, service: str) -> ApiServer:
        srv = self.pve if service.lower() == "pve" else self.pbs
        if srv is None:
            raise RuntimeError(f"{service} API is not configured or not started")
        return srv

    def _other_online(self, node: str) -> str | None:
        return next((n.name for n in self.lab.nodes.values() if n.online and n.name != node), None)

    # guests -----------------------------------------------------------------------------
    def crash_guest(self, vmid: int) -> None:
        """The guest dies: state ``stopped`` with no task (QEMU: qmeventd cleanup lines)."""
        g = self._guest(vmid)
        if g.kind == "qemu" and g.running:
            self.emitter.log(
                g.node,
                "kernel",
                None,
                "err",
                f"kvm[{10000 + g.vmid}]: segfault at 0 ip 0000000000000000 "
                "sp 00007ffd00000000 error 14 in qemu-system-x86_64",
                "kern",
            )
        self.set_guest_stopped(g)

    def fail_next_backup(
        self, vmid: int, error: str = "job failed with err -5 - Input/output error"
    ) -> None:
        """The next vzdump of ``vmid`` fails with ``error`` (task exit status ``job errors``)."""
        self._guest(vmid)
        self.faults_pve_backup[int(vmid)] = error

    def corrupt_backup(self, vmid: int, backup_type: str = "vm") -> None:
        """PBS verification of this backup group fails from now on."""
        self.pbs_corrupt.add((backup_type, str(vmid)))

    # nodes and cluster --------------------------------------------------------------------
    def _recompute_quorum(self) -> None:
        if self._forced_quorum is not None:
            self.lab.quorate = self._forced_quorum
            return
        online = sum(n.online for n in self.lab.nodes.values())
        was = self.lab.quorate
        self.lab.quorate = online * 2 > len(self.lab.nodes)
        if was and not self.lab.quorate:
            self._log_quorum_lost()

    def _log_quorum_lost(self) -> None:
        for n in self.lab.nodes.values():
            if n.online:
                self.emitter.log(
                    n.name,
                    "corosync",
                    1100 + n.nodeid,
                    "notice",
                    "  [QUORUM] This node is within the non-primary component "
                    "and will NOT provide any services.",
                )
                self.emitter.log(
                    n.name, "pmxcfs", 1000 + n.nodeid, "notice", "[status] notice: node lost quorum"
                )

    def set_node_offline(self, node: str, fence: bool = False) -> None:
        """Node drops out of the cluster; with ``fence`` the HA stack fences it and recovers."""
        n = self.lab.nodes[node]
        if not n.online:
            return
        n.online = False
        reporter = self._other_online(node)
        if reporter is not None:
            rn = self.lab.nodes[reporter]
            pid = 1100 + rn.nodeid
            for line in (
                f"  [KNET  ] link: host: {n.nodeid} link: 0 is down",
                f"  [KNET  ] host: host: {n.nodeid} has no active links",
                f"  [TOTEM ] A new membership (1.{int(time.time()) % 4096:x}) was "
                f"formed. Members left: {n.nodeid}",
            ):
                self.emitter.log(reporter, "corosync", pid, "notice", line)
        self._recompute_quorum()
        if fence:
            self._fence(node, reporter)
        self.lab.bump()

    def _fence(self, node: str, reporter: str | None) -> None:
        ha = [g for g in self.lab.guests.values() if g.node == node and g.ha]
        if reporter is None or not self.lab.quorate:
            return
        pid = 1200 + self.lab.nodes[reporter].nodeid
        crm = [
            f"node '{node}': state changed from 'online' => 'unknown'",
            *(f"service 'vm:{g.vmid}': state changed from 'started' to 'fence'" for g in ha),
            f"node '{node}': state changed from 'unknown' => 'fence'",
        ]
        for line in crm:
            self.emitter.log(reporter, "pve-ha-crm", pid, "info", line)
        states = {n.name: "online" if n.online else "unknown" for n in self.lab.nodes.values()}
        res = [
            (f"vm:{g.vmid}", g.node, "fence" if g.node == node else g.status)
            for g in self.lab.guests.values()
            if g.ha
        ]
        cluster = self.lab.cluster_name or "standalone"
        self.emitter.notify(fencing_notification(node, cluster, reporter, states, res, False))
        self.emitter.log(
            reporter,
            "pve-ha-crm",
            pid,
            "info",
            f"successfully acquired lock 'ha_agent_{node}_lock'",
        )
        self.emitter.log(
            reporter,
            "pve-ha-crm",
            pid,
            "info",
            f"fencing: acknowledged - got agent lock for node '{node}'",
        )
        self.emitter.log(
            reporter,
            "pve-ha-crm",
            pid,
            "info",
            f"node '{node}': state changed from 'fence' => 'unknown'",
        )
        for g in self.lab.guests_on(node):
            g.status, g.qmpstatus, g.started_at = "stopped", "stopped", None
        for g in ha:
            g.node = reporter
            g.status, g.qmpstatus, g.started_at = "running", "running", time.time()
            self.emitter.log(
                reporter,
                "pve-ha-crm",
                pid,
                "info",
                f"recover service 'vm:{g.vmid}' from fenced node '{node}' to node '{reporter}'",
            )
        self.cluster_log.add(
            reporter,
            pid,
            "pve-ha-crm",
            2,
            "root@pam",
            f"fencing: acknowledged - got agent lock for node '{node}'",
        )
        res = [(f"vm:{g.vmid}", g.node, g.status) for g in self.lab.guests.values() if g.ha]
        self.emitter.notify(fencing_notification(node, cluster, reporter, states, res, True))

    def fence_node(self, node: str) -> None:
        """Shorthand for ``set_node_offline(node, fence=True)``."""
        self.set_node_offline(node, fence=True)

    def set_node_online(self, node: str) -> None:
        """Node rejoins the cluster."""
        n = self.lab.nodes[node]
        n.online = True
        n.boot_time = time.time()
        self._recompute_quorum()
        self.lab.bump()

    def set_quorum(self, quorate: bool | None) -> None:
        """Force quorum on/off (writes then fail with ``cluster not ready - no quorum?``).

        ``None`` returns to quorum computed from online nodes.
        """
        was = self.lab.quorate
        self._forced_quorum = quorate
        self._recompute_quorum()
        if was and not self.lab.quorate and quorate is False:
            self._log_quorum_lost()
        self.lab.bump()

    def fill_storage(self, storage: str, percent: float, node: str | None = None) -> None:
        """Set a storage's usage to ``percent`` (on one node, or everywhere)."""
        s = self.lab.storages[storage]
        frac = max(0.0, min(100.0, float(percent))) / 100
        if node is None or s.shared:
            s.used_fraction = frac
            s.per_node_fraction.clear()
        else:
            s.per_node_fraction[node] = frac
        self.lab.bump()

    # request faults -----------------------------------------------------------------------
    def add_latency(self, prefix: str, seconds: float, service: str = "pve") -> None:
        """Delay requests under an API path prefix (e.g. ``/cluster``); 0 removes the rule."""
        rules = self._server(service).faults.latency
        if seconds <= 0:
            rules.pop(prefix, None)
        else:
            rules[prefix] = float(seconds)

    def fail_requests(
        self,
        prefix: str,
        status: int = 500,
        count: int | None = None,
        reason: str | None = None,
        service: str = "pve",
    ) -> None:
        """Answer requests under ``prefix`` with ``status`` (``count`` times or until cleared)."""
        self._server(service).faults.errors.append(
            ErrorRule(prefix, int(status), reason or _REASONS.get(int(status), "error"), count)
        )

    def drop_connections(
        self, prefix: str = "/", count: int | None = None, service: str = "pve"
    ) -> None:
        """Close the TCP connection without answering for requests under ``prefix``."""
        self._server(service).faults.drops.append(DropRule(prefix, count))

    def clear_faults(self) -> None:
        """Remove latency, error and drop rules and pending backup/verify failures."""
        for srv in (self.pve, self.pbs):
            if srv is not None:
                srv.faults.clear()
        self.faults_pve_backup.clear()
        self.pbs_corrupt.clear()

    async def stop_api(self, service: str = "pve") -> None:
        """Close the listener and its connections: clients get connection refused."""
        await self._server(service).stop()

    async def start_api(self, service: str = "pve") -> None:
        """Reopen a stopped listener on the same port."""
        await self._server(service).start()

    # emitted events -----------------------------------------------------------------------
    def set_targets(
        self,
        smtp: tuple[str, int] | None = None,
        syslog: tuple[str, int] | None = None,
        syslog_protocol: str = "udp",
        syslog_format: str = "rfc3164",
        webhook_url: str | None = None,
        webhook_secret: str | None = None,
    ) -> None:
        """Configure where mails, syslog lines and webhook posts go (None leaves unchanged)."""
        if smtp is not None:
            self.emitter.smtp = SmtpTarget(
                smtp[0],
                int(smtp[1]),
                f"root@{self.lab.fqdn(self.lab.local_node)}",
                f"root@{self.lab.domain}",
            )
        if syslog is not None:
            self.emitter.syslog = SyslogTarget(
                syslog[0], int(syslog[1]), syslog_protocol, syslog_format
            )
        if webhook_url is not None:
            self.emitter.webhook = WebhookTarget(webhook_url, webhook_secret)

    def fail_replication(
        self,
        job_id: str = "100-0",
        target: str | None = None,
        error: str = "command 'zfs send' failed: exit code 1",
    ) -> None:
        """Emit a failed replication job (mail/webhook + pvescheduler syslog)."""
        vmid = int(job_id.split("-")[0]) if job_id.split("-")[0].isdigit() else 100
        g = self.lab.guests.get(vmid)
        node = g.node if g else self.lab.local_node
        tgt = target or self._other_online(node) or node
        now = int(time.time())
        for job in self.lab.replication:
            if job.id == job_id:
                job.last_try, job.fail_count, job.error = now, job.fail_count + 1, error
        self.emitter.log(
            node,
            "pvescheduler",
            1300,
            "err",
            f"{job_id}: got unexpected replication job error - {error}",
        )
        self.emitter.notify(replication_notification(node, job_id, tgt, error))

    def announce_package_updates(self, node: str | None = None) -> None:
        """Emit the ``New software packages available`` notification for a node."""
        node = node or self.lab.local_node
        pkgs = [
            ("pve-manager", "9.1.1", "9.1.2"),
            ("proxmox-kernel-6.17", "6.17.2-1", "6.17.2-2"),
            ("qemu-server", "9.1.0", "9.1.1"),
        ]
        self.emitter.notify(package_updates_notification(node, self.lab.fqdn(node), pkgs))

    def ha_status(self) -> list[dict[str, Any]]:
        """Body of ``/cluster/ha/status/current``."""
        lab, now = self.lab, int(time.time())
        master = next((n.name for n in lab.nodes.values() if n.online), lab.local_node)
        stamp = time.strftime("%a %b %d %H:%M:%S %Y", time.localtime(now))
        out: list[dict[str, Any]] = [
            {
                "id": "quorum",
                "type": "quorum",
                "node": master,
                "quorate": int(lab.quorate),
                "status": "OK" if lab.quorate else f"No quorum on node '{master}'!",
            },
            {
                "id": "master",
                "type": "master",
                "node": master,
                "timestamp": now,
                "status": f"{master} (active, {stamp})",
            },
        ]
        for n in lab.nodes.values():
            status = (
                f"{n.name} (active, {stamp})"
                if n.online
                else f"{n.name} (old timestamp - dead?, {stamp})"
            )
            out.append(
                {
                    "id": f"lrm:{n.name}",
                    "type": "lrm",
                    "node": n.name,
                    "status": status,
                    "timestamp": now if n.online else now - 120,
                }
            )
        for g in lab.guests.values():
            if not g.ha:
                continue
            state = "started" if g.running else "stopped"
            if not lab.nodes[g.node].online:
                state = "fence"
            out.append(
                {
                    "id": f"service:vm:{g.vmid}",
                    "type": "service",
                    "sid": f"vm:{g.vmid}",
                    "node": g.node,
                    "state": state,
                    "request_state": "started",
                    "crm_state": state,
                    "max_restart": 1,
                    "max_relocate": 1,
                    "failback": True,
                    "status": f"vm:{g.vmid} ({g.node}, {state})",
                }
            )
        return out
