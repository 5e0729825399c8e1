"""Gateway results as Discord message text (content ≤ 2000 characters, code-block tables)."""

from __future__ import annotations

import unicodedata
from typing import Any

CONTENT_LIMIT = 2000


def clip(text: str, limit: int = CONTENT_LIMIT) -> str:
    """``text`` cut to Discord's content limit with a visible marker."""
    return text if len(text) <= limit else text[: limit - 2] + " …"


def plain(text: str) -> str:
    """``text`` without control, format (zero-width, direction overrides), private-use or
    unassigned characters; every whitespace run (newlines included) one space."""
    kept = "".join(
        " " if c.isspace() else c
        for c in text
        if c.isspace() or not unicodedata.category(c).startswith("C")
    )
    return " ".join(kept.split())


def _cell(value: Any, width: int = 24) -> str:
    if value is None or value == "":
        return "-"
    text = f"{value:g}" if isinstance(value, float) else str(value)
    # Event text comes from remote parties: nothing may reorder or break the table.
    text = plain(text).replace("`", "'")
    return text if len(text) <= width else text[: width - 1] + "…"


def table(rows: list[dict[str, Any]], cols: list[str], budget: int) -> str:
    """A fixed-width table in a code block, as many rows as fit in ``budget`` characters."""
    if not rows:
        return "(none)"
    cells = [[_cell(r.get(c)) for c in cols] for r in rows]
    widths = [max(len(c), *(len(row[i]) for row in cells)) for i, c in enumerate(cols)]

    def line(values: list[str]) -> str:
        return "  ".join(v.ljust(w) for v, w in zip(values, widths, strict=True)).rstrip()

    lines = [line(cols)]
    used = len(lines[0]) + 8  # the fences
    for n, row in enumerate(cells):
        text = line(row)
        if used + len(text) + 1 > budget - 24:
            lines.append(f"… {len(cells) - n} more")
            break
        lines.append(text)
        used += len(text) + 1
    return "```\n" + "\n".join(lines) + "\n```"


def _uptime(seconds: Any) -> str:
    try:
        s = int(seconds)
    except (TypeError, ValueError):
        return "-"
    if s <= 0:
        return "-"
    days, rest = divmod(s, 86400)
    return f"{days}d {rest // 3600}h" if days else f"{rest // 3600}h {rest % 3600 // 60}m"


def render_status(
    cluster: dict[str, Any], nodes: dict[str, Any], vms: dict[str, Any], cts: dict[str, Any]
) -> str:
    """``/proxbus status``: quorum, node table, guest counts."""
    members = cluster.get("nodes") or []
    online = sum(1 for n in members if n.get("online"))
    quorate = cluster.get("quorate")
    quorum = {True: "quorate", False: "**NOT quorate**", None: "standalone"}.get(quorate, "?")

    def running(result: dict[str, Any]) -> str:
        items = result.get("items") or []
        up = sum(1 for g in items if g.get("status") == "running")
        return f"{up}/{len(items)}"

    head = (
        f"**Cluster {_cell(cluster.get('cluster'))}**: {quorum} · nodes online "
        f"{online}/{len(members)} · VMs running {running(vms)} · containers running {running(cts)}"
    )
    rows = [
        {
            "node": n.get("node"),
            "status": n.get("status"),
            "cpu%": n.get("cpu_pct"),
            "mem%": n.get("mem_pct"),
            "uptime": _uptime(n.get("uptime")),
        }
        for n in nodes.get("items") or []
    ]
    errors = [*(cluster.get("errors") or []), *(nodes.get("errors") or [])]
    tail = ("\nerrors: " + "; ".join(map(str, errors))) if errors else ""
    budget = CONTENT_LIMIT - len(head) - len(tail) - 2
    return clip(
        f"{head}\n{table(rows, ['node', 'status', 'cpu%', 'mem%', 'uptime'], budget)}{tail}"
    )


def render_vms(result: dict[str, Any], node: str | None) -> str:
    """``/proxbus vms [node]``."""
    items = result.get("items") or []
    where = f" on {node}" if node else ""
    head = f"**VMs{where}** ({len(items)})"
    rows = [
        {
            "vmid": g.get("vmid"),
            "name": g.get("name"),
            "node": g.get("node"),
            "status": g.get("status"),
            "cpu%": g.get("cpu_pct"),
        }
        for g in items
    ]
    errors = result.get("errors") or []
    tail = ("\nerrors: " + "; ".join(map(str, errors))) if errors else ""
    budget = CONTENT_LIMIT - len(head) - len(tail) - 2
    return clip(f"{head}\n{table(rows, ['vmid', 'name', 'node', 'status', 'cpu%'], budget)}{tail}")


def render_events(result: dict[str, Any], severity: str) -> str:
    """``/proxbus events [severity]``: newest first."""
    items = result.get("items") or []
    head = f"**Events ≥ {severity}** (last 24 h, newest first, {len(items)})"
    rows = [
        {
            "time": str(e.get("timestamp") or "")[5:16].replace("T", " "),
            "severity": e.get("severity"),
            "kind": e.get("kind"),
            "node": e.get("node"),
            "title": e.get("title"),
        }
        for e in items
    ]
    budget = CONTENT_LIMIT - len(head) - 2
    return clip(f"{head}\n{table(rows, ['time', 'severity', 'kind', 'node', 'title'], budget)}")


def render_guest_prompt(action: str, status: dict[str, Any]) -> str:
    """The confirmation question of a power action, with the guest's current state."""
    what = "VM" if status.get("type") == "qemu" else "container"
    return clip(
        f"**{action.capitalize()} {what} {status.get('vmid')}** "
        f"({_cell(status.get('name'))}) on {_cell(status.get('node'))}?\n"
        f"now: status {_cell(status.get('status'))}, uptime {_uptime(status.get('uptime'))}, "
        f"cpu {_cell(status.get('cpu_pct'))} %, mem {_cell(status.get('mem_pct'))} %"
    )


def render_action_result(action: str, result: dict[str, Any], by: str) -> str:
    """What a confirmed power action did (the gateway's task answer)."""
    target = _cell(result.get("target"), 80)
    state = _cell(result.get("status"))
    upid = result.get("upid")
    task = f"\ntask `{_cell(upid, 120)}`" if upid else ""
    return clip(f"**{action} {target}**: {state} (confirmed by {_cell(by, 64)}){task}")
