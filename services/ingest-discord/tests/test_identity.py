"""Who did it, in the audit: the Discord user id (display names are neither unique nor fixed),
also in the gateway's own audit record of the power action; names shown or stored lose
control and direction-override characters.

Real parts: a real nats-server, the real gateway over NATS RPC in front of pvesim, signed
requests.
"""

from __future__ import annotations

import unicodedata
from typing import Any

from proxbus_events import AUDIT_STREAM
from proxbus_ingest_discord.testing import (
    OPERATOR,
    Signed,
    click,
    command,
    discord_audit,
    discord_events,
    stream_messages,
)
from proxbus_mcp_gateway.app import Running


def confirm_id(answer: dict[str, Any]) -> str:
    buttons = answer["data"]["components"][0]["components"]
    return next(b["custom_id"] for b in buttons if b["custom_id"].startswith("pbx:do:"))


async def test_the_audit_names_the_discord_user_by_id_in_both_records(
    signed: Signed, gateway: Running, js: Any
) -> None:
    # Any member can call themselves "alice" (another operator's display name).
    _, asked = await signed.post(command("stop", {"vmid": 100}, name="alice"))
    _, done = await signed.post(click(confirm_id(asked), name="alice"))
    assert done["type"] == 7
    mine = await discord_audit(js, 2)
    assert [r["caller"] for r in mine] == [f"discord:{OPERATOR}"] * 2
    assert all(r["arguments"]["discord_user"] == "alice" for r in mine)
    gateway_records = [
        r
        for r in await stream_messages(js, AUDIT_STREAM)
        if r["transport"] == "nats" and r["tool"] == "execute_vm_command"
    ]
    assert [r["caller"] for r in gateway_records] == [f"discord:{OPERATOR}"]
    assert gateway_records[0]["outcome"] == "ok"


async def test_display_names_lose_control_and_direction_characters(
    signed: Signed, gateway: Running, js: Any
) -> None:
    tricky = "\u202eadmin\u200b\x07\nroot\u2066"
    _, cancelled = await signed.post(click("pbx:cancel", name=tricky))
    assert cancelled["data"]["content"] == "Cancelled by admin root."
    [event] = await discord_events(js, 1)
    text = event.title + event.message + str(event.metadata)
    assert not [c for c in text if unicodedata.category(c) in ("Cc", "Cf") and c != "\n"]
    assert "admin root" in event.title
    [record] = await discord_audit(js, 1)
    assert record["arguments"]["discord_user"] == "admin root"


async def test_no_answer_can_ping_everyone_or_a_role(
    signed: Signed, gateway: Running, js: Any, sim: Any, discord_api: Any
) -> None:
    from proxbus_events import Event
    from proxbus_runtime import EventPublisher

    async with EventPublisher(js) as pub:
        await pub.publish(
            Event(source="syslog", site="lab", node="pve1", severity="error",
                  kind="backup.failed", title="@everyone <@&222222222222222222> @here")
        )  # fmt: skip
    _, now = await signed.post(command("events"))
    assert "@everyone" in now["data"]["content"]
    assert now["data"]["allowed_mentions"] == {"parse": []}
    # A deferred answer's follow-up too.
    sim.add_latency("/cluster/resources", 2.5)
    _, deferred = await signed.post(command("vms", name="@everyone"))
    assert deferred == {"type": 5}
    await discord_api.wait(1, timeout=15)
    assert discord_api.calls[0][2]["allowed_mentions"] == {"parse": []}


async def test_event_text_shown_in_tables_loses_control_and_direction_characters(
    signed: Signed, gateway: Running, js: Any
) -> None:
    # Event titles come from remote parties (a syslog line, a mail subject): a right-to-left
    # override would reorder what the table shows, an escape sequence or a bell is noise.
    from proxbus_events import Event
    from proxbus_runtime import EventPublisher

    async with EventPublisher(js) as pub:
        await pub.publish(
            Event(source="syslog", site="lab", node="pve1", severity="error",
                  kind="backup.failed", title="job \u202edeliaf\u202c ok\x1b[31m\x07 \u200bdone")
        )  # fmt: skip
    _, answer = await signed.post(command("events"))
    content = answer["data"]["content"]
    assert not [c for c in content if unicodedata.category(c) in ("Cc", "Cf") and c != "\n"]
    assert "job deliaf ok[31m done" in content
