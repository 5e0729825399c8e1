"""Scenario files (YAML/JSON) and the seeded default lab."""

from __future__ import annotations

import json
import random
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ScenarioError
from .model import (
    GIB,
    MIB,
    BackupJob,
    BackupSnapshot,
    Datastore,
    Guest,
    Lab,
    Node,
    PbsServer,
    ReplicationJob,
    Storage,
)

_VM_NAMES = [
    "web",
    "db",
    "app",
    "cache",
    "mail",
    "dns",
    "git",
    "ci",
    "mon",
    "proxy",
    "vpn",
    "files",
]
_CT_NAMES = ["nginx", "redis", "pihole", "grafana", "runner", "backup", "ntp", "ldap", "syncthing"]
_TAGS = ["prod", "dev", "staging", "web", "db", "infra", "monitoring", "k8s", "backup"]

# The keys a scenario may hold (README "Scenario file"): a misspelt one is an error, not a
# silently ignored setting.
_TOP_KEYS = frozenset({"seed", "site", "domain", "cluster", "standalone", "guests", "backup_jobs",
                       "replication", "pbs", "task_seconds", "root_password", "tokens",
                       "targets"})  # fmt: skip
_CLUSTER_KEYS = frozenset({"name", "nodes"})
_GUESTS_KEYS = frozenset({"qemu", "lxc", "list"})
_GUEST_KEYS = frozenset({"vmid", "type", "name", "node", "status", "tags", "cores", "memory",
                         "disk", "ha", "template", "agent"})  # fmt: skip
_BACKUP_JOB_KEYS = frozenset({"id", "vmid", "all", "exclude", "node"})
_REPLICATION_KEYS = frozenset({"guest", "target", "jobnum"})
_PBS_KEYS = frozenset({"name"})
_TARGET_KEYS = frozenset({"smtp", "syslog", "webhook"})


def _check_keys(spec: dict[Any, Any], known: frozenset[str], where: str) -> None:
    unknown = sorted(str(k) for k in spec if k not in known)
    if unknown:
        raise ScenarioError(
            f"unknown key {', '.join(map(repr, unknown))} in {where} "
            f"(known: {', '.join(sorted(known))})"
        )


def _int(value: Any, where: str, *, minimum: int = 0) -> int:
    """A whole number from the scenario, or a ``ScenarioError`` naming the key and value."""
    if isinstance(value, int) and not isinstance(value, bool):
        number = value
    elif isinstance(value, str) and value.strip().lstrip("-").isdigit():
        number = int(value)
    else:
        raise ScenarioError(f"{where} must be a whole number, got {value!r}")
    if number < minimum:
        raise ScenarioError(f"{where} must be at least {minimum}, got {value!r}")
    return number


def _float(value: Any, where: str) -> float:
    try:
        if isinstance(value, bool):
            raise ValueError
        number = float(value)
    except (TypeError, ValueError):
        raise ScenarioError(f"{where} must be a number, got {value!r}") from None
    if not number >= 0 or number == float("inf"):
        raise ScenarioError(f"{where} must be a number of seconds (0 or more), got {value!r}")
    return number


@dataclass(slots=True)
class Scenario:
    """Parsed scenario: the lab plus run options and emission targets."""

    lab: Lab
    seed: int = 42
    task_seconds: dict[str, float] = field(default_factory=lambda: {"default": 2.0})
    root_password: str = "pvesim"  # noqa: S105 - a simulator default, printed by the CLI
    tokens: dict[str, str] = field(default_factory=dict)
    targets: dict[str, Any] = field(default_factory=dict)


def _node_names(spec: Any) -> list[str]:
    if isinstance(spec, int) and not isinstance(spec, bool):
        return [f"pve{i}" for i in range(1, _int(spec, "cluster.nodes", minimum=1) + 1)]
    if isinstance(spec, list) and spec and all(isinstance(n, str) for n in spec):
        return list(spec)
    raise ScenarioError("cluster.nodes must be a count or a list of node names")


