"""Validators for everything that ends up in a Proxmox URL path (pure, no I/O).

They run before any path is built: a value that fails here never produces an HTTP request.
"""

from __future__ import annotations

import re

from proxbus_events import guest_id, parse_upid

from .errors import InvalidArgument

NODE_RE = re.compile(r"^[a-zA-Z0-9]([a-zA-Z0-9-]{0,61}[a-zA-Z0-9])?$")
STORAGE_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]{0,62}[a-zA-Z0-9]$")
SNAPSHOT_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_-]{1,39}$")
DATASTORE_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]{0,31}$")
CLUSTER_RE = re.compile(r"^[a-z0-9][a-z0-9_-]{0,63}$")
# PBS backup namespace (proxmox-backup pbs-api-types: BACKUP_NAMESPACE_SCHEMA, a path of
# PROXMOX_SAFE_ID components joined by "/", at most MAX_NAMESPACE_DEPTH = 7 of them and
# MAX_BACKUP_NAMESPACE_LENGTH = 256 characters; BackupNamespace::push_do refuses an 8th level).
NS_COMPONENT_RE = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9._-]*$")
MAX_NAMESPACE_DEPTH = 7
MAX_NAMESPACE_LENGTH = 256
# The UPID grammar is the contract's (proxbus_events.parse_upid); what may reach a URL path
# is narrower: these characters per field.
_UPID_TYPE_RE = re.compile(r"^[A-Za-z0-9_-]{1,64}$")
_UPID_ID_RE = re.compile(r"^[A-Za-z0-9_.@\\-]{0,128}$")
_UPID_USER_RE = re.compile(r"^[A-Za-z0-9_.@!\\-]{1,128}$")
# PVE volume id ``<storage>:<volname>`` (pve-storage parse_volume_id); the name may hold ``/``.
VOLUME_RE = re.compile(r"^[a-zA-Z][a-zA-Z0-9_.-]*[a-zA-Z0-9]:[A-Za-z0-9_.:/+-]{1,250}$")
# The disks PVE's resize takes (qemu-server / pve-container, the disk enums of the API
# schema): scsi0-30, virtio0-15, sata0-5, ide0-3, efidisk0, tpmstate0, rootfs, mp0-255.
DISK_RE = re.compile(
    r"^(rootfs|efidisk0|tpmstate0|scsi([12]?\d|30)|virtio(1[0-5]|\d)|sata[0-5]|ide[0-3]"
    r"|mp(25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d))$"
)
DISK_SIZE_RE = re.compile(r"^\+?\d{1,9}(\.\d{1,3})?[KMGT]?$")

_PATH_TRICKS = ("..", "%", "\\", "\n", "\r", "\t", "\x00", "?", "#", "//")


def node_name(value: str) -> str:
    """A PVE/PBS node name (host name label).

    Raises:
        InvalidArgument: not a valid node name.
    """
    if not isinstance(value, str) or not NODE_RE.fullmatch(value):
        raise InvalidArgument(f"invalid node name {_show(value)}: expected a host name label")
    return value


def vmid(value: int | str) -> int:
    """A guest id in 100..999999999.

    Raises:
        InvalidArgument: not an integer in range.
    """
    checked = guest_id(value)
    if checked is None:
        raise InvalidArgument(f"invalid vmid {_show(value)}: expected 100..999999999")
    return checked


def storage_id(value: str) -> str:
    """A PVE storage id.

    Raises:
        InvalidArgument: not a valid storage id.
    """
    if not isinstance(value, str) or not STORAGE_RE.fullmatch(value):
        raise InvalidArgument(f"invalid storage id {_show(value)}")
    return value


def snapshot_name(value: str) -> str:
    """A snapshot name (PVE ``pve-configid``, 2-40 chars, starting with a letter).

    Raises:
        InvalidArgument: not a valid snapshot name.
    """
    if not isinstance(value, str) or not SNAPSHOT_RE.fullmatch(value) or value == "current":
        raise InvalidArgument(
            f"invalid snapshot name {_show(value)}: 2-40 chars [A-Za-z0-9_-], starting with a letter"
        )
    return value


def datastore_name(value: str) -> str:
    """A PBS datastore name.

    Raises:
        InvalidArgument: not a valid datastore name.
    """
    if not isinstance(value, str) or not DATASTORE_RE.fullmatch(value):
        raise InvalidArgument(f"invalid datastore name {_show(value)}")
    return value


