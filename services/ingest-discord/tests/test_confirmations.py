"""A power action's confirm button, audited as an untrusting reviewer would: it runs once per
confirmation whatever the clicks (twice, at once, from two replicas), only for the operator who
asked, only for the guest that was shown, and a button the service never offered runs nothing.

Real parts: a real nats-server, the real gateway over NATS RPC in front of pvesim, requests
signed with a generated Ed25519 key as Discord signs them.
"""

from __future__ import annotations

import asyncio
import time
from typing import Any

from proxbus_devtools.testing import wait_until
from proxbus_ingest_discord.app import DiscordService
from proxbus_ingest_discord.testing import (
    OPERATOR,
    OPERATOR_ROLE,
    STRANGER,
    Signed,
    click,
    command,
    discord_audit,
    service_settings,
)
from proxbus_mcp_gateway.app import Running
from proxbus_pvesim.simulator import Simulator

# A second operator (by role), and a third one by role too.
OTHER = "444444444444444444"


def power_requests(sim: Simulator, vmid: int, action: str) -> int:
    suffix = f"/{vmid}/status/{action}"
    return sum(1 for r in sim.request_log if r.method == "POST" and r.path.endswith(suffix))


def buttons(answer: dict[str, Any]) -> list[str]:
    return [b["custom_id"] for b in answer["data"]["components"][0]["components"]]


def confirm_id(answer: dict[str, Any]) -> str:
    return next(c for c in buttons(answer) if c.startswith("pbx:do:"))


def cancel_id(answer: dict[str, Any]) -> str:
    return next(c for c in buttons(answer) if c.startswith("pbx:cancel"))


async def test_a_second_click_on_the_same_confirm_button_runs_nothing(
    signed: Signed, gateway: Running, sim: Simulator, js: Any
) -> None:
    # Two clicks are two interactions (two ids): a double click, a second device, or the
    # button still shown while a deferred action runs.
    _, asked = await signed.post(command("reboot", {"vmid": 100}))
    custom_id = confirm_id(asked)
    _, first = await signed.post(click(custom_id))
    assert first["type"] in (6, 7)  # 6: deferred on a slow machine, the edit follows
    _, second = await signed.post(click(custom_id))
    await wait_until(lambda: power_requests(sim, 100, "reboot") >= 1, timeout=10)
    assert power_requests(sim, 100, "reboot") == 1
    assert second["type"] == 4
    assert second["data"]["flags"] == 64
    assert "already" in second["data"]["content"]
    records = await discord_audit(js, 3)
    assert [(r["tool"], r["outcome"]) for r in records] == [
        ("discord_reboot", "ok"),
        ("discord_reboot", "ok"),
        ("discord_reboot", "duplicate"),
    ]


async def test_two_clicks_at_once_run_the_action_once(
    signed: Signed, gateway: Running, sim: Simulator
) -> None:
    _, asked = await signed.post(command("reboot", {"vmid": 101}))
    custom_id = confirm_id(asked)
    answers = await asyncio.gather(*(signed.post(click(custom_id)) for _ in range(4)))
    assert all(status == 200 for status, _ in answers)
    assert sorted(a["type"] for _, a in answers) in ([4, 4, 4, 6], [4, 4, 4, 7])
    await wait_until(lambda: power_requests(sim, 101, "reboot") >= 1, timeout=10)
    assert power_requests(sim, 101, "reboot") == 1


async def test_only_the_operator_who_asked_can_confirm(
    signed: Signed, gateway: Running, sim: Simulator, js: Any
) -> None:
    _, asked = await signed.post(command("stop", {"vmid": 102}))
    custom_id = confirm_id(asked)
    # Another operator (by role) presses the button: refused, and the asker still can.
    _, other = await signed.post(click(custom_id, user=OTHER, roles=[OPERATOR_ROLE]))
    assert other["type"] == 4
    assert other["data"]["flags"] == 64
    assert power_requests(sim, 102, "stop") == 0
    _, mine = await signed.post(click(custom_id))
    assert mine["type"] in (6, 7)
    await wait_until(lambda: power_requests(sim, 102, "stop") >= 1, timeout=10)
    assert power_requests(sim, 102, "stop") == 1
    records = await discord_audit(js, 3)
    assert [(r["outcome"], r["arguments"]["discord_user_id"]) for r in records] == [
        ("ok", OPERATOR),
        ("denied", OTHER),
        ("ok", OPERATOR),
    ]


