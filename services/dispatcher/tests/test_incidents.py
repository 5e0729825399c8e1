"""Incidents (stages/incidents.py): which events are one happening, the best text, sources."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

from proxbus_dispatcher.stages.ack import ack_of
from proxbus_dispatcher.stages.incidents import Incident, failure_fingerprint, reported_state
from proxbus_dispatcher.state import StateStore
from proxbus_events import Event

T0 = datetime(2026, 11, 30, 3, 0, tzinfo=UTC)


def report(source: str, seconds: float = 0, **kw: Any) -> Event:
    base: dict[str, Any] = {
        "source": source,
        "site": "lab",
        "node": "pve1",
        "vmid": 100,
        "severity": "error",
        "kind": "backup.failed",
        "title": f"backup failed ({source})",
        "received_at": T0 + timedelta(seconds=seconds),
    }
    base.update(kw)
    return Event(**base)


def test_four_sources_within_the_window_are_one_incident_with_the_mail_text() -> None:
    syslog = report("syslog", title="ERROR: Backup of VM 100 failed - err -5")
    mail = report(
        "email", 20, title="Backup of guest 100 (web) failed on pve1", message="full job log"
    )
    hook = report("pve-webhook", 1, message="full job log")
    api = report(
        "pve-api", 45, correlation_id="UPID:pve1:0000AAAA:00000001:6760A0B0:vzdump::root@pam:"
    )
    incident = Incident.open(syslog)
    for event in (hook, mail, api):
        assert incident.admits(event, window=600)
        incident.add(event)
    incident.add(mail)  # redelivered: counted once
    assert incident.sources == ["syslog", "pve-webhook", "email", "pve-api"]
    assert incident.count == 4
    assert incident.title == "Backup of guest 100 (web) failed on pve1"
    assert incident.message == "full job log"
    assert incident.upid is not None
    again = Incident.from_json(incident.to_json())
    assert again == incident
    assert again.summary()["sources"] == ["syslog", "pve-webhook", "email", "pve-api"]


def test_after_the_window_or_with_another_upid_it_is_a_new_happening() -> None:
    first = report("pve-api", correlation_id="UPID:pve1:1:1:1:vzdump::root@pam:")
    incident = Incident.open(first)
    assert not incident.admits(report("syslog", 601), window=600)
    assert not incident.admits(
        report("pve-api", 5, correlation_id="UPID:pve1:2:2:2:vzdump::root@pam:"), window=600
    )
    assert incident.admits(report("email", 5), window=600)  # no UPID: cannot tell apart
    assert not incident.admits(report("email", 5, vmid=101), window=600)
    assert not incident.admits(report("email", 0), window=0)  # window 0: incidents off


def test_a_new_incident_keeps_the_notification_log() -> None:
    old = Incident.open(report("syslog"))
    old.notified["root"] = 123.0
    new = Incident.open(report("syslog", 700), old.notified)
    assert new.notified == {"root": 123.0}
    assert new.routes == {}


async def test_memory_is_bounded_under_a_flood_of_new_fingerprints(nc: Any, js: Any) -> None:
    store = StateStore(nc, js, ttl=60, max_in_memory=100)
    for i in range(105):
        store.put_local(Incident.open(report("syslog", i, vmid=i)))
    assert len(store.incidents) <= 100
    assert store.incident(report("syslog", vmid=0).fingerprint) is None  # the oldest went
    assert store.incident(report("syslog", vmid=104).fingerprint) is not None


def test_the_state_record_round_trips_any_text_a_lone_surrogate_included() -> None:
    """Records are encoded by pydantic-core (UTF-8); a lone surrogate, which it refuses, goes
    through the standard library's encoder (escaped) instead of failing the write."""
    for title in ("Sicherung von VM 100 fehlgeschlagen: Ä → ✗", "bad \ud800 half pair"):
        incident = Incident.open(report("syslog", title=title, message="ü" * 5000))
        incident.routes["root"] = incident.id
        incident.notified["root"] = 1.5
        again = Incident.from_json(incident.to_json())
        assert again == incident
        assert again.title == title
        assert len(again.message) == 4096


