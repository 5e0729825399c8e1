"""Event tools: recent events from PROXBUS_EVENTS, silences in the KV bucket."""

import contextlib
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from nats.js.api import ConsumerConfig, DeliverPolicy
from proxbus_events import EVENTS_STREAM, Event, Matcher, Silence, events_filter
from proxbus_runtime import SilenceStore
from pydantic import Field

from ..errors import InvalidArgument, ToolFailure
from ..registry import CallContext, Registry, ToolInput, ToolResult, list_output
from ._common import listing
from ._compact import shape

SeverityName = Literal["debug", "info", "notice", "warning", "error", "critical"]
MAX_SCAN = 20_000


def _js(ctx: CallContext) -> Any:
    js = ctx.gateway.js
    if js is None:
        raise ToolFailure("event tools need NATS (NATS_URL) and it is not connected", code=503)
    return js


def register(reg: Registry) -> None:
    class EventsIn(ToolInput):
        site: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,64}$")
        node: str | None = Field(default=None, pattern=r"^[A-Za-z0-9_-]{1,63}$")
        min_severity: SeverityName = "info"
        kind: str | None = Field(
            default=None, pattern=r"^[a-z0-9_.*-]{1,64}$", description="e.g. backup.* "
        )
        since_minutes: int = Field(default=60, ge=1, le=10080)
        limit: int = Field(default=50, ge=1, le=500)

    @reg.tool(
        "Recent events",
        output=list_output({"kind": "string", "severity": "string", "title": "string"}, False),
        open_world=False,
    )
    async def get_recent_events(ctx: CallContext, args: EventsIn) -> ToolResult:
        """Events from the bus (syslog, mail, API, webhooks), newest first."""
        js = _js(ctx)
        start = datetime.now(UTC) - timedelta(minutes=args.since_minutes)
        subject = events_filter(site=args.site, node=args.node)
        matchers = [Matcher(name="severity", op=">=", value=args.min_severity)]
        if args.kind:
            matchers.append(Matcher(name="kind", op="=", value=args.kind))
        found: list[Event] = []
        scanned = 0
        sub = await js.subscribe(
            subject,
            ordered_consumer=True,
            stream=EVENTS_STREAM,
            config=ConsumerConfig(
                deliver_policy=DeliverPolicy.BY_START_TIME,
                opt_start_time=start,
            ),
        )
        try:
            while scanned < MAX_SCAN:
                try:
                    msg = await sub.next_msg(timeout=0.5)
                except TimeoutError:
                    break
                except Exception as exc:  # nats.errors.TimeoutError is not a TimeoutError
                    if type(exc).__name__ == "TimeoutError":
                        break
                    raise
                scanned += 1
                with contextlib.suppress(ValueError):
                    ev = Event.model_validate_json(msg.data)
                    if all(m.matches(ev) for m in matchers):
                        found.append(ev)
                        if len(found) > args.limit:
                            found.pop(0)
                if msg.metadata.num_pending == 0:
                    break
        finally:
            with contextlib.suppress(Exception):
                await sub.unsubscribe()
        items = [
            {
                "id": e.id,
                "timestamp": e.timestamp.isoformat(),
                "site": e.site,
                "node": e.node,
                "severity": e.severity.value,
                "kind": e.kind,
                "title": e.title,
                "vmid": e.vmid,
                "source": e.source.value,
            }
            for e in reversed(found)
        ]
        res = listing(items, ["timestamp", "severity", "kind", "node", "title"], "events")
        res.data["scanned"] = scanned
        return res

    class SilenceIn(ToolInput):
        matchers: list[str] = Field(
            min_length=1, max_length=10, description='e.g. ["node=pve2","severity<=warning"]'
        )
        duration_minutes: int = Field(default=60, ge=1, le=10080)
        comment: str = Field(default="", max_length=512)

    @reg.tool(
        "Silence alerts",
        scope="operate",
        idempotent=False,
        open_world=False,
        # proxbus_events.Silence as JSON: the id (to find it in list_silences), its end
        output=shape(
            "id matchers ends_at",
            id="string",
            matchers="array",
            ends_at="string",
        ),
    )
    async def silence_alerts(ctx: CallContext, args: SilenceIn) -> ToolResult:
        """Mute notifications matching all matchers (field op value; ops = != =~ !~ >= <=) for a
        while. Events are still stored.
        """
        try:
            matchers = [Matcher.parse(m) for m in args.matchers]
        except ValueError as exc:
            raise InvalidArgument(str(exc)) from None
        store = await SilenceStore.open(_js(ctx))
        silence = Silence.for_duration(
            matchers,
            timedelta(minutes=args.duration_minutes),
            created_by=f"gateway:{ctx.caller.name}",
            comment=args.comment,
        )
        await store.add(silence)
        data = silence.model_dump(mode="json")
        return ToolResult(
            data,
            f"silence {silence.id} until {silence.ends_at.isoformat()}: "
            + ", ".join(map(str, matchers)),
        )

    class ListSilencesIn(ToolInput):
        include_expired: bool = False

    @reg.tool(
        "List silences",
        output=list_output({"id": "string", "ends_at": "string"}, False),
        open_world=False,
    )
    async def list_silences(ctx: CallContext, args: ListSilencesIn) -> ToolResult:
        """Active (or all) alert silences."""
        store = await SilenceStore.open(_js(ctx))
        silences = await store.list(include_expired=args.include_expired)
        items = [
            {
                "id": s.id,
                "matchers": ", ".join(map(str, s.matchers)),
                "ends_at": s.ends_at.isoformat(),
                "created_by": s.created_by,
                "comment": s.comment,
            }
            for s in silences
        ]
        return listing(items, ["id", "ends_at", "matchers", "comment"], "silences")
