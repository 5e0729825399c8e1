"""The Simulator: lab state, PVE/PBS/admin listeners, task hooks and state transitions."""

from __future__ import annotations

import secrets
import shutil
import tempfile
import time
from dataclasses import dataclass, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from . import pbs_api, pve_backup, pve_cluster, pve_devices, pve_jobs, pve_provision
from .auth import PBS_ROLES, PVE_ROLES, ApiToken, AuthStore
from .control import ControlMixin
from .emit import Emitter
from .errors import ApiError
from .model import Guest, Storage
from .pve_agent import ROUTES as AGENT_ROUTES
from .pve_agent import GuestAgentExec
from .pve_guests import guest_routes
from .router import Route, Router
from .scenario import Scenario, build_lab
from .schema import SchemaIndex
from .server import ApiServer, RequestRecord
from .tasks import ClusterLog, Task, TaskManager
from .tasks_api import task_routes
from .tls import TlsMaterial, generate_tls
from .views import disk_volume


def pve_routes() -> list[Route]:
    """Every PVE route the simulator serves."""
    return [
        *pve_cluster.ROUTES,
        *pve_jobs.ROUTES,
        *guest_routes(),
        *pve_backup.ROUTES,
        *pve_provision.ROUTES,
        *pve_devices.ROUTES,
        *AGENT_ROUTES,
        *task_routes("PVE"),
    ]


def pbs_routes() -> list[Route]:
    """Every PBS route the simulator serves."""
    return list(pbs_api.ROUTES)


@dataclass(slots=True)
class PveTokens:
    """Ready PVE API tokens: admin (Administrator on /), operator (VM admin), auditor, watcher."""

    admin: ApiToken
    operator: ApiToken
    auditor: ApiToken
    watcher: ApiToken


@dataclass(slots=True)
class PbsTokens:
    """Ready PBS API tokens: admin (Admin on /) and auditor (Audit on /)."""

    admin: ApiToken
    auditor: ApiToken