def ack_event(fingerprint: str, outcome: str = "ok", **meta: Any) -> Event:
    """What ingest-discord publishes for a click on a notification's "Acknowledge"."""
    return Event(
        source="discord",
        site="lab",
        severity="notice",
        kind="command.ack",
        title="Discord ack by ann: " + outcome,
        received_at=T0 + timedelta(seconds=30),
        metadata={
            "outcome": outcome,
            "alert_fingerprint": fingerprint,
            "discord_user": "ann",
            "discord_user_id": "111111111111111111",
            **meta,
        },
    )


def test_only_an_allowed_acknowledge_click_is_an_acknowledgement() -> None:
    fp = report("syslog").fingerprint
    ack = ack_of(ack_event(fp))
    assert ack is not None
    # Named by the member's Discord user id (stable; the display name is anyone's to pick,
    # kept only as a label).
    assert ack.record() == {
        "by": "discord:111111111111111111",
        "user_id": "111111111111111111",
        "label": "ann",
        "at": (T0 + timedelta(seconds=30)).timestamp(),
        "event": ack.event_id,
    }
    assert ack_of(ack_event(fp, outcome="denied")) is None  # not in DISCORD_OPERATORS
    # Without a user id (or one that is no Discord snowflake) nobody can be named.
    assert ack_of(ack_event(fp, discord_user_id="")) is None
    assert ack_of(ack_event(fp, discord_user_id="ann")) is None
    assert ack_of(ack_event(fp, discord_user_id="1" * 21)) is None
    unnamed = ack_of(ack_event(fp, discord_user="x" * 300))
    assert unnamed is not None
    assert len(unnamed.record()["label"]) == 64  # a label, bounded
    assert ack_of(ack_event("not-hex!")) is None
    assert ack_of(ack_event(fp).model_copy(update={"kind": "command.silence"})) is None
    spoofed = ack_event(fp).model_copy(update={"source": report("syslog").source})
    assert ack_of(spoofed) is None  # only ingest-discord's events


def test_an_acknowledgement_lasts_until_the_alert_is_quiet_or_another_task_reports_it() -> None:
    upid = "UPID:pve1:1:1:1:vzdump::root@pam:"
    acked = Incident.open(report("syslog", correlation_id=upid))
    assert not acked.ack_holds(report("syslog", 5), resolve_after=3600)  # nobody acked
    acked.acked = {"by": "discord:ann"}
    assert acked.ack_holds(report("syslog", 3600), resolve_after=3600)  # no UPID: same problem
    assert acked.ack_holds(report("syslog", 60, correlation_id=upid), resolve_after=3600)
    assert not acked.ack_holds(report("syslog", 3601), resolve_after=3600)  # quiet: resolved
    other_run = report("syslog", 60, correlation_id="UPID:pve1:2:2:2:vzdump::root@pam:")
    assert not acked.ack_holds(other_run, resolve_after=3600)  # a new incident
    carried = Incident.open(report("syslog", 700), acked.notified, acked.acked)
    assert carried.acked == {"by": "discord:ann"}
    assert Incident.from_json(carried.to_json()).acked == {"by": "discord:ann"}
    old_record = {k: v for k, v in json.loads(carried.to_json()).items() if k != "acked"}
    assert Incident.from_json(json.dumps(old_record).encode()).acked is None  # stored before


def test_a_state_record_from_a_newer_version_is_read_without_its_new_fields() -> None:
    # Replicas are upgraded one at a time: a record a newer dispatcher wrote (this version
    # added `since`/`earlier`) must not be "unreadable state" to an older one, which then
    # forgot the incident and notified it again.
    incident = Incident.open(report("syslog"))
    raw = json.loads(incident.to_json())
    raw["a_field_of_a_later_version"] = {"x": 1}
    again = Incident.from_json(json.dumps(raw).encode())
    assert again.to_json() == incident.to_json()


def _ha_service(source: str, seconds: float, old: str, new: str, **kw: Any) -> Event:
    """pve-ha-manager Manager.pm's ``service 'vm:100': state changed from '<old>' to
    '<new>'`` as ingest-syslog (and ingest-pve-ws's cluster log) give it."""
    at = T0 + timedelta(seconds=seconds)
    return report(
        source,
        seconds,
        kind="ha.state",
        severity="info",
        title=f"HA service vm:100: {old} → {new}",
        timestamp=kw.pop("timestamp", at),
        metadata={"sid": "vm:100", "old_state": old, "new_state": new},
        **kw,
    )


