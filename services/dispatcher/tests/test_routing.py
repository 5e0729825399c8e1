from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st
from proxbus_dispatcher.config import parse_config
from proxbus_dispatcher.stages.dedup import within_repeat_interval
from proxbus_dispatcher.stages.grouping import Grouper
from proxbus_dispatcher.stages.inhibition import Inhibitor
from proxbus_dispatcher.stages.routing import (
    ALL_LABEL_NAMES,
    event_labels,
    label_value,
    match_routes,
)

from .conftest import ev

MATRIX = """\
receivers:
  - {name: default, type: nats, subject: a}
  - {name: pager, type: nats, subject: b}
  - {name: pve1, type: nats, subject: c}
  - {name: vms, type: nats, subject: d}
  - {name: backups, type: nats, subject: e}
route:
  receiver: default
  routes:
    - matchers: ["severity>=critical"]
      receiver: pager
      continue: true
    - matchers: ["node=pve1"]
      receiver: pve1
      routes:
        - matchers: ["kind=vm.*"]
          receiver: vms
    - matchers: ["kind=backup.*"]
      receiver: backups
    - matchers: ['title=~.*(?i:disk).*']
      receiver: pager
"""


@pytest.mark.parametrize(
    ("fields", "receivers"),
    [
        ({"severity": "info", "node": "pve2", "kind": "task.ok"}, ["default"]),
        # a matching child (even with continue) means the parent itself is not used
        ({"severity": "critical", "node": "pve2", "kind": "task.ok"}, ["pager"]),
        ({"severity": "critical", "node": "pve1", "kind": "vm.crashed"}, ["pager", "vms"]),
        ({"severity": "info", "node": "pve1", "kind": "task.ok"}, ["pve1"]),
        ({"severity": "info", "node": "pve1", "kind": "vm.started"}, ["vms"]),
        ({"severity": "error", "node": "pve2", "kind": "backup.failed"}, ["backups"]),
        # first match wins without continue: node=pve1 before kind=backup.*
        ({"severity": "error", "node": "pve1", "kind": "backup.failed"}, ["pve1"]),
        (
            {
                "severity": "warning",
                "node": "pve3",
                "kind": "disk.error",
                "title": "SMART: Disk sda",
            },
            ["pager"],
        ),
    ],
)
def test_routing_matrix(fields: dict[str, str], receivers: list[str]) -> None:
    cfg = parse_config(MATRIX)
    assert [r.receiver for r in match_routes(cfg.root, ev(**fields))] == receivers


@given(
    severity=st.sampled_from(["debug", "info", "notice", "warning", "error", "critical"]),
    node=st.sampled_from(["pve1", "pve2", None]),
    kind=st.sampled_from(["vm.started", "backup.ok", "task.failed", "node.offline"]),
)
def test_every_event_reaches_at_least_one_receiver(
    severity: str, node: str | None, kind: str
) -> None:
    cfg = parse_config(MATRIX)
    assert match_routes(cfg.root, ev(severity=severity, node=node, kind=kind))


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


GROUPED = """\
receivers: [{name: r, type: nats, subject: x}]
route: {receiver: r, group_by: [node], group_wait: 2s, group_interval: 10s, repeat_interval: 1h}
"""


def test_group_waits_then_lists_every_event_then_ticks_at_group_interval() -> None:
    cfg = parse_config(GROUPED)
    clock = Clock()
    grouper: Grouper[int] = Grouper(clock)
    for i in range(10):
        _, created = grouper.add(cfg.root, ev(title=f"t{i}"), i)
        assert created == (i == 0)
    grouper.add(cfg.root, ev(node="pve2"), 99)
    assert grouper.due() == []
    clock.now += 2
    due = grouper.due()
    assert sorted(len(items) for _, items in due) == [1, 10]
    grouper.add(cfg.root, ev(title="late"), 11)
    clock.now += 5
    assert grouper.due() == []
    clock.now += 5
    [(_, items)] = grouper.due()
    assert [h for _, h in items] == [11]
    clock.now += 11
    assert grouper.due() == []
    assert len(grouper.groups) == 0  # idle groups are dropped


