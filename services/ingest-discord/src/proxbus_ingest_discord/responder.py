"""Answers verified interactions: commands through the gateway's NATS RPC, clicks, deferral.

Every interaction id is claimed once (``InteractionLedger``); the work runs in a task, and
if it has not finished after ``defer_after`` seconds Discord gets a deferred response (type 5
for a command, 6 for a click) and the answer follows through the interaction webhook.
Every command and click leaves one audit record and one ``command.<name>`` event.
"""

from __future__ import annotations

import asyncio
import logging
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from nats.aio.client import Client as NATS
from proxbus_events import Event, Matcher, Silence, deterministic_event_id
from proxbus_runtime import (
    EventPublisher,
    RateLimitedLog,
    RpcError,
    RpcTimeout,
    RpcUnavailable,
    SilenceStore,
    call_tool,
)

from .audit import DiscordAudit, DiscordAuditRecord
from .buttons import UsedButtons
from .commands import Command, parse_command
from .components import (
    DISABLED,
    EXPIRED,
    FORGED,
    AcknowledgeAlert,
    CancelAction,
    Click,
    ConfirmAction,
    SilenceAlert,
    button_refusal,
    confirm_row,
    parse_click,
)
from .confirmations import ALREADY, CANCELLED, MISMATCH, OTHER_USER, TAKEN, Confirmations
from .dedupe import DEFERRED, DONE, InteractionLedger
from .errors import UsageError
from .followup import FollowupClient
from .interaction import APPLICATION_COMMAND, PING, Actor, Interaction
from .metrics import DiscordMetrics
from .operators import Access
from .ratelimit import UserRate
from .render import (
    clip,
    render_action_result,
    render_events,
    render_guest_prompt,
    render_status,
    render_vms,
)

log = logging.getLogger(__name__)

# Discord "Interaction Callback Type"
PONG = 1
CHANNEL_MESSAGE = 4
DEFERRED_CHANNEL_MESSAGE = 5
DEFERRED_UPDATE_MESSAGE = 6
UPDATE_MESSAGE = 7
EPHEMERAL = 1 << 6
NO_MENTIONS: dict[str, Any] = {"parse": []}
EVENTS_WINDOW_MINUTES = 24 * 60
# Discord waits 3 s for an answer: the claim gets < 1 s, the claim and the work together up to
# ``defer_after`` (2 s); recording an immediate answer gets what is left of ANSWER_BUDGET. The
# rest of the bookkeeping (a deferral, a duplicate's audit) runs after the answer.
CLAIM_TIMEOUT = 0.8
# Refusals from outside DISCORD_GUILDS/CHANNELS audited per minute, all users together: anyone
# can add a public bot to a server of theirs, and PROXBUS_AUDIT keeps a bounded number of bytes.
OUTSIDE_AUDITS_PER_MINUTE = 60
ANSWER_BUDGET = 2.7


@dataclass(slots=True, frozen=True)
class ResponderOptions:
    """Tunables of the responder (from the settings)."""

    site: str
    cluster: str | None = None
    rpc_timeout: float = 30.0
    defer_after: float = 2.0
    confirm_seconds: float = 300.0
    events_limit: int = 10
    user_rate: int = 20
    # DISCORD_BUTTON_SECRET: the key of the notification buttons' tags; None refuses them all
    button_secret: bytes | None = None


@dataclass(slots=True)
class Outcome:
    """What one command or click did: feeds the audit record and the event."""

    name: str
    arguments: dict[str, Any]
    outcome: str = "ok"
    code: int | None = None
    message: str | None = None
    node: str | None = None
    vmid: int | None = None
    correlation_id: str | None = None
    changes: bool = False
    metadata: dict[str, Any] = field(default_factory=dict)
    # Published as an event (besides the audit record)? Not for what anyone outside can
    # repeat (refusals outside DISCORD_GUILDS/CHANNELS, rate limits): the dispatcher would
    # post each one to the lab's channel.
    publish: bool = True

    def fail(self, outcome: str, code: int, message: str) -> None:
        self.outcome, self.code, self.message = outcome, code, message


