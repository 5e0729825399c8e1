"""Second coverage pass: PVE 9 / PBS 4 notification mail and forwarded system mail
(tests/mails_second_pass.py) classified with the right kind, node, vmid and severity."""

from __future__ import annotations

import time

import pytest
from proxbus_events import Event
from proxbus_ingest_email.intake import mail_to_event

from .mails_second_pass import SECOND_PASS, Expect, zed_finish


@pytest.mark.parametrize("case", SECOND_PASS, ids=lambda c: c.name)
def test_second_pass_mail_is_classified(case: Expect) -> None:
    event = mail_to_event(case.raw, site="lab")
    assert isinstance(event, Event), event
    got = (event.kind, event.node, event.vmid, event.severity)
    assert got == (case.kind, case.node, case.vmid, case.severity), (case.name, case.source)
    for key, value in case.metadata.items():
        assert event.metadata.get(key) == value, (case.name, key, event.metadata.get(key))


def test_every_second_pass_mail_names_its_source() -> None:
    assert all(case.source.strip() for case in SECOND_PASS)
    assert len({case.name for case in SECOND_PASS}) == len(SECOND_PASS)


def test_zed_mail_with_a_hostile_body_is_classified_in_bounded_time() -> None:
    """The zpool-status search is linear: 200,000 blank lines, then lines of spaces."""
    body = "\n" * 200_000 + ("   state:" + " " * 50 + "\n") * 20_000
    started = time.monotonic()
    event = mail_to_event(zed_finish("scrub_finish", "tank", body), site="lab")
    assert time.monotonic() - started < 5
    assert isinstance(event, Event)
    assert event.kind == "email.message"
