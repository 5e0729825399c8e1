"""SMTP receiver against a real nats-server: 250 only after the ack, 451 on outage, limits."""

from __future__ import annotations

import asyncio
import logging

import aiosmtplib
import pytest
from proxbus_events import EVENTS_STREAM, Event
from proxbus_runtime import PullConsumer


async def send(port: int, raw: bytes, **kwargs) -> tuple[int, str]:
    errors, response = await aiosmtplib.send(
        raw,
        sender="root@pve1.example.com",
        recipients=["ops@example.com"],
        hostname="127.0.0.1",
        port=port,
        timeout=15,
        start_tls=False,
        **kwargs,
    )
    assert not errors
    code = int(response.split()[0]) if response[:3].isdigit() else 250
    return code, response


async def stream_events(js, expected: int, subject: str = "proxbus.events.>") -> list[Event]:
    consumer = PullConsumer(js, stream=EVENTS_STREAM, durable=None, filter_subject=subject)
    await consumer.start()
    events: list[Event] = []
    for _ in range(40):
        for msg in await consumer.fetch(batch=100, timeout=0.25):
            events.append(Event.from_json(msg.data))
            await msg.ack()
        if len(events) >= expected:
            break
    return events


async def test_proxmox_mails_become_events_on_the_right_subjects(
    nats_server, js, mails, settings_for, service_cm
):
    async with service_cm(settings_for(nats_server)) as service:
        port = service.smtp.port
        await send(port, mails.vzdump())
        await send(port, mails.fencing("pve2"))
        await send(port, mails.pbs("Garbage Collect Datastore 'store1' successful"))
        await send(port, mails.notification("hello", "just a mail"))
    info = await js.stream_info(EVENTS_STREAM)
    assert info.state.messages == 4
    backup = await stream_events(js, 1, "proxbus.events.lab.email.error.pve1")
    assert [(e.kind, e.vmid) for e in backup] == [("backup.failed", 101)]
    fencing = await stream_events(js, 1, "proxbus.events.lab.email.critical.pve2")
    assert [e.kind for e in fencing] == ["node.fencing"]
    gc = await stream_events(js, 1, "proxbus.events.lab.email.info.pbs1")
    assert [e.kind for e in gc] == ["gc.ok"]
    other = await stream_events(js, 1, "proxbus.events.lab.email.info.pve1")
    assert [e.kind for e in other] == ["email.message"]


async def test_broker_outage_answers_451_and_the_retry_is_stored_once(
    nats_server, js, mails, settings_for, service_cm
):
    raw = mails.vzdump(message_id="<outage-1@pve1>")
    async with service_cm(settings_for(nats_server)) as service:
        port = service.smtp.port
        nats_server.stop()
        with pytest.raises(aiosmtplib.SMTPResponseException) as exc_info:
            await send(port, raw)
        assert exc_info.value.code == 451
        assert service.metrics.smtp_tempfail._value.get() == 1
        nats_server.start()
        # The sender retries until the broker is back; the first success is stored.
        codes = []
        for _ in range(100):
            try:
                code, _ = await send(port, raw)
            except aiosmtplib.SMTPResponseException as exc:
                codes.append(exc.code)
                await asyncio.sleep(0.1)
                continue
            break
        assert set(codes) <= {451}
        assert code == 250
        # A redelivery of the same mail (same Message-ID) is de-duplicated.
        await send(port, raw)
    info = await js.stream_info(EVENTS_STREAM)
    assert info.state.messages == 1


