"""Title/body templates: a sandboxed Jinja2 environment with documented fields.

Fields available to every template:

- ``events``: list of event dicts (every ``Event`` field: id, timestamp, received_at, source,
  site, node, severity, kind, title, message, vmid, fingerprint, correlation_id, metadata)
- ``event``: the first (or only) event; ``count``: ``len(events)``
- ``severity``: the highest severity in the notification
- ``receiver``, ``route``: names; ``group_key``: the group's key (``None`` when ungrouped);
  ``group_labels``: the ``group_by`` label values of the group
- ``enrichment``: ``{event_id: {...}}`` facts added from the gateway (may be empty):
  ``guest_name``, ``guest_status``, ``task_log``, ``peer_node`` (a lost knet peer's name)
- ``incidents``: the incidents the notification is about, each ``{id, fingerprint, kind, node,
  vmid, severity, title, message, sources, count, first_seen, upid, since, earlier, state,
  previous_state, resolved, resolves, reporters, reporters_down, peer_node}`` (reporters: the
  nodes that reported an incident about no node, a lost knet peer's survivors; reporters_down:
  those whose recovery line has not come; peer_node: a lost knet peer's node name, learned
  from the gateway by its node id, ``None`` when unknown; since/earlier: the fingerprint's unbroken run of
  earlier incidents; state/previous_state: the state it reports and the one before, ``None``
  for none; resolves: the failure a success resolved, ``{title, since, count, ...}``;
  title/message: the best among its events); ``incident``: the first of them (``None`` when there are none)

Filters besides Jinja's: ``when`` (a time as ``2026-11-30 02:04:12 UTC``), ``with_node(node)``
(a title led by ``node: `` unless it names the node), ``with_peer(name)`` (a knet title's
``host 3`` followed by `` (pve3)``), ``kinds`` (the events' distinct kinds).
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from functools import lru_cache
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment
from proxbus_events import Severity

DEFAULT_TITLE = (
    "{% if incidents | length == 1 %}[{{ incident.severity | upper }}] "
    "{{ incident.title | with_peer(incident.peer_node) | with_node(incident.node) }}"
    "{% elif count == 1 %}[{{ event.severity | upper }}] "
    "{{ event.title | with_peer((enrichment.get(event.id) or {}).peer_node) "
    "| with_node(event.node) }}"
    "{% else %}{% set one = events | headline %}{% if one %}[{{ severity | upper }}] "
    "{{ one.title | with_node(one.node) }} (and {{ count - 1 }} more line"
    "{{ 's' if count > 2 }})"
    "{% else %}[{{ severity | upper }}] {{ count }} events: {{ events | kinds }}"
    "{% set nodes = events | map(attribute='node') | unique | list %}"
    "{% if group_labels.node %} on {{ group_labels.node }}"
    "{% elif nodes | length == 1 and nodes[0] %} on {{ nodes[0] }}{% endif %}"
    "{% set guests = events | guests %}{% if guests %} (guests {{ guests }}){% endif %}"
    "{% endif %}{% endif %}"
)
DEFAULT_BODY = (
    "{% if incidents | length == 1 or count == 1 %}"
    "{% set one = incident or event %}{{ one.message or one.title }}"
    "{% if one.node %}\nnode: {{ one.node }}{% endif %}"
    "{% if incident and incident.peer_node %}\npeer: {{ incident.peer_node }}{% endif %}"
    "{% if one.vmid is not none %}\nvmid: {{ one.vmid }}{% endif %}"
    "{% set extra = enrichment.get(event.id) %}{% if extra and extra.guest_name %}"
    "\nguest: {{ extra.guest_name }}{% endif %}"
    "\nat: {{ event.timestamp | when(timezone) }}"
    "{% if incident and incident.earlier %}\nongoing since {{ incident.since | when(timezone) }}, "
    "{{ incident.earlier }} earlier reports{% endif %}"
    "{% if incident and incident.resolves %}\nresolves: {{ incident.resolves.title }} (since "
    "{{ incident.resolves.since | when(timezone) }}){% endif %}"
    "{% if incident %}\nseen via {{ incident.sources | join(', ') }}{% endif %}"
    "{% if incident and incident.reporters %}\nreported by {{ incident.reporters | join(', ') }}"
    "{% endif %}"
    "{% if extra and extra.task_log %}\n\n{{ extra.task_log }}{% endif %}"
    "{% else %}{% for e in events %}- [{{ e.severity }}] {{ e.node or '-' }}: {{ e.title }}"
    " ({{ e.timestamp | when(timezone) }})\n{% endfor %}{% endif %}"
)

# Gotify's default (``markdown: true``): its clients render CommonMark, where the plain body's
# single newlines join into one line and event text is markup. Here every value from an event
# is escaped (``md``), facts end with hard line breaks, a multi-line message (a job mail's
# table, a task log) is a fenced code block (``md_block``).
DEFAULT_BODY_MARKDOWN = (
    "{% if incidents | length == 1 or count == 1 %}"
    "{% set one = incident or event %}{% set text = (one.message or one.title) | trim %}"
    "{% if '\\n' in text %}{{ text | md_block }}{% else %}{{ text | md }}{% endif %}\n\n"
    "{% set extra = enrichment.get(event.id) or {} %}"
    "{{ [('node: ' ~ one.node) if one.node else '',"
    " ('peer: ' ~ incident.peer_node) if incident and incident.peer_node else '',"
    " ('vmid: ' ~ one.vmid) if one.vmid is not none else '',"
    " ('guest: ' ~ extra.guest_name) if extra.guest_name else '',"
    " 'at: ' ~ (event.timestamp | when(timezone)),"
    " ('ongoing since ' ~ (incident.since | when(timezone)) ~ ', ' ~ incident.earlier ~ ' earlier reports')"
    " if incident and incident.earlier else '',"
    " ('resolves: ' ~ incident.resolves.title ~ ' (since '"
    " ~ (incident.resolves.since | when(timezone)) ~ ')') if incident and incident.resolves else '',"
    " ('seen via ' ~ incident.sources | join(', ')) if incident else '',"
    " ('reported by ' ~ incident.reporters | join(', ')) if incident and incident.reporters"
    " else '']"
    " | select | map('md') | join('  \\n') }}"
    "{% if extra.task_log %}\n\n{{ extra.task_log | md_block }}{% endif %}"
    "{% else %}{% for e in events %}- {{ ('[' ~ e.severity ~ '] ' ~ (e.node or '-') ~ ': '"
    " ~ e.title ~ ' (' ~ (e.timestamp | when(timezone)) ~ ')') | md }}\n{% endfor %}{% endif %}"
)

# Characters that open CommonMark markup anywhere in a line (emphasis, code, links, autolinks
# and HTML, entities, GFM tables and strikethrough), and at a line's start (headings, lists,
# quotes, thematic breaks, setext underlines).
_MD_INLINE = re.compile(r"([\\`*_\[\]<>&|~!])")
_MD_LEADING = re.compile(r"^([#+=-])|^(\d+)([.)])")


def md(value: object) -> str:
    """``value`` as literal CommonMark text on one line (nothing in it becomes markup)."""
    text = " ".join(str(value).split())
    text = _MD_INLINE.sub(r"\\\1", text)
    return _MD_LEADING.sub(lambda m: f"\\{m[1]}" if m[1] else f"{m[2]}\\{m[3]}", text)


def md_block(value: object) -> str:
    """``value`` as a fenced CommonMark code block (lines and columns kept, no markup); the
    fence is longer than any run of backticks in it, so nothing inside can close it."""
    text = str(value).strip("\n")
    longest = max((len(run) for run in re.findall(r"`+", text)), default=0)
    fence = "`" * max(3, longest + 1)
    return f"{fence}\n{text}\n{fence}"


# Discord (embed descriptions and field values render its markdown: masked links, mentions,
# spoilers, headings, lists). Its escape rule is CommonMark's (a backslash before any
# punctuation), so ``md`` serves; its code blocks close at the first ``` whatever the opening
# fence, so ``discord_block`` breaks up runs of backticks in the text instead.
DEFAULT_BODY_DISCORD = DEFAULT_BODY_MARKDOWN.replace("| md_block", "| discord_block")


def discord_block(value: object) -> str:
    """``value`` as a Discord code block (``` fences); runs of three or more backticks in it
    get zero-width spaces between them, so nothing inside can close the block."""
    text = str(value).strip("\n")
    text = re.sub(r"`{3,}", lambda m: "\u200b".join(m[0]), text)
    return f"```\n{text}\n```"


def when(value: object, zone: object = "UTC") -> str:
    """A time as ``2026-11-30 02:04:12 UTC`` (from an ISO 8601 string, a datetime or epoch
    seconds), in ``zone`` (an IANA name; its abbreviation shown, ``CET``); what it cannot read
    is shown as given."""
    try:
        if isinstance(value, int | float) and not isinstance(value, bool):
            moment = datetime.fromtimestamp(value, UTC)
        elif isinstance(value, datetime):
            moment = value
        elif isinstance(value, str):
            moment = datetime.fromisoformat(value)
        else:
            return "" if value is None else str(value)
    except (ValueError, OverflowError, OSError):
        return str(value)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    try:
        tz = UTC if zone in (None, "", "UTC") else ZoneInfo(str(zone))
    except (ZoneInfoNotFoundError, ValueError):
        tz = UTC
    local = moment.astimezone(tz)
    return local.strftime("%Y-%m-%d %H:%M:%S ") + (local.tzname() or "UTC")


def with_node(title: object, node: object) -> str:
    """``title`` led by ``node: `` unless the title names the node already (as a word:
    ``pve1`` in ``on pve1.lab`` is named, in ``pve10`` it is not)."""
    text = str(title)
    if not node or not isinstance(node, str):
        return text
    if re.search(rf"(?<![\w-]){re.escape(node)}(?![\w-])", text, re.IGNORECASE):
        return text
    return f"{node}: {text}"


# how proxbus_events.knet titles a lost peer: ``Cluster link 0 to host 3 is down``
_KNET_HOST = re.compile(r"(?<![\w-])host \d+(?![\w-])")


def with_peer(title: object, peer: object) -> str:
    """``title`` naming a lost knet peer ``peer`` (its node name): ``host 3`` becomes
    ``host 3 (pve3)``; a title without such words gets `` (pve3)`` at its end; unchanged when
    ``peer`` is no name or the title names it already."""
    text = str(title)
    if not peer or not isinstance(peer, str):
        return text
    if re.search(rf"(?<![\w-]){re.escape(peer)}(?![\w-])", text, re.IGNORECASE):
        return text
    found = _KNET_HOST.search(text)
    if found is None:
        return f"{text} ({peer})"
    return f"{text[: found.end()]} ({peer}){text[found.end() :]}"


def kinds(events: object) -> str:
    """The kinds of ``events`` in order of appearance: ``backup.failed``, ``a, b and c``,
    or ``a, b and 3 more``."""
    seen: list[str] = []
    for event in events if isinstance(events, list) else []:
        kind = event.get("kind") if isinstance(event, dict) else None
        if isinstance(kind, str) and kind not in seen:
            seen.append(kind)
    if len(seen) <= 1:
        return seen[0] if seen else ""
    if len(seen) <= 3:
        return ", ".join(seen[:-1]) + f" and {seen[-1]}"
    return f"{seen[0]}, {seen[1]} and {len(seen) - 2} more"


def headline(events: object) -> dict[str, Any] | None:
    """The line to title a digest of plain lines with (every event a ``*.message``: log
    lines no rule recognised): the most severe, the first of those (what set the burst off:
    a cluster rejoin's ``A new membership (1.2a) was formed. Members joined: 2``, the rest
    being what follows from it); ``None`` when any event is classified (the title then
    counts kinds)."""
    best: dict[str, Any] | None = None
    best_rank = -1
    for event in events if isinstance(events, list) else []:
        if not isinstance(event, dict):
            return None
        kind = event.get("kind")
        if not isinstance(kind, str) or not kind.endswith(".message"):
            return None
        try:
            rank = Severity(str(event.get("severity"))).rank
        except ValueError:
            rank = 0
        if rank > best_rank:
            best, best_rank = event, rank
    return best


def guests(events: object, most: int = 8) -> str:
    """The distinct guest ids of ``events`` in order: ``100, 101`` or ``100, …, 107 and 3
    more`` past ``most``; empty when none names a guest."""
    seen: list[int] = []
    for event in events if isinstance(events, list) else []:
        vmid = event.get("vmid") if isinstance(event, dict) else None
        if isinstance(vmid, int) and vmid not in seen:
            seen.append(vmid)
    shown = ", ".join(str(v) for v in seen[:most])
    return shown + (f" and {len(seen) - most} more" if len(seen) > most else "")


_ENV = ImmutableSandboxedEnvironment(autoescape=False)
_ENV.filters.update(
    guests=guests,
    when=when,
    with_node=with_node,
    with_peer=with_peer,
    kinds=kinds,
    headline=headline,
    md=md,
    md_block=md_block,
    discord_block=discord_block,
)


@lru_cache(maxsize=256)
def compile_template(source: str) -> Template:
    """Compile once; raises ``jinja2.TemplateSyntaxError`` with the template line."""
    return _ENV.from_string(source)


def render(source: str, context: dict[str, Any], limit: int) -> str:
    """Render ``source`` with ``context``; the output is cut to ``limit`` characters.

    A template that fails at render time (unknown field, sandbox violation) falls back to
    the default template's text so a notification is never lost to a template bug.
    """
    try:
        text = compile_template(source).render(context)
    except Exception as exc:  # any template error must not lose the notification
        fallback = DEFAULT_TITLE if limit <= 256 else DEFAULT_BODY
        text = compile_template(fallback).render(context)
        if limit > 256:
            text += f"\n(template error: {type(exc).__name__}: {exc})"
    text = text.strip()
    return text if len(text) <= limit else text[: limit - 1] + "…"
