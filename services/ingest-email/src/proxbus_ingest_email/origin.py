"""Which node sent a mail, and its subject as Proxmox wrote it (pure, no I/O).

Proxmox notification mail (proxmox-rs ``proxmox-notify`` sendmail/smtp endpoints, through
``proxmox-sendmail``) is written as ``From: Proxmox VE <root>`` (PVE) or ``From: Proxmox
Backup Server - <nodename> <root>`` (PBS) and handed to the node's Postfix, which adds
``Received: by <fqdn> (Postfix, from userid 0)`` and a ``Message-Id`` in its own domain.
Those say which host sent the mail when neither subject nor body names it (replication,
test notifications, PBS job mails). Mail gateways then prefix subjects (``[SPAM]``,
``[ext]``, ``Re:``, ``Fwd:``) and may re-encode them (RFC 2047, decoded by ``mime.py``).
"""

from __future__ import annotations

import ipaddress
import re

from proxbus_events.proxmox import short_host

from .mime import ParsedMail

# Gateway and client prefixes, repeatable: "[EXT] Re: Fwd: ***SPAM*** <subject>".
_SUBJECT_PREFIX = re.compile(
    r"^\s*(?:\[[^\]]{0,60}\]|\*{1,5}\s*SPAM\s*\*{1,5}|(?:re|fwd?|fw|aw|wg|tr|sv|antw)\s*"
    r"(?:\[\d+\])?\s*:)\s*",
    re.IGNORECASE,
)
_PBS_AUTHOR = re.compile(r"Proxmox Backup Server - ([A-Za-z0-9][A-Za-z0-9.-]*)")
_RECEIVED_BY = re.compile(r"\bby\s+\[?([A-Za-z0-9][A-Za-z0-9.:-]*)\]?", re.IGNORECASE)
_RECEIVED_FROM = re.compile(r"^\s*from\s+\[?([A-Za-z0-9][A-Za-z0-9.:-]*)", re.IGNORECASE)
# Linear on any header: the local part starts only where a word starts (else the search
# rescanned it from each of its characters: 80 KB of "a" in From took 29 s), and the end
# allows one optional ">" between spaces, not two adjacent space runs.
_MESSAGE_ID_DOMAIN = re.compile(r"@\[?([A-Za-z0-9][A-Za-z0-9.-]*)\]?\s*(?:>\s*)?$")
_SENDER_HOST = re.compile(r"(?<![^@<>\s])[^@<>\s]+@([A-Za-z0-9][A-Za-z0-9.-]*)\s*(?:>\s*)?$")
_PBS_URL = re.compile(r"https://([A-Za-z0-9.-]+):\d+/#(?:pbs|DataStore-)", re.IGNORECASE)
_NOT_A_NODE = frozenset({"localhost", "localhost.localdomain", "localdomain", "mail", "smtp"})


def clean_subject(subject: str) -> str:
    """``subject`` without gateway/client prefixes and with whitespace collapsed."""
    text = " ".join(subject.split())
    for _ in range(10):  # bounded: prefixes are short and few
        stripped = _SUBJECT_PREFIX.sub("", text, count=1)
        if stripped == text:
            break
        text = stripped
    return text


def _host_node(host: str | None) -> str | None:
    """The short node name of a host name; ``None`` for addresses and generic names."""
    if not host:
        return None
    host = host.strip().rstrip(".").lower()
    if host in _NOT_A_NODE or host.split(".", 1)[0] in _NOT_A_NODE:
        return None
    try:
        ipaddress.ip_address(host)
        return None  # an address says where, not which node
    except ValueError:
        pass
    return short_host(host)


def received_origin(received: list[str]) -> str | None:
    """The sending node from the ``Received`` trail (newest first, as in the header).

    The oldest hop without a ``from`` clause is the node's own Postfix taking a local
    submission (``Received: by pve1.example.com (Postfix, from userid 0)``). When every
    hop has one (the node spoke SMTP itself, as the ``smtp`` target does), the oldest
    hop's ``from`` name is the node's HELO name, else its ``by`` host.
    """
    for hop in reversed(received):
        if _RECEIVED_FROM.match(hop):
            continue
        m = _RECEIVED_BY.search(hop)
        if m and (node := _host_node(m.group(1))):
            return node
    if not received:
        return None
    oldest = received[-1]
    for m in (_RECEIVED_FROM.match(oldest), _RECEIVED_BY.search(oldest)):
        if m and (node := _host_node(m.group(1))):
            return node
    return None


def origin_node(mail: ParsedMail) -> str | None:
    """The node a mail comes from, when its subject does not say.

    In order: a PBS link in the body, the PBS author in ``From``, the oldest ``Received:
    by`` hop, the ``Message-Id`` domain, the ``From`` address's host.
    """
    m = _PBS_URL.search(mail.text)
    if m and (node := _host_node(m.group(1))):
        return node
    m = _PBS_AUTHOR.search(mail.sender)
    if m and (node := _host_node(m.group(1))):
        return node
    if node := received_origin(mail.received):
        return node
    # Postfix: <date.id@fqdn>; lettre (the smtp target): <uuid@hostname>.
    m = _MESSAGE_ID_DOMAIN.search(mail.message_id or "")
    if m and (node := _host_node(m.group(1))):
        return node
    m = _SENDER_HOST.search(mail.sender)
    if m and "." in m.group(1):
        return _host_node(m.group(1))
    return None
