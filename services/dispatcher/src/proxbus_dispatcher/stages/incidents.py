"""Incidents: the events about one happening, whichever sources reported it; no I/O.

Proxmox reports one failed backup through syslog, the notification mail, the webhook target
and the task list at once; each becomes an event with the same fingerprint (the contract's
fingerprint ignores the source's wording). An event joins the current incident of its
fingerprint when it arrived (``received_at``) within ``window`` seconds of the incident's
first event and, where both carry a task UPID, the UPIDs are equal; otherwise it opens a new
incident. Per route, an incident is notified once (``claim``); the notification log
(``notified``: route → arrival time of the incident it last notified) carries over to the
next incident of the fingerprint for ``repeat_interval``. An acknowledgement (``acked``, from a
Discord "Acknowledge" click, ``stages/ack``) carries over the same way until the fingerprint
resolves (goes quiet) or another task run reports it (``ack_holds``).

An event of another fingerprint that carries an open incident's task UPID and no guest (or is
the task's end or a plain line about the incident's guest) is attached to that incident
(``attaches``) instead of opening its own: the job-level lines and the ``task.failed`` of a
backup job join each failed guest's incident (never an incident less severe than the report).

The best title and message among an incident's events is the one with the highest severity,
then from the most descriptive source (mail, webhook, API, syslog: the mail and the webhook
carry the whole job log), then the longest message.

State changes: the fingerprint of a state-carrying kind names the thing, not its state (every
``ha.state`` line about node pve2 is one fingerprint), so an event reporting another state
(``reported_state``: the HA line's ``metadata.new_state``, the API's ``metadata.state`` or
storage ``level``, ``resolved`` for an event with ``metadata.resolved: true``, ``unresolved``
for a report of the problem with ``metadata.resolved: false`` and no other state, the same
problem as any state but ``resolved``: ``same_state``) than the incident's is not a
repeat: it opens a new incident (``Incident.open(..., state_change=True)``) that begins a new
run, does not inherit the acknowledgement of the old state, and is not deduped on a route
that last notified another state (``notified_state``). A late copy of a transition already
reported (another source's, happening no later than the current state's report) is not a
change (``is_stale``).

Resolution: a success of a job (``backup.ok``, ``gc.ok``, ``prune.ok``, ``sync.ok``,
``verify.ok``, ``tape.ok``) whose failure (the ``.failed`` kind's fingerprint of the same site,
node, guest and subject) has a notified incident not resolved yet resolves it
(``Incident.resolve_by``): the failure records ``resolved`` (by which event, when), the
success's incident ``resolves`` (the failure's title, since when, how many reports). The kind
vocabulary and the fingerprints stay the contract's: the pairing is the dispatcher's.

A plain line (``*.message``) that says which classified kind's happening it ends
(``metadata.recovers``, ingest-syslog: knet's link up → ``link.down``, quorum regained →
``quorum.lost``; the contract has no recovery kinds) resolves that kind's notified incident of
the same site, node, guest and subject the same way. So does a classified event that says so
(ingest-syslog and the cluster log: the HA manager's ``node 'pve2': state changed from
'unknown' => 'online'``, ``ha.state`` with ``recovers = node.offline``), while still being
what it is (its own state change). A value that is not a classified kind of the vocabulary,
a success's or the event's own kind (remote input) is ignored.

The end of a problem is told once (``Incident.end_told``): with both ingest services a
node's return is the HA line (``ha.state``, ``recovers``) and the API watcher's ``Node pve2
is back online`` (``node.offline`` resolved). Whichever comes second, within ``window`` of
the first by the reports' own time stamps, repeats the end the operator was told: the API's
report after the HA line resolved the alert, or the HA line after the alert's fingerprint
already reported ``resolved`` (``told_by``: its state change is recorded, not notified).

Reporters: an event about no node (``node`` null) that names the node that logged it
(``metadata.reporter``: a lost knet peer's ``link.down``, logged by every survivor) counts
that node in its incident's ``reporters`` (reporter → ``None`` while its report of the
problem stands, else when its recovery line happened; bounded, ``MAX_REPORTERS``): the
survivors' reports are one incident, one notification naming them. A recovery line from
reporter R (``recovers``, ingest services: knet's up of R's last link to the peer) marks R
back; the incident is resolved, its end told once, by the recovery line that leaves no
reporter down. A recovery line from a node that never reported the problem does not end it
while reporters are down; one naming no reporter, or of an incident without reporters,
resolves it as before. A report from R after R's recovery (by R's time stamps) is R down
again; an earlier one (the cluster log's late copy) is not. A lost peer's incident keeps the
peer's node name (``peer_node``) from the first of its events that carried one.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from typing import Any

from proxbus_events import FINGERPRINT_SUBJECT_KEY, Event, Severity, compute_fingerprint
from proxbus_events.event import KINDS, is_fallback_kind

from ..encoding import encode_json
from .routing import PEER_NODE_KEY, event_labels

MAX_EVENT_IDS = 64
MAX_MESSAGE = 4096
MAX_STATES = 16
MAX_STATE_CHARS = 64
MAX_REPORTERS = 64  # nodes remembered per incident as its reporters
REPORTER_KEY = "reporter"
RESOLVED = "resolved"
# the state of a report of the problem itself (``metadata.resolved`` false, no state of its
# own: ingest-pve-ws's "Node pve2 is offline"): the same problem as any state but resolved
UNRESOLVED = "unresolved"
# seconds a success may say it happened before its failure's first report and still resolve
# it (clocks of the reporting node and the dispatcher's host)
RESOLVE_SLACK = 5.0
# metadata keys naming the HA node or service a state line is about (ingest-syslog rules.py
# _ha_node/_ha_service_state, ingest-pve-ws clusterlog.py and diff.py)
_HA_THING_KEYS = frozenset(("sid", "reporter", "ha_node"))
# the metadata keys ``reported_state`` reads: an event with none of them reports no state
_STATE_KEYS = _HA_THING_KEYS | {"resolved", "level"}
SOURCE_RANK = {"email": 4, "pve-webhook": 3, "pve-api": 2, "syslog": 1}


def _upid(event: Event) -> str | None:
    cid = event.correlation_id
    return cid if cid and cid.startswith("UPID:") else None


# a job's success → its failure (the kind vocabulary's pairs; task.ok is left out: every
# start, stop and migrate task is one, and the job kinds above say what a vzdump task did)
RESOLVES = {
    "backup.ok": "backup.failed",
    "gc.ok": "gc.failed",
    "prune.ok": "prune.failed",
    "sync.ok": "sync.failed",
    "verify.ok": "verify.failed",
    "tape.ok": "tape.failed",
}


# metadata key of a plain line naming the kind whose happening it ends (ingest-syslog rules.py)
RECOVERS_KEY = "recovers"


def recovered_kind(event: Event) -> str | None:
    """The classified kind an event says it ends (``metadata.recovers``: a plain line's, or a
    classified event's such as the HA node's return), or ``None``: a value that is no
    classified kind of the vocabulary, a success's or the event's own kind is ignored."""
    kind = event.metadata.get(RECOVERS_KEY)
    if not isinstance(kind, str) or kind not in KINDS or is_fallback_kind(kind):
        return None
    if event.kind in RESOLVES or kind == event.kind:
        return None  # a success ends its own failure; nothing ends itself
    return None if kind in RESOLVES else kind


def failure_fingerprint(event: Event) -> str | None:
    """The fingerprint of the failure ``event`` (a job's success, a plain line's
    ``recovers``) would resolve, computed as the ingest services compute it
    (``compute_fingerprint``); ``None`` for other events."""
    failed = RESOLVES.get(event.kind)
    if failed is None and RECOVERS_KEY in event.metadata:
        failed = recovered_kind(event)
    if failed is None:
        return None
    subject = event.metadata.get(FINGERPRINT_SUBJECT_KEY)
    return compute_fingerprint(failed, event.site, event.node, event.vmid, event.title, subject)


def event_reporter(event: Event) -> str | None:
    """The node that logged an event about no node (``metadata.reporter``), else ``None``."""
    if event.node is not None:
        return None
    reporter = event.metadata.get(REPORTER_KEY)
    return reporter[:MAX_STATE_CHARS] if isinstance(reporter, str) and reporter else None


def event_peer_node(event: Event) -> str | None:
    """The lost knet peer's node name an event carries (``metadata.peer_node``), else None."""
    peer = event.metadata.get(PEER_NODE_KEY)
    return peer[:MAX_STATE_CHARS] if isinstance(peer, str) and peer else None