def test_a_report_of_another_state_is_a_state_change_not_a_repeat() -> None:
    fence = Incident.open(_ha_service("syslog", 0, "started", "fence"))
    assert fence.state == "fence"
    recovery = _ha_service("syslog", 70, "fence", "recovery")
    assert not fence.admits(recovery, window=600)
    assert fence.changes_state(recovery)
    after = Incident.open(recovery, previous=fence, window=600, state_change=True)
    assert (after.state, after.since, after.earlier) == ("recovery", None, 0)
    assert after.states == ["fence", "recovery"]
    assert after.summary()["state"] == "recovery"
    assert after.summary()["previous_state"] == "fence"
    # the same state again, or a line with no state ("recover service ..."), is that state's
    assert after.admits(_ha_service("pve-api", 75, "fence", "recovery"), window=600)
    line = report("syslog", 71, kind="ha.state", severity="info", metadata={"sid": "vm:100"})
    assert after.admits(line, window=600)
    # the API's resolution flag (ingest-pve-ws diff.py: a node back online) is a state
    down = Incident.open(report("syslog", 0, kind="node.offline", vmid=None))
    back = report("pve-api", 300, kind="node.offline", vmid=None, metadata={"resolved": True})
    assert down.state is None
    assert down.changes_state(back)


def test_a_late_copy_of_an_earlier_transition_is_not_a_state_change() -> None:
    # fence → recovery → started all happen in one second on the CRM master; syslog has them
    # at once, the cluster log's copies come a poll later. They are not changes back.
    fence = Incident.open(_ha_service("syslog", 0, "started", "fence"))
    recovery = Incident.open(
        _ha_service("syslog", 70, "fence", "recovery"), previous=fence, window=600,
        state_change=True,
    )  # fmt: skip
    started = _ha_service("syslog", 70, "recovery", "started")
    assert recovery.changes_state(started)
    current = Incident.open(started, previous=recovery, window=600, state_change=True)
    title = current.title
    for late in (
        _ha_service("pve-api", 75, "started", "fence", timestamp=T0),
        _ha_service("pve-api", 75, "fence", "recovery", timestamp=T0 + timedelta(seconds=70)),
    ):
        assert not current.changes_state(late)
        assert current.admits(late, window=600)
        current.add(late)
        assert current.title == title  # the text stays the current state's
    # a later real change back is one
    assert current.changes_state(_ha_service("syslog", 400, "started", "fence"))


def test_a_state_record_written_before_states_is_read_with_no_state() -> None:
    # Rolling upgrade the other way: a record of the version before (no state fields).
    incident = Incident.open(_ha_service("syslog", 0, "started", "fence"))
    raw = json.loads(incident.to_json())
    for name in ("state", "state_at", "states", "notified_state"):
        raw.pop(name)
    old = Incident.from_json(json.dumps(raw).encode())
    assert (old.state, old.states, old.notified_state) == (None, [], {})
    assert old.changes_state(_ha_service("syslog", 10, "fence", "recovery"))


def test_what_state_an_event_reports() -> None:
    def state(**meta: Any) -> str | None:
        return reported_state(report("syslog", kind="ha.state", metadata=meta))

    assert state(reporter="pve1", old_state="unknown", new_state="online") == "online"
    assert state(sid="vm:100", state="started") == "started"  # ingest-pve-ws diff.py
    assert state(ha_node="pve2", reporter="pve1", new_state="fence") == "fence"
    # an HA daemon's own status (LRM.pm "status change startup => wait_for_agent_lock")
    assert state(rule="ha-daemon-state", old_state="startup", new_state="active") is None
    assert state(level=2, previous_level=1) == "level 2"
    assert state(level=0, resolved=True) == "resolved"
    assert state(sid="vm:100") is None
    assert state(sid="vm:100", new_state=["not", "a", "string"]) is None
    assert state(sid="vm:100", new_state="x" * 10_000) == "x" * 64