def _gen_guests(rng: random.Random, nodes: list[str], n_vm: int, n_ct: int) -> dict[int, Guest]:
    guests: dict[int, Guest] = {}
    now = time.time()
    vmid = 100
    for i in range(n_vm + n_ct):
        kind = "qemu" if i < n_vm else "lxc"
        if i == n_vm and n_vm:
            vmid = (vmid + 99) // 100 * 100
        base = rng.choice(_VM_NAMES if kind == "qemu" else _CT_NAMES)
        running = rng.random() < 0.75
        mem = (
            rng.choice([1, 2, 4, 8, 16]) * GIB
            if kind == "qemu"
            else rng.choice([512, 1024, 2048]) * MIB
        )
        g = Guest(
            vmid=vmid,
            kind=kind,
            name=f"{base}{i + 1:02d}",
            node=nodes[i % len(nodes)],
            status="running" if running else "stopped",
            qmpstatus="running" if running else "stopped",
            tags=tuple(sorted(rng.sample(_TAGS, rng.randint(0, 2)))),
            cores=rng.choice([1, 2, 4, 8]) if kind == "qemu" else rng.choice([1, 2]),
            maxmem=mem,
            maxdisk=rng.choice([8, 16, 32, 64, 128]) * GIB,
            mem_fraction=round(rng.uniform(0.2, 0.9), 3),
            cpu=round(rng.uniform(0.0, 0.3), 4),
            started_at=now - rng.randint(600, 40 * 86400) if running else None,
            ha=kind == "qemu" and rng.random() < 0.25,
            ostype="l26" if kind == "qemu" else rng.choice(["debian", "ubuntu", "alpine"]),
            mac="BC:24:11:{:02X}:{:02X}:{:02X}".format(*rng.randbytes(3)),
        )
        guests[vmid] = g
        vmid += 1
    return guests


def _default_storages(nodes: list[str], pbs_name: str | None) -> dict[str, Storage]:
    stores = {
        "local": Storage(
            "local",
            "dir",
            "iso,vztmpl,backup,snippets",
            total=100 * GIB,
            used_fraction=0.22,
            path="/var/lib/vz",
        ),
        "local-lvm": Storage(
            "local-lvm", "lvmthin", "images,rootdir", total=800 * GIB, used_fraction=0.41
        ),
    }
    if pbs_name:
        stores["pbs-store"] = Storage(
            "pbs-store",
            "pbs",
            "backup",
            shared=True,
            total=4000 * GIB,
            used_fraction=0.37,
            server=f"{pbs_name}",
            datastore="store1",
        )
    return stores


