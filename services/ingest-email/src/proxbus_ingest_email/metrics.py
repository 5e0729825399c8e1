"""Prometheus counters of the mail intake, on a per-instance registry."""

from __future__ import annotations

from prometheus_client import CollectorRegistry, Counter, Gauge


class IngestMetrics:
    """Counters: received, parsed, rejected, published, SMTP 4xx answers, IMAP reconnects."""

    def __init__(self, registry: CollectorRegistry) -> None:
        self.received = Counter(
            "proxbus_email_received",
            "mails received",
            ["via"],
            registry=registry,
        )
        self.parsed = Counter(
            "proxbus_email_parsed",
            "mails turned into an event, by kind",
            ["kind"],
            registry=registry,
        )
        self.rejected = Counter(
            "proxbus_email_rejected",
            "mails refused (not a message, empty, over the size limit, auth)",
            ["via", "reason"],
            registry=registry,
        )
        self.anomalies = Counter(
            "proxbus_email_mime_anomalies",
            "mails read best-effort (broken MIME, unknown charset, no text part, html only)",
            ["anomaly"],
            registry=registry,
        )
        self.published = Counter(
            "proxbus_email_published",
            "events acknowledged by JetStream (duplicates included)",
            ["via"],
            registry=registry,
        )
        self.duplicates = Counter(
            "proxbus_email_duplicates",
            "events JetStream already had (a redelivered mail)",
            ["via"],
            registry=registry,
        )
        self.smtp_tempfail = Counter(
            "proxbus_email_smtp_tempfail",
            "SMTP 4xx answers because JetStream did not acknowledge (the sender retries)",
            registry=registry,
        )
        self.smtp_connections = Gauge(
            "proxbus_email_smtp_connections",
            "open SMTP connections",
            registry=registry,
        )
        self.smtp_refused = Counter(
            "proxbus_email_smtp_refused",
            "SMTP connections refused with 421 (reason: total or per_peer cap)",
            ["reason"],
            registry=registry,
        )
        self.smtp_transactions = Gauge(
            "proxbus_email_smtp_transactions",
            "DATA transactions in progress (receiving, parsing or publishing)",
            registry=registry,
        )
        self.smtp_budget = Gauge(
            "proxbus_email_smtp_budget",
            "configured SMTP budgets (max_connections, max_connections_per_peer, "
            "max_transactions, max_large_parses, max_size_bytes, spool_threshold_bytes, "
            "timeout_seconds)",
            ["budget"],
            registry=registry,
        )
        self.smtp_busy = Counter(
            "proxbus_email_smtp_busy",
            "DATA commands answered 451 4.3.2 because every transaction slot stayed busy",
            registry=registry,
        )
        self.smtp_spooled = Counter(
            "proxbus_email_smtp_spooled",
            "mails over SMTP_SPOOL_THRESHOLD received to a temporary file instead of memory",
            registry=registry,
        )
        self.imap_reconnects = Counter(
            "proxbus_email_imap_reconnects",
            "IMAP connections re-established after an error",
            registry=registry,
        )
        self.imap_connected = Gauge(
            "proxbus_email_imap_connected",
            "1 while the IMAP poller is logged in with its mailbox selected",
            registry=registry,
        )
        self.imap_errors = Counter(
            "proxbus_email_imap_errors",
            "IMAP errors (connect, login, command timeouts)",
            registry=registry,
        )