def test_a_success_resolves_only_a_notified_failure_of_another_run() -> None:
    night = "UPID:pve1:0000AAAA:00000001:6760A0B0:vzdump:100:root@pam:"
    failure = Incident.open(report("syslog", correlation_id=night))
    success = report("syslog", 86_400, kind="backup.ok", severity="info", title="finished")
    assert failure_fingerprint(success) == failure.fingerprint
    assert failure_fingerprint(report("syslog", kind="task.ok")) is None
    assert not failure.resolve_by(success)  # never notified: nothing to resolve
    failure.notified["hook"] = T0.timestamp()
    # a success that happened before the failure, reported late by the API watcher
    early = report("pve-api", 120, kind="backup.ok", severity="info",
                   timestamp=T0 - timedelta(minutes=5))  # fmt: skip
    assert not failure.resolve_by(early)
    same_run = report("syslog", 60, kind="backup.ok", severity="info", correlation_id=night)
    assert not failure.resolve_by(same_run)
    assert failure.resolve_by(success)
    assert failure.resolved is not None
    assert failure.resolved["by"] == success.id
    assert failure.resolve_by(success)  # redelivered: still the one that resolved it
    assert not failure.resolve_by(report("syslog", 90_000, kind="backup.ok", severity="info"))
    assert failure.resolution()["title"] == failure.title
    # a resolved failure's acknowledgement no longer carries over
    acked = Incident.open(report("syslog"), acked={"by": "discord:1"})
    assert acked.ack_holds(report("syslog", 60), resolve_after=3600)
    acked.resolved = {"by": success.id}
    assert not acked.ack_holds(report("syslog", 60), resolve_after=3600)


def test_a_plain_line_that_says_what_it_ends_names_that_alerts_fingerprint() -> None:
    """ingest-syslog's link up / quorum regained: plain lines with ``metadata.recovers``; only
    a classified, non-success kind of the vocabulary counts (it is remote input)."""
    lost = report("syslog", kind="quorum.lost", vmid=None, title="Node lost quorum")

    def line(recovers: object, **kw: Any) -> Event:
        base = {"kind": "syslog.message", "severity": "notice", "vmid": None,
                "title": "Quorum regained", "metadata": {"recovers": recovers}}  # fmt: skip
        return report("syslog", 60, **{**base, **kw})

    assert failure_fingerprint(line("quorum.lost")) == lost.fingerprint
    assert failure_fingerprint(line("quorum.lost", node="pve3")) != lost.fingerprint
    for forged in ("bogus", "quorum.lost ", "syslog.message", "backup.ok", ["quorum.lost"], 1):
        assert failure_fingerprint(line(forged)) is None, forged
    # a classified event says it too (the HA node's return: ha.state, recovers node.offline),
    # never its own kind; a success ends its own failure only
    offline = report("syslog", kind="node.offline", vmid=None, node="pve2", title="pve2 offline")
    ha_back = line("node.offline", kind="ha.state", node="pve2", title="HA node pve2: back")
    assert failure_fingerprint(ha_back) == offline.fingerprint
    assert failure_fingerprint(line("ha.state", kind="ha.state")) is None
    ok = report("syslog", kind="backup.ok", metadata={"recovers": "quorum.lost"})
    assert failure_fingerprint(ok) == report("syslog", kind="backup.failed").fingerprint


def test_the_end_of_a_problem_is_told_once_whichever_report_comes_second() -> None:
    """A node's return from both ingest services: the HA line (``ha.state``, ``recovers``) and
    the API's ``node.offline`` ``resolved``; the second repeats the end the first told, when
    within the window of it by the reports' own time stamps."""
    meta = {"reporter": "pve1", "new_state": "online", "recovers": "node.offline"}
    common: dict[str, Any] = {"vmid": None, "node": "pve2", "severity": "info"}
    ha_back = report("syslog", 300, kind="ha.state", title="HA node pve2: unknown → online",
                     metadata=meta, timestamp=T0 + timedelta(seconds=300), **common)  # fmt: skip

    def api_back(seconds: float) -> Event:
        return report("pve-api", seconds, kind="node.offline", title="Node pve2 is offline",
                      metadata={"resolved": True}, timestamp=T0 + timedelta(seconds=seconds),
                      **common)  # fmt: skip

    # the HA line resolved the alert: the API's report of the same end repeats it
    offline = Incident.open(report("pve-api", kind="node.offline", title="Node pve2 is offline",
                                   timestamp=T0, **{**common, "severity": "error"}))  # fmt: skip
    offline.notified = {"r": T0.timestamp()}
    assert not offline.end_told(api_back(305), window=600)  # not resolved yet: not a repeat
    assert offline.resolve_by(ha_back)
    assert offline.end_told(api_back(305), window=600)
    assert not offline.end_told(ha_back, window=600)  # the report that resolved it
    assert not offline.end_told(api_back(1000), window=600)  # another return, much later
    assert not offline.end_told(api_back(305), window=0)
    # the API told it (the fingerprint's resolved state, notified): the HA line repeats it
    told = Incident.open(api_back(305), previous=offline, window=600, state_change=True)
    told.resolved, told.routes = None, {"r": "e1"}
    assert not told.is_problem()
    assert told.end_told(ha_back, window=600)
    told.routes = {}  # not notified (dropped as unrouted): the HA line tells the return
    assert not told.end_told(ha_back, window=600)


