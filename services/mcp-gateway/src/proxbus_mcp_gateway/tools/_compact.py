"""Compact argument types and output schemas for the provisioning / backup / device tools.

``tools/list`` must stay under 40 KB with every tool, so these schemas carry lengths, not
long patterns: handlers check formats with :mod:`..validate` before any URL is built.
"""

from typing import Annotated, Any

from pydantic import Field

Cluster = Annotated[str | None, Field(default=None, max_length=64)]
Node = Annotated[str | None, Field(default=None, max_length=63)]
ReqNode = Annotated[str, Field(max_length=63)]
Server = Annotated[str | None, Field(default=None, max_length=63, description="PBS server")]
NameArg = Annotated[str | None, Field(default=None, max_length=63)]
OptVmid = Annotated[int | None, Field(default=None, ge=100, le=999_999_999)]
Storage = Annotated[str, Field(max_length=64)]
OptStorage = Annotated[str | None, Field(default=None, max_length=64)]
Volume = Annotated[str, Field(max_length=300)]
Upid = Annotated[str, Field(pattern=r"^UPID:[^/\s%]{20,300}$")]
Confirm = Annotated[bool, Field(default=False)]
# PBS backup namespace path; its format (PBS's pattern, 7 levels) is checked by
# validate.pbs_namespace before any request.
Ns = Annotated[str | None, Field(default=None, max_length=256, description="PBS namespace a/b")]
LIST_OUT: dict[str, Any] = {"type": "object", "required": ["items", "count"]}


def typed_out(**types: str) -> dict[str, Any]:
    """An output schema: these keys, each of this JSON type, are in every answer."""
    return {
        "type": "object",
        "properties": {k: {"type": t} for k, t in types.items()},
        "required": list(types),
    }


def shape(required: str, **props: str | dict[str, Any]) -> dict[str, Any]:
    """An output schema: each key's JSON type (``"number?"``: or null) or schema; the keys
    named in ``required`` (space-separated) are in every answer. Undeclared keys stay
    allowed: Proxmox adds fields between releases."""
    schemas = {
        k: v if isinstance(v, dict) else {"type": [v[:-1], "null"] if v.endswith("?") else v}
        for k, v in props.items()
    }
    out: dict[str, Any] = {"type": "object", "properties": schemas}
    if required:
        out["required"] = required.split()
    return out


STRINGS: dict[str, Any] = {"type": "array", "items": {"type": "string"}}


# An action (plan without confirm, "already running", started / waited-for task, PBS delete):
# every answer says whether it acted (_common.plan, _common.task_result). ``target`` is in
# every answer too, but undeclared: tools/list has no room for it on every action tool.
ACT_OUT = typed_out(executed="boolean")


def task_out(*extra: str) -> dict[str, Any]:
    """A tool that starts one task: its UPID and status (started/running/ok), plus ``extra``."""
    return {"type": "object", "required": ["upid", "status", *extra]}