def reported_state(event: Event) -> str | None:
    """The state ``event`` reports about its thing, from the ingest services' metadata:
    ``resolved`` when ``metadata.resolved`` is true (ingest-pve-ws: a node back online, a
    storage below its thresholds), else the new state of a state change (``new_state``: the
    HA manager's node and service lines from syslog and the cluster log; ``state``: the API's
    HA service status) of an HA node or service the event names (``sid``; ``reporter`` or
    ``ha_node``: a node line reported by the CRM master), else ``level N`` (the API's storage
    threshold level: 1 warning, 2 error), else ``unresolved`` when ``metadata.resolved`` is
    false (ingest-pve-ws: a node offline); ``None`` when it reports none (a line that only
    says what happened). An HA daemon's own ``status change startup => wait_for_quorum``
    (LRM.pm/CRM.pm) names neither: it shares the node lines' fingerprint (kind, node) but is
    the daemon's bookkeeping, not the node's state, and a booting node logs four of them."""
    meta = event.metadata
    if _STATE_KEYS.isdisjoint(meta):
        return None  # most events: one set operation (the dispatcher's hot path)
    if meta.get("resolved") is True:
        return RESOLVED
    if not _HA_THING_KEYS.isdisjoint(meta):
        for key in ("new_state", "state"):
            value = meta.get(key)
            if isinstance(value, str) and value:
                return value[:MAX_STATE_CHARS]
    level = meta.get("level")
    if isinstance(level, int) and not isinstance(level, bool):
        return f"level {level}"
    if meta.get("resolved") is False:
        return UNRESOLVED
    return None


