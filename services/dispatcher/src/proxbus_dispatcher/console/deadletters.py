"""The dead letters page's reads: the newest entries of ``PROXBUS_DLQ``, a page at a time.

``dlq.dlq_list`` reads the whole queue from its first message, one request per entry: fine for
the CLI, but the DLQ keeps 30 days and the page must stay small and quick however long a
receiver was down. Here the page reads backwards from the newest sequence, in parallel batches,
at most ``SCAN_MAX`` sequences per view; an entry that is not a dead letter (anyone on the bus
can publish to ``proxbus.dlq.>``) is counted and skipped, never the page's failure.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field

from nats.js import JetStreamContext
from nats.js.errors import NotFoundError
from proxbus_events import DLQ_STREAM
from pydantic import ValidationError

from ..dlq import DeadLetter, DlqEntry

PAGE_SIZE = 50
BATCH = 64
SCAN_MAX = 2048  # sequences looked at per page view (replayed/discarded ones leave gaps)


@dataclass(slots=True)
class DlqPage:
    entries: list[DlqEntry] = field(default_factory=list)  # newest first
    total: int = 0  # messages in the stream
    unreadable: int = 0  # skipped among the sequences read for this page
    older: int | None = None  # ``before=`` of the next page, if any


async def dlq_page(
    js: JetStreamContext, before: int | None = None, limit: int = PAGE_SIZE
) -> DlqPage:
    """Up to ``limit`` dead letters with a sequence below ``before`` (else the newest)."""
    info = await js.stream_info(DLQ_STREAM)
    first, last = max(info.state.first_seq, 1), info.state.last_seq
    page = DlqPage(total=info.state.messages)
    seq = last if before is None else min(last, before - 1)
    scanned = 0
    while seq >= first and scanned < SCAN_MAX:
        seqs = list(range(seq, max(seq - BATCH, first - 1), -1))
        scanned += len(seqs)
        results = await asyncio.gather(
            *(js.get_msg(DLQ_STREAM, n) for n in seqs), return_exceptions=True
        )
        for n, result in zip(seqs, results, strict=True):
            if len(page.entries) == limit:
                page.older = page.entries[-1].seq
                return page
            seq = n - 1
            if isinstance(result, NotFoundError):
                continue  # replayed or discarded
            if isinstance(result, BaseException):
                raise result
            letter = _letter(result.data)
            if letter is None:
                page.unreadable += 1
            else:
                page.entries.append(DlqEntry(n, letter))
    if seq >= first:  # more below, not looked at (a full page, or SCAN_MAX reached)
        page.older = seq + 1
    return page


async def dlq_entry(js: JetStreamContext, seq: int) -> DlqEntry | None:
    """One dead letter by its sequence; ``None`` if gone or not a dead letter."""
    try:
        raw = await js.get_msg(DLQ_STREAM, seq)
    except NotFoundError:
        return None
    letter = _letter(raw.data)
    return None if letter is None else DlqEntry(seq, letter)


def _letter(data: bytes | None) -> DeadLetter | None:
    if not data:
        return None
    try:
        return DeadLetter.model_validate_json(data)
    except (ValidationError, ValueError):
        return None