def test_the_problem_again_after_its_end_is_a_new_incident_a_late_copy_is_not() -> None:
    down = Incident.open(report("syslog", kind="link.down", vmid=None, title="link down"))
    down.resolved = {"by": "x", "at": (T0 + timedelta(seconds=60)).timestamp()}
    again = report("syslog", 120, kind="link.down", vmid=None, title="link down",
                   timestamp=T0 + timedelta(seconds=100))  # fmt: skip
    late_copy = report("pve-api", 120, kind="link.down", vmid=None, title="link down",
                       timestamp=T0 + timedelta(seconds=1))  # fmt: skip
    assert not down.admits(again, window=600)
    assert down.admits(late_copy, window=600)
    # by the resolving report's own time stamp where the record has it (the node's clock, as
    # the problem's report), not by when it arrived (a spool's late delivery)
    down.resolved = {"by": "x", "at": (T0 + timedelta(hours=1)).timestamp(),
                     "happened": (T0 + timedelta(seconds=60)).timestamp()}  # fmt: skip
    assert not down.admits(again, window=600)
    assert down.admits(late_copy, window=600)


def test_an_absent_failure_is_not_read_again_for_a_while() -> None:
    from proxbus_dispatcher.stages.incidents import AbsentFailures

    now = [0.0]
    absent = AbsentFailures(ttl=60, max_keys=2, clock=lambda: now[0])
    assert not absent.known_absent("inc.a")
    absent.remember("inc.a")
    assert absent.known_absent("inc.a")
    now[0] = 61
    assert not absent.known_absent("inc.a")  # read again after ttl
    for key in ("inc.b", "inc.c", "inc.d"):  # bounded: starts over past max_keys
        absent.remember(key)
    assert len(absent._until) <= 2
    assert absent.known_absent("inc.d")


def test_the_apis_report_of_a_problem_is_its_unresolved_state() -> None:
    """ingest-pve-ws's ``Node pve2 is offline`` (``metadata.resolved`` false, no state of its
    own) is the ``unresolved`` state: the same problem as the HA line's ``unknown``, either
    first, and a state change after ``resolved``; a storage report keeps its level."""
    common: dict[str, Any] = {"vmid": None, "node": "pve2", "kind": "node.offline"}

    def api(seconds: float, resolved: bool) -> Event:
        return report("pve-api", seconds, title="Node pve2", metadata={"resolved": resolved},
                      timestamp=T0 + timedelta(seconds=seconds), **common)  # fmt: skip

    ha = report("syslog", 1, title="Node pve2 is offline (HA state online → unknown)",
                metadata={"reporter": "pve1", "new_state": "unknown"},
                timestamp=T0 + timedelta(seconds=1), **common)  # fmt: skip
    assert reported_state(api(0, False)) == "unresolved"
    assert reported_state(api(0, True)) == "resolved"
    storage = report("pve-api", kind="storage.full", metadata={"level": 1, "resolved": False})
    assert reported_state(storage) == "level 1"
    assert reported_state(report("pve-api", metadata={"resolved": "no"})) is None
    assert Incident.open(api(0, False)).admits(ha, window=600)
    assert Incident.open(ha).admits(api(5, False), window=600)
    back = Incident.open(api(300, True))
    assert back.changes_state(api(400, False))  # failed again
    assert back.changes_state(ha.model_copy(update={"timestamp": T0 + timedelta(seconds=400)}))
    assert not back.changes_state(api(200, False))  # a late copy of the earlier report
    again = Incident.open(api(400, False), previous=back, window=600, state_change=True)
    assert again.states == ["resolved", "unresolved"]
    assert not again.changes_state(api(410, False))  # the next poll's copy: a repeat


