"""proxbus ingest-email: Proxmox VE / PBS notification mail (SMTP, IMAP) to events."""

from proxbus_events.proxmox import VzdumpGuest, parse_vzdump_table

from .classify import Rejection, build_event, classify_mail
from .imap import ImapPoller
from .intake import IngestResult, MailIntake, mail_to_event
from .mime import ParsedMail, html_to_text, parse_mail
from .settings import Settings
from .smtp import SmtpReceiver

__all__ = [
    "ImapPoller",
    "IngestResult",
    "MailIntake",
    "ParsedMail",
    "Rejection",
    "Settings",
    "SmtpReceiver",
    "VzdumpGuest",
    "build_event",
    "classify_mail",
    "html_to_text",
    "mail_to_event",
    "parse_mail",
    "parse_vzdump_table",
]