def message(content: str, *, ephemeral: bool = False, **extra: Any) -> dict[str, Any]:
    data: dict[str, Any] = {"content": clip(content), "allowed_mentions": NO_MENTIONS, **extra}
    if ephemeral:
        data["flags"] = EPHEMERAL
    return data


class Responder:
    """Turns one verified interaction into Discord's response (and maybe a follow-up)."""

    def __init__(
        self,
        nc: NATS,
        *,
        ledger: InteractionLedger,
        confirmations: Confirmations,
        buttons: UsedButtons,
        silences: SilenceStore,
        audit: DiscordAudit,
        publisher: EventPublisher,
        followups: FollowupClient,
        access: Access,
        options: ResponderOptions,
        metrics: DiscordMetrics,
    ) -> None:
        self._nc = nc
        self._ledger = ledger
        self._confirmations = confirmations
        self._buttons = buttons
        self._silences = silences
        self._audit = audit
        self._publisher = publisher
        self._followups = followups
        self._access = access
        self._opts = options
        self._metrics = metrics
        self._late: set[asyncio.Task[Any]] = set()
        self._rate = UserRate(options.user_rate)
        self._outside_audits = UserRate(OUTSIDE_AUDITS_PER_MINUTE, max_users=1)
        self._warn = RateLimitedLog(log, "interaction bookkeeping failed")
        self._failures = RateLimitedLog(log, "interactions failed", level=logging.ERROR)
        self._denials = RateLimitedLog(log, "Discord actions refused", level=logging.INFO)

    # -- entry point -----------------------------------------------------------------------

    async def respond(self, ix: Interaction) -> dict[str, Any]:
        """Discord's response to ``ix``.

        Raises:
            InteractionError: unknown command or component (answered 400 by the endpoint).
        """
        if ix.type == PING:
            self._metrics.interactions.labels("ping", "immediate").inc()
            return {"type": PONG}
        loop = asyncio.get_running_loop()
        started = loop.time()
        is_command = ix.type == APPLICATION_COMMAND
        kind = "command" if is_command else "component"
        # Parsed before the claim: an unknown command is a 4xx, not a remembered interaction.
        what: Command | Click = parse_command(ix.data) if is_command else parse_click(ix.data)
        deferred_type = DEFERRED_CHANNEL_MESSAGE if is_command else DEFERRED_UPDATE_MESSAGE
        where = self._access.outside(ix.guild_id, ix.channel_id, ix.parent_channel_id)
        if where is not None and ix.actor is not None:
            # From a server or DM proxbus does not answer in: refused before the claim, so
            # whoever added the bot elsewhere stores nothing in the ledger; a retry gets the
            # same refusal. Audited (not as an event) after the answer.
            self._metrics.interactions.labels(kind, "immediate").inc()
            out = Outcome(_name(what), _arguments(what), publish=False)
            response = self._denied(ix.actor, out, where)
            self._metrics.commands.labels(out.name, out.outcome).inc()
            if self._outside_audits.allow("outside"):
                record = self._record(ix, out, 0.0)
                self._track(asyncio.create_task(record, name=f"refused-{ix.id}"))
            return response
        claim = await asyncio.wait_for(self._ledger.claim(ix.id), CLAIM_TIMEOUT)
        if not claim.first:
            self._metrics.interactions.labels(kind, "duplicate").inc()
            self._track(asyncio.create_task(self._record_duplicate(ix, what), name=f"dup-{ix.id}"))
            if claim.state == DONE and claim.response is not None:
                return claim.response
            return {"type": deferred_type}
        work = asyncio.create_task(self._execute(ix, what), name=f"discord-{ix.id}")
        self._track(work)
        left = self._opts.defer_after - (loop.time() - started)
        done, _ = await asyncio.wait({work}, timeout=max(0.0, left))
        if done:
            response = work.result()
            self._metrics.interactions.labels(kind, "immediate").inc()
            # Stored for a retry of this id; if the bus is slow now, a retry gets the
            # deferred type instead (still nothing executed twice).
            budget = max(0.05, ANSWER_BUDGET - (loop.time() - started))
            await self._settle(ix.id, DONE, response, timeout=budget)
            return response
        self._metrics.interactions.labels(kind, "deferred").inc()
        self._track(
            asyncio.create_task(self._follow_up(ix, work, is_command), name=f"followup-{ix.id}")
        )
        return {"type": deferred_type}

    def _track(self, task: asyncio.Task[Any]) -> None:
        self._late.add(task)
        task.add_done_callback(self._late.discard)

    async def _settle(
        self,
        interaction_id: str,
        state: str,
        response: dict[str, Any] | None,
        *,
        timeout: float | None = None,
    ) -> None:
        # The work is done: a ledger hiccup must not turn its answer into an error. A retry
        # then finds the claim still "pending" and gets a deferred answer, never a second run.
        try:
            await asyncio.wait_for(self._ledger.settle(interaction_id, state, response), timeout)
        except Exception as exc:
            self._warn.record(f"answer not recorded: {type(exc).__name__}", detail=interaction_id)

    async def close(self, timeout: float = 8.0) -> None:
        """Let work and follow-ups in flight finish (up to ``timeout``), then cancel the rest.

        Waited for until none is left: work answered "deferred" while we wait starts its
        follow-up task then, and that one must finish too (its URL dies with the service).
        """
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        while self._late and (left := deadline - loop.time()) > 0:
            await asyncio.wait(set(self._late), timeout=left, return_when=asyncio.FIRST_COMPLETED)
        pending = set(self._late)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    async def _follow_up(
        self, ix: Interaction, work: asyncio.Task[dict[str, Any]], is_command: bool
    ) -> None:
        await self._settle(ix.id, DEFERRED, None)
        response = await work
        try:
            sent = await self._send_late(ix, response, is_command)
        except Exception as exc:  # whatever Discord's side did, the interaction is settled
            self._warn.record(f"follow-up failed: {type(exc).__name__}", detail=ix.id)
            sent = False
        self._metrics.followups.labels("sent" if sent else "failed").inc()
        await self._settle(ix.id, DONE, response)

    async def _send_late(self, ix: Interaction, response: dict[str, Any], is_command: bool) -> bool:
        """Deliver ``response`` through the interaction webhook; whether Discord took it."""
        data = response.get("data") or {}
        app, token = ix.application_id, ix.token
        if data.get("flags") == EPHEMERAL:
            # Meant for the member only (an error, a refusal). The first follow-up of a
            # deferral takes the deferral's visibility (a command's "thinking…" is public), so
            # that is resolved first and the answer follows as a second, ephemeral message.
            if is_command:
                assert ix.actor is not None
                note = message(f"Answered to {ix.actor.name} only.")
                sent = await self._followups.edit_original(app, token, note)
                sent = sent and await self._followups.create(app, token, data)
            else:  # a deferred click shows nothing: a follow-up is a message of its own
                sent = await self._followups.create(app, token, data)
        elif is_command:
            sent = await self._followups.create(app, token, data)
        else:
            # An edit cannot make the clicked message ephemeral.
            data = {k: v for k, v in data.items() if k != "flags"}
            sent = await self._followups.edit_original(app, token, data)
        return sent

    # -- one command or click --------------------------------------------------------------

    async def _execute(self, ix: Interaction, what: Command | Click) -> dict[str, Any]:
        assert ix.actor is not None
        started = time.perf_counter()
        out = Outcome(_name(what), _arguments(what))
        try:
            if not self._rate.allow(ix.actor.user_id):
                out.fail(
                    "rate_limited", 429, f"over DISCORD_USER_RATE ({self._opts.user_rate}/min)"
                )
                out.publish = False
                self._denials.record(f"{out.name}: over the user rate", ix.actor.user_id)
                text = "Slow down: too many /proxbus commands and clicks; try again in a minute."
                return await self._finish(ix, out, started, _channel(message(text, ephemeral=True)))
            refusal = self._access.refusal(
                ix.actor,
                ix.guild_id,
                ix.channel_id,
                ix.parent_channel_id,
                change=not isinstance(what, Command) or what.is_change,
            )
            if refusal is not None:  # (outside DISCORD_GUILDS/CHANNELS: refused in respond())
                response = self._denied(ix.actor, out, refusal)
            elif isinstance(what, Command):
                response = await self._command(ix.actor, what, out)
            else:
                response = await self._click(ix.actor, what, out)
        except UsageError as exc:
            out.fail("error", 400, str(exc))
            response = _reply(what, message(str(exc), ephemeral=True))
        except RpcError as exc:
            out.fail("error", exc.code, exc.message)
            text = f"{out.name} failed: {exc.message}"
            response = _reply(what, message(text, ephemeral=isinstance(what, Command)))
        except Exception as exc:  # a bug must not leave Discord without an answer
            # A member can repeat this: the first traceback at once, then a summary.
            self._failures.record(f"{out.name}: {type(exc).__name__}", detail=ix.id, exc_info=exc)
            out.fail("error", 500, f"internal error ({type(exc).__name__})")
            response = _reply(what, message("internal error, see the service log", ephemeral=True))
        return await self._finish(ix, out, started, response)

    async def _finish(
        self, ix: Interaction, out: Outcome, started: float, response: dict[str, Any]
    ) -> dict[str, Any]:
        duration_ms = round((time.perf_counter() - started) * 1000, 3)
        self._metrics.commands.labels(out.name, out.outcome).inc()
        await self._record(ix, out, duration_ms)
        return response

    async def _command(self, actor: Actor, cmd: Command, out: Outcome) -> dict[str, Any]:
        if cmd.usage_error is not None:
            raise UsageError(cmd.usage_error)
        if cmd.name == "status":
            return _channel(message(await self._status(actor)))
        if cmd.name == "vms":
            node = cmd.arguments.get("node")
            result = await self._call("get_vms", {"node": node} if node else {}, actor)
            return _channel(message(render_vms(result, node)))
        if cmd.name == "events":
            severity = cmd.arguments["severity"]
            args = {
                "min_severity": severity,
                "since_minutes": EVENTS_WINDOW_MINUTES,
                "limit": self._opts.events_limit,
            }
            args["site"] = self._opts.site
            result = await self._call("get_recent_events", args, actor, cluster=False)
            return _channel(message(render_events(result, severity)))
        if cmd.name == "silence":
            matchers = [Matcher.parse(m) for m in cmd.arguments["matchers"]]
            seconds = cmd.arguments["seconds"]
            silence = await self._silence(actor, matchers, seconds, out)
            return _channel(message(_silenced_text(silence, actor)))
        # start / stop / reboot: show the guest and ask to confirm.
        status = await self._call("get_guest_status", {"vmid": cmd.arguments["vmid"]}, actor)
        out.node, out.vmid = status.get("node"), cmd.arguments["vmid"]
        out.metadata["phase"] = "requested"
        kind = "lxc" if status.get("type") == "lxc" else "qemu"
        vmid = cmd.arguments["vmid"]
        nonce = await self._confirmations.offer(
            cmd.name, kind, vmid, actor.user_id, actor.name, self._opts.confirm_seconds
        )
        out.metadata["confirmation"] = nonce
        confirm = ConfirmAction(cmd.name, kind, vmid, nonce)
        content = render_guest_prompt(cmd.name, status)
        content += (
            f"\nconfirm within {self._opts.confirm_seconds / 60:.0f} min"
            f" (only {actor.name}, who asked, can confirm)"
        )
        return _channel(message(content, components=confirm_row(confirm)))

    async def _click(self, actor: Actor, click: Click, out: Outcome) -> dict[str, Any]:
        out.changes = True
        if isinstance(click, CancelAction):
            if click.nonce is not None:
                taken = await self._confirmations.take(
                    click.nonce,
                    action=None,
                    kind=None,
                    vmid=None,
                    user_id=actor.user_id,
                    user_name=actor.name,
                    state=CANCELLED,
                    any_user=True,
                )
                if taken.result == ALREADY and taken.pending is not None:
                    out.fail("duplicate", 409, f"confirmation already {taken.pending.state}")
                    return _ephemeral(_already_text(taken.pending))
            return _update(message(f"Cancelled by {actor.name}.", components=[]))
        if isinstance(click, ConfirmAction):
            out.vmid = click.vmid
            out.metadata["phase"] = "confirmed"
            refused = await self._take_confirmation(actor, click, out)
            if refused is not None:
                return refused
            tool = "execute_lxc_command" if click.kind == "lxc" else "execute_vm_command"
            args = {"vmid": click.vmid, "command": click.action, "confirm": True}
            try:
                result = await self._call(tool, args, actor)
            except RpcError as exc:
                out.fail("error", exc.code, exc.message)
                text = f"**{click.action} {click.vmid} failed**: {exc.message}"
                if isinstance(exc, RpcTimeout) and not isinstance(exc, RpcUnavailable):
                    # The request reached a gateway: the action may have been sent to Proxmox.
                    text = (
                        f"**{click.action} {click.vmid}**: {exc.message}; it may still run."
                        " Check `/proxbus vms` or the Proxmox task log before trying again."
                    )
                if exc.code == 403 and "'operate' scope" in exc.message:
                    text += "\n(the gateway gives NATS callers RPC_SCOPES; power actions need read+operate)"
                return _update(message(text, components=[]))
            out.correlation_id = result.get("upid")
            return _update(
                message(render_action_result(click.action, result, actor.name), components=[])
            )
        refused = await self._refuse_button(actor, click, out)
        if refused is not None:
            return refused
        if isinstance(click, SilenceAlert):
            matchers = [Matcher(name="fingerprint", op="=", value=click.fingerprint)]
            silence = await self._silence(actor, matchers, click.seconds, out)
            out.metadata["alert_fingerprint"] = click.fingerprint
            return _update(message(_silenced_text(silence, actor), components=[]))
        out.metadata["alert_fingerprint"] = click.fingerprint
        return _update(message(f"Acknowledged by {actor.name}.", components=[]))

    # -- pieces ----------------------------------------------------------------------------

    async def _refuse_button(
        self, actor: Actor, click: SilenceAlert | AcknowledgeAlert, out: Outcome
    ) -> dict[str, Any] | None:
        """``None`` if the dispatcher made this notification button (its tag checks out and
        it has not expired) and this is its first use, else the answer: shown to the clicker
        only, nothing changed."""
        reason = button_refusal(click, self._opts.button_secret, time.time())
        if reason is None:
            assert click.tag is not None
            used_by = await self._buttons.use(click.tag, actor.name)
            if used_by is None:
                return None
            out.changes = False
            out.fail("duplicate", 409, f"button already used by {used_by}")
            return _ephemeral(f"This button was already used by {used_by}; nothing done.")
        self._metrics.buttons_refused.labels(reason).inc()
        self._denials.record(f"{out.name}: {reason} button", actor.user_id)
        out.changes = False
        instead = "use `/proxbus silence` instead" if isinstance(click, SilenceAlert) else ""
        if reason == DISABLED:
            out.fail("refused", 503, "notification buttons are off (no DISCORD_BUTTON_SECRET)")
            text = (
                "Notification buttons are turned off here (DISCORD_BUTTON_SECRET is not set on"
                " ingest-discord); nothing done."
            )
        elif reason == FORGED:
            out.fail("refused", 403, "button not made by the dispatcher (tag does not match)")
            text = (
                "This button was not made by proxbus (its signature does not match); nothing done."
            )
        elif reason == EXPIRED:
            out.fail("refused", 410, "button expired")
            text = "This button expired; nothing done."
        else:  # MISSING: no tag, e.g. a notification sent before buttons were signed
            out.fail("refused", 410, "button without a tag (an earlier version's, or not ours)")
            text = "This button expired (it predates signed buttons); nothing done."
        if instead:
            text = text[:-1] + f"; {instead}."
        return _ephemeral(text)

    async def _take_confirmation(
        self, actor: Actor, click: ConfirmAction, out: Outcome
    ) -> dict[str, Any] | None:
        """Consume the click's confirmation: ``None`` if the action may run, else the answer."""
        again = f"run `/proxbus {click.action} {click.vmid}` again"
        if click.nonce is None:  # a button of an earlier version: nothing to check it against
            out.fail("expired", 410, "confirmation button of an earlier version")
            return _update(message(f"This confirmation expired; {again}.", components=[]))
        out.metadata["confirmation"] = click.nonce
        taken = await self._confirmations.take(
            click.nonce,
            action=click.action,
            kind=click.kind,
            vmid=click.vmid,
            user_id=actor.user_id,
            user_name=actor.name,
        )
        if taken.result == TAKEN:
            return None
        if taken.result == ALREADY and taken.pending is not None:
            out.fail("duplicate", 409, f"confirmation already {taken.pending.state}")
            return _ephemeral(_already_text(taken.pending))
        if taken.result == OTHER_USER and taken.pending is not None:
            out.fail("denied", 403, f"confirmation belongs to {taken.pending.user_id}")
            self._denials.record(f"{out.name}: someone else's confirmation", actor.user_id)
            return _ephemeral(
                f"Only {taken.pending.user_name or taken.pending.user_id}, who asked, can confirm"
                f" this; {again} to ask yourself."
            )
        if taken.result == MISMATCH:
            # The button's id names another action or guest than the one stored: not a
            # button this service made.
            out.fail("denied", 403, "button does not match its confirmation")
            self._denials.record(f"{out.name}: forged confirmation", actor.user_id)
            return _ephemeral(f"This button does not match its confirmation; {again}.")
        out.fail("expired", 410, f"confirmation {taken.result}")
        return _update(message(f"This confirmation expired; {again}.", components=[]))

    def _denied(self, actor: Actor, out: Outcome, why: str) -> dict[str, Any]:
        out.fail("denied", 403, f"{actor.name} ({actor.user_id}): {why}")
        self._denials.record(f"{out.name}: {why}", actor.user_id)
        return {"type": CHANNEL_MESSAGE, "data": message(why, ephemeral=True)}

    async def _status(self, actor: Actor) -> str:
        cluster, nodes, vms, cts = await asyncio.gather(
            self._call("get_cluster_status", {}, actor),
            self._call("get_nodes", {}, actor),
            self._call("get_vms", {}, actor),
            self._call("get_lxcs", {}, actor),
        )
        return render_status(cluster, nodes, vms, cts)

    async def _silence(
        self, actor: Actor, matchers: list[Matcher], seconds: int, out: Outcome
    ) -> Silence:
        silence = Silence.for_duration(
            matchers,
            timedelta(seconds=seconds),
            created_by=actor.caller,
            comment=f"from Discord by {actor.name} ({actor.user_id})",
        )
        await self._silences.add(silence)
        out.metadata["silence_id"] = silence.id
        out.changes = True
        return silence

    async def _call(
        self, tool: str, args: dict[str, Any], actor: Actor, *, cluster: bool = True
    ) -> Any:
        if cluster and self._opts.cluster:
            args = {**args, "cluster": self._opts.cluster}
        # The gateway audits the call under this caller: the Discord user, by id.
        return await call_tool(
            self._nc, tool, args, timeout=self._opts.rpc_timeout, caller=actor.caller
        )

    async def _record(self, ix: Interaction, out: Outcome, duration_ms: float) -> None:
        assert ix.actor is not None
        arguments = {
            **out.arguments,
            "discord_user_id": ix.actor.user_id,
            "discord_user": ix.actor.name,
            "discord_guild_id": ix.guild_id,
            "discord_channel_id": ix.channel_id,
            "interaction_id": ix.id,
        }
        await self._audit.record(
            DiscordAuditRecord(
                tool=f"discord_{out.name}",
                caller=ix.actor.caller,
                arguments=arguments,
                outcome=out.outcome,
                site=self._opts.site,
                interaction_id=ix.id,
                duration_ms=duration_ms,
                message=out.message,
                code=out.code,
            )
        )
        if not out.publish:
            return  # audited, but not an event (see Outcome.publish)
        severity = ("notice" if out.changes else "info") if out.outcome == "ok" else "warning"
        now = datetime.now(UTC)
        detail = ", ".join(f"{k}={v}" for k, v in out.arguments.items())
        event = Event(
            id=deterministic_event_id(now, "discord", ix.id),
            timestamp=now,
            source="discord",
            site=self._opts.site,
            node=out.node,
            vmid=out.vmid,
            severity=severity,
            kind=f"command.{out.name}",
            title=f"Discord {out.name} by {ix.actor.name}: {out.outcome}",
            message=(f"{detail}\n" if detail else "") + (out.message or ""),
            correlation_id=out.correlation_id,
            metadata={
                **out.metadata,
                "outcome": out.outcome,
                "arguments": out.arguments,
                "discord_user": ix.actor.name,
                "discord_user_id": ix.actor.user_id,
                "discord_guild_id": ix.guild_id,
                "interaction_id": ix.id,
            },
        )
        try:
            await self._publisher.publish(event, timeout=5.0)
        except Exception as exc:
            self._warn.record(f"event not stored: {type(exc).__name__}", detail=ix.id)

    async def _record_duplicate(self, ix: Interaction, what: Command | Click) -> None:
        assert ix.actor is not None
        await self._audit.record(
            DiscordAuditRecord(
                tool=f"discord_{_name(what)}",
                caller=ix.actor.caller,
                arguments={**_arguments(what), "interaction_id": ix.id},
                outcome="duplicate",
                site=self._opts.site,
                interaction_id=ix.id,
                message="interaction delivered again; not executed twice",
            )
        )


