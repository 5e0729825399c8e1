"""Issue 14: a refused mail is never stored later; a mail re-sent later is one event."""

from __future__ import annotations

import asyncio
import os
import signal
import time

import aiosmtplib
from nats.js.errors import KeyNotFoundError
from proxbus_events import EVENTS_STREAM, Event
from proxbus_ingest_email.seen import message_id_key
from proxbus_runtime import PullConsumer


async def send(port: int, raw: bytes) -> int:
    try:
        await aiosmtplib.send(
            raw,
            sender="root@pve1.example.com",
            recipients=["ops@example.com"],
            hostname="127.0.0.1",
            port=port,
            timeout=15,
            start_tls=False,
        )
    except aiosmtplib.SMTPResponseException as exc:
        return exc.code
    return 250


async def stored(js, subject: str = "proxbus.events.*.email.>") -> list[Event]:
    consumer = PullConsumer(js, stream=EVENTS_STREAM, durable=None, filter_subject=subject)
    await consumer.start()
    out = []
    while batch := await consumer.fetch(batch=100, timeout=0.5):
        out.extend(Event.from_json(m.data) for m in batch)
    return out


async def pass_the_duplicate_window(js) -> None:
    """ "Ten minutes later": JetStream's duplicate window (2 min in the contract) has passed.

    Simulated by shrinking the window and waiting until a probe id is accepted again,
    instead of sleeping ten minutes.
    """
    info = await js.stream_info(EVENTS_STREAM)
    info.config.duplicate_window = 0.5
    await js.update_stream(info.config)
    probe_headers = {"Nats-Msg-Id": "window-probe"}
    deadline = time.monotonic() + 20
    first = await js.publish("proxbus.events.lab.test.info._", b"{}", headers=probe_headers)
    assert not first.duplicate
    while (
        await js.publish("proxbus.events.lab.test.info._", b"{}", headers=probe_headers)
    ).duplicate:
        assert time.monotonic() < deadline
        await asyncio.sleep(0.1)


async def send_until_accepted(port: int, raw: bytes) -> list[int]:
    """Like an MTA retrying until the broker is back: the codes answered, last one 250."""
    codes = []
    deadline = time.monotonic() + 30
    while (code := await send(port, raw)) != 250:
        codes.append(code)
        assert time.monotonic() < deadline, codes
        await asyncio.sleep(0.1)
    return [*codes, 250]


async def test_a_mail_answered_451_is_not_stored_when_nats_comes_back(
    nats_server, js, mails, settings_for, service_cm
):
    refused = mails.fencing("pve2")
    async with service_cm(settings_for(nats_server)) as service:
        port = service.smtp.port
        await asyncio.to_thread(nats_server.stop)
        assert await send(port, refused) == 451
        await asyncio.to_thread(nats_server.start)
        # Another mail accepted proves the client reconnected (and flushed what it held).
        codes = await send_until_accepted(port, mails.updates())
        assert set(codes) <= {250, 451}
    events = await stored(js)
    assert [e.kind for e in events] == ["updates.available"]


async def test_the_same_mail_resent_after_the_duplicate_window_is_one_event(
    nats_server, js, mails, settings_for, service_cm
):
    raw = mails.vzdump(message_id="<resend-1@pve1.example.com>")
    async with service_cm(settings_for(nats_server)) as service:
        port = service.smtp.port
        await asyncio.to_thread(nats_server.stop)
        assert await send(port, raw) == 451
        await asyncio.to_thread(nats_server.start)
        assert (await send_until_accepted(port, raw))[-1] == 250
        await pass_the_duplicate_window(js)
        assert await send(port, raw) == 250
        assert service.metrics.duplicates.labels("smtp")._value.get() >= 1
    events = await stored(js)
    assert len(events) == 1
    assert events[0].metadata["message_id"] == "<resend-1@pve1.example.com>"


async def test_a_mail_stored_late_after_a_451_is_recognised_when_resent(
    nats_server, js, mails, settings_for, service_cm
):
    # A connected but frozen broker: the mail reaches the socket, the ack does not come in
    # time (451), then the broker resumes and stores it. The sender's retry, after the
    # duplicate window, must be recognised as the same mail (one event, not two).
    raw = mails.vzdump(message_id="<stalled-1@pve1.example.com>")
    async with service_cm(settings_for(nats_server, smtp_publish_timeout=1.0)) as service:
        port = service.smtp.port
        assert nats_server.proc is not None
        os.kill(nats_server.proc.pid, signal.SIGSTOP)
        try:
            assert await send(port, raw) == 451
        finally:
            os.kill(nats_server.proc.pid, signal.SIGCONT)
        deadline = time.monotonic() + 20
        while len(await stored(js)) < 1:  # JetStream stores it once it reads its socket
            assert time.monotonic() < deadline
            await asyncio.sleep(0.1)
        kv = await js.key_value("proxbus_email_ids")
        while True:  # the late ack recorded the Message-ID
            try:
                await kv.get(message_id_key("<stalled-1@pve1.example.com>"))
                break
            except KeyNotFoundError:
                assert time.monotonic() < deadline
                await asyncio.sleep(0.1)
        await pass_the_duplicate_window(js)
        assert await send(port, raw) == 250
    events = await stored(js)
    assert len(events) == 1
