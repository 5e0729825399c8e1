"""kronosnet link lines: one ``link.down`` alert per (node, lost peer), ended by its last link.

Pure, no I/O. corosync's transport (kronosnet) logs, on every node, one line per link to
each peer: libknet ``threads_heartbeat.c`` ``host: %u link: %u is down`` as the link's pongs
stop, ``threads_rx.c`` (``threads_heartbeat.c``/``links.c`` by version) ``host: %u link: %u
is up`` when it answers again. A peer reached over two links (corosync's ``link0``/``link1``,
the recommended set-up; libknet ``libknet.h`` ``KNET_MAX_LINK`` 8) that is lost gives one
down line per link on each survivor: one happening, so one alert, whose fingerprint subject
is the peer (``knet host 2``), not the link.

The loss of a peer is one happening however many nodes survive it: every survivor logs its
own down lines, so the lines are about no node (``Classification.no_node``, as an HA
service's state; the event's ``node`` is null) and the node that logged one goes in
``metadata.reporter`` (the ingest services add it): one fingerprint (kind, site, subject)
per lost peer, one alert, which the dispatcher ends when every reporter's up came back
(``stages/incidents.py``). ``KnetLinks`` still remembers per (reporter, peer).

The lines name the peer by its corosync node id only (``metadata.peer_nodeid``; the ingest
services have no API to ask): the dispatcher adds its node name (``metadata.peer_node``,
``pve3``) from the gateway's ``get_cluster_status`` before routes and silences read the
event, so ``node = pve3`` matches the lost peer and notifications name it
(``services/dispatcher`` ``stages/peers.py``). The name is not in the fingerprint.

Both ingest services see these lines (ingest-syslog from syslog, ingest-pve-ws in the
cluster log) and build them here, so one line is one fingerprint whichever service read it.
``KnetLinks`` is the memory that makes the peer's alert one and ends it right:

- a down line of a peer with no link down remembered opens the peer's alert (``link.down``);
- a down line of another link of a peer that has one down (no up since) is a detail of the
  peer's alert (plain, ``metadata.detail_of = "link.down"``), however long after;
- the same link's down again: the same line again (same time stamp: a relay's resend, a
  poll read again) is what it was the first time; else a detail within ``repeat_seconds``
  of its first, and a new ``link.down`` after (the peer's alert was likely lost or ended);
- an up line that brings the peer's last remembered link back keeps
  ``metadata.recovers = "link.down"`` (the dispatcher ends the peer's alert); an up line
  while other links of the peer are still down loses ``recovers`` and says which are
  (``metadata.links_down``, the title); with nothing remembered of the peer (a restart, the
  down line never seen) the up line recovers, as without memory.

Bounded: ``max_nodes`` nodes (least recently touched forgotten first), ``max_peers`` peers
per node, ``KNET_MAX_LINK`` links per peer.
"""

from __future__ import annotations

from collections import OrderedDict

from .classification import Classification
from .event import FINGERPRINT_SUBJECT_KEY

__all__ = [
    "KNET_MAX_LINK",
    "LINKS_DOWN",
    "KnetLinks",
    "knet_link_down",
    "knet_link_up",
    "knet_peer_subject",
]

KNET_MAX_LINK = 8  # kronosnet libknet/libknet.h: links between two hosts
PLAIN_KIND = "syslog.message"
RECOVERS = "recovers"  # metadata: the classified kind a plain line ends
DETAIL_OF = "detail_of"  # metadata: the kind of the event a line is a detail of
LINKS_DOWN = "links_down"  # metadata of an up line: the peer's links still down
PEER = "peer_nodeid"
LINK = "link"


def knet_peer_subject(peer: int) -> str:
    """The fingerprint subject of a knet ``link.down`` and of its up lines: the peer's nodeid
    (``knet host 2``). A host interface's subject is its name (no space: never one of these)."""
    return f"knet host {peer}"


def _meta(peer: int, link: int) -> dict[str, object]:
    return {PEER: peer, LINK: link, FINGERPRINT_SUBJECT_KEY: knet_peer_subject(peer)}