async def test_size_limit_is_enforced_at_data_with_552(nats_server, js, settings_for, service_cm):
    line = b"x" * 998 + b"\r\n"
    raw = b"Subject: huge\r\nFrom: a@b\r\n\r\n" + line * (30 * 1024 * 1024 // len(line))
    async with service_cm(settings_for(nats_server)) as service:
        port = service.smtp.port
        # A client that does not declare the size (no SIZE= on MAIL FROM): refused at DATA.
        client = aiosmtplib.SMTP(hostname="127.0.0.1", port=port, timeout=30, start_tls=False)
        async with client:
            await client.ehlo()
            await client.mail("root@pve1")
            await client.rcpt("ops@example.com")
            with pytest.raises(aiosmtplib.SMTPDataError) as exc_info:
                await client.data(raw)
            assert exc_info.value.code == 552
            # The same connection still serves the next mail.
            await client.mail("root@pve1")
            await client.rcpt("ops@example.com")
            code, _ = await client.data(b"Subject: small\r\nFrom: a@b\r\n\r\nok\r\n")
            assert code == 250
        # aiosmtplib declares SIZE=, which is refused before any data is sent.
        with pytest.raises(aiosmtplib.SMTPResponseException) as exc_info:
            await send(port, raw)
        assert exc_info.value.code == 552
        rejected = service.metrics.rejected.labels("smtp", "too_large")._value.get()
        assert rejected == 2
    info = await js.stream_info(EVENTS_STREAM)
    assert info.state.messages == 1


async def test_hostile_mails_are_counted_or_best_effort_never_a_crash(
    nats_server, js, settings_for, service_cm
):
    broken_boundary = (
        b"Subject: broken\r\nMessage-ID: <b1@x>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/alternative; boundary="NOPE"\r\n\r\n'
        b"--REAL\r\nContent-Type: text/plain\r\n\r\nbody text\r\n--REAL--\r\n"
    )
    unknown_charset = (
        b"Subject: =?x-unknown?q?caf=E9?=\r\nMessage-ID: <b2@x>\r\n"
        b"Content-Type: text/plain; charset=x-unknown\r\n\r\n\xff\xfe body\r\n"
    )
    no_text = (
        b"Subject: only pdf\r\nMessage-ID: <b3@x>\r\nMIME-Version: 1.0\r\n"
        b'Content-Type: multipart/mixed; boundary="b"\r\n\r\n--b\r\n'
        b"Content-Type: application/pdf\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"JVBERi0=\r\n--b--\r\n"
    )
    noise = bytes(range(128, 256))
    garbage = (noise + b"\r\n") * 30
    async with service_cm(settings_for(nats_server)) as service:
        port = service.smtp.port
        for raw in (broken_boundary, unknown_charset, no_text):
            code, _ = await send(port, raw)
            assert code == 250
        with pytest.raises(aiosmtplib.SMTPResponseException) as exc_info:
            await send(port, garbage)
        assert exc_info.value.code == 554
        m = service.metrics
        assert m.rejected.labels("smtp", "not_a_mail")._value.get() == 1
        assert m.anomalies.labels("broken_mime")._value.get() >= 1
        assert m.anomalies.labels("unknown_charset")._value.get() == 1
        assert m.anomalies.labels("no_text_part")._value.get() == 1
        assert service.smtp.listening
    events = await stream_events(js, 3)
    assert sorted(e.kind for e in events) == ["email.message"] * 3
    assert any("body text" in e.message for e in events)


async def test_starttls_and_auth_are_required_when_configured(
    nats_server, js, mails, settings_for, service_cm, tls_files
):
    cert, key = tls_files
    settings = settings_for(
        nats_server,
        smtp_tls_cert=cert,
        smtp_tls_key=key,
        smtp_require_starttls=True,
        smtp_username="pve",
        smtp_password="hunter2",
        smtp_auth_required=True,
    )
    async with service_cm(settings) as service:
        port = service.smtp.port
        with pytest.raises(aiosmtplib.SMTPResponseException) as exc_info:
            await send(port, mails.fencing())
        assert exc_info.value.code == 530  # STARTTLS first
        tls = {"start_tls": True, "validate_certs": False}
        with pytest.raises(aiosmtplib.SMTPResponseException) as exc_info:
            await aiosmtplib.send(
                mails.fencing(),
                sender="root@pve1",
                recipients=["ops@example.com"],
                hostname="127.0.0.1",
                port=port,
                timeout=10,
                **tls,
            )
        assert exc_info.value.code == 530  # AUTH required
        with pytest.raises(aiosmtplib.SMTPAuthenticationError):
            await aiosmtplib.send(
                mails.fencing(),
                sender="root@pve1",
                recipients=["ops@example.com"],
                hostname="127.0.0.1",
                port=port,
                timeout=10,
                username="pve",
                password="wrong",
                **tls,
            )
        await aiosmtplib.send(
            mails.fencing(),
            sender="root@pve1",
            recipients=["ops@example.com"],
            hostname="127.0.0.1",
            port=port,
            timeout=10,
            username="pve",
            password="hunter2",
            **tls,
        )
        assert service.metrics.rejected.labels("smtp", "auth")._value.get() >= 1
    info = await js.stream_info(EVENTS_STREAM)
    assert info.state.messages == 1


async def test_a_flood_of_bogus_commands_costs_one_line_per_interval_not_one_each(
    nats_server, js, mails, settings_for, service_cm, caplog
):
    # Issue 19: aiosmtpd logs a WARNING per unrecognised command (and per "too many bogus
    # commands", per over-limit command, per aborted AUTH) on its own logger "mail.log";
    # 1,000 bogus commands from any client must not be 1,000 log lines.
    caplog.set_level(logging.INFO)
    async with service_cm(settings_for(nats_server)) as service:
        port = service.smtp.port
        answers: list[bytes] = []
        for _ in range(200):  # aiosmtpd says goodbye (502) at the 5th unrecognised command
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"220")
            for i in range(5):
                writer.write(f"XBOGUS{i} hello\r\n".encode())
                await writer.drain()
                answers.append(await asyncio.wait_for(reader.readline(), 5))
            assert await asyncio.wait_for(reader.read(), 5) == b""  # closed by the server
            writer.close()
        assert len(answers) == 1000
        assert {a[:4] for a in answers} == {b"500 ", b"502 "}
        code, _ = await send(port, mails.fencing())  # still serving
        assert code == 250
    noisy = [r for r in caplog.records if r.levelno >= logging.WARNING]
    assert len(noisy) <= 2, [r.getMessage() for r in noisy[:5]]
    assert service.smtp.protocol_log.total == 1200  # 1,000 "unrecognised" + 200 "too many"


