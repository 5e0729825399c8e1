"""Email via aiosmtplib: STARTTLS or implicit TLS, a text part and an HTML alternative."""

from __future__ import annotations

import html
import re
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import Literal

import aiosmtplib
from pydantic import Field, field_validator

from ..errors import PermanentError, RetryableError
from ..notification import Notification
from ._base import ReceiverBase, render_body, render_title, split_list


class EmailReceiver(ReceiverBase):
    """``type: email``: an SMTP relay (STARTTLS, implicit TLS or plain) and the addresses."""

    type: Literal["email"]
    host: str
    port: int = Field(default=587, ge=1, le=65535)
    username: str | None = None
    password: str | None = None
    security: Literal["starttls", "tls", "none"] = "starttls"
    validate_certs: bool = True
    sender: str = Field(alias="from")
    to: list[str] = Field(min_length=1)

    _split = field_validator("to", mode="before")(split_list)


def build_message(receiver: EmailReceiver, notification: Notification) -> EmailMessage:
    """The MIME message: ``text/plain`` with a ``text/html`` alternative."""
    title = render_title(receiver, notification)
    body = render_body(receiver, notification, 1_000_000)
    msg = EmailMessage()
    msg["Subject"] = title
    msg["From"] = receiver.sender
    msg["To"] = ", ".join(receiver.to)
    msg["Date"] = formatdate(localtime=False)
    msg["Message-ID"] = make_msgid(idstring=notification.id[:16], domain="proxbus")
    msg["X-Proxbus-Delivery"] = notification.id
    # Every mail about one alert (the first event's fingerprint) refers to one thread root, so
    # mail clients keep an alert's repeats together (RFC 5322 In-Reply-To / References); a
    # success that resolves a failure (the incident's ``resolves``) answers in its thread.
    resolves = (notification.incident or {}).get("resolves")
    thread = resolves.get("fingerprint") if isinstance(resolves, dict) else None
    thread = thread or notification.first.get("fingerprint", "")
    fingerprint = re.sub(r"[^0-9A-Za-z]", "", str(thread))[:64]
    if fingerprint:
        root = f"<alert.{fingerprint}@proxbus>"
        msg["In-Reply-To"] = root
        msg["References"] = root
    msg.set_content(body)
    colour = {"critical": "#8e0000", "error": "#e74c3c", "warning": "#f1c40f"}.get(
        notification.severity.value, "#3498db"
    )
    if notification.recovery:
        colour = "#2ecc71"  # what is over (a node back online, a failure resolved): green
    msg.add_alternative(
        "<html><body>"
        f'<h3 style="border-left:6px solid {colour};padding-left:8px">{html.escape(title)}</h3>'
        f'<pre style="white-space:pre-wrap;font-family:monospace">{html.escape(body)}</pre>'
        "</body></html>",
        subtype="html",
    )
    return msg


class EmailNotifier:
    """Sends through an SMTP relay; 4xx/connection problems retry, 5xx are permanent."""

    def __init__(self, receiver: EmailReceiver) -> None:
        self.receiver = receiver

    async def send(self, notification: Notification) -> None:
        r = self.receiver
        target = f"email {r.name}"
        try:
            await aiosmtplib.send(
                build_message(r, notification),
                hostname=r.host,
                port=r.port,
                username=r.username,
                password=r.password,
                use_tls=r.security == "tls",
                start_tls=r.security == "starttls",
                validate_certs=r.validate_certs,
                timeout=r.timeout,
            )
        except aiosmtplib.SMTPRecipientsRefused as exc:
            codes = [e.code for e in exc.recipients]
            if all(c >= 500 for c in codes):
                raise PermanentError(f"{target}: recipients refused {codes}") from None
            raise RetryableError(f"{target}: recipients refused {codes}") from None
        except aiosmtplib.SMTPResponseException as exc:
            message = f"{target}: SMTP {exc.code} {exc.message[:200]}"
            if exc.code >= 500 and exc.code != 554:
                raise PermanentError(message) from None
            raise RetryableError(message) from None
        except (aiosmtplib.SMTPException, OSError, TimeoutError) as exc:
            raise RetryableError(f"{target}: {type(exc).__name__}: {exc}") from None