async def test_a_confirm_button_the_service_never_offered_runs_nothing(
    signed: Signed, gateway: Running, sim: Simulator
) -> None:
    # Anyone holding the application-owned webhook of the notifications (the dispatcher's
    # config) can post a message with any button; an operator clicking it must not stop a VM.
    now = int(time.time())
    for custom_id in (
        f"pbx:do:stop:qemu:103:{now}",
        "pbx:do:stop:qemu:103:" + "0" * 24,
        "pbx:do:stop:qemu:103:" + "ab" * 12,
    ):
        status, answer = await signed.post(click(custom_id))
        assert status in (200, 400)
        if status == 200:
            assert "components" not in answer["data"] or answer["data"]["components"] == []
    assert power_requests(sim, 103, "stop") == 0
    assert sim.lab.guests[103].status == "running"


async def test_a_confirmation_cannot_be_turned_into_one_for_another_guest(
    signed: Signed, gateway: Running, sim: Simulator
) -> None:
    _, asked = await signed.post(command("stop", {"vmid": 104}))
    custom_id = confirm_id(asked)
    assert ":104:" in custom_id
    for forged in (
        custom_id.replace(":104:", ":108:"),
        custom_id.replace(":stop:", ":reboot:"),
        custom_id.replace(":qemu:", ":lxc:"),
    ):
        await signed.post(click(forged))
    assert power_requests(sim, 108, "stop") == 0
    assert power_requests(sim, 104, "reboot") == 0
    assert power_requests(sim, 104, "stop") == 0
    assert sim.lab.guests[104].status == "running"


async def test_a_role_removed_after_the_prompt_can_no_longer_confirm(
    signed: Signed, gateway: Running, sim: Simulator
) -> None:
    _, asked = await signed.post(
        command("stop", {"vmid": 106}, user=STRANGER, roles=[OPERATOR_ROLE])
    )
    # Discord sends the member's roles as they are at the click: the role is gone.
    _, pressed = await signed.post(click(confirm_id(asked), user=STRANGER, roles=[]))
    assert pressed["type"] == 4
    assert "Only proxbus operators" in pressed["data"]["content"]
    assert power_requests(sim, 106, "stop") == 0


async def test_a_cancelled_confirmation_cannot_be_confirmed_afterwards(
    signed: Signed, gateway: Running, sim: Simulator
) -> None:
    _, asked = await signed.post(command("stop", {"vmid": 110}))
    _, cancelled = await signed.post(click(cancel_id(asked)))
    assert cancelled["type"] == 7
    assert cancelled["data"]["components"] == []
    # A client that still shows the old message clicks confirm.
    await signed.post(click(confirm_id(asked)))
    assert power_requests(sim, 110, "stop") == 0


async def test_a_confirmation_clicked_after_its_lifetime_runs_nothing(
    gateway: Running,
    sim: Simulator,
    nats_server: Any,
    keypair: Any,
    discord_api: Any,
    signed: Signed,
) -> None:
    short = DiscordService(
        service_settings(nats_server.url, keypair, discord_api.url, discord_confirm_seconds=1.0)
    )
    await short.start()
    try:
        to_short = Signed(
            f"http://127.0.0.1:{short.port}/discord/interactions", keypair, signed.http
        )
        _, asked = await to_short.post(command("stop", {"vmid": 111}))
        shown = time.time()
        await wait_until(lambda: time.time() > shown + 1.2, timeout=5, what="lifetime over")
        _, late = await to_short.post(click(confirm_id(asked)))
    finally:
        await short.close()
    assert late["type"] == 7
    assert late["data"]["components"] == []
    assert "expired" in late["data"]["content"]
    assert power_requests(sim, 111, "stop") == 0


async def test_a_confirmation_deleted_from_the_bucket_reads_as_expired(
    signed: Signed, gateway: Running, sim: Simulator, js: Any
) -> None:
    # An operator clearing pending confirmations (`nats kv del`) leaves a delete marker.
    _, asked = await signed.post(command("stop", {"vmid": 114}))
    custom_id = confirm_id(asked)
    bucket = await js.key_value("proxbus_discord_interactions")
    await bucket.delete("confirm." + custom_id.rsplit(":", 1)[1])
    _, late = await signed.post(click(custom_id))
    assert late["type"] == 7
    assert "expired" in late["data"]["content"]
    assert power_requests(sim, 114, "stop") == 0
