"""The human loop as an operator lives it: what each notifier shows for real happenings, and
that a notification survives what a homelab goes through (a target down for minutes).

Events are built as the ingest services produce them (fields taken from
`proxbus-ingest-syslog parse` / `proxbus-ingest-email parse` output of the corpora's lines).
"""

from __future__ import annotations

from proxbus_dispatcher.dlq import dlq_list

from .conftest import ev, publish, wait_until


async def test_a_target_down_longer_than_ten_attempts_still_gets_the_notification(
    dispatcher, sink, js
) -> None:
    # A Gotify server rebooting for an upgrade, Discord down for ten minutes: with the default
    # backoff (1 s doubling to 5 min) ten attempts are spent in 4-8.5 minutes, and the alert
    # went to the dead-letter queue, never to arrive unless someone replays it. Retrying is
    # bounded by max_age (24 h) by default, not by a count. Time is scaled down here: the
    # target fails 25 times (more than the old default of 10 attempts), then comes back.
    hook = await sink(fail_first=25)
    service = await dispatcher(f"""\
receivers:
  - name: hook
    type: webhook
    url: {hook.url}/hook
    backoff_base: 5ms
    backoff_max: 20ms
    breaker_interval: 20ms
route: {{receiver: hook}}
""")
    event = ev(kind="backup.failed", vmid=103, title="Backup of VM 103 failed: ENOSPC")
    await publish(js, event)
    await wait_until(lambda: len(hook.requests) == 1, timeout=20)
    assert hook.attempts == 26
    assert [r.json["event"]["id"] for r in hook.requests] == [event.id]
    assert await dlq_list(js, "hook") == []
    assert (
        service.registry.get_sample_value(
            "proxbus_dispatcher_notifications_total", {"receiver": "hook", "outcome": "dead"}
        )
        is None
    )
