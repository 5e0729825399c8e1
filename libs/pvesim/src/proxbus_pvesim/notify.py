"""Notification texts shaped like proxmox-notify's templates (vzdump, fencing, replication...)."""

from __future__ import annotations

import html
import time
from dataclasses import dataclass, field


@dataclass(slots=True)
class Notification:
    """One notification as proxmox-notify hands it to its targets."""

    type: str
    severity: str
    title: str
    text: str
    hostname: str
    fields: dict[str, str] = field(default_factory=dict)
    timestamp: int = field(default_factory=lambda: int(time.time()))

    @property
    def html(self) -> str:
        """HTML alternative part (the text in a ``<pre>``, as the default templates render)."""
        return (
            f"<html><body><h3>{html.escape(self.title)}</h3>"
            f"<pre>{html.escape(self.text)}</pre></body></html>"
        )


@dataclass(slots=True)
class GuestResult:
    """One row of the vzdump guest table."""

    vmid: int
    name: str
    ok: bool
    seconds: int
    size: int
    filename: str
    error: str = ""


def human_bytes(n: int) -> str:
    """Render bytes like the ``human-bytes`` template helper."""
    value = float(n)
    for unit in ("B", "KiB", "MiB", "GiB", "TiB"):
        if value < 1024 or unit == "TiB":
            return f"{value:.0f} {unit}" if unit == "B" else f"{value:.2f} {unit}"
        value /= 1024
    return f"{n} B"


def duration(seconds: int) -> str:
    """Render seconds like the ``duration`` template helper (``1m 5s``)."""
    h, rest = divmod(int(seconds), 3600)
    m, s = divmod(rest, 60)
    parts = [f"{h}h" if h else "", f"{m}m" if m else "", f"{s}s"]
    return " ".join(p for p in parts if p)


def text_table(header: list[str], rows: list[list[str]]) -> str:
    """Plain text table with padded columns (the ``table`` helper's text form)."""
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = [
        "  ".join(c.ljust(widths[i]) for i, c in enumerate(r)).rstrip() for r in [header, *rows]
    ]
    return "\n".join(lines)


def vzdump_notification(
    node: str,
    fqdn: str,
    results: list[GuestResult],
    total: int,
    logs: str,
    job_id: str | None = None,
) -> Notification:
    """``vzdump backup status (<fqdn>): backup successful|failed`` with the guest table."""
    failed = [r for r in results if not r.ok]
    status = "backup failed" if failed else "backup successful"
    rows = [
        [
            str(r.vmid),
            r.name,
            "err" if not r.ok else "ok",
            duration(r.seconds),
            human_bytes(r.size),
            r.filename if r.ok else "null",
        ]
        for r in results
    ]
    error = "\n".join(f"{r.vmid}: {r.error}" for r in failed)
    text = (
        f"{error}\nDetails\n=======\n"
        f"{text_table(['VMID', 'Name', 'Status', 'Time', 'Size', 'Filename'], rows)}\n"
        f"Total running time: {duration(total)}\n"
        f"Total size: {human_bytes(sum(r.size for r in results))}\n\nLogs\n====\n{logs}\n"
    )
    fields = {"type": "vzdump", "hostname": node}
    if job_id:
        fields["job-id"] = job_id
    return Notification(
        "vzdump",
        "error" if failed else "info",
        f"vzdump backup status ({fqdn}): {status}",
        text,
        node,
        fields,
    )


def fencing_notification(
    failed_node: str,
    cluster: str,
    reporter: str,
    node_states: dict[str, str],
    resources: list[tuple[str, str, str]],
    success: bool,
) -> Notification:
    """``Trying to fence node '<node>'`` / ``Successfully fenced node '<node>'``."""
    title = (
        f"Successfully fenced node '{failed_node}'"
        if success
        else f"Trying to fence node '{failed_node}'"
    )
    verb = "successfully fenced" if success else "will now fence"
    nodes = "\n".join(
        f"  - {n}: {s} {'[master]' if n == reporter else ''}".rstrip()
        for n, s in node_states.items()
    )
    on_failed = "\n".join(f"  - {sid} [{n}]: {st}" for sid, n, st in resources if n == failed_node)
    others = "\n".join(f"  - {sid} [{n}]: {st}" for sid, n, st in resources if n != failed_node)
    text = (
        f"The node '{failed_node}' in cluster '{cluster}' failed\nand needs manual "
        f"intervention.\n\nThe PVE HA manager {verb} '{failed_node}'.\n\n"
        f"Status:    {'FENCED' if success else 'FENCE'}\n"
        f"Timestamp: {time.strftime('%Y-%m-%d %H:%M:%S')}\n\n"
        f"Cluster Node Status:\n--------------------\n{nodes}\n\n"
        f"HA Resources:\n-------------\nThe following HA resources were running on the "
        f"failed node and will be\nrecovered to a healthy node if possible:\n\n{on_failed}\n"
        f"The other HA resources in this cluster are:\n\n{others}\n"
    )
    return Notification(
        "fencing", "error", title, text, reporter, {"type": "fencing", "hostname": failed_node}
    )


def replication_notification(
    node: str, job_id: str, target: str, error: str, failures: int = 1
) -> Notification:
    """``Replication Job: '<id>' failed``."""
    text = (
        f"Replication job '{job_id}' with target '{target}' and schedule '*/15' failed!\n\n"
        f"Last successful sync: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(time.time() - 900))}\n"
        f"Next sync try: {time.strftime('%Y-%m-%d %H:%M:%S', time.localtime(time.time() + 300))}\n"
        f"Failure count: {failures}\n\nError:\n{error}\n"
    )
    return Notification(
        "replication",
        "error",
        f"Replication Job: '{job_id}' failed",
        text,
        node,
        {"type": "replication", "hostname": node, "job-id": job_id},
    )


def package_updates_notification(
    node: str, fqdn: str, packages: list[tuple[str, str, str]]
) -> Notification:
    """``New software packages available (<fqdn>)`` with the package table."""
    table = text_table(
        ["Package Name", "Installed Version", "Available Version"], [list(p) for p in packages]
    )
    return Notification(
        "package-updates",
        "info",
        f"New software packages available ({fqdn})",
        f"The following updates are available:\n\n{table}\n",
        node,
        {"type": "package-updates", "hostname": node},
    )
