"""Title/body templates: a sandboxed Jinja2 environment with documented fields.

Fields available to every template:

- ``events``: list of event dicts (every ``Event`` field: id, timestamp, received_at, source,
  site, node, severity, kind, title, message, vmid, fingerprint, correlation_id, metadata)
- ``event``: the first (or only) event; ``count``: ``len(events)``
- ``severity``: the highest severity in the notification
- ``receiver``, ``route``: names; ``group_key``: the group's key (``None`` when ungrouped);
  ``group_labels``: the ``group_by`` label values of the group
- ``enrichment``: ``{event_id: {...}}`` facts added from the gateway (may be empty)
- ``incidents``: the incidents the notification is about, each ``{id, fingerprint, kind, node,
  vmid, severity, title, message, sources, count, first_seen, upid}`` (title/message: the best
  among its events); ``incident``: the first of them (``None`` when there are none)
"""

from __future__ import annotations

from functools import lru_cache
from typing import Any

from jinja2 import Template
from jinja2.sandbox import ImmutableSandboxedEnvironment

DEFAULT_TITLE = (
    "{% if incidents | length == 1 %}[{{ incident.severity | upper }}] {{ incident.title }}"
    "{% elif count == 1 %}[{{ event.severity | upper }}] {{ event.title }}"
    "{% else %}[{{ severity | upper }}] {{ count }} events: {{ event.kind }}"
    "{% if group_labels.node %} on {{ group_labels.node }}{% endif %}{% endif %}"
)
DEFAULT_BODY = (
    "{% if incidents | length == 1 or count == 1 %}"
    "{% set one = incident or event %}{{ one.message or one.title }}"
    "{% if one.node %}\nnode: {{ one.node }}{% endif %}"
    "{% if one.vmid is not none %}\nvmid: {{ one.vmid }}{% endif %}"
    "{% set extra = enrichment.get(event.id) %}{% if extra and extra.guest_name %}"
    "\nguest: {{ extra.guest_name }}{% endif %}"
    "{% if incident %}\nseen via {{ incident.sources | join(', ') }}{% endif %}"
    "{% if extra and extra.task_log %}\n\n{{ extra.task_log }}{% endif %}"
    "{% else %}{% for e in events %}- [{{ e.severity }}] {{ e.node or '-' }}: {{ e.title }}\n"
    "{% endfor %}{% endif %}"
)

_ENV = ImmutableSandboxedEnvironment(autoescape=False)


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