def same_state(state: str | None, other: str | None) -> bool:
    """Whether a report of ``state`` repeats ``other``: equal, or one of them is the problem
    without a state of its own (``UNRESOLVED``) and the other is not its end (``RESOLVED``).
    So the API's "Node pve2 is offline" and the HA line's ``online → unknown`` (both
    ``node.offline``) are one alert whichever comes first, while "offline" after "back
    online" is a state change: the node failed again."""
    if state == other:
        return True
    if state == UNRESOLVED:
        return other != RESOLVED
    return other == UNRESOLVED and state != RESOLVED


def _is_time(value: object) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def is_problem_kind(event: Event) -> bool:
    """A classified event that is no success (a plain line or a job's success reports no
    problem its reporter could end)."""
    return not is_fallback_kind(event.kind) and event.kind not in RESOLVES


def _score(event: Event) -> tuple[int, int, int]:
    return (event.severity.rank, SOURCE_RANK.get(event.source.value, 0), len(event.message))


@dataclass(slots=True)
class Incident:
    """One happening: its first event's identity, every source that saw it, the best text."""

    id: str
    fingerprint: str
    opened: float
    last: float
    kind: str
    site: str
    node: str | None
    vmid: int | None
    severity: str
    title: str
    message: str
    score: list[int]
    labels: dict[str, str]
    upid: str | None = None
    sources: list[str] = field(default_factory=list)
    event_ids: list[str] = field(default_factory=list)
    count: int = 0
    # route id → id of the event whose arrival claimed this incident's notification
    routes: dict[str, str] = field(default_factory=dict)
    # route id → arrival time of the last notified incident of this fingerprint
    notified: dict[str, float] = field(default_factory=dict)
    # who acknowledged it and when ({"by": "discord:<user id>", "user_id", "label", "at",
    # "event"}; label: the display name at the time); None if nobody did
    acked: dict[str, Any] | None = None
    # the fingerprint's unbroken run of incidents before this one (each began within the
    # window of the previous one's last report): when the run's first report arrived, and how
    # many reports the earlier incidents had; None/0 when this incident began a run
    since: float | None = None
    earlier: int = 0
    # the state the incident reports (``reported_state`` of the report that opened it) and
    # when that report says it happened (event timestamp, epoch seconds)
    state: str | None = None
    state_at: float | None = None
    # the states reported since the fingerprint last went quiet (oldest first, bounded)
    states: list[str] = field(default_factory=list)
    # route id → the state of the incident it last notified (see ``notified``)
    notified_state: dict[str, str | None] = field(default_factory=dict)
    # a failure's incident resolved by a success ({"by": event id, "at" (arrival),
    # "happened" (its time stamp), "kind", "title"})
    resolved: dict[str, Any] | None = None
    # a success's incident: the failure it resolved ({"id", "fingerprint", "kind", "title",
    # "severity", "since", "count"})
    resolves: dict[str, Any] | None = None
    # an incident whose report repeats an end told by another incident (its id): recorded,
    # not notified (``end_told``)
    told_by: str | None = None
    # an incident about no node: the nodes that reported it (``metadata.reporter``), each
    # → None while its report stands, else the time stamp of its recovery line (oldest first,
    # bounded by ``MAX_REPORTERS``)
    reporters: dict[str, float | None] = field(default_factory=dict)
    # a lost knet peer's node name (``metadata.peer_node``, ``stages/peers.py``) once one of
    # its events carried it; not in the fingerprint: a name learned later joins the alert
    peer_node: str | None = None

    @classmethod
    def open(
        cls,
        event: Event,
        notified: dict[str, float] | None = None,
        acked: dict[str, Any] | None = None,
        previous: Incident | None = None,
        window: float = 0.0,
        *,
        state_change: bool = False,
    ) -> Incident:
        """A new incident for ``event``; ``previous`` (the fingerprint's last incident) makes
        it a repeat when it was still reported within ``window`` of ``event``, unless
        ``event`` reports another state (``state_change``): a new state begins a new run.
        A report with no state of its own continues ``previous``'s state."""
        at = event.received_at.timestamp()
        since, earlier = None, 0
        recent = previous is not None and 0 <= at - previous.last <= window
        state = reported_state(event)
        state_at: float | None = event.timestamp.timestamp()
        states: list[str] = []
        if previous is not None and recent:
            if not state_change:
                since = previous.since if previous.since is not None else previous.opened
                earlier = previous.earlier + previous.count
            states = list(previous.states)
            if state is None or not state_change:
                state, state_at = previous.state, previous.state_at
        if state is not None and (not states or states[-1] != state):
            states = [*states, state][-MAX_STATES:]
        # What ``add(event)`` would do to a new incident, without computing it twice.
        reporter = event_reporter(event)
        return cls(
            id=event.id,
            fingerprint=event.fingerprint,
            opened=at,
            last=at,
            kind=event.kind,
            site=event.site,
            node=event.node,
            vmid=event.vmid,
            severity=event.severity.value,
            title=event.title,
            message=event.message[:MAX_MESSAGE],
            score=list(_score(event)),
            labels=event_labels(event),
            upid=_upid(event),
            sources=[event.source.value],
            event_ids=[event.id],
            count=1,
            notified=dict(notified or {}),
            acked=dict(acked) if acked else None,
            since=since,
            earlier=earlier,
            state=state,
            state_at=state_at if state is not None else None,
            states=states,
            notified_state=dict(previous.notified_state) if previous is not None else {},
            reporters={reporter: None} if reporter is not None and is_problem_kind(event) else {},
            peer_node=event_peer_node(event),
        )

    def changes_state(self, event: Event) -> bool:
        """Whether ``event`` reports a state other than this incident's (a state change the
        operator must get), and is not a late copy of an earlier transition (``is_stale``)."""
        state = reported_state(event)
        return (
            state is not None
            and not same_state(state, self.state)
            and not self.is_stale(event, state)
        )

    def is_stale(self, event: Event, state: str) -> bool:
        """A report of ``state`` that happened before this incident's state was reported (or in
        the same second, when the run already reported ``state``): another source's late copy
        of a transition the operator was told about (the cluster log polled after syslog)."""
        if self.state_at is None:
            return False
        happened = event.timestamp.timestamp()
        if happened < self.state_at - 1.0:
            return True
        return happened <= self.state_at + 1.0 and state in self.states

    def report(self, event: Event) -> None:
        """Count ``event``'s reporter as reporting the problem (see the module docstring)."""
        reporter = event_reporter(event)
        if reporter is None or not is_problem_kind(event):
            return
        back = self.reporters.get(reporter, 0.0)
        if reporter not in self.reporters:
            if len(self.reporters) >= MAX_REPORTERS:
                return
        elif not isinstance(back, int | float) or event.timestamp.timestamp() <= back:
            return  # still down, or a late copy of its report from before its recovery
        self.reporters[reporter] = None

    def reporter_back(self, event: Event) -> bool:
        """Mark the reporter of ``event`` (a recovery line) back; whether no reporter of this
        incident is down any more (the recovery ends it). A line naming no reporter, or an
        incident without reporters, ends it as before."""
        if not isinstance(self.reporters, dict) or not self.reporters:
            return True
        reporter = event_reporter(event)
        if reporter is None:
            return True
        if reporter in self.reporters:
            happened = event.timestamp.timestamp()
            back = self.reporters[reporter]
            if not isinstance(back, int | float) or happened > back:
                self.reporters[reporter] = happened
        return all(isinstance(back, int | float) for back in self.reporters.values())

    def reporters_down(self) -> list[str]:
        """The reporters whose report of the problem still stands."""
        return [r for r, back in self.reporters.items() if not isinstance(back, int | float)]

    def resolve_by(self, event: Event) -> bool:
        """Record that ``event`` (a success of this failure's job, ``failure_fingerprint``)
        resolves this incident: it was notified (this incident or an earlier one of its run
        within the notification log), is not resolved yet, and ``event`` came after its last
        report and is not a report of the failed task run itself. Returns whether it did (a
        redelivered ``event`` that resolved it still does)."""
        if self.resolved is not None:
            return self.resolved.get("by") == event.id
        if not self.notified or event.received_at.timestamp() < self.last:
            return False
        if event.timestamp.timestamp() < self.opened - RESOLVE_SLACK:
            return False  # a success from before the failure, reported late (an API poll)
        upid = _upid(event)
        if upid is not None and upid == self.upid:
            return False
        if not self.reporter_back(event):
            return False  # another reporter still reports the problem
        self.resolved = {
            "by": event.id,
            "at": event.received_at.timestamp(),
            "happened": event.timestamp.timestamp(),
            "kind": event.kind,
            "title": event.title[: MAX_STATE_CHARS * 4],
        }
        return True

    def is_problem(self) -> bool:
        """Whether this incident can be resolved: not a success's, not a report of its
        fingerprint's ``resolved`` state (the API's "back online" is an end, not a problem)."""
        return not self.kind.endswith(".ok") and self.state != RESOLVED

    def end_told(self, event: Event, window: float) -> bool:
        """Whether ``event``, another report of this problem's end, repeats an end already
        told (``window`` seconds apart at most, by the reports' own time stamps): this
        incident was resolved by another event (a HA line's ``recovers``; ``event`` is the API's
        ``resolved`` of the same fingerprint), or it is the fingerprint's ``resolved`` state,
        notified (``event`` is a HA line whose ``recovers`` names it)."""
        if window <= 0 or self.has(event):
            return False
        at: Any
        if self.resolved is not None:
            if self.resolved.get("by") == event.id:
                return False
            at = self.resolved.get("happened", self.resolved.get("at"))
        elif self.state == RESOLVED and self.routes and event.fingerprint != self.fingerprint:
            at = self.state_at
        else:
            return False
        if not isinstance(at, int | float) or isinstance(at, bool):
            return False
        return abs(event.timestamp.timestamp() - at) <= window

    def resolution(self) -> dict[str, Any]:
        """What a success that resolved this incident says about it (``resolves``)."""
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "kind": self.kind,
            "title": self.title,
            "severity": self.severity,
            "since": self.since if self.since is not None else self.opened,
            "count": self.earlier + self.count,
            **({"reporters": list(self.reporters)} if self.reporters else {}),
            **({"peer_node": self.peer_node} if self.peer_node else {}),
        }

    def admits(self, event: Event, window: float) -> bool:
        """Whether ``event`` is about this happening (see the module docstring)."""
        if window <= 0 or event.fingerprint != self.fingerprint:
            return False
        if self.changes_state(event):
            return False
        if self.resolved is not None and not self._before_resolution(event):
            return False  # the problem again after its end (a link flapping): a new alert
        if abs(event.received_at.timestamp() - self.opened) > window:
            return False
        upid = _upid(event)
        return upid is None or self.upid is None or upid == self.upid

    def _before_resolution(self, event: Event) -> bool:
        """Whether ``event`` happened before the report that resolved this incident (by that
        report's own time, the same node's clock as a rule; else when it arrived): another
        source's late copy of the problem, not the problem again."""
        resolved = self.resolved or {}
        at = resolved.get("happened", resolved.get("at"))
        if not isinstance(at, int | float) or isinstance(at, bool):
            return False
        return event.timestamp.timestamp() < at

    def ack_holds(self, event: Event, resolve_after: float) -> bool:
        """Whether this incident's acknowledgement carries over to the incident ``event``
        opens: the fingerprint did not go quiet for ``resolve_after`` seconds since this
        incident's last event, and ``event`` is not another task run's report."""
        if not self.acked or self.resolved or self.changes_state(event):
            return False
        if event.received_at.timestamp() - self.last > resolve_after:
            return False
        upid = _upid(event)
        return upid is None or self.upid is None or upid == self.upid

    def attaches(self, event: Event, window: float) -> bool:
        """Whether ``event`` is a task- or job-level report of this incident's task.

        The incident is a classified happening (not a ``*.message``) with a task UPID; the
        event has another fingerprint, the same UPID, arrived within ``window`` of the
        incident's first event, and is about no guest, or is the task's end (``task.*``) or a
        plain line (``*.message``) about the incident's guest. So a backup job's "finished
        with errors" and its ``task.failed`` join the failed guest's incident, while another
        guest's result in the same job (a classified event with its own guest) does not.

        A report never joins an incident calmer than itself: a job that "finished with
        errors" joins its failed guests' incidents, not the successful guests' ``backup.ok``
        ones (where it would be notified under "Backup of VM N finished", once per guest);
        with no failed guest's incident open it opens its own.
        """
        if window <= 0 or self.upid is None or self.kind.endswith(".message"):
            return False
        if event.severity.rank > Severity(self.severity).rank:
            return False
        if event.fingerprint == self.fingerprint or _upid(event) != self.upid:
            return False
        if event.vmid is not None and not (
            event.vmid == self.vmid
            and (event.kind.startswith("task.") or event.kind.endswith(".message"))
        ):
            return False
        return abs(event.received_at.timestamp() - self.opened) <= window

    def has(self, event: Event) -> bool:
        return event.id in self.event_ids

    def add(self, event: Event, *, text: bool = True) -> None:
        """Count ``event`` in (sources, best text, UPID); a redelivered event counts once.
        An attached event (``text=False``) counts and names its source, but the incident's
        text stays its own fingerprint's; so does a late copy of another state's report."""
        if event.id in self.event_ids:
            return
        self.count += 1
        if len(self.event_ids) < MAX_EVENT_IDS:
            self.event_ids.append(event.id)
        self.last = max(self.last, event.received_at.timestamp())
        if event.source.value not in self.sources:
            self.sources.append(event.source.value)
        self.report(event)
        if self.peer_node is None:
            self.peer_node = event_peer_node(event)
        if not text:
            return
        if self.upid is None:
            self.upid = _upid(event)
        state = reported_state(event)
        if state is not None and not same_state(state, self.state):
            return  # a late copy of an earlier state: counted, but the text stays this state's
        score = list(_score(event))
        if score > self.score:
            self.score = score
            self.title = event.title
            self.message = event.message[:MAX_MESSAGE]
            self.severity = event.severity.value

    def summary(self) -> dict[str, Any]:
        """What a notification says about the incident (the ``incident`` template field)."""
        return {
            "id": self.id,
            "fingerprint": self.fingerprint,
            "kind": self.kind,
            "node": self.node,
            "vmid": self.vmid,
            "severity": self.severity,
            "title": self.title,
            "message": self.message,
            "sources": list(self.sources),
            "count": self.count,
            "first_seen": self.opened,
            "upid": self.upid,
            "since": self.since,
            "earlier": self.earlier,
            "state": self.state,
            "previous_state": self.states[-2] if len(self.states) > 1 else None,
            "resolved": self.resolved,
            "resolves": self.resolves,
            "reporters": list(self.reporters),
            "reporters_down": self.reporters_down(),
            "peer_node": self.peer_node,
        }

    def to_json(self) -> bytes:
        # Not dataclasses.asdict: its recursive deep copy was ~85 % of intake's incident cost.
        return encode_json({name: getattr(self, name) for name in _FIELDS})

    @classmethod
    def from_json(cls, data: bytes) -> Incident:
        """Raises ``ValueError``/``TypeError``/``KeyError`` on a value that is not one."""
        raw = json.loads(data)
        if not isinstance(raw, dict):
            raise ValueError("not a JSON object")
        # A newer version's fields are left out (replicas are upgraded one at a time).
        incident = cls(**{k: v for k, v in raw.items() if k in _FIELD_NAMES})
        reporters = incident.reporters
        if not isinstance(reporters, dict) or not all(
            back is None or _is_time(back) for back in reporters.values()
        ):
            # a damaged record: the reporters that are names, with a time or none
            incident.reporters = {
                str(name)[:MAX_STATE_CHARS]: back
                for name, back in (reporters.items() if isinstance(reporters, dict) else ())
                if back is None or _is_time(back)
            }
        if not isinstance(incident.peer_node, str) or not incident.peer_node:
            incident.peer_node = None  # a damaged record: no name, as before it was learned
        else:
            incident.peer_node = incident.peer_node[:MAX_STATE_CHARS]
        return incident


_FIELDS = tuple(f.name for f in fields(Incident))
_FIELD_NAMES = frozenset(_FIELDS)


class AbsentFailures:
    """Failure keys read from the state bucket and found absent, not read again for ``ttl``
    seconds: every ``backup.ok`` of a guest that never failed would cost a KV read, and
    syslog lines anyone can send are enough to make them (``Finished Backup of VM N``).
    Bounded: past ``max_keys`` entries it starts over. A failure another replica stores
    within ``ttl`` of such a read is not seen as resolved by a success in that time."""

    def __init__(
        self, ttl: float = 60.0, max_keys: int = 4096, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.ttl, self.max_keys, self._clock = ttl, max_keys, clock
        self._until: dict[str, float] = {}

    def known_absent(self, key: str) -> bool:
        until = self._until.get(key)
        if until is None:
            return False
        if until > self._clock():
            return True
        del self._until[key]
        return False

    def remember(self, key: str) -> None:
        if len(self._until) >= self.max_keys:
            self._until.clear()
        self._until[key] = self._clock() + self.ttl