def _knet(reporter: object, seconds: float, up: bool = False, **kw: Any) -> Event:
    """A knet line about lost host 3 as the ingest services give it: about no node, the node
    that logged it in ``metadata.reporter`` (proxbus_events.knet)."""
    meta: dict[str, Any] = {"fingerprint_subject": "knet host 3", "peer_nodeid": 3, "link": 0}
    if reporter is not None:
        meta["reporter"] = reporter
    if up:
        meta["recovers"] = "link.down"
    at = T0 + timedelta(seconds=seconds)
    base: dict[str, Any] = {
        "node": None, "vmid": None, "received_at": at, "timestamp": at,
        "kind": "syslog.message" if up else "link.down",
        "severity": "info" if up else "warning",
        "title": f"Cluster link 0 to host 3 is {'up again' if up else 'down'}",
        "metadata": meta,
    }  # fmt: skip
    return report("syslog", **{**base, **kw})


def test_a_problem_reported_by_several_nodes_ends_when_the_last_of_them_recovers() -> None:
    """A lost knet peer, reported by every survivor (one fingerprint, about no node): the
    reporters are one incident's, each one's recovery line marks it back, the last one's
    resolves it; a recovery from a node that never reported it does not, while one naming no
    reporter does (as before reporters)."""
    alert = Incident.open(_knet("pve1", 0))
    for n, reporter in enumerate(("pve2", "pve4", "pve2")):
        down = _knet(reporter, n + 1)
        assert down.fingerprint == alert.fingerprint
        assert alert.admits(down, 600)
        alert.add(down)
    assert alert.summary()["reporters"] == ["pve1", "pve2", "pve4"]
    alert.notified = {"r": T0.timestamp()}
    assert failure_fingerprint(_knet("pve1", 60, up=True)) == alert.fingerprint
    assert not alert.resolve_by(_knet("pve5", 60, up=True))  # never reported it lost
    assert not alert.resolve_by(_knet("pve1", 61, up=True))
    assert not alert.resolve_by(_knet("pve1", 62, up=True))  # pve1's up again
    # the cluster log's late copy of pve1's down (from before its up): still back
    alert.add(_knet("pve1", 63, timestamp=T0 + timedelta(seconds=0)))
    assert alert.summary()["reporters_down"] == ["pve2", "pve4"]
    assert not alert.resolve_by(_knet("pve2", 64, up=True))
    # the state record keeps them (a restart, another replica)
    alert = Incident.from_json(alert.to_json())
    assert alert.reporters_down() == ["pve4"]
    last = _knet("pve4", 65, up=True)
    assert alert.resolve_by(last)
    assert alert.resolution()["reporters"] == ["pve1", "pve2", "pve4"]
    # pve1 loses host 3 again after its up: down again (a new report, by its own clock)
    again = Incident.open(_knet("pve1", 0))
    again.add(_knet("pve2", 1))
    again.notified = {"r": T0.timestamp()}
    assert not again.resolve_by(_knet("pve1", 2, up=True))
    again.add(_knet("pve1", 3))
    assert again.reporters_down() == ["pve1", "pve2"]
    # a recovery line naming no reporter ends it, as before reporters
    assert again.resolve_by(_knet(None, 4, up=True))


def test_an_incidents_reporters_are_bounded_and_remote_values_are_checked() -> None:
    alert = Incident.open(_knet("pve0", 0))
    for n in range(1, 200):
        alert.add(_knet(f"pve{n}", 1))
    assert len(alert.reporters) == 64
    long = Incident.open(_knet("x" * 10_000, 0))
    assert list(long.reporters) == ["x" * 64]
    # not a name (remote input), an event about a node, a plain line: no reporter counted
    for other in (_knet(["pve1"], 0), _knet("pve1", 0, node="pve1"), _knet("pve1", 0, up=True),
                  _knet("", 0)):  # fmt: skip
        assert Incident.open(other).reporters == {}, other
    # a damaged record's reporters are read as none: the alert ends as one without them
    raw = json.loads(Incident.open(_knet("pve1", 0)).to_json())
    for bad in (["pve1"], {"pve1": "x", "pve2": None, "pve3": 1.5, "pve4": True}, "pve1"):
        damaged = Incident.from_json(json.dumps({**raw, "reporters": bad}).encode())
        assert isinstance(damaged.reporters, dict)
        damaged.notified = {"r": T0.timestamp()}
        if isinstance(bad, dict):
            assert damaged.reporters == {"pve2": None, "pve3": 1.5}
            assert damaged.reporters_down() == ["pve2"]
            assert not damaged.resolve_by(_knet("pve1", 5, up=True))
        else:
            assert damaged.reporters == {}
            assert damaged.resolve_by(_knet("pve2", 5, up=True))