def test_dedup_suppresses_a_notification_within_repeat_interval() -> None:
    route = parse_config(GROUPED).root  # repeat_interval: 1h
    assert not within_repeat_interval(route, None, 1000.0)
    assert within_repeat_interval(route, 1000.0, 1000.0 + 3599)
    assert not within_repeat_interval(route, 1000.0, 1000.0 + 3601)
    route.repeat_interval = 0.0
    assert not within_repeat_interval(route, 1000.0, 1000.0)


INHIBIT = """\
receivers: [{name: r, type: nats, subject: x}]
route: {receiver: r}
inhibit_rules:
  - source_matchers: [kind=node.offline]
    target_matchers: [kind=vm.*]
    equal: [node]
    duration: 60s
    resolve_matchers: [kind=ha.state]
"""


def test_inhibition_mutes_targets_of_the_same_node_until_ttl_or_resolution() -> None:
    clock = Clock()
    inhibitor = Inhibitor(parse_config(INHIBIT).inhibit_rules, clock)
    target = ev(kind="vm.stopped", node="pve2")
    assert inhibitor.inhibiting_rule(target) is None
    inhibitor.observe(ev(kind="node.offline", node="pve2", severity="warning"))
    assert inhibitor.inhibiting_rule(target) == 0
    assert inhibitor.inhibiting_rule(ev(kind="vm.stopped", node="pve1")) is None
    assert inhibitor.inhibiting_rule(ev(kind="task.failed", node="pve2")) is None
    clock.now += 61
    assert inhibitor.inhibiting_rule(target) is None
    inhibitor.observe(ev(kind="node.offline", node="pve2"))
    inhibitor.observe(ev(kind="ha.state", node="pve2"))
    assert inhibitor.inhibiting_rule(target) is None


@given(
    source=st.sampled_from(["syslog", "email", "pve-webhook", "pve-api"]),
    severity=st.sampled_from(["debug", "info", "error", "critical"]),
    node=st.sampled_from(["pve1", None]),
    vmid=st.sampled_from([None, 100, 999999]),
    correlation_id=st.sampled_from(
        [None, "", "UPID:pve1:0000A1B2:00C3D4E5:6745A1B2:vzdump::root@pam:"]
    ),
    title=st.text(max_size=20),
)
def test_event_labels_equal_label_value_for_every_group_label(
    source: str,
    severity: str,
    node: str | None,
    vmid: int | None,
    correlation_id: str | None,
    title: str,
) -> None:
    event = ev(
        source=source,
        severity=severity,
        node=node,
        vmid=vmid,
        correlation_id=correlation_id,
        title=title or "t",
    )
    assert event_labels(event) == {name: label_value(event, name) for name in ALL_LABEL_NAMES}


def test_a_node_matcher_matches_the_reporter_of_an_event_about_no_node() -> None:
    """A lost knet peer's link.down is about no node, the survivor that logged it in
    ``metadata.reporter``: a route ``node = pve2`` gets what pve2 reported; an HA service's
    line (``sid``) is matched on its service's node only (its reporter is the CRM master)."""
    from proxbus_dispatcher.stages.routing import route_matches
    from proxbus_events import Matcher

    pve2 = [Matcher.parse("node = pve2")]
    link = {"fingerprint_subject": "knet host 3"}
    assert route_matches(
        pve2, ev(node=None, kind="link.down", metadata={**link, "reporter": "pve2"})
    )
    assert not route_matches(
        pve2, ev(node=None, kind="link.down", metadata={**link, "reporter": "pve1"})
    )
    assert not route_matches(
        pve2, ev(node=None, kind="link.down", metadata={**link, "reporter": ["pve2"]})
    )
    assert not route_matches(pve2, ev(node="pve1", kind="link.down", metadata={"reporter": "pve2"}))
    ha = {"sid": "vm:100", "reporter": "pve2"}
    assert not route_matches(pve2, ev(node=None, kind="ha.state", metadata=ha))
    assert route_matches(
        pve2, ev(node=None, kind="ha.state", metadata={**ha, "service_node": "pve2"})
    )