async def _smtp_until_data(port: int) -> tuple[asyncio.StreamReader, asyncio.StreamWriter, bytes]:
    """A raw SMTP session up to the DATA command; the DATA answer."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"220")
    for command in (b"HELO pve1", b"MAIL FROM:<root@pve1>", b"RCPT TO:<ops@example.com>"):
        writer.write(command + b"\r\n")
        assert (await asyncio.wait_for(reader.readline(), 5)).startswith(b"250")
    writer.write(b"DATA\r\n")
    return reader, writer, await asyncio.wait_for(reader.readline(), 10)


async def test_data_beyond_the_transaction_budget_waits_then_gets_451_and_is_counted(
    nats_server, js, mails, settings_for, service_cm
):
    # Issue 19: at most SMTP_MAX_TRANSACTIONS DATA phases at once; one more waits up to
    # SMTP_TRANSACTION_WAIT for a slot, then is answered 451 4.3.2 (the sender retries).
    settings = settings_for(nats_server, smtp_max_transactions=1, smtp_transaction_wait=0.5)
    async with service_cm(settings) as service:
        port = service.smtp.port
        holder_r, holder_w, answer = await _smtp_until_data(port)
        assert answer.startswith(b"354")
        holder_w.write(b"Subject: slow sender\r\n\r\nhalf a mail\r\n")  # and no end yet
        await holder_w.drain()
        _, other_w, answer = await _smtp_until_data(port)
        assert answer.startswith(b"451 4.3.2"), answer
        value = service.registry.get_sample_value
        assert value("proxbus_email_smtp_busy_total") == 1
        assert value("proxbus_email_smtp_transactions") == 1
        other_w.close()
        holder_w.write(b"the rest\r\n.\r\n")
        assert (await asyncio.wait_for(holder_r.readline(), 10)).startswith(b"250")
        holder_w.close()
        code, _ = await send(port, mails.fencing())  # the slot is free again
        assert code == 250
        assert value("proxbus_email_smtp_transactions") == 0