def knet_link_down(peer: int, link: int) -> Classification:
    """knet's ``host: N link: L is down``: ``link.down`` of the peer; the title names the link."""
    return Classification(
        kind="link.down",
        title=f"Cluster link {link} to host {peer} is down",
        metadata=_meta(peer, link),
        no_node=True,
    )


def knet_link_up(peer: int, link: int) -> Classification:
    """knet's ``host: N link: L is up``: plain, ending the peer's ``link.down``
    (``KnetLinks.classify`` takes ``recovers`` away while another link of the peer is down)."""
    return Classification(
        kind=PLAIN_KIND,
        title=f"Cluster link {link} to host {peer} is up again",
        metadata={**_meta(peer, link), RECOVERS: "link.down"},
        no_node=True,
    )


class KnetLinks:
    """The knet links down per node and peer, as its lines said (see the module's text)."""

    def __init__(
        self, max_nodes: int = 1024, max_peers: int = 64, repeat_seconds: float = 60.0
    ) -> None:
        self.max_nodes = max_nodes
        self.max_peers = max_peers
        self.repeat_seconds = repeat_seconds
        # node → peer → link → (time of its down line or None, whether it opened the alert)
        self._nodes: OrderedDict[str, dict[int, dict[int, tuple[float | None, bool]]]] = (
            OrderedDict()
        )

    def __len__(self) -> int:
        """The (node, peer) pairs remembered with a link down."""
        return sum(len(peers) for peers in self._nodes.values())

    def classify(self, node: str, cls: Classification, when: float | None) -> None:
        """Apply the memory to a knet line's classification (``knet_link_down``/``_up``'s)
        of ``node`` (the host that logged it), stamped ``when`` (epoch seconds, if known)."""
        meta = cls.metadata
        peer, link = meta.get(PEER), meta.get(LINK)
        if not isinstance(peer, int) or not isinstance(link, int):
            return
        if cls.kind == "link.down":
            if not self.down(node, peer, link, when):
                cls.kind = PLAIN_KIND
                meta[DETAIL_OF] = "link.down"
        elif meta.get(RECOVERS) == "link.down":
            still = self.up(node, peer, link)
            if still:
                del meta[RECOVERS]
                meta[LINKS_DOWN] = list(still)
                named = ", ".join(str(n) for n in still)
                cls.title = f"{cls.title}; link{'s' if len(still) > 1 else ''} {named} still down"

    def down(self, node: str, peer: int, link: int, when: float | None) -> bool:
        """Remember a down line; True when it is the peer's alert, False when a detail."""
        peers = self._nodes.get(node)
        if peers is None:
            peers = self._nodes[node] = {}
            if len(self._nodes) > self.max_nodes:
                self._nodes.popitem(last=False)
        else:
            self._nodes.move_to_end(node)
        links = peers.get(peer)
        if links is None:
            if len(peers) >= self.max_peers:
                del peers[next(iter(peers))]
            peers[peer] = {link: (when, True)}
            return True
        found = links.get(link)
        if found is None:
            if len(links) >= KNET_MAX_LINK:
                del links[next(iter(links))]
            links[link] = (when, False)
            return False
        since, opened = found
        if when is not None and since == when:
            return opened  # the same line again
        if len(links) > 1 or when is None or since is None:
            return False
        if 0 <= when - since < self.repeat_seconds:
            return False
        links[link] = (when, True)
        return True

    def up(self, node: str, peer: int, link: int) -> tuple[int, ...] | None:
        """Forget a link's down; the peer's links still down (empty: this up ends the peer's
        alert), or None when nothing was remembered of the peer."""
        peers = self._nodes.get(node)
        links = peers.get(peer) if peers is not None else None
        if peers is None or links is None:
            return None
        links.pop(link, None)
        if links:
            return tuple(sorted(links))
        del peers[peer]
        if not peers:
            del self._nodes[node]
        return ()

    def lost_since(self, node: str, when: float, seconds: float) -> bool:
        """Whether a link of ``node`` still down went down within ``seconds`` before ``when``."""
        peers = self._nodes.get(node)
        if peers is None:
            return False
        return any(
            since is not None and 0 <= when - since < seconds
            for links in peers.values()
            for since, _ in links.values()
        )
