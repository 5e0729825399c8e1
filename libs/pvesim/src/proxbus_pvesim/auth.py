"""API tokens, tickets and ACL privileges, evaluated the way Proxmox does."""

from __future__ import annotations

import base64
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import Any

_VM = [
    "VM.Allocate",
    "VM.Audit",
    "VM.Backup",
    "VM.Clone",
    "VM.Config.CDROM",
    "VM.Config.CPU",
    "VM.Config.Cloudinit",
    "VM.Config.Disk",
    "VM.Config.HWType",
    "VM.Config.Memory",
    "VM.Config.Network",
    "VM.Config.Options",
    "VM.Console",
    "VM.Migrate",
    "VM.PowerMgmt",
    "VM.Snapshot",
    "VM.Snapshot.Rollback",
    "VM.GuestAgent.Audit",
    "VM.GuestAgent.Unrestricted",
]
_AUDITOR = [
    "Datastore.Audit",
    "Mapping.Audit",
    "Pool.Audit",
    "SDN.Audit",
    "Sys.Audit",
    "VM.Audit",
    "VM.GuestAgent.Audit",
]
_ALL_PVE = sorted(
    {
        *_VM,
        *_AUDITOR,
        "Datastore.Allocate",
        "Datastore.AllocateSpace",
        "Datastore.AllocateTemplate",
        "Permissions.Modify",
        "Pool.Allocate",
        "Realm.Allocate",
        "Realm.AllocateUser",
        "SDN.Allocate",
        "SDN.Use",
        "Sys.Console",
        "Sys.Incoming",
        "Sys.Modify",
        "Sys.PowerMgmt",
        "Sys.Syslog",
        "User.Modify",
        "Group.Allocate",
        "Mapping.Modify",
        "Mapping.Use",
    }
)

PVE_ROLES: dict[str, frozenset[str]] = {
    "Administrator": frozenset(_ALL_PVE),
    "PVEAuditor": frozenset(_AUDITOR),
    "PVEVMAdmin": frozenset(_VM),
    "PVEVMUser": frozenset(
        [
            "VM.Audit",
            "VM.Backup",
            "VM.Config.CDROM",
            "VM.Config.Cloudinit",
            "VM.Console",
            "VM.PowerMgmt",
            "VM.GuestAgent.Audit",
        ]
    ),
    "PVEDatastoreUser": frozenset(["Datastore.AllocateSpace", "Datastore.Audit"]),
    "NoAccess": frozenset(),
    # custom role (as an admin would create one) for log watchers: auditor plus syslog
    "ProxbusWatcher": frozenset([*_AUDITOR, "Sys.Syslog"]),
}

_PBS_ALL = [
    "Datastore.Audit",
    "Datastore.Allocate",
    "Datastore.Modify",
    "Datastore.Read",
    "Datastore.Verify",
    "Datastore.Backup",
    "Datastore.Prune",
    "Sys.Audit",
    "Sys.Modify",
    "Sys.PowerManagement",
    "Sys.Console",
    "Remote.Audit",
    "Remote.Modify",
    "Remote.Read",
    "Permissions.Modify",
]
PBS_ROLES: dict[str, frozenset[str]] = {
    "Admin": frozenset(_PBS_ALL),
    "Audit": frozenset(["Datastore.Audit", "Sys.Audit", "Remote.Audit"]),
    "DatastoreAdmin": frozenset([p for p in _PBS_ALL if p.startswith("Datastore.")]),
    "DatastoreAudit": frozenset(["Datastore.Audit"]),
    "NoAccess": frozenset(),
}


@dataclass(frozen=True, slots=True)
class AclEntry:
    """One ACL line: role granted on a path (propagating)."""

    path: str
    role: str


@dataclass(slots=True)
class ApiToken:
    """An API token: ``user@realm!tokenid`` plus secret and its ACL."""

    user: str
    tokenid: str
    secret: str
    acl: tuple[AclEntry, ...]
    service: str = "PVE"

    @property
    def full_id(self) -> str:
        """Token id as shown in UPIDs and task lists (``root@pam!admin``)."""
        return f"{self.user}!{self.tokenid}"

    @property
    def header(self) -> str:
        """The ``Authorization`` header value for this token."""
        if self.service == "PBS":
            return f"PBSAPIToken={self.full_id}:{self.secret}"
        return f"PVEAPIToken={self.full_id}={self.secret}"

    def proxmoxer_kwargs(self) -> dict[str, str]:
        """Keyword arguments for ``proxmoxer.ProxmoxAPI`` (user, token_name, token_value)."""
        return {"user": self.user, "token_name": self.tokenid, "token_value": self.secret}


def _norm(path: str) -> str:
    return "/" + path.strip("/") if path != "/" else "/"


