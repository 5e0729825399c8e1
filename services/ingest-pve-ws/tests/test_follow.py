from hypothesis import given
from hypothesis import strategies as st
from proxbus_ingest_pve_ws.follow import FollowCursor

Item = tuple[int, str]


def _key(item: Item) -> Item:
    return item


def test_each_entry_is_selected_once_even_when_it_shows_up_late() -> None:
    cur = FollowCursor()
    cur.baseline([(100, "a")], 60)
    first = cur.select([(100, "a"), (110, "b")], _key, 60)
    assert first == [(110, "b")]
    cur.advance(first, 60)
    # "c" ended before "b" but was merged into the list later (another node).
    late = cur.select([(100, "a"), (110, "b"), (105, "c")], _key, 60)
    assert late == [(105, "c")]


def test_cursor_survives_a_round_trip() -> None:
    cur = FollowCursor()
    cur.advance([(100, "a"), (101, "b")], 60)
    again = FollowCursor.from_dict(cur.to_dict())
    assert again.select([(100, "a"), (101, "b"), (102, "c")], _key, 60) == [(102, "c")]


@given(
    st.lists(
        st.lists(
            st.tuples(st.integers(0, 200), st.text("abcdef", min_size=1, max_size=3)), max_size=10
        ),
        max_size=8,
    )
)
def test_nothing_is_selected_twice_and_nothing_within_lookback_is_missed(
    batches: list[list[Item]],
) -> None:
    cur = FollowCursor()
    cur.baseline([], 1000)
    seen: list[str] = []
    everything: dict[str, int] = {}
    for batch in batches:
        visible = [(t, i) for t, i in batch if everything.setdefault(i, t) == t]
        fresh = cur.select(visible, _key, 1000)
        cur.advance(fresh, 1000)
        seen += [i for _, i in fresh]
        cur = FollowCursor.from_dict(cur.to_dict())
    assert len(seen) == len(set(seen))
    assert set(seen) == set(everything)