def _gen_pbs(rng: random.Random, name: str, guests: dict[int, Guest]) -> PbsServer:
    store = Datastore("store1", "/mnt/datastore/store1")
    now = int(time.time())
    for g in list(guests.values())[: max(1, len(guests) * 2 // 3)]:
        for k in range(rng.randint(2, 5)):
            t = now - (k + 1) * 86400 - rng.randint(0, 3600)
            state = rng.choices(["ok", "failed", None], [0.8, 0.05, 0.15])[0]
            upid = (
                (
                    f"UPID:{name}:{rng.randint(0x100, 0xFFFF):08X}:00000001:"
                    f"{rng.randint(1, 0xFFFF):08X}:{t + 3600:08X}:verificationjob:"
                    f"store1\\x3av\\x2ddaily:root@pam:"
                )
                if state
                else None
            )
            store.snapshots.append(
                BackupSnapshot(
                    "vm" if g.kind == "qemu" else "ct",
                    str(g.vmid),
                    t,
                    size=int(g.maxdisk * rng.uniform(0.1, 0.6)),
                    verify_state=state,
                    verify_upid=upid,
                )
            )
    store.used = sum(s.size for s in store.snapshots) // 3
    return PbsServer(name, {store.name: store})


def build_lab(spec: dict[str, Any] | None = None) -> Scenario:
    """Build a scenario from a parsed dict; ``None`` gives the default lab."""
    spec = dict(spec or {})
    _check_keys(spec, _TOP_KEYS, "the scenario")
    seed = _int(spec.get("seed", 42), "seed", minimum=-(2**63))
    rng = random.Random(seed)  # noqa: S311 - deterministic fixture data, not crypto
    cluster = spec.get("cluster", {"name": "lab", "nodes": 3})
    if cluster is None or "standalone" in spec:
        cluster_name, names = None, [str(spec.get("standalone", "pve1"))]
    elif isinstance(cluster, dict):
        _check_keys(cluster, _CLUSTER_KEYS, "cluster")
        cluster_name, names = str(cluster.get("name", "lab")), _node_names(cluster.get("nodes", 3))
    else:
        raise ScenarioError("cluster must be a mapping with name and nodes")
    nodes = {
        n: Node(
            n,
            i + 1,
            f"10.0.0.{i + 11}",
            cpus=rng.choice([8, 16, 32]),
            maxmem=rng.choice([64, 128, 256]) * GIB,
            cpu=round(rng.uniform(0.02, 0.3), 4),
        )
        for i, n in enumerate(names)
    }
    gspec = spec.get("guests", {"qemu": 20, "lxc": 10})
    if not isinstance(gspec, dict):
        raise ScenarioError("guests must be a mapping")
    _check_keys(gspec, _GUESTS_KEYS, "guests")
    n_vm, n_ct = _int(gspec.get("qemu", 0), "guests.qemu"), _int(gspec.get("lxc", 0), "guests.lxc")
    guests = _gen_guests(rng, names, n_vm, n_ct)
    items = gspec.get("list", []) or []
    if not isinstance(items, list):
        raise ScenarioError(f"guests.list must be a list, got {items!r}")
    for i, item in enumerate(items):
        g = _guest_from(item, names, f"guests.list[{i}]")
        guests[g.vmid] = g
    pspec = spec.get("pbs", {"name": "pbs1"})
    if isinstance(pspec, dict):
        _check_keys(pspec, _PBS_KEYS, "pbs")
    pbs_name = str(pspec.get("name", "pbs1")) if isinstance(pspec, dict) else None
    storages = _default_storages(names, pbs_name)
    pbs = _gen_pbs(rng, pbs_name, guests) if pbs_name else None
    lab = Lab(
        site=str(spec.get("site", cluster_name or "default")),
        domain=str(spec.get("domain", "lab.example")),
        cluster_name=cluster_name,
        nodes=nodes,
        guests=guests,
        storages=storages,
        pbs=pbs,
    )
    lab.backup_jobs = _backup_jobs(spec.get("backup_jobs"), guests)
    lab.replication = _replication(spec.get("replication"), guests, names)
    ts = spec.get("task_seconds", 2.0)
    if isinstance(ts, dict):
        task_seconds = {str(k): _float(v, f"task_seconds.{k}") for k, v in ts.items()}
    else:
        task_seconds = {"default": _float(ts, "task_seconds")}
    task_seconds.setdefault("default", 2.0)
    tokens = spec.get("tokens") or {}
    targets = spec.get("targets") or {}
    for name, value in (("tokens", tokens), ("targets", targets)):
        if not isinstance(value, dict):
            raise ScenarioError(f"{name} must be a mapping, got {value!r}")
    _check_keys(targets, _TARGET_KEYS, "targets")
    return Scenario(
        lab=lab,
        seed=seed,
        task_seconds=task_seconds,
        root_password=str(spec.get("root_password", "pvesim")),
        tokens={str(k): str(v) for k, v in tokens.items()},
        targets=dict(targets),
    )


def _backup_jobs(spec: Any, guests: dict[int, Guest]) -> list[BackupJob]:
    """Scenario ``backup_jobs``; by default one job covering the guests PBS has backups of."""
    if spec is None:
        covered = list(guests)[: max(1, len(guests) * 2 // 3)] if guests else []
        return [BackupJob("backup-daily", tuple(covered))]
    if not isinstance(spec, list):
        raise ScenarioError("backup_jobs must be a list")
    jobs = []
    for i, item in enumerate(spec):
        if not isinstance(item, dict):
            raise ScenarioError(f"backup job entry must be a mapping: {item!r}")
        where = f"backup_jobs[{i}]"
        _check_keys(item, _BACKUP_JOB_KEYS, where)
        jobs.append(
            BackupJob(
                str(item.get("id", f"backup-{i}")),
                _vmids(item.get("vmid"), f"{where}.vmid"),
                bool(item.get("all", False)),
                _vmids(item.get("exclude"), f"{where}.exclude"),
                item.get("node"),
            )
        )
    return jobs


def _vmids(value: Any, where: str) -> tuple[int, ...]:
    if value is None:
        return ()
    if not isinstance(value, list):
        raise ScenarioError(f"{where} must be a list of vmids, got {value!r}")
    return tuple(_int(v, where) for v in value)


def _replication(spec: Any, guests: dict[int, Guest], nodes: list[str]) -> list[ReplicationJob]:
    """Scenario ``replication``; by default the first VM replicates to the next node."""
    if spec is None:
        first = next((g for g in guests.values() if g.kind == "qemu"), None)
        if first is None or len(nodes) < 2:
            return []
        target = nodes[(nodes.index(first.node) + 1) % len(nodes)]
        now = int(time.time())
        return [ReplicationJob(first.vmid, 0, target, last_sync=now - 300, last_try=now - 300,
                               duration=3.2)]  # fmt: skip
    if not isinstance(spec, list):
        raise ScenarioError("replication must be a list")
    jobs = []
    for i, item in enumerate(spec):
        if not isinstance(item, dict) or "guest" not in item or "target" not in item:
            raise ScenarioError(f"replication entry needs guest and target: {item!r}")
        where = f"replication[{i}]"
        _check_keys(item, _REPLICATION_KEYS, where)
        if str(item["target"]) not in nodes:
            raise ScenarioError(f"replication target {item['target']!r} is not a node")
        guest = _int(item["guest"], f"{where}.guest")
        jobs.append(
            ReplicationJob(guest, _int(item.get("jobnum", 0), f"{where}.jobnum"),
                           str(item["target"]))
        )  # fmt: skip
    return jobs


def _guest_from(item: Any, nodes: list[str], where: str = "guest") -> Guest:
    if not isinstance(item, dict) or "vmid" not in item:
        raise ScenarioError(f"guest entry needs at least a vmid: {item!r}")
    _check_keys(item, _GUEST_KEYS, where)
    vmid = _int(item["vmid"], f"{where}.vmid", minimum=100)
    kind = str(item.get("type", "qemu"))
    if kind not in ("qemu", "lxc"):
        raise ScenarioError(f"guest type must be qemu or lxc, got {kind!r}")
    node = str(item.get("node", nodes[0]))
    if node not in nodes:
        raise ScenarioError(f"guest {item['vmid']} is placed on unknown node {node!r}")
    template = bool(item.get("template", False))
    status = str(item.get("status", "stopped" if template else "running"))
    if template and status != "stopped":
        raise ScenarioError(f"template {item['vmid']} cannot be {status}")
    tags = item.get("tags", [])
    return Guest(
        vmid=vmid,
        kind=kind,
        name=str(item.get("name", f"guest{item['vmid']}")),
        node=node,
        status=status,
        qmpstatus=status,
        tags=tuple(tags.split(";") if isinstance(tags, str) else tags),
        cores=_int(item.get("cores", 2), f"{where}.cores", minimum=1),
        maxmem=_int(item.get("memory", 2048), f"{where}.memory", minimum=16) * MIB,
        maxdisk=_int(item.get("disk", 32), f"{where}.disk") * GIB,
        ha=bool(item.get("ha", False)),
        started_at=time.time() - 3600 if status == "running" else None,
        template=template,
        agent=bool(item.get("agent", True)),
    )


def load_scenario(path: str | Path) -> Scenario:
    """Read a YAML or JSON scenario file.

    Raises:
        ScenarioError: the file is unreadable or does not describe a valid lab.
    """
    p = Path(path)
    try:
        text = p.read_text(encoding="utf-8")
        data = json.loads(text) if p.suffix == ".json" else yaml.safe_load(text)
    except (OSError, ValueError, yaml.YAMLError) as exc:
        raise ScenarioError(f"cannot read scenario {p}: {exc}") from exc
    if data is not None and not isinstance(data, dict):
        raise ScenarioError("a scenario file must contain a mapping")
    return build_lab(data)