@dataclass(slots=True)
class Principal:
    """The authenticated caller of one request and its effective privileges."""

    authid: str
    acl: tuple[AclEntry, ...]
    roles: dict[str, frozenset[str]]
    via_ticket: bool = False
    csrf: str | None = None
    _cache: dict[str, frozenset[str]] = field(default_factory=dict)

    @property
    def user(self) -> str:
        """The user part of the auth id (without ``!token``)."""
        return self.authid.split("!", 1)[0]

    def privs(self, path: str) -> frozenset[str]:
        """Privileges on ``path``: the most specific ACL path wins, like Proxmox."""
        path = _norm(path)
        hit = self._cache.get(path)
        if hit is not None:
            return hit
        best_len, privs = -1, frozenset[str]()
        for entry in self.acl:
            p = _norm(entry.path)
            if p == "/" or path == p or path.startswith(p + "/"):
                n = len(p) if p != "/" else 0
                role = self.roles.get(entry.role, frozenset())
                if n > best_len:
                    best_len, privs = n, role
                elif n == best_len:
                    privs = privs | role
        self._cache[path] = privs
        return privs

    def has(self, path: str, priv: str) -> bool:
        """Whether ``priv`` is granted on ``path``."""
        return priv in self.privs(path)

    def has_anywhere(self, priv: str) -> bool:
        """Whether any ACL entry grants ``priv`` (used by listing shortcuts)."""
        return any(priv in self.roles.get(e.role, frozenset()) for e in self.acl)

    def uniform(self, prefix: str, priv: str) -> bool | None:
        """``True``/``False`` if ``priv`` is the same on every path under ``prefix``, else None."""
        base = self.has(prefix, priv)
        for e in self.acl:
            p = _norm(e.path)
            if p.startswith(_norm(prefix) + "/") and (priv in self.roles.get(e.role, ())) != base:
                return None
        return base

    def permissions_dump(self, path: str | None) -> dict[str, dict[str, int]]:
        """Body of ``/access/permissions``: ``{path: {priv: 1}}``."""
        paths = [path] if path else sorted({_norm(e.path) for e in self.acl})
        return {p: dict.fromkeys(sorted(self.privs(p)), 1) for p in paths}


@dataclass(slots=True)
class Ticket:
    """A login ticket issued by ``POST /access/ticket``."""

    user: str
    csrf: str
    issued: float


class AuthStore:
    """Users, tokens and tickets of one API (PVE or PBS)."""

    def __init__(self, service: str, roles: dict[str, frozenset[str]]) -> None:
        self.service = service
        self.roles = roles
        self.tokens: dict[str, ApiToken] = {}
        self.passwords: dict[str, str] = {}
        self.user_acl: dict[str, tuple[AclEntry, ...]] = {}
        self.tickets: dict[str, Ticket] = {}

    def add_token(
        self, user: str, tokenid: str, acl: list[tuple[str, str]], secret: str | None = None
    ) -> ApiToken:
        """Create (or replace) a token; the secret is a random UUID unless given."""
        tok = ApiToken(
            user,
            tokenid,
            secret or str(uuid.uuid4()),
            tuple(AclEntry(p, r) for p, r in acl),
            self.service,
        )
        self.tokens[tok.full_id] = tok
        return tok

    def add_user(self, user: str, password: str, acl: list[tuple[str, str]]) -> None:
        """Register a password user with its ACL."""
        self.passwords[user] = password
        self.user_acl[user] = tuple(AclEntry(p, r) for p, r in acl)

    def login(self, username: str, password: str) -> tuple[str, Ticket] | None:
        """Check a password (or a still valid ticket) and issue a new ticket."""
        user = username if "@" in username else f"{username}@pam"
        known = self.passwords.get(user)
        old = self.tickets.get(password)
        ok = (known is not None and secrets.compare_digest(known, password)) or (
            old is not None and old.user == user and time.time() - old.issued < 7200
        )
        if not ok:
            return None
        now = time.time()
        sig = base64.b64encode(secrets.token_bytes(48)).decode()
        ticket = f"{self.service}:{user}:{int(now):08X}::{sig}"
        tk = Ticket(user, f"{int(now):08X}:{secrets.token_urlsafe(32)}", now)
        self.tickets[ticket] = tk
        return ticket, tk

    def from_header(self, value: str) -> Principal | None:
        """Resolve an ``Authorization`` header (``PVEAPIToken=...``/``PBSAPIToken=...``)."""
        scheme, _, rest = value.partition("=")
        if scheme.strip() != f"{self.service}APIToken" or not rest:
            return None
        sep = "=" if self.service == "PVE" else ":"
        authid, _, secret = rest.strip().rpartition(sep)
        tok = self.tokens.get(authid)
        if tok is None or not secrets.compare_digest(tok.secret, secret):
            return None
        return Principal(tok.full_id, tok.acl, self.roles)

    def from_cookie(self, ticket: str) -> Principal | None:
        """Resolve an auth cookie holding a ticket."""
        tk = self.tickets.get(ticket)
        if tk is None or time.time() - tk.issued > 7200:
            return None
        return Principal(
            tk.user, self.user_acl.get(tk.user, ()), self.roles, via_ticket=True, csrf=tk.csrf
        )

    def describe(self) -> dict[str, Any]:
        """Token ids and ACLs, for the admin API (secrets included: loopback tooling only)."""
        return {
            t.full_id: {"secret": t.secret, "acl": [[e.path, e.role] for e in t.acl]}
            for t in self.tokens.values()
        }
