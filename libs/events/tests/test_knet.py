"""proxbus_events.knet: one alert per (node, lost peer), ended by the peer's last link up.

kronosnet libknet/threads_heartbeat.c logs ``host: %u link: %u is down`` once per link,
threads_rx.c ``host: %u link: %u is up``; libknet.h ``KNET_MAX_LINK`` 8 links per host.
"""

from __future__ import annotations

from proxbus_events.classification import Classification
from proxbus_events.knet import KNET_MAX_LINK, KnetLinks, knet_link_down, knet_link_up


def _down(links: KnetLinks, node: str, peer: int, link: int, when: float | None) -> Classification:
    cls = knet_link_down(peer, link)
    links.classify(node, cls, when)
    return cls


def _up(links: KnetLinks, node: str, peer: int, link: int) -> Classification:
    cls = knet_link_up(peer, link)
    links.classify(node, cls, None)
    return cls


def test_a_peer_is_one_alert_whatever_its_links_and_ends_with_its_last_link() -> None:
    links = KnetLinks()
    first, second = _down(links, "pve1", 2, 0, 100.0), _down(links, "pve1", 2, 1, 9000.0)
    assert (first.kind, first.metadata["subject_id"]) == ("link.down", "knet host 2")
    assert (second.kind, second.metadata["detail_of"]) == ("syslog.message", "link.down")
    assert second.metadata["subject_id"] == "knet host 2"
    other_node = _down(links, "pve3", 2, 1, 9000.0)
    assert other_node.kind == "link.down"
    partial = _up(links, "pve1", 2, 0)
    assert "recovers" not in partial.metadata
    assert partial.metadata["links_down"] == [1]
    assert partial.title == "Cluster link 0 to host 2 is up again; link 1 still down"
    last = _up(links, "pve1", 2, 1)
    assert (last.metadata["recovers"], "links_down" in last.metadata) == ("link.down", False)
    assert last.title == "Cluster link 1 to host 2 is up again"
    # nothing remembered of the peer (a restart): the up ends the alert, as without memory
    assert _up(links, "pve1", 2, 1).metadata["recovers"] == "link.down"
    assert len(links) == 1  # pve3's


def test_the_same_line_again_is_what_it_was() -> None:
    """A poll read again after a failed publish (ingest-pve-ws) or a relay's resend: the same
    down line (same time stamp) is classified as the first time, so its event id is one."""
    links = KnetLinks()
    kinds = [_down(links, "pve1", 2, n, 50.0 + n).kind for n in (0, 1, 0, 1)]
    assert kinds == ["link.down", "syslog.message", "link.down", "syslog.message"]
    # a later down of the same link alone: a detail within the window, an alert after it
    assert _up(links, "pve1", 2, 1).metadata.get("links_down") == [0]
    assert _down(links, "pve1", 2, 0, 80.0).kind == "syslog.message"
    assert _down(links, "pve1", 2, 0, 200.0).kind == "link.down"
    # without a time stamp a repeat cannot be told from a resend: a detail
    assert _down(links, "pve1", 2, 0, None).kind == "syslog.message"
    assert _down(links, "pve1", 4, 0, None).kind == "link.down"


def test_memory_is_bounded() -> None:
    links = KnetLinks(max_nodes=3, max_peers=2)
    for node in range(10):
        for peer in range(5):
            for link in range(KNET_MAX_LINK + 4):
                _down(links, f"n{node}", peer, link, 1.0)
    assert len(links._nodes) == 3
    assert all(len(peers) <= 2 for peers in links._nodes.values())
    assert all(len(ls) <= KNET_MAX_LINK for peers in links._nodes.values() for ls in peers.values())
    assert len(links) == 6
    # the oldest node was forgotten: its peer's up ends the alert (unknown state)
    assert _up(links, "n0", 4, 0).metadata["recovers"] == "link.down"


def test_a_line_without_peer_or_link_is_left_alone() -> None:
    links = KnetLinks()
    cls = Classification(kind="link.down", title="Network link nic0 is down", metadata={})
    links.classify("pve1", cls, 1.0)
    assert (cls.kind, cls.metadata) == ("link.down", {})
    assert len(links) == 0


def test_lost_since_looks_at_the_nodes_links_still_down() -> None:
    links = KnetLinks()
    _down(links, "pve1", 2, 0, 100.0)
    _down(links, "pve1", 3, 0, 130.0)
    assert links.lost_since("pve1", 150.0, 60.0)
    assert not links.lost_since("pve1", 500.0, 60.0)
    assert not links.lost_since("pve2", 150.0, 60.0)
    _up(links, "pve1", 3, 0)
    assert not links.lost_since("pve1", 170.0, 60.0)


def test_a_knet_line_is_about_no_node_whatever_the_survivor_that_logged_it() -> None:
    """Every survivor logs a lost peer's lines: about no node (``no_node``, the logging node
    is the ingest service's ``metadata.reporter``), the subject the peer; the memory stays
    per (reporter, peer): pve2's up does not end pve1's links down."""
    links = KnetLinks()
    downs = [_down(links, node, 3, 0, 100.0) for node in ("pve1", "pve2")]
    assert [(c.kind, c.no_node, c.node) for c in downs] == [("link.down", True, None)] * 2
    up = _up(links, "pve2", 3, 0)
    assert (up.no_node, up.metadata["recovers"]) == (True, "link.down")
    assert len(links) == 1  # pve1's link to host 3 is still down