def _name(what: Command | Click) -> str:
    if isinstance(what, Command):
        return what.name
    if isinstance(what, ConfirmAction):
        return what.action
    if isinstance(what, CancelAction):
        return "cancel"
    if isinstance(what, SilenceAlert):
        return "silence"
    return "ack"


def _arguments(what: Command | Click) -> dict[str, Any]:
    if isinstance(what, Command):
        return dict(what.arguments)
    if isinstance(what, ConfirmAction):
        return {"vmid": what.vmid, "kind": what.kind, "via": "button"}
    if isinstance(what, SilenceAlert):
        return {"fingerprint": what.fingerprint, "seconds": what.seconds, "via": "button"}
    if isinstance(what, AcknowledgeAlert):
        return {"fingerprint": what.fingerprint, "via": "button"}
    return {"via": "button"}


def _channel(data: dict[str, Any]) -> dict[str, Any]:
    return {"type": CHANNEL_MESSAGE, "data": data}


def _ephemeral(text: str) -> dict[str, Any]:
    """A message only the clicker sees; the clicked message stays as it is."""
    return _channel(message(text, ephemeral=True))


def _already_text(pending: Any) -> str:
    verb = "confirmed" if pending.state == "used" else "cancelled"
    who = pending.by or "someone"
    return f"This {pending.action} of {pending.vmid} was already {verb} by {who}; nothing done."


def _update(data: dict[str, Any]) -> dict[str, Any]:
    return {"type": UPDATE_MESSAGE, "data": data}


def _reply(what: Command | Click, data: dict[str, Any]) -> dict[str, Any]:
    """A command gets a new message; a click's error is shown to the clicker only."""
    if isinstance(what, Command) or data.get("flags") == EPHEMERAL:
        return _channel(data)
    return _update(data)


def _silenced_text(silence: Silence, actor: Actor) -> str:
    until = int(silence.ends_at.timestamp())
    matchers = ", ".join(f"`{m}`" for m in silence.matchers)
    return f"Silenced {matchers} until <t:{until}:f> (<t:{until}:R>) by {actor.name}; id `{silence.id}`"