class Simulator(ControlMixin):
    """A simulated PVE cluster + PBS over HTTPS; use ``async with Simulator(...) as sim``."""

    def __init__(
        self,
        scenario: Scenario | None = None,
        *,
        host: str = "127.0.0.1",
        pve_port: int = 8006,
        pbs_port: int = 8007,
        admin_port: int | None = None,
        instant: bool = False,
        task_seconds: float | None = None,
    ) -> None:
        self.scenario = scenario or build_lab()
        self.lab = self.scenario.lab
        durations = dict(self.scenario.task_seconds)
        if task_seconds is not None:
            durations = {"default": task_seconds}
        self.host = host
        self.pve_tasks = TaskManager("PVE", durations, instant=instant)
        self.pbs_tasks = TaskManager("PBS", durations, instant=instant)
        self.cluster_log = ClusterLog()
        self.emitter = Emitter()
        self.emitter.configure(self.scenario.targets)
        self.cache: dict[str, Any] = {}
        self.backup_files: dict[tuple[str, str], list[dict[str, Any]]] = {}
        self.backup_sources: dict[str, Guest] = {}
        self.faults_pve_backup: dict[int, str] = {}
        self.pbs_corrupt: set[tuple[str, str]] = set()
        self.agent_exec = GuestAgentExec()  # agent/exec pids, results and what was run
        self.admin_token = secrets.token_urlsafe(24)
        self._ports = (pve_port, pbs_port, admin_port)
        self._setup_auth()
        self.pve_tasks.on_start.append(self._task_started)
        self.pve_tasks.on_end.append(self._task_ended)
        self._workdir: Path | None = None
        self.tls: TlsMaterial | None = None
        self.pve: ApiServer | None = None
        self.pbs: ApiServer | None = None
        self.admin: Any = None

    def _setup_auth(self) -> None:
        sec = self.scenario.tokens
        self.pve_auth = AuthStore("PVE", PVE_ROLES)
        self.pve_auth.add_user("root@pam", self.scenario.root_password, [("/", "Administrator")])
        a = self.pve_auth
        self.tokens = PveTokens(
            admin=a.add_token("root@pam", "admin", [("/", "Administrator")], sec.get("admin")),
            operator=a.add_token(
                "operator@pve",
                "ops",
                [("/", "PVEAuditor"), ("/vms", "PVEVMAdmin"), ("/storage", "PVEDatastoreUser")],
                sec.get("operator"),
            ),
            auditor=a.add_token("auditor@pve", "ro", [("/", "PVEAuditor")], sec.get("auditor")),
            watcher=a.add_token(
                "watcher@pve", "watch", [("/", "ProxbusWatcher")], sec.get("watcher")
            ),
        )
        self.pbs_auth = AuthStore("PBS", PBS_ROLES)
        self.pbs_auth.add_user("root@pam", self.scenario.root_password, [("/", "Admin")])
        self.pbs_tokens = PbsTokens(
            admin=self.pbs_auth.add_token(
                "root@pam", "admin", [("/", "Admin")], sec.get("pbs_admin")
            ),
            auditor=self.pbs_auth.add_token(
                "auditor@pbs", "ro", [("/", "Audit")], sec.get("pbs_auditor")
            ),
        )

    # lifecycle -------------------------------------------------------------------------
    async def start(self) -> None:
        """Generate certificates and bind the PVE, PBS and (optional) admin listeners."""
        from .admin import AdminServer

        self._workdir = Path(tempfile.mkdtemp(prefix="pvesim-"))
        self.tls = generate_tls(self._workdir, self.lab.local_node)
        pve_port, pbs_port, admin_port = self._ports
        self.pve = self.pve_listener(pve_port)
        try:
            await self.pve.start()
            if self.lab.pbs is not None:
                self.pbs = ApiServer(
                    service="PBS",
                    sim=self,
                    router=Router(pbs_routes()),
                    schema=SchemaIndex("pbs"),
                    auth=self.pbs_auth,
                    tls=self.tls,
                    host=self.host,
                    port=pbs_port,
                )
                await self.pbs.start()
            if admin_port is not None:
                self.admin = AdminServer(self, self.host, admin_port)
                await self.admin.start()
        except BaseException:
            await self.stop()
            raise

    def pve_listener(self, port: int = 0) -> ApiServer:
        """A PVE API listener (not started) serving this simulated cluster.

        ``start()`` builds the main one with it; a second one stands for another cluster
        member's API (same model, tokens and certificate): see
        ``proxbus_pvesim.testing.member_listener``.
        """
        if self.tls is None:
            raise RuntimeError("start the simulator first: listeners need its certificate")
        return ApiServer(
            service="PVE",
            sim=self,
            router=Router(pve_routes()),
            schema=SchemaIndex("pve"),
            auth=self.pve_auth,
            tls=self.tls,
            host=self.host,
            port=port,
        )

    async def stop(self) -> None:
        """Stop listeners and tasks, flush emissions, remove generated files."""
        for srv in (self.admin, self.pbs, self.pve):
            if srv is not None:
                await srv.stop()
        await self.pve_tasks.close()
        await self.pbs_tasks.close()
        await self.emitter.close()
        if self._workdir is not None:
            shutil.rmtree(self._workdir, ignore_errors=True)
            self._workdir = None

    async def __aenter__(self) -> Simulator:
        await self.start()
        return self

    async def __aexit__(
        self, et: type[BaseException] | None, e: BaseException | None, tb: TracebackType | None
    ) -> None:
        await self.stop()

    # connection facts ------------------------------------------------------------------
    def _srv(self, srv: ApiServer | None) -> ApiServer:
        if srv is None:
            raise RuntimeError("simulator is not started (or has no PBS)")
        return srv

    @property
    def pve_port(self) -> int:
        """Bound PVE port."""
        return self._srv(self.pve).port

    @property
    def pbs_port(self) -> int:
        """Bound PBS port."""
        return self._srv(self.pbs).port

    @property
    def admin_port(self) -> int | None:
        """Bound admin port (None when disabled)."""
        return None if self.admin is None else int(self.admin.port)

    @property
    def pve_url(self) -> str:
        """``https://127.0.0.1:<port>``."""
        return self._srv(self.pve).url

    @property
    def pbs_url(self) -> str:
        """``https://127.0.0.1:<port>`` of the PBS API."""
        return self._srv(self.pbs).url

    @property
    def ca_path(self) -> Path:
        """PEM file of the generated CA (pass as ``verify_ssl`` / ``verify``)."""
        if self.tls is None:
            raise RuntimeError("simulator is not started")
        return self.tls.ca_path

    @property
    def fingerprint(self) -> str:
        """SHA-256 fingerprint of the server certificate (``AA:BB:...``)."""
        return self.tls.fingerprint if self.tls else ""

    @property
    def pbs_name(self) -> str:
        """Host name of the simulated PBS."""
        return self.lab.pbs.name if self.lab.pbs else "pbs1"

    @property
    def request_count(self) -> int:
        """Requests that reached the PVE and PBS listeners."""
        return sum(s.request_count for s in (self.pve, self.pbs) if s is not None)

    @property
    def request_log(self) -> list[RequestRecord]:
        """Recent requests (PVE then PBS), oldest first."""
        return [r for s in (self.pve, self.pbs) if s is not None for r in s.request_log]

    # state transitions used by handlers ------------------------------------------------
    def check_node_reachable(self, node: str) -> None:
        """Raise what the API answers when proxying to an unknown or offline node."""
        n = self.lab.nodes.get(node)
        if n is None:
            raise ApiError(
                500,
                f"hostname lookup '{node[:64]}' failed - failed to get address "
                f"info for: {node[:64]}: Name or service not known",
            )
        if not n.online:
            raise ApiError(595, "No route to host")

    def set_guest_running(self, g: Guest) -> None:
        """Mark a guest started now."""
        g.status, g.qmpstatus, g.started_at = "running", "running", time.time()
        self.lab.bump()

    def set_guest_stopped(self, g: Guest, task: Task | None = None) -> None:
        """Mark a guest stopped; QEMU guests log qmeventd cleanup lines like the real host."""
        g.status, g.qmpstatus, g.started_at = "stopped", "stopped", None
        self.lab.bump()
        if g.kind == "qemu":
            pid = 900 + self.lab.nodes[g.node].nodeid
            self.emitter.log(g.node, "qmeventd", pid, "info", f"Starting cleanup for {g.vmid}")
            self.emitter.log(g.node, "qmeventd", pid, "info", f"Finished cleanup for {g.vmid}")

    def record_backup(self, storage: Storage, g: Guest, size: int) -> str:
        """Store a finished backup (PBS snapshot or dump file) and return its file name."""
        if storage.type == "pbs" and self.lab.pbs is not None:
            ds = self.lab.pbs.datastores.get(storage.datastore or "")
            if ds is not None:
                snap = pve_backup.backup_snapshot_for(g, size)
                snap.ns = storage.namespace or ""
                ds.add_namespace(snap.ns)
                ds.snapshots.append(snap)
                self.backup_sources[pve_backup.pbs_volid(storage.storage, snap)] = replace(
                    g, snapshots=[], disks=dict(g.disks)
                )
                ds.used += size // 3
                return (
                    f"{snap.backup_type}/{snap.backup_id}/"
                    f"{time.strftime('%Y-%m-%dT%H:%M:%SZ', time.gmtime(snap.backup_time))}"
                )
        stamp = time.strftime("%Y_%m_%d-%H_%M_%S")
        ext = "vma.zst" if g.kind == "qemu" else "tar.zst"
        name = f"vzdump-{g.kind}-{g.vmid}-{stamp}.{ext}"
        self.backup_sources[f"{storage.storage}:backup/{name}"] = replace(
            g, snapshots=[], disks=dict(g.disks)
        )
        self.backup_files.setdefault((storage.storage, g.node), []).append(
            {
                "volid": f"{storage.storage}:backup/{name}",
                "format": ext,
                "subtype": g.kind,  # pve-storage Plugin.pm: archive_info type
                "size": size,
                "vmid": g.vmid,
                "ctime": int(time.time()),
                "content": "backup",
            }
        )
        return f"{storage.path or '/var/lib/vz'}/dump/{name}"

    def storage_volumes(self, s: Storage, node: str) -> list[dict[str, Any]]:
        """Volumes of a storage as ``.../content`` lists them."""
        if "images" in s.content:
            return [
                {
                    "volid": disk_volume(g, key),
                    "format": "raw",
                    "size": size,
                    "vmid": g.vmid,
                    "content": "images" if g.kind == "qemu" else "rootdir",
                }
                for g in self.lab.guests_on(node)
                if g.storage == s.storage
                for key, size in g.disk_sizes().items()
            ]
        if s.type == "pbs" and self.lab.pbs is not None:
            ds = self.lab.pbs.datastores.get(s.datastore or "")
            out = []
            # a PBS storage sees its own namespace only (pve-storage PBSPlugin ``namespace``)
            for snap in (x for x in ds.snapshots if x.ns == (s.namespace or "")) if ds else []:
                item: dict[str, Any] = {
                    "volid": pve_backup.pbs_volid(s.storage, snap),
                    "size": snap.size,
                    "format": f"pbs-{snap.backup_type}",
                    "content": "backup",
                    "ctime": snap.backup_time,
                    "vmid": int(snap.backup_id),
                    "protected": int(snap.protected),
                }
                if snap.verify_state:
                    item["verification"] = {
                        "state": snap.verify_state,
                        "upid": snap.verify_upid or "",
                    }
                out.append(item)
            return out
        out = [
            {
                "volid": f"{s.storage}:iso/debian-13.1.0-amd64-netinst.iso",
                "format": "iso",
                "size": 783_286_272,
                "content": "iso",
                "ctime": 1757000000,
            },
            {
                "volid": f"{s.storage}:vztmpl/debian-13-standard_13.1-2_amd64.tar.zst",
                "format": "tzst",
                "size": 129_381_212,
                "content": "vztmpl",
                "ctime": 1757000000,
            },
        ]
        return out + self.backup_files.get((s.storage, node), [])

    def remove_volume(self, s: Storage, node: str, volid: str) -> bool:
        """Delete a backup archive (dump file or PBS snapshot); False when it is gone already."""
        self.backup_sources.pop(volid, None)
        if s.type == "pbs" and self.lab.pbs is not None:
            ds = self.lab.pbs.datastores.get(s.datastore or "")
            for snap in ds.snapshots if ds else []:
                if (
                    snap.ns == (s.namespace or "")
                    and pve_backup.pbs_volid(s.storage, snap) == volid
                ):
                    assert ds is not None
                    ds.snapshots.remove(snap)
                    ds.used = max(0, ds.used - snap.size // 3)
                    return True
            return False
        files = self.backup_files.get((s.storage, node), [])
        for item in files:
            if item["volid"] == volid:
                files.remove(item)
                return True
        return False

    # task hooks ------------------------------------------------------------------------
    def _daemon_pid(self, node: str) -> int:
        n = self.lab.nodes.get(node)
        return 1400 + (n.nodeid if n else 0)

    def _task_started(self, task: Task) -> None:
        pid = self._daemon_pid(task.node)
        msg = f"starting task {task.upid}"
        self.cluster_log.add(task.node, pid, "pvedaemon", 6, task.user, msg)
        self.emitter.log(task.node, "pvedaemon", pid, "info", f"<{task.user}> {msg}")

    def _task_ended(self, task: Task) -> None:
        pid = self._daemon_pid(task.node)
        msg = f"end task {task.upid} {task.exitstatus}"
        pri, sev = (3, "err") if task.failed else (6, "info")
        self.cluster_log.add(task.node, pid, "pvedaemon", pri, task.user, msg)
        self.emitter.log(task.node, "pvedaemon", pid, sev, f"<{task.user}> {msg}")
        self.lab.bump()
