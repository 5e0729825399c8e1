"""Email over STARTTLS and implicit TLS against aiosmtpd with a throwaway certificate."""

from __future__ import annotations

import datetime as dt
import ssl
from email import message_from_bytes
from email.message import Message
from pathlib import Path
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from proxbus_events.testing import free_port

from .conftest import ev, publish, wait_until


def self_signed(tmp_path: Path) -> ssl.SSLContext:
    x509 = pytest.importorskip("cryptography.x509")
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "127.0.0.1")])
    now = dt.datetime.now(dt.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - dt.timedelta(minutes=1))
        .not_valid_after(now + dt.timedelta(hours=1))
        .sign(key, hashes.SHA256())
    )
    cert_path, key_path = tmp_path / "cert.pem", tmp_path / "key.pem"
    cert_path.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    key_path.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ctx.load_cert_chain(cert_path, key_path)
    return ctx


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
        assert recorder.messages[0]["Subject"] == "[ERROR] over tls"
        assert recorder.tls == [True]
    finally:
        controller.stop()
