"""Which gateway scope a raw ``proxmox_api`` call needs, from the schema's permission data.

The official schemas carry each method's permission check: PVE as an expression
(``["perm", "/vms/{vmid}", ["VM.PowerMgmt"]]``, ``["and"|"or", ...]``, ``["userid-group",
[privs]]``, ``"user"`` = checked in code), or a description naming the privileges; PBS as
``{"path": [...], "privs": [...]}`` or a description (``DATASTORE_AUDIT``...). Rules (the
README has the table):

- ``read``: a GET whose check is satisfied by audit-class privileges alone (``*.Audit``),
  or that names no privilege at all, except the paths in :data:`NOT_READ` (file access,
  scans, websockets, backup readers).
- ``operate``: a non-GET satisfied by power, snapshot, backup and migrate privileges alone
  (:data:`OPERATE_PRIVS`), or one of :data:`OPERATE_CALLS` (checks done in code: vzdump,
  stopping a task, PBS garbage collection and verification).
- ``admin``: everything else (deleting guests, configuration, guest agent file/exec/password,
  storage allocation, users, ACLs, ...).
"""

from __future__ import annotations

import re
from typing import Any

from .registry import Scope

# Privileges a read-only auditor has (PVEAuditor / PBS Audit roles): names ending in .Audit.
_AUDIT = re.compile(r"^[A-Za-z]+(\.[A-Za-z]+)*\.Audit$")
OPERATE_PRIVS = frozenset(
    {
        "VM.PowerMgmt",
        "VM.Snapshot",
        "VM.Snapshot.Rollback",
        "VM.Backup",
        "VM.Migrate",
    }
)
# Checks done in code (the schema says "user" or describes them): pve-manager
# PVE/API2/VZDump.pm (VM.Backup + Datastore.AllocateSpace), PVE/API2/Tasks.pm and
# proxmox-backup src/api2/node/tasks.rs (own task or Sys.Modify), src/api2/admin/datastore.rs
# (start_garbage_collection: Datastore.Modify; verify: Datastore.Verify).
OPERATE_CALLS = frozenset(
    {
        ("pve", "POST", "/nodes/{node}/vzdump"),
        ("pve", "DELETE", "/nodes/{node}/tasks/{upid}"),
        ("pbs", "DELETE", "/nodes/{node}/tasks/{upid}"),
        ("pbs", "POST", "/admin/datastore/{store}/gc"),
        ("pbs", "POST", "/admin/datastore/{store}/verify"),
    }
)
# GETs open to every user whose description names a stronger privilege only for the full
# answer: pve-manager PVE/API2/Cluster.pm ``log`` (user => 'all'; without Sys.Syslog the
# caller sees its own entries). The dedicated get_cluster_log tool and the pve-ws watcher
# read it with the read scope.
READ_CALLS = frozenset({("pve", "GET", "/cluster/log")})
# GETs that read data rather than state, even when the schema names no privilege: files in
# guests and backups, storage/tape/remote scans, websockets and backup protocol upgrades.
NOT_READ = re.compile(
    r"/agent/file-read|/file-restore/|/scan(/|$)|/scan-|websocket|/_upgrade_|"
    r"/content/\{volume\}|/import-metadata|/download|/access/users/\{userid\}/token|"
    r"/access/tfa|/vncproxy|/spiceproxy|/termproxy"
)
# Writes Proxmox lets a VM.Migrate holder make that leave the cluster: ``remote_migrate``
# ships the guest and its disks to any cluster named in ``target-endpoint`` (host, API
# token, fingerprint) and by default deletes the source; qemu-server PVE/API2/Qemu.pm and
# pve-container src/PVE/API2/LXC.pm ``remote_migrate_vm`` check only VM.Migrate. The
# gateway's ``operate`` is migration inside the cluster: these need ``admin``.
NOT_OPERATE = re.compile(r"/remote_migrate$")
_NAMED_PRIV = re.compile(r"\b([A-Z][A-Za-z]*(?:\.[A-Z][A-Za-z]*)+|DATASTORE_[A-Z]+)\b")


def _canonical(priv: str) -> str:
    """``DATASTORE_AUDIT`` (PBS descriptions) -> ``Datastore.Audit``."""
    if priv.startswith("DATASTORE_"):
        return "Datastore." + priv[len("DATASTORE_") :].capitalize()
    return priv


def _is_audit(priv: str) -> bool:
    return bool(_AUDIT.match(_canonical(priv)))


def _satisfied(check: Any, *, reading: bool) -> bool | None:
    """Whether ``check`` passes for a role holding only audit-class privileges (``reading``)
    or only :data:`OPERATE_PRIVS` (a write: audit privileges never make one pass, e.g. the
    QEMU monitor accepts ``Sys.Audit`` and checks the command in code). None: the check
    names no privilege."""

    def ok(priv: str) -> bool:
        p = _canonical(priv)
        return _is_audit(p) if reading else p in OPERATE_PRIVS

    if check is None or check == "user":
        return None
    if isinstance(check, dict):  # PBS
        privs = [str(p) for p in check.get("privs") or []]
        if not privs:
            return None
        return any(ok(p) for p in privs) if check.get("partial") else all(ok(p) for p in privs)
    if isinstance(check, str):
        # A description: for a read "either X or Y" lists alternatives; for a write every
        # named privilege must be one an operator has ("VM.Backup ... and
        # Datastore.AllocateSpace" is not).
        named = _NAMED_PRIV.findall(check)
        if not named:
            return None
        return any(ok(p) for p in named) if reading else all(ok(p) for p in named)
    if isinstance(check, list) and check:
        head = check[0]
        if head == "perm" and len(check) >= 3:
            privs = [str(p) for p in check[2]]
            anyof = "any" in check[3:]
            return any(ok(p) for p in privs) if anyof else all(ok(p) for p in privs)
        if head in ("and", "or"):
            parts = [_satisfied(c, reading=reading) for c in check[1:]]
            known = [p for p in parts if p is not None]
            if not known:
                return None
            return all(known) if head == "and" else any(known)
        if head == "userid-group" and len(check) >= 2 and isinstance(check[1], list):
            return all(ok(str(p)) for p in check[1])
    # userid-param, perm-modify and anything unknown: not something a role grants.
    return False


def required_scope(product: str, method: str, template: str, permission: Any) -> Scope:
    """The scope a ``proxmox_api`` call needs (see the module docstring)."""
    if method == "GET":
        if (product, method, template) in READ_CALLS:
            return "read"
        if NOT_READ.search(template):
            return "admin"
        return "read" if _satisfied(permission, reading=True) is not False else "admin"
    if (product, method, template) in OPERATE_CALLS:
        return "operate"
    if NOT_OPERATE.search(template):
        return "admin"
    return "operate" if _satisfied(permission, reading=False) is True else "admin"