def pbs_namespace(value: str | None) -> str:
    """A PBS namespace path (``cluster-a/prod``); ``None`` or ``""`` is the root namespace.

    Raises:
        InvalidArgument: too long, deeper than 7 levels, an empty component (``a//b``, a
            leading or trailing ``/``) or a component PBS refuses (``..``, ``.x``, spaces).
    """
    if value is None or value == "":
        return ""
    if not isinstance(value, str) or len(value) > MAX_NAMESPACE_LENGTH:
        raise InvalidArgument(f"invalid namespace: longer than {MAX_NAMESPACE_LENGTH} characters")
    parts = value.split("/")
    if len(parts) > MAX_NAMESPACE_DEPTH:
        raise InvalidArgument(
            f"invalid namespace {_show(value)}: {len(parts)} levels, PBS allows at most "
            f"{MAX_NAMESPACE_DEPTH}"
        )
    for part in parts:
        if not NS_COMPONENT_RE.fullmatch(part):
            shown = "an empty component" if part == "" else f"component {_show(part)}"
            raise InvalidArgument(
                f"invalid namespace {_show(value)}: {shown}; expected names of letters, "
                "digits, '_', '.', '-' (not starting with '.' or '-') joined by '/'"
            )
    return value


def upid(value: str) -> str:
    """A PVE or PBS task id (UPID).

    Raises:
        InvalidArgument: not a well-formed UPID.
    """
    parsed = parse_upid(value) if isinstance(value, str) else None
    if (
        parsed is None
        or not _UPID_TYPE_RE.fullmatch(parsed.type)
        or not _UPID_ID_RE.fullmatch(parsed.id)
        or not _UPID_USER_RE.fullmatch(parsed.user)
    ):
        raise InvalidArgument(f"invalid UPID {_show(value)}")
    return value


def upid_node(value: str) -> str:
    """The node a UPID ran on."""
    parsed = parse_upid(upid(value))
    assert parsed is not None
    return parsed.node


def volume_id(value: str) -> str:
    """A PVE volume id such as ``local:backup/vzdump-qemu-100-...vma.zst``.

    Raises:
        InvalidArgument: not ``storage:name``, or ``..``/``//`` inside the name.
    """
    if (
        not isinstance(value, str)
        or not VOLUME_RE.fullmatch(value)
        or ".." in value
        or "//" in value
        or value.endswith("/")
    ):
        raise InvalidArgument(f"invalid volume id {_show(value)}: expected storage:name")
    storage_id(value.split(":", 1)[0])
    return value


def disk_name(value: str) -> str:
    """A guest disk key (``scsi0``, ``virtio1``, ``rootfs``, ``mp0``...).

    Raises:
        InvalidArgument: not a disk key.
    """
    if not isinstance(value, str) or not DISK_RE.fullmatch(value):
        raise InvalidArgument(f"invalid disk {_show(value)}: expected e.g. scsi0 or rootfs")
    return value


def disk_size(value: str) -> str:
    """A resize amount: ``+4G`` (grow by) or ``40G`` (new size), units K/M/G/T.

    Raises:
        InvalidArgument: not a size.
    """
    if not isinstance(value, str) or not DISK_SIZE_RE.fullmatch(value):
        raise InvalidArgument(f"invalid size {_show(value)}: expected e.g. +4G or 40G")
    return value


def api_path(path: str) -> str:
    """A raw API path for ``proxmox_api``: absolute, no traversal or encoding tricks.

    Raises:
        InvalidArgument: the path contains ``..``, ``%``, backslashes, control characters...
    """
    if not isinstance(path, str) or not path.startswith("/") or len(path) > 512:
        raise InvalidArgument(f"invalid API path {_show(path)}: must start with /")
    if path.startswith("/api2/"):
        raise InvalidArgument("give the path without the /api2/json prefix, e.g. /nodes")
    for trick in _PATH_TRICKS:
        if trick in path:
            raise InvalidArgument(f"invalid API path {_show(path)}: contains {trick!r}")
    if any(ord(c) < 0x20 or ord(c) > 0x7E for c in path):
        raise InvalidArgument(f"invalid API path {_show(path)}: non-printable characters")
    segments = path.strip("/").split("/") if path != "/" else []
    for seg in segments:
        if seg in ("", ".", ".."):
            raise InvalidArgument(f"invalid API path {_show(path)}: empty or dot segment")
    return "/" + "/".join(segments)


def cluster_name(value: str) -> str:
    """A configured cluster/site name.

    Raises:
        InvalidArgument: not a valid cluster name.
    """
    if not isinstance(value, str) or not CLUSTER_RE.fullmatch(value):
        raise InvalidArgument(f"invalid cluster name {_show(value)}")
    return value


def _show(value: object) -> str:
    text = repr(value)
    return text if len(text) <= 80 else text[:77] + "..."
