"""Email over STARTTLS and implicit TLS against aiosmtpd with a throwaway certificate."""

from __future__ import annotations

import ssl
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from proxbus_devtools.testing import free_port
from proxbus_pvesim.tls import generate_tls

from .conftest import ev, publish, wait_until


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    """A server context with a throwaway certificate for 127.0.0.1 (the simulator's CA)."""
    return generate_tls(tmp_path, "smtp").server_context()


class Recorder:
    def __init__(self) -> None:
        self.messages: list[Message] = []
        self.tls: list[bool] = []

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        implicit = server.transport.get_extra_info("ssl_object") is not None
        self.tls.append(session.ssl is not None or implicit)
        self.messages.append(message_from_bytes(envelope.content))
        return "250 OK"


@pytest.mark.parametrize("security", ["starttls", "tls"])
async def test_email_is_sent_over_tls(
    security: str, dispatcher: Any, js: Any, tmp_path: Path
) -> None:
    ctx = self_signed(tmp_path)
    recorder = Recorder()
    port = free_port()
    if security == "starttls":
        controller = Controller(
            recorder, hostname="127.0.0.1", port=port, tls_context=ctx, require_starttls=True
        )
    else:
        controller = Controller(recorder, hostname="127.0.0.1", port=port, ssl_context=ctx)
    controller.start()
    try:
        await dispatcher(f"""\
receivers:
  - {{name: mail, type: email, host: 127.0.0.1, port: {port}, security: {security},
      validate_certs: false, from: proxbus@example.org, to: ops@example.org}}
route: {{receiver: mail}}
""")
        await publish(js, ev(title="over tls"))
        await wait_until(lambda: len(recorder.messages) == 1)
        assert recorder.messages[0]["Subject"] == "[ERROR] pve1: over tls"
        assert recorder.tls == [True]
    finally:
        controller.stop()
